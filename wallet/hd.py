"""BIP32 paths and hierarchical derivation from a BIP39 mnemonic, for both families.

EVM keys use BIP32 secp256k1 (eth-account's HD wallet code); Solana keys use SLIP-0010 ed25519
(hardened-only), which eth-account lacks and which is a few lines of HMAC-SHA512. Ledger devices
derive the same way, so a mnemonic imported here and the device holding it give the same keys.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from rebalancer.core.errors import ConfigError

HARDENED = 0x80000000
EVM_DEFAULT_PATH = "m/44'/60'/0'/0/0"
SOLANA_DEFAULT_PATH = "m/44'/501'/0'/0'"


def parse_path(path: str) -> list[int]:
    """``m/44'/60'/0'/0/0`` -> list of indices (hardened ones with ``0x80000000`` set)."""
    parts = path.strip().split("/")
    if parts and parts[0] in ("m", "M"):
        parts = parts[1:]
    if not parts or len(parts) > 10:
        raise ConfigError(f"derivation path {path!r}: needs 1 to 10 levels, like m/44'/60'/0'/0/0")
    out = []
    for part in parts:
        hardened = part.endswith(("'", "h", "H"))
        digits = part[:-1] if hardened else part
        if not digits.isdigit() or int(digits) >= HARDENED:
            raise ConfigError(f"derivation path {path!r}: bad level {part!r}")
        out.append(int(digits) | (HARDENED if hardened else 0))
    return out


def format_path(indices: list[int]) -> str:
    return "m/" + "/".join(f"{i & ~HARDENED}'" if i & HARDENED else str(i) for i in indices)


def serialize_path(indices: list[int]) -> bytes:
    """Ledger's wire form: one count byte, then each index as 4 bytes big-endian."""
    return bytes([len(indices)]) + b"".join(struct.pack(">I", i) for i in indices)


def seed_from_mnemonic(mnemonic: str, passphrase: str = "") -> bytes:
    """The 64-byte BIP39 seed; a bad phrase is a one-line error that does not repeat the words."""
    from eth_account.hdaccount import seed_from_mnemonic as _seed

    try:
        return _seed(" ".join(mnemonic.split()), passphrase)
    except Exception:
        # NOTE: eth-account's message quotes the words; never let it through.
        raise ConfigError("mnemonic: not a valid BIP39 phrase (checksum or word list)") from None


def evm_key_from_seed(seed: bytes, path: str = EVM_DEFAULT_PATH) -> bytes:
    """The secp256k1 private key at ``path`` (BIP32)."""
    from eth_account.hdaccount import key_from_seed

    return key_from_seed(seed, format_path(parse_path(path)))


def evm_key_and_chain_code(seed: bytes, indices: list[int]) -> tuple[bytes, bytes]:
    """The secp256k1 key at ``indices`` and its BIP32 chain code (what a Ledger returns with
    the address when asked for it, so a host can derive the account's public children)."""
    from eth_account.hdaccount.deterministic import HDPath, derive_child_key

    node = hmac.new(b"Bitcoin seed", seed, hashlib.sha512).digest()
    key, chain = node[:32], node[32:]
    for child in HDPath(format_path(indices))._path:
        key, chain = derive_child_key(key, chain, child)
    return key, chain


def slip10_ed25519(seed: bytes, indices: list[int]) -> tuple[bytes, bytes]:
    """SLIP-0010 ed25519: (private key seed, chain code); every level must be hardened."""
    digest = hmac.new(b"ed25519 seed", seed, hashlib.sha512).digest()
    key, chain = digest[:32], digest[32:]
    for index in indices:
        if not index & HARDENED:
            raise ConfigError(
                f"derivation path {format_path(indices)!r}: ed25519 (Solana) needs every level "
                "hardened, like m/44'/501'/0'/0'"
            )
        data = b"\x00" + key + struct.pack(">I", index)
        digest = hmac.new(chain, data, hashlib.sha512).digest()
        key, chain = digest[:32], digest[32:]
    return key, chain


def solana_key_from_seed(seed: bytes, path: str = SOLANA_DEFAULT_PATH) -> bytes:
    """The 32-byte ed25519 secret seed at ``path`` (the first half of a solana-keygen file)."""
    return slip10_ed25519(seed, parse_path(path))[0]
