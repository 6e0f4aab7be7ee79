"""The engine with fakes handed to Services: the money-safety order without any node.

The chain, the aggregator and the signer are small in-memory fakes passed to ``Services``
(no engine internals patched): the simulation gates signing, the signed bytes are journalled
before they are sent, and recovery re-broadcasts those bytes without signing again. The real
adapters are covered on the local worlds (test_execution.py, test_external.py).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from rebalancer.chains.base import Balances, ChainAdapter, SimResult, SwapLegs
from rebalancer.config import load_config
from rebalancer.core.tx import (
    EvmCall,
    EvmTransaction,
    SignedEvmTransaction,
    SignedTx,
    UnsignedTx,
)
from rebalancer.core.types import Holding, Token
from rebalancer.dex.base import (
    BuiltSwap,
    CheckedSwap,
    Quote,
    SwapAggregator,
    SwapPolicy,
    SwapRequest,
)
from rebalancer.documents.plan import PlanFile
from rebalancer.documents.status import RunMode
from rebalancer.engine import Engine, TradeIntent
from rebalancer.journal import Journal
from rebalancer.services import Services

WALLET = "0x38933fB3600db971A459767D149B492e58e40b76"
ROUTER = "0x111111125421cA6dc452d289314280a0f8842A65"
CONFIG = f"""
[chains.ethereum]
rpc = "http://127.0.0.1:1"

[[wallets]]
name = "w"
address = "{WALLET}"
chains = ["ethereum"]

[strategy]
targets = {{ ETH = 50, STABLES = 50 }}

[prices]
ETH = 3000
USDC = 1
"""


class FakeChain(ChainAdapter):
    """An EVM-like chain in memory: balances move when a sent swap "lands"."""

    def __init__(self, base: ChainAdapter, simulated_out: int, journal: Journal) -> None:
        super().__init__(base.info, base.rpc_url, base.client)
        self.simulated_out = simulated_out
        self.journal = journal
        self.held: dict[str, int] = {}
        self.sent: list[bytes] = []
        self.landed: set[str] = set()
        self.journalled_at_send: list[str | None] = []

    async def balances(self, wallets: Sequence[str], tokens: Sequence[Token]) -> Balances:
        out = Balances(self.info.name)
        for w in wallets:
            out.holdings += [Holding(self.info.name, w, t, self.held.get(t.id, 0)) for t in tokens]
        return out

    async def simulate(self, legs: SwapLegs) -> SimResult:
        return SimResult("fake", self.simulated_out, 100_000)

    async def finalize(
        self, wallet: str, legs: SwapLegs, sim: SimResult, *, queued: int = 0
    ) -> list[UnsignedTx]:
        calls = [p for p in legs.proposals if isinstance(p, EvmCall)]
        return [
            EvmTransaction.eip1559(c, nonce=queued + i, gas=130_000, max_fee=10, tip=1)
            for i, c in enumerate(calls)
        ]

    def max_network_fee(self, txs: Sequence[UnsignedTx]) -> int | None:
        return sum(tx.max_fee for tx in txs if isinstance(tx, EvmTransaction))

    async def send_raw(self, raw: bytes) -> str:
        rows = [t for t in self.journal.trades() if t.raw_tx == raw.hex()]
        self.journalled_at_send.append(rows[0].state if rows else None)
        self.sent.append(raw)
        self.landed.add("0x" + hashlib.sha256(raw).hexdigest())
        return "0x" + hashlib.sha256(raw).hexdigest()

    async def tx_status(self, tx_id: str) -> str:
        return "confirmed" if tx_id in self.landed else "unknown"

    async def fee_paid(self, tx_id: str) -> int | None:
        return 21_000

    async def can_still_land(self, raw: bytes, wallet: str) -> bool:
        return True

    async def landing_problem(
        self, wallet: str, txs: Sequence[UnsignedTx], *, what: str = "these transactions"
    ) -> str | None:
        return None


class FakeAggregator(SwapAggregator):
    name = "1inch"

    def __init__(self, out: int) -> None:
        self.out = out

    async def quote(self, request: SwapRequest) -> Quote:
        return Quote(request, self.out)

    async def build(self, quote: Quote) -> BuiltSwap:
        r = quote.request
        call = EvmCall(1, r.wallet, ROUTER, b"\x12\x34" + r.amount_in.to_bytes(32, "big"), 0, 1, 1)
        return BuiltSwap(quote, call, self.out)

    def check(
        self,
        built: BuiltSwap,
        policy: SwapPolicy,
        lookup_tables: Mapping[str, Sequence[str]] | None = None,
    ) -> CheckedSwap:
        return CheckedSwap(built, min_out=self.out * 99 // 100)


class FakeSigner:
    """Signs by naming the payload (not a real signature: the fake chain takes anything)."""

    family = "evm"
    identity = WALLET

    def __init__(self) -> None:
        self.signed: list[bytes] = []

    async def sign(self, tx: UnsignedTx) -> SignedTx:
        payload = tx.payload()
        self.signed.append(payload)
        raw = b"\x02signed" + payload
        return SignedEvmTransaction(raw, hashlib.sha256(raw).digest(), 1, 2, 0)


def _world(tmp_path: Path, simulated_out: int) -> tuple[Engine, FakeChain, FakeSigner, Any]:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    config, registry = load_config(path)
    journal = Journal(tmp_path / "j.sqlite")
    client = httpx.AsyncClient()
    real = Services(config, registry, client).adapter("ethereum")
    chain = FakeChain(real, simulated_out, journal)
    signer = FakeSigner()
    services = Services(
        config,
        registry,
        client,
        adapters={"ethereum": chain},
        aggregators={"1inch": FakeAggregator(1_000_000)},
        signers={("ethereum", WALLET.lower()): signer},  # type: ignore[dict-item]
        confirm_timeout_s=2,
    )
    return Engine(services, journal, lambda _m: None), chain, signer, registry


NO_PLAN = PlanFile.of({"created_at": "2026-01-01T00:00:00+00:00", "trades": []}, "test")


def _intent(registry: Any) -> TradeIntent:
    weth, usdc = registry.by_symbol("ethereum", "WETH"), registry.by_symbol("ethereum", "USDC")
    return TradeIntent("t1", "ethereum", WALLET, weth, usdc, 10**15, 1_000_000, 990_000, Decimal(3))


def test_a_simulation_below_the_minimum_signs_nothing(tmp_path: Path) -> None:
    engine, chain, signer, registry = _world(tmp_path, simulated_out=1)
    run_id = engine.journal.start_run(RunMode.EXECUTE, NO_PLAN)
    (result,) = asyncio.run(engine.execute(run_id, [_intent(registry)], sign=True))
    assert result.status == "refused" and "below the transaction's minimum" in str(result.reason)
    assert signer.signed == [] and chain.sent == []


def test_signed_bytes_are_journalled_before_the_send_and_recovery_never_signs(
    tmp_path: Path,
) -> None:
    engine, chain, signer, registry = _world(tmp_path, simulated_out=1_000_000)
    run_id = engine.journal.start_run(RunMode.EXECUTE, NO_PLAN)
    (result,) = asyncio.run(engine.execute(run_id, [_intent(registry)], sign=True))
    assert result.status == "confirmed" and len(signer.signed) == 1
    assert chain.journalled_at_send == ["signed"]  # on disk before the node saw it
    # a crash right after the send: the row is left "sent" and the node forgot the tx
    row = engine.journal.trades(run_id)[0]
    engine.journal.update(run_id, row.trade_id, "sent")
    chain.landed.clear()
    settled = asyncio.run(engine.recover())
    assert [r.state for r in settled] == ["confirmed"]
    assert chain.sent == [chain.sent[0]] * 2  # the same bytes again
    assert len(signer.signed) == 1  # and nothing signed again
