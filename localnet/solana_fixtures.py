"""Build ``fixtures/solana/demo.json``: mainnet mints at their real addresses plus demo wallets.

Run ``python -m rebalancer.localnet.solana_fixtures`` to rebuild the file byte-identically
(``--check`` only compares). Mints and decimals come from the token registry, so the node and
the adapter agree on addresses; their mint authority is replaced by a local key so tests can mint.

PUBLIC DEMO KEYS: every keypair here is derived from a published seed
(``Keypair.from_seed(sha256(b"rebalancer demo solana wallet"))`` etc.). Anyone can sign for
them; they exist for the local worlds only and must never hold real funds.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from solders.account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.token.state import Mint, TokenAccount, TokenAccountState

from rebalancer.core.resources import fixture_path
from rebalancer.localnet.solana_accounts import (
    NATIVE_MINT,
    RENT_EPOCH_MAX,
    SYSTEM_PROGRAM,
    TOKEN_2022_PROGRAM,
    TOKEN_PROGRAM,
)
from rebalancer.localnet.solana_snapshot import SNAPSHOT_FORMAT, dump_snapshot, write_or_check

DEMO_PATH = fixture_path("solana", "demo.json")
DEMO_SLOT = 350_000_000
LAMPORTS_PER_SOL = 1_000_000_000

DEMO_WALLET_SEED = b"rebalancer demo solana wallet"
DEMO_USDC_2_SEED = b"rebalancer demo solana wallet usdc account 2"
MAKER_SEED = b"rebalancer demo solana maker"
MINT_AUTHORITY_SEED = b"rebalancer demo solana mint authority"

# PYUSD is Token-2022 on mainnet (checked against two public token lists); it is not in the
# registry, so the adapter ignores it unless a config adds it as a token.
PYUSD_MINT = Pubkey.from_string("2b1kV6DkPAnxd5ixfnxCpjxmKwqjjaYmCZfHsFu24GXo")
PYUSD_DECIMALS = 6

# Total supply per registry symbol, in whole tokens (roughly mainnet's order of magnitude).
_SUPPLY = {
    "USDC": 9_000_000_000,
    "USDT": 2_400_000_000,
    "cbBTC": 6_000,
    "WBTC": 180,
    "WETH": 12_000,
    "JUP": 7_000_000_000,
    "BONK": 88_000_000_000_000,
}
# The demo wallet: skewed to SOL, JUP and BONK, light on stables (~$29.9k at SOL 180,
# BTC 95000, ETH 3200, JUP 0.8, BONK 0.00002, stables 1). Amounts in base units.
DEMO_SOL_LAMPORTS = 95 * LAMPORTS_PER_SOL
_DEMO = {
    "wSOL": 5 * LAMPORTS_PER_SOL,
    "USDC": 300 * 10**6,  # plus a second USDC account below: summing is tested
    "USDT": 250 * 10**6,
    "cbBTC": 2_000_000,  # 0.02 BTC
    "WBTC": 500_000,  # 0.005 BTC
    "WETH": 30_000_000,  # 0.3 ETH (8 decimals on Solana)
    "JUP": 6_000 * 10**6,
    "BONK": 150_000_000 * 10**5,
}
DEMO_USDC_2_AMOUNT = 200 * 10**6
DEMO_PYUSD_AMOUNT = 100 * 10**6
# The maker: a deep-pocketed counterparty for local RFQ fills.
MAKER_SOL_LAMPORTS = 100_000 * LAMPORTS_PER_SOL
_MAKER_WHOLE = {
    "wSOL": 10_000,
    "USDC": 10_000_000,
    "USDT": 10_000_000,
    "cbBTC": 100,
    "WBTC": 50,
    "WETH": 1_000,
    "JUP": 10_000_000,
    "BONK": 500_000_000_000,
}
MAKER_PYUSD_WHOLE = 1_000_000


def _seeded(seed_text: bytes) -> Keypair:
    return Keypair.from_seed(hashlib.sha256(seed_text).digest())


def demo_keypair() -> Keypair:
    """The public demo Solana wallet (seed ``sha256(b"rebalancer demo solana wallet")``)."""
    return _seeded(DEMO_WALLET_SEED)


def maker_keypair() -> Keypair:
    """The public demo market maker (seed ``sha256(b"rebalancer demo solana maker")``)."""
    return _seeded(MAKER_SEED)


def mint_authority_keypair() -> Keypair:
    """Mint authority of every local mint (public seed), so tests can mint more."""
    return _seeded(MINT_AUTHORITY_SEED)


def _rent(data_len: int) -> int:
    """Rent-exempt minimum with mainnet's rent (3480 lamports/byte-year, 2 years, +128 bytes)."""
    return (128 + data_len) * 3480 * 2


def _entry(account: Account) -> dict[str, Any]:
    return {
        "data": [base64.b64encode(bytes(account.data)).decode(), "base64"],
        "executable": account.executable,
        "lamports": account.lamports,
        "owner": str(account.owner),
        "rentEpoch": account.rent_epoch,
        "space": len(account.data),
    }


def _token_account(
    mint: Pubkey, owner: Pubkey, amount: int, program: Pubkey = TOKEN_PROGRAM
) -> Account:
    """An initialized token account; wSOL ones carry their rent reserve as ``is_native``."""
    native = mint == NATIVE_MINT
    base = bytes(
        TokenAccount(
            mint=mint,
            owner=owner,
            amount=amount,
            delegate=None,
            state=TokenAccountState.Initialized,
            is_native=_rent(165) if native else None,
            delegated_amount=0,
        )
    )
    # NOTE: Token-2022 associated accounts always carry ImmutableOwner (type 7, no data).
    data = base if program == TOKEN_PROGRAM else base + b"\x02" + struct.pack("<HH", 7, 0)
    lamports = _rent(len(data)) + (amount if native else 0)
    return Account(lamports, data, program, False, RENT_EPOCH_MAX)


def _mint(authority: Pubkey | None, supply: int, decimals: int, program: Pubkey) -> Account:
    data = bytes(Mint(authority, supply, decimals, True, None))
    return Account(_rent(len(data)), data, program, False, RENT_EPOCH_MAX)


def _wallet(lamports: int) -> Account:
    return Account(lamports, b"", SYSTEM_PROGRAM, False, RENT_EPOCH_MAX)


def build_demo_snapshot() -> dict[str, Any]:
    """The whole demo snapshot as a JSON-ready dict (deterministic)."""
    from rebalancer.chains.registry import Registry

    registry = Registry.load()
    tokens = {t.symbol: t for t in registry.tokens_on("solana") if t.address is not None}
    authority = mint_authority_keypair().pubkey()
    demo = demo_keypair().pubkey()
    maker = maker_keypair().pubkey()
    usdc_2 = _seeded(DEMO_USDC_2_SEED).pubkey()

    accounts: dict[Pubkey, Account] = {}
    labels: dict[Pubkey, str] = {
        demo: "demo wallet",
        maker: "maker wallet",
        authority: "mint authority",
        usdc_2: "demo USDC account 2 (not associated)",
    }
    accounts[demo] = _wallet(DEMO_SOL_LAMPORTS)
    accounts[maker] = _wallet(MAKER_SOL_LAMPORTS)
    accounts[authority] = _wallet(10 * LAMPORTS_PER_SOL)

    for symbol, token in tokens.items():
        assert token.address is not None
        mint = Pubkey.from_string(token.address)
        maker_amount = _MAKER_WHOLE[symbol] * 10**token.decimals
        if mint == NATIVE_MINT:
            # The native mint has no authority and zero supply; wSOL is backed by lamports.
            accounts[mint] = _mint(None, 0, token.decimals, TOKEN_PROGRAM)
        else:
            supply = _SUPPLY[symbol] * 10**token.decimals
            accounts[mint] = _mint(authority, supply, token.decimals, TOKEN_PROGRAM)
        labels[mint] = f"{symbol} mint"
        demo_ata = get_associated_token_address(demo, mint)
        accounts[demo_ata] = _token_account(mint, demo, _DEMO[symbol])
        labels[demo_ata] = f"demo {symbol} account"
        maker_ata = get_associated_token_address(maker, mint)
        accounts[maker_ata] = _token_account(mint, maker, maker_amount)
        labels[maker_ata] = f"maker {symbol} account"
    usdc = Pubkey.from_string(tokens["USDC"].address or "")
    accounts[usdc_2] = _token_account(usdc, demo, DEMO_USDC_2_AMOUNT)

    pyusd_supply = 800_000_000 * 10**PYUSD_DECIMALS
    accounts[PYUSD_MINT] = _mint(authority, pyusd_supply, PYUSD_DECIMALS, TOKEN_2022_PROGRAM)
    labels[PYUSD_MINT] = "PYUSD mint (Token-2022)"
    for owner, amount, who in (
        (demo, DEMO_PYUSD_AMOUNT, "demo"),
        (maker, MAKER_PYUSD_WHOLE * 10**PYUSD_DECIMALS, "maker"),
    ):
        ata = get_associated_token_address(owner, PYUSD_MINT, TOKEN_2022_PROGRAM)
        accounts[ata] = _token_account(PYUSD_MINT, owner, amount, TOKEN_2022_PROGRAM)
        labels[ata] = f"{who} PYUSD account (Token-2022)"

    meta = {
        "format": SNAPSHOT_FORMAT,
        "source": "generated by python -m rebalancer.localnet.solana_fixtures",
        "slot": DEMO_SLOT,
        "note": "PUBLIC demo keys derived from published seeds; never send real funds to them.",
        "wallets": {"demo": str(demo), "maker": str(maker)},
        "seeds": {
            "demo": f"sha256({DEMO_WALLET_SEED!r})",
            "maker": f"sha256({MAKER_SEED!r})",
            "mint_authority": f"sha256({MINT_AUTHORITY_SEED!r})",
            "demo_usdc_2": f"sha256({DEMO_USDC_2_SEED!r})",
        },
        "labels": {str(k): v for k, v in labels.items()},
    }
    return {"meta": meta, "accounts": {str(k): _entry(v) for k, v in accounts.items()}}


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the demo snapshot."""
    parser = argparse.ArgumentParser(prog="python -m rebalancer.localnet.solana_fixtures")
    parser.add_argument("--out", type=Path, default=DEMO_PATH)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = dump_snapshot(build_demo_snapshot())
    return write_or_check(
        text, args.out, check=args.check, command="python -m rebalancer.localnet.solana_fixtures"
    )


if __name__ == "__main__":
    raise SystemExit(main())
