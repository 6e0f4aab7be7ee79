"""Build the local EVM worlds from audited npm bytecode and commit their states to fixtures/.

``python -m rebalancer.localnet.build`` (or ``make fixtures``) starts a fresh anvil per world,
deploys WETH9, Uniswap V2 and V3 (factory, routers, QuoterV2, position manager) at Uniswap's
REAL addresses on that chain (``worlds.UNISWAP``) and Multicall3, places the registry's ERC-20
tokens (mainnet USDT's no-bool token as ``LocalTetherToken``) and the Chainlink feeds of
chains/data/oracles.toml at their REAL mainnet addresses (anvil_setCode), seeds the pools and
the feeds at the snapshot prices of ``localnet.worlds``, and writes
``fixtures/evm/<chain>.state.json.gz`` and ``<chain>.world.json``. Block timestamps and the
deployer are fixed, the JSON is canonical and gzip carries no mtime, so two builds give
identical files.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
from decimal import Decimal
from math import isqrt
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_utils import to_checksum_address

from rebalancer.chains.anvil import start_anvil, stop_pid
from rebalancer.chains.oracles import feeds_on
from rebalancer.chains.registry import Registry
from rebalancer.core.resources import checkout_root, fixture_path, package_path
from rebalancer.core.types import Token, TokenQuirk
from rebalancer.localnet.rpc import Rpc
from rebalancer.localnet.worlds import (
    PRICES,
    TOKEN_NAMES,
    UNISWAP,
    WORLDS,
    PoolSpec,
    WorldSpec,
)

FIXTURES = fixture_path("evm")
CONTRACTS = package_path("localnet", "contracts")
MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
ONEINCH_ROUTER_V6 = "0x111111125421cA6dc452d289314280a0f8842A65"
GENESIS_TIMESTAMP = 1767225600  # 2026-01-01T00:00:00Z
BLOCK_INTERVAL = 12
MAX_UINT = 2**256 - 1
DEADLINE = 2**40
MIN_TICK, MAX_TICK = -887272, 887272
TICK_SPACING = {100: 1, 500: 10, 3000: 60, 10000: 200}
# The rounds each local feed starts with: (hours before genesis, share of the snapshot price).
FEED_HISTORY = ((3, "0.99"), (2, "1.01"), (1, "0.995"), (0, "1"))
EVM_VERSION = "cancun"  # the older of the two chains' forks, so one bytecode runs on both


def _checkout() -> Path:
    """The checkout whose node_modules holds the pinned npm artifacts and solcjs."""
    root = checkout_root()
    if root is None:
        raise SystemExit("building the worlds needs a source checkout with `make setup` done")
    return root


def artifact(rel: str) -> str:
    """Creation bytecode of an npm artifact, as hex without 0x."""
    data = json.loads((_checkout() / "node_modules" / rel).read_text())
    code = data["bytecode"]
    if isinstance(code, dict):
        code = code["object"]
    if data.get("linkReferences"):
        raise RuntimeError(f"{rel} needs library linking")
    return str(code).removeprefix("0x")


def compile_contracts(filename: str) -> dict[str, str]:
    """Compile one of localnet/contracts/*.sol with the pinned solcjs; creation bytecode by
    contract name."""
    source = (CONTRACTS / filename).read_text()
    request = {
        "language": "Solidity",
        "sources": {filename: {"content": source}},
        "settings": {
            "optimizer": {"enabled": True, "runs": 200},
            "evmVersion": EVM_VERSION,
            "metadata": {"bytecodeHash": "none"},
            "outputSelection": {filename: {"*": ["evm.bytecode.object"]}},
        },
    }
    out = subprocess.run(
        ["node", str(CONTRACTS / "compile.js"), str(_checkout())],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout)
    errors = [e for e in result.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise RuntimeError(errors[0]["formattedMessage"])
    return {
        name: str(c["evm"]["bytecode"]["object"])
        for name, c in result["contracts"][filename].items()
    }


def short_string_slot(text: str) -> str:
    """Solidity storage encoding of a string under 32 bytes: data left-aligned, len*2 last."""
    raw = text.encode()
    assert len(raw) < 32
    return "0x" + (raw + b"\x00" * (31 - len(raw)) + bytes([len(raw) * 2])).hex()


def raw_amount(token: Token, usd: Decimal) -> int:
    """Base units of ``token`` worth ``usd`` at the snapshot price."""
    return int(usd / PRICES[token.asset] * (Decimal(10) ** token.decimals))


class WorldBuilder:
    """Deploys one world on a fresh anvil through its unlocked dev account."""

    def __init__(self, spec: WorldSpec, rpc: Rpc, registry: Registry) -> None:
        self.spec = spec
        self.rpc = rpc
        self.registry = registry
        self.deployer = str(to_checksum_address(rpc.call("eth_accounts")[0]))
        self.world: dict[str, Any] = {
            "chain": spec.chain,
            "chain_id": spec.chain_id,
            "deployer": self.deployer,
            "prices_usd": {k: str(v) for k, v in PRICES.items()},
            "contracts": {},
            "tokens": {},
            "pools": [],
        }

    def token(self, symbol: str) -> Token:
        token = self.registry.by_symbol(self.spec.chain, symbol)
        assert token is not None and token.address is not None, symbol
        return token

    def build(self) -> dict[str, Any]:
        rpc, me = self.rpc, self.deployer
        rpc.call("anvil_setBlockTimestampInterval", BLOCK_INTERVAL)
        rpc.call(
            "anvil_setCode", MULTICALL3, (CONTRACTS / "Multicall3.runtime.hex").read_text().strip()
        )
        self.world["contracts"]["Multicall3"] = MULTICALL3

        wrapped = self.token(self.spec.wrapped_native)
        self._place(artifact("@uniswap/v2-periphery/build/WETH9.json"), wrapped.address)
        for slot, value in enumerate(
            [
                short_string_slot(self.spec.wrapped_name),
                short_string_slot(wrapped.symbol),
                "0x" + f"{18:064x}",
            ]
        ):
            rpc.call("anvil_setStorageAt", wrapped.address, hex(slot), value)
        self.world["tokens"][wrapped.symbol] = wrapped.address

        templates = {
            False: rpc.deploy(me, compile_contracts("LocalToken.sol")["LocalToken"]),
            True: rpc.deploy(me, compile_contracts("LocalTetherToken.sol")["LocalTetherToken"]),
        }
        runtimes = {k: rpc.call("eth_getCode", a, "latest") for k, a in templates.items()}
        for tok in self.registry.tokens_on(self.spec.chain):
            if tok.address is None or tok.symbol == wrapped.symbol:
                continue
            # NOTE: a token known to return no bool (mainnet USDT) gets the Tether-like code.
            tether_like = TokenQuirk.NO_RETURN_DATA in tok.quirks
            rpc.call("anvil_setCode", tok.address, runtimes[tether_like])
            name = TOKEN_NAMES[tok.symbol]
            rpc.transact(
                me,
                tok.address,
                "init(string,string,uint8,address)",
                name,
                tok.symbol,
                tok.decimals,
                me,
            )
            self.world["tokens"][tok.symbol] = tok.address
        self._place_feeds()

        c = self.world["contracts"]
        c["UniswapV2Factory"] = self._deploy_at(
            "UniswapV2Factory",
            artifact("@uniswap/v2-core/build/UniswapV2Factory.json"),
            encode(["address"], [me]).hex(),
        )
        c["UniswapV2Router02"] = self._deploy_at(
            "UniswapV2Router02",
            artifact("@uniswap/v2-periphery/build/UniswapV2Router02.json"),
            encode(["address", "address"], [c["UniswapV2Factory"], wrapped.address]).hex(),
        )
        v3 = "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json"
        c["UniswapV3Factory"] = self._deploy_at("UniswapV3Factory", artifact(v3))
        rpc.transact(me, c["UniswapV3Factory"], "enableFeeAmount(uint24,int24)", 100, 1)
        periphery = "@uniswap/v3-periphery/artifacts/contracts/"
        fw = encode(["address", "address"], [c["UniswapV3Factory"], wrapped.address]).hex()
        c["SwapRouter"] = self._deploy_at(
            "SwapRouter", artifact(periphery + "SwapRouter.sol/SwapRouter.json"), fw
        )
        c["QuoterV2"] = self._deploy_at(
            "QuoterV2", artifact(periphery + "lens/QuoterV2.sol/QuoterV2.json"), fw
        )
        npm_args = encode(
            ["address", "address", "address"],
            [c["UniswapV3Factory"], wrapped.address, "0x" + "00" * 20],
        ).hex()
        c["NonfungiblePositionManager"] = self._deploy_at(
            "NonfungiblePositionManager",
            artifact(periphery + "NonfungiblePositionManager.sol/NonfungiblePositionManager.json"),
            npm_args,
        )
        aggregator = compile_contracts("LocalAggregationRouter.sol")
        self._place(aggregator["LocalAggregationRouter"], ONEINCH_ROUTER_V6)
        rpc.transact(me, ONEINCH_ROUTER_V6, "init(address)", wrapped.address)
        c["AggregationRouterV6"] = ONEINCH_ROUTER_V6
        c["LocalExecutor"] = rpc.deploy(me, aggregator["LocalExecutor"])
        self._fund_deployer_and_approve(wrapped)
        for pool in self.spec.pools:
            self._add_pool(pool)
        return self.world

    def _place_feeds(self) -> None:
        """Chainlink-compatible feeds at the real proxy addresses of chains/data/oracles.toml,
        each with a few hourly rounds up to the genesis time, the last at the snapshot price."""
        rpc, me = self.rpc, self.deployer
        template = rpc.deploy(me, compile_contracts("LocalPriceFeed.sol")["LocalPriceFeed"])
        runtime = rpc.call("eth_getCode", template, "latest")
        self.world["oracles"] = {}
        for feed in feeds_on(self.spec.chain):
            rpc.call("anvil_setCode", feed.address, runtime)
            rpc.transact(
                me, feed.address, "init(address,uint8,string)", me, feed.decimals, feed.description
            )
            for hours_ago, factor in FEED_HISTORY:
                at = GENESIS_TIMESTAMP - 3600 * hours_ago
                answer = int(PRICES[feed.asset] * Decimal(factor) * 10**feed.decimals)
                rpc.transact(me, feed.address, "pushRound(int256,uint64,uint64)", answer, at, at)
            self.world["oracles"][feed.asset] = feed.address

    def _place(self, creation_hex: str, address: str | None) -> None:
        """Deploy normally, then copy the runtime code to ``address`` (a real mainnet address)."""
        assert address is not None
        deployed = self.rpc.deploy(self.deployer, creation_hex)
        self.rpc.call("anvil_setCode", address, self.rpc.call("eth_getCode", deployed, "latest"))

    def _deploy_at(self, name: str, creation_hex: str, ctor: str = "") -> str:
        """Deploy ``name`` and move it to its real address on this chain, if it has one there:
        runtime code (an immutable holding the contract's own address patched to the new one)
        and storage. Its pools are then created from the real address, so CREATE2 gives them
        the addresses a client computes from the real factory."""
        rpc = self.rpc
        deployed = rpc.deploy(self.deployer, creation_hex, ctor)
        target = UNISWAP.get(self.spec.chain, {}).get(name)
        if target is None:
            return deployed
        code = str(rpc.call("eth_getCode", deployed, "latest"))
        code = code.replace(deployed[2:].lower(), target[2:].lower())
        rpc.call("anvil_setCode", target, code)
        for slot, value in self._storage(deployed).items():
            rpc.call("anvil_setStorageAt", target, slot, "0x" + int(value, 16).to_bytes(32).hex())
        rpc.call("anvil_setCode", deployed, "0x")
        return target

    def _storage(self, address: str) -> dict[str, str]:
        """Every storage slot of ``address`` (from a state dump: anvil lists no storage)."""
        dump = json.loads(gzip.decompress(bytes.fromhex(self.rpc.call("anvil_dumpState")[2:])))
        accounts = {k.lower(): v for k, v in dump["accounts"].items()}
        return dict(accounts[address.lower()].get("storage", {}))

    def _needs(self) -> dict[str, int]:
        needs: dict[str, int] = {}
        for pool in self.spec.pools:
            for sym in (pool.a, pool.b):
                amt = raw_amount(self.token(sym), Decimal(pool.usd_per_side))
                needs[sym] = needs.get(sym, 0) + amt + 1
        return needs

    def _fund_deployer_and_approve(self, wrapped: Token) -> None:
        rpc, me, c = self.rpc, self.deployer, self.world["contracts"]
        for sym, amount in self._needs().items():
            tok = self.token(sym)
            if sym == wrapped.symbol:
                rpc.call("anvil_setBalance", me, hex(amount * 2))
                rpc.transact(me, str(tok.address), "deposit()", value=amount)
            else:
                rpc.transact(me, str(tok.address), "mint(address,uint256)", me, amount)
            for spender in (c["NonfungiblePositionManager"], c["UniswapV2Router02"]):
                rpc.transact(me, str(tok.address), "approve(address,uint256)", spender, MAX_UINT)

    def _add_pool(self, pool: PoolSpec) -> None:
        rpc, me, c = self.rpc, self.deployer, self.world["contracts"]
        ta, tb = self.token(pool.a), self.token(pool.b)
        usd = Decimal(pool.usd_per_side)
        if int(str(ta.address), 16) > int(str(tb.address), 16):
            ta, tb = tb, ta
        amt0, amt1 = raw_amount(ta, usd), raw_amount(tb, usd)
        if pool.kind == "v2":
            rpc.transact(
                me,
                c["UniswapV2Router02"],
                "addLiquidity(address,address,uint256,uint256,uint256,uint256,address,uint256)",
                ta.address,
                tb.address,
                amt0,
                amt1,
                0,
                0,
                me,
                DEADLINE,
            )
            out = rpc.read(
                c["UniswapV2Factory"], "getPair(address,address)", ta.address, tb.address
            )
            fee = 3000
        else:
            spacing = TICK_SPACING[pool.fee]
            sqrt_price_x96 = isqrt(amt1 * 2**192 // amt0)
            npm = c["NonfungiblePositionManager"]
            rpc.transact(
                me,
                npm,
                "createAndInitializePoolIfNecessary(address,address,uint24,uint160)",
                ta.address,
                tb.address,
                pool.fee,
                sqrt_price_x96,
            )
            lower = -(MAX_TICK // spacing) * spacing
            upper = (MAX_TICK // spacing) * spacing
            rpc.transact(
                me,
                npm,
                "mint((address,address,uint24,int24,int24,uint256,uint256,uint256,uint256,"
                "address,uint256))",
                (ta.address, tb.address, pool.fee, lower, upper, amt0, amt1, 0, 0, me, DEADLINE),
            )
            out = rpc.read(
                c["UniswapV3Factory"],
                "getPool(address,address,uint24)",
                ta.address,
                tb.address,
                pool.fee,
            )
            fee = pool.fee
        address = str(to_checksum_address(out[12:32]))
        self.world["pools"].append(
            {
                "kind": pool.kind,
                "address": address,
                "token0": ta.symbol,
                "token1": tb.symbol,
                "fee": fee,
                "usd_per_side": pool.usd_per_side,
            }
        )


def canonical_state(dump_hex: str) -> bytes:
    """anvil_dumpState's gzipped JSON, re-serialised canonically and gzipped without mtime."""
    raw = gzip.decompress(bytes.fromhex(dump_hex.removeprefix("0x")))
    data = json.loads(raw)
    # NOTE: only the account state and the head block are kept: the history comes in
    # hash-map order and a world does not need it; anvil needs its best block to load.
    best = int(data["best_block_number"])
    head = [b for b in data["blocks"] if int(b["header"]["number"], 16) == best]
    data = {
        "accounts": data["accounts"],
        "block": data["block"],
        "best_block_number": best,
        "blocks": head,
        "transactions": [t for t in data["transactions"] if int(t["block_number"]) == best],
    }
    text = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return gzip.compress(text, compresslevel=9, mtime=0)


def build_world(spec: WorldSpec, registry: Registry, out_dir: Path) -> dict[str, str]:
    """Build one world on a throwaway anvil and write its two fixture files."""
    with tempfile.TemporaryDirectory(prefix="rebalancer-build-") as tmp:
        node = start_anvil(
            f"build-{spec.chain}",
            Path(tmp) / "anvil.log",
            chain_id=spec.chain_id,
            extra=[
                "--timestamp",
                str(GENESIS_TIMESTAMP),
                "--accounts",
                "1",
                "--balance",
                "1000000000",
                "--hardfork",
                EVM_VERSION,
            ],
        )
        rpc = Rpc(node.url)
        try:
            world = WorldBuilder(spec, rpc, registry).build()
            world["block"] = int(rpc.call("eth_blockNumber"), 16)
            state = canonical_state(rpc.call("anvil_dumpState"))
        finally:
            rpc.close()
            stop_pid(node.pid)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / f"{spec.chain}.state.json.gz"
    world_path = out_dir / f"{spec.chain}.world.json"
    state_path.write_bytes(state)
    world_path.write_text(json.dumps(world, indent=2) + "\n")
    return {
        state_path.name: hashlib.sha256(state).hexdigest(),
        world_path.name: hashlib.sha256(world_path.read_bytes()).hexdigest(),
    }


def arbitrageur_code() -> str:
    """Creation code of the moving market's arbitrageur (``localnet.market`` deploys it on a
    running world; committed as ``contracts/LocalArbitrageur.bin`` so no compiler is needed)."""
    return compile_contracts("LocalArbitrageur.sol")["LocalArbitrageur"] + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURES, help="output folder")
    parser.add_argument("worlds", nargs="*", default=list(WORLDS), help="worlds to build")
    args = parser.parse_args(argv)
    (CONTRACTS / "LocalArbitrageur.bin").write_text(arbitrageur_code())
    print("LocalArbitrageur.bin  compiled")
    registry = Registry.load()
    for name in args.worlds:
        digests = build_world(WORLDS[name], registry, args.out)
        for file, digest in digests.items():
            print(f"{file}  sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
