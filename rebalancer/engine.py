"""The engine: one rebalance as one straight line, and recovery after a crash.

For each trade of a plan, chains in parallel and each chain's trades in order (nonces):

    quote -> policy(quote) -> build -> check -> simulate -> policy(simulation)
          -> sign -> record -> send -> confirm -> reconcile

Nothing is signed before the checks and the simulation passed; every signed transaction is
written to the journal before it is sent; a trade left ``signed`` or ``sent`` by a crash is
looked up on chain by its id, and at most re-broadcast byte for byte, never signed again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from rebalancer.chains.evm import EvmChain
from rebalancer.chains.solana import SolanaChain
from rebalancer.core.errors import (
    ChainError,
    ConfigError,
    ExternalError,
    PolicyError,
    RefusedError,
    SimulationError,
    SuspiciousResponseError,
)
from rebalancer.core.types import Token
from rebalancer.dex.base import BuiltSwap, EvmTx, NoRouteError, Quote, SolanaTx, SwapRequest
from rebalancer.dex.checks import CheckedSwap, check_evm_swap, check_solana_swap
from rebalancer.documents.plan import PlanFile
from rebalancer.documents.status import TradeStatus
from rebalancer.journal import Journal, NewTrade, TradeRow
from rebalancer.services import Services
from rebalancer.simulate import (
    SimResult,
    SimulationUnavailable,
    gas_limit,
    simulate_evm,
    simulate_solana,
)

Progress = Callable[[str], None]
CONFIRM_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class TradeIntent:
    """One trade the plan asks for, with the planner's independent expectations."""

    id: str
    chain: str
    wallet: str
    sell: Token
    buy: Token
    amount_in: int
    expected_out: int
    min_out: int
    value_usd: Decimal


@dataclass
class TradeResult:
    """What became of one trade in this run."""

    id: str
    chain: str
    wallet: str
    sell: str
    buy: str
    amount_in: int
    status: str  # simulated | confirmed | failed | refused | skipped | dropped | pending
    tx: str | None = None
    min_out: int | None = None
    quoted_out: int | None = None
    simulated_out: int | None = None
    realised_out: int | None = None
    method: str | None = None
    reason: str | None = None
    sell_decimals: int = 0
    buy_decimals: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chain": self.chain,
            "wallet": self.wallet,
            "sell": self.sell,
            "buy": self.buy,
            "amount_in": str(self.amount_in),
            "status": self.status,
            "tx": self.tx,
            "min_out": None if self.min_out is None else str(self.min_out),
            "quoted_out": None if self.quoted_out is None else str(self.quoted_out),
            "simulated_out": None if self.simulated_out is None else str(self.simulated_out),
            "realised_out": None if self.realised_out is None else str(self.realised_out),
            "simulation": self.method,
            "reason": self.reason,
        }


def intents_from_plan(
    doc: PlanFile, registry: Any, prices: Mapping[str, Decimal]
) -> list[TradeIntent]:
    """The trades of a plan file (validated as it was read), resolved against the registry;
    an unknown token or a missing price is exit 2.

    The file says what to trade; what the trade is worth is not taken from it: the value
    (for the size limits and the fee budget) and the independent expected output (for the
    price checks) are recomputed from the config's ``[prices]``, so an old or edited plan
    cannot switch a policy check off.
    """
    out = []
    for i, t in enumerate(doc.trades):
        where = f"plan trades[{i}]"
        sell, buy = registry.by_id(t.sell.id), registry.by_id(t.buy.id)
        if sell is None or buy is None:
            raise ConfigError(f"{where}: unknown token {t.sell.id if sell is None else t.buy.id}")
        trade_id, chain, wallet = t.id, t.chain, t.wallet
        amount_in, min_out = t.amount_in, t.min_out
        if sell.chain != chain or buy.chain != chain:
            raise ConfigError(f"{where}: tokens are not on chain {chain!r}")
        for token in (sell, buy):
            if token.asset not in prices:
                raise ConfigError(
                    f"{where}: no [prices] entry for {token.asset}: a plan is applied at the "
                    "config's prices"
                )
        value = Decimal(amount_in).scaleb(-sell.decimals) * prices[sell.asset]
        expected = int(
            (value / prices[buy.asset]).scaleb(buy.decimals).to_integral_value(ROUND_FLOOR)
        )
        out.append(
            TradeIntent(trade_id, chain, wallet, sell, buy, amount_in, expected, min_out, value)
        )
    return out


def intents_from_trades(trades: Sequence[Any]) -> list[TradeIntent]:
    """The planner's Trade objects as intents (``run`` plans and applies in one go)."""
    return [
        TradeIntent(
            t.id,
            t.chain,
            t.wallet,
            t.sell,
            t.buy,
            t.amount_in,
            t.expected_out,
            t.min_out,
            t.value_usd,
        )
        for t in trades
    ]


@dataclass(frozen=True)
class Prepared:
    """A trade quoted, built, checked and simulated: all that comes before signing."""

    quote: Quote
    checked: CheckedSwap
    sim: SimResult
    fees: tuple[int, int] | None = None
    """EVM (max fee, tip) per gas: checked against the fee budget, and then signed with."""


class Engine:
    """Runs trades through the straight line and keeps the journal."""

    def __init__(self, services: Services, journal: Journal, progress: Progress) -> None:
        self.s = services
        self.journal = journal
        self.say = progress
        self.policy = services.config.policy

    # -- the run ---------------------------------------------------------------------------
    async def execute(
        self, run_id: int, intents: Sequence[TradeIntent], *, sign: bool
    ) -> list[TradeResult]:
        self.check_run_total(intents)
        for t in intents:
            self.journal.add_trade(
                run_id,
                NewTrade(
                    id=t.id,
                    chain=t.chain,
                    wallet=t.wallet,
                    sell=t.sell.id,
                    buy=t.buy.id,
                    amount_in=t.amount_in,
                    min_out=t.min_out,
                ),
            )
        by_chain: dict[str, list[TradeIntent]] = {}
        for t in intents:
            by_chain.setdefault(t.chain, []).append(t)
        stop = asyncio.Event()
        # NOTE: a failing chain (node down) must not cancel the others mid-send: every chain
        # finishes its current trade cleanly, then the first error is raised.
        groups = await asyncio.gather(
            *(self._chain_trades(run_id, ts, sign, stop) for ts in by_chain.values()),
            return_exceptions=True,
        )
        for g in groups:
            if isinstance(g, BaseException):
                raise g
        order = {t.id: i for i, t in enumerate(intents)}
        return sorted(
            (r for g in groups if isinstance(g, list) for r in g), key=lambda r: order[r.id]
        )

    async def _chain_trades(
        self, run_id: int, trades: list[TradeIntent], sign: bool, stop: asyncio.Event
    ) -> list[TradeResult]:
        results: list[TradeResult] = []
        in_flight = False
        for t in trades:
            if stop.is_set() or in_flight:
                why = (
                    "an earlier trade on this chain is still in flight"
                    if in_flight
                    else "the run stopped after a refusal"
                )
                results.append(self._result(t, "skipped", reason=why))
                self.journal.update(run_id, t.id, TradeStatus.SKIPPED, error=why)
                continue
            try:
                results.append(await self._trade(run_id, t, sign))
                # NOTE: later trades were planned on the balances this one changes
                in_flight = results[-1].status == "pending"
            except RefusedError as exc:
                self.journal.update(run_id, t.id, TradeStatus.REFUSED, error=exc.message)
                self.say(f"{t.chain}: {t.id} refused: {exc.message}")
                results.append(self._result(t, "refused", reason=exc.message))
                if self.policy.on_refusal == "stop":
                    stop.set()
            except NoRouteError as exc:
                self.journal.update(run_id, t.id, TradeStatus.SKIPPED, error=exc.message)
                results.append(self._result(t, "skipped", reason=f"no_route: {exc.message}"))
        return results

    def _result(self, t: TradeIntent, status: str, **kw: Any) -> TradeResult:
        return TradeResult(
            t.id,
            t.chain,
            t.wallet,
            t.sell.symbol,
            t.buy.symbol,
            t.amount_in,
            status,
            sell_decimals=t.sell.decimals,
            buy_decimals=t.buy.decimals,
            **kw,
        )

    async def prepare(self, t: TradeIntent) -> Prepared:
        """Everything before a signature: quote, policy, build, check, simulate, policy again.

        Needs no signer, so ``export --unsigned`` runs the very same steps as ``apply``.
        """
        self.say(f"{t.chain}: {t.id} sell {t.sell.symbol} for {t.buy.symbol}: quoting")
        if t.value_usd > self.policy.max_trade_usd:
            raise PolicyError(
                f"trade of ${t.value_usd:,.0f} is over policy.max_trade_usd "
                f"${self.policy.max_trade_usd:,.0f}"
            )
        agg = self.s.aggregator(t.chain)
        request = SwapRequest(
            chain=t.chain,
            chain_id=self.s.registry.chains[t.chain].chain_id,
            wallet=t.wallet,
            sell=t.sell,
            buy=t.buy,
            amount_in=t.amount_in,
            slippage_bps=self.policy.max_slippage_bps,
        )
        quote = await agg.quote(request)
        self._within_price(t, quote.expected_out, "the quote")
        built = await agg.build(quote)
        checked = self._check(built, await self._lookup_tables(t.chain, built))
        self.say(f"{t.chain}: {t.id} simulating")
        sim = await self._simulate(t, checked)
        if sim.out < checked.min_out:
            raise SimulationError(
                f"simulated output {sim.out} {t.buy.symbol} (base units) is below the "
                f"transaction's minimum {checked.min_out}"
            )
        self._within_price(t, sim.out, "the simulation")
        # NOTE: what the signed transaction guarantees binds the chain, not the quote: the
        # worst price it can execute at must also be within the deviation limit.
        self._within_price(t, checked.min_out, "the transaction's guaranteed minimum")
        fees = await self._fees_within_budget(t, checked, sim)
        return Prepared(quote, checked, sim, fees)

    async def _fees_within_budget(
        self, t: TradeIntent, checked: CheckedSwap, sim: SimResult
    ) -> tuple[int, int] | None:
        """EVM: the fees per gas the transactions will be signed with, and the check that the
        network fee stays within policy.max_fee_pct of the trade's value.

        Priced at the max fee per gas (the worst case) for the gas limits that will be signed
        (the simulation's, or the aggregator's when unsimulated); the budget check is skipped
        only when the native coin has no price."""
        adapter = self.s.adapter(t.chain)
        if not isinstance(adapter, EvmChain):
            return None
        fees = await adapter.fees()
        swap = checked.built.tx
        assert isinstance(swap, EvmTx)
        gas = gas_limit(sim.gas_used, swap.gas)
        if checked.built.approval is not None:
            gas += gas_limit(sim.approval_gas_used, checked.built.approval.gas)
        native = self.s.registry.native(t.chain)
        price = self.s.config.prices.get(native.asset)
        if price is None:
            return fees
        fee_usd = Decimal(gas * fees[0]).scaleb(-native.decimals) * price
        budget = t.value_usd * self.policy.max_fee_pct / 100
        if fee_usd > budget:
            raise PolicyError(
                f"network fee up to ${fee_usd:,.2f} is over policy.max_fee_pct "
                f"({self.policy.max_fee_pct}% of ${t.value_usd:,.2f})"
            )
        return fees

    async def _trade(self, run_id: int, t: TradeIntent, sign: bool) -> TradeResult:
        """One trade, start to finish: the straight line of the module docstring."""
        prepared = await self.prepare(t)
        quote, checked, sim = prepared.quote, prepared.checked, prepared.sim
        self.journal.update(
            run_id, t.id, TradeStatus.PLANNED, min_out=checked.min_out, simulated_out=sim.out
        )
        result = self._result(
            t,
            "simulated",
            min_out=checked.min_out,
            quoted_out=quote.expected_out,
            simulated_out=sim.out,
            method=sim.method,
        )
        self.say(
            f"{t.chain}: {t.id} simulated ({sim.method}): {t.amount_in} {t.sell.symbol} -> "
            f"{sim.out} {t.buy.symbol} base units (guaranteed at least {checked.min_out})"
        )
        if not sign:
            self.journal.update(run_id, t.id, TradeStatus.SIMULATED)
            return result
        adapter = self.s.adapter(t.chain)
        before = await self._balance(adapter, t.wallet, t.buy)
        if isinstance(adapter, EvmChain):
            assert prepared.fees is not None
            tx_id, status = await self._send_evm(run_id, t, adapter, checked, sim, prepared.fees)
        elif isinstance(adapter, SolanaChain):
            tx_id, status = await self._send_solana(run_id, t, adapter, checked)
        else:  # pragma: no cover - every family has an adapter
            raise ConfigError(f"no sender for {t.chain}")
        result.tx = tx_id
        result.status = status
        if status == "confirmed":
            gained = await self._balance(adapter, t.wallet, t.buy) - before
            result.realised_out = gained
            self.journal.update(run_id, t.id, TradeStatus.CONFIRMED, realised_out=gained)
            self.say(f"{t.chain}: {t.id} confirmed in {tx_id}")
        elif status == "pending":
            # NOTE: still in flight: the row stays "sent", so the next run recovers it (and
            # refuses to plan until it has landed or been dropped) instead of trading again.
            result.reason = "not confirmed in time: still in flight"
            self.say(f"{t.chain}: {t.id} not confirmed yet: {tx_id}")
        else:
            self.journal.update(run_id, t.id, TradeStatus(status), error=f"transaction {status}")
            result.reason = f"transaction {status}"
            self.say(f"{t.chain}: {t.id} {status}: {tx_id}")
        return result

    # -- policy, checks, simulation ------------------------------------------------------
    def check_run_total(self, intents: Sequence[TradeIntent]) -> None:
        """policy.max_run_usd caps what one run, or one export, trades in total."""
        total = sum((t.value_usd for t in intents), Decimal(0))
        if total > self.policy.max_run_usd:
            raise PolicyError(
                f"the plan trades ${total:,.0f}, over policy.max_run_usd "
                f"${self.policy.max_run_usd:,.0f}"
            )

    def _within_price(self, t: TradeIntent, out: int, what: str) -> None:
        """``out`` may be worse than the planner's independent expectation by at most
        policy.max_price_deviation_pct."""
        if t.expected_out <= 0:
            return
        shortfall = (Decimal(t.expected_out) - Decimal(out)) / Decimal(t.expected_out) * 100
        if shortfall > self.policy.max_price_deviation_pct:
            raise PolicyError(
                f"{what} gives {out} {t.buy.symbol} base units, {shortfall:.2f}% below the "
                f"independent price ({t.expected_out}); policy.max_price_deviation_pct is "
                f"{self.policy.max_price_deviation_pct}"
            )

    def _check(
        self, built: BuiltSwap, lookup_tables: dict[str, list[str]] | None = None
    ) -> CheckedSwap:
        if isinstance(built.tx, EvmTx):
            return check_evm_swap(built, self.s.swap_policy())
        return check_solana_swap(built, self.s.swap_policy(), lookup_tables)

    async def _lookup_tables(self, chain: str, built: BuiltSwap) -> dict[str, list[str]] | None:
        """The address lookup tables a Solana swap uses, read from its chain, so the check
        sees every account the runtime will load (None when there are none to read)."""
        if not isinstance(built.tx, SolanaTx):
            return None
        from solders.message import MessageV0
        from solders.transaction import VersionedTransaction

        try:
            msg = VersionedTransaction.from_bytes(built.tx.raw).message
        except ValueError:
            return None  # the check refuses what does not decode
        if not isinstance(msg, MessageV0) or not msg.address_table_lookups:
            return None
        adapter = self.s.adapter(chain)
        if not isinstance(adapter, SolanaChain):
            return None
        keys = [str(x.account_key) for x in msg.address_table_lookups]
        try:
            return await adapter.lookup_tables(keys)
        except ChainError as exc:
            if "lookup table" not in exc.message:
                raise  # the node is down: that is exit 4, not this trade's fault
            # NOTE: a table that is missing or not a table is the aggregator's answer at fault.
            raise SuspiciousResponseError(
                f"aggregator transaction refused: {exc.message}"
            ) from None

    async def _simulate(self, t: TradeIntent, checked: CheckedSwap) -> SimResult:
        """Simulate before signing; with no way to simulate, refuse unless the policy
        explicitly allows unsimulated trades (then the transaction's own minimum stands)."""
        adapter = self.s.adapter(t.chain)
        try:
            if isinstance(adapter, EvmChain):
                return await simulate_evm(adapter, checked, self.s.work_dir)
            if isinstance(adapter, SolanaChain):
                return await simulate_solana(adapter, checked)
            raise SimulationUnavailable(f"{t.chain}: no simulation for this chain family")
        except SimulationUnavailable as exc:
            if self.policy.require_simulation or checked.simulation_must_show:
                if checked.simulation_must_show and not self.policy.require_simulation:
                    raise SimulationError(
                        f"{exc.message}; only a simulation can show "
                        f"{checked.simulation_must_show}, so nothing is signed"
                    ) from None
                raise SimulationError(
                    f"{exc.message}; policy.require_simulation is on, so nothing is signed"
                ) from None
            self.say(f"{t.chain}: {t.id} NOT simulated ({exc.message}): policy allows it")
            return SimResult("none (policy allows unsimulated trades)", checked.min_out)

    @staticmethod
    async def _balance(adapter: Any, wallet: str, token: Token) -> int:
        got = await adapter.balances([wallet], [token])
        if got.failures:
            raise ChainError(
                f"{adapter.info.name}: cannot read {token.symbol}: {got.failures[0].reason}"
            )
        return int(got.holdings[0].raw)

    # -- EVM: sign, record, send, confirm ------------------------------------------------
    async def _send_evm(
        self,
        run_id: int,
        t: TradeIntent,
        adapter: EvmChain,
        checked: CheckedSwap,
        sim: SimResult,
        fees: tuple[int, int],
    ) -> tuple[str, str]:
        signer = await self.s.signer(t.chain, t.wallet)
        max_fee, tip = fees  # the fees the budget was checked with
        nonce = await adapter.nonce(t.wallet)
        approval = checked.built.approval
        if approval is not None:
            aid = f"{t.id}/approve"
            self.journal.add_trade(
                run_id,
                NewTrade(
                    id=aid,
                    chain=t.chain,
                    wallet=t.wallet,
                    sell=t.sell.id,
                    buy=t.sell.id,
                    amount_in=t.amount_in,
                ),
            )
            self.say(
                f"{t.chain}: {t.id} signing the approval of exactly {t.amount_in} {t.sell.symbol}"
            )
            gas = gas_limit(sim.approval_gas_used, approval.gas)
            approval_tx, status = await self._sign_send_wait_evm(
                run_id, aid, adapter, signer, approval, nonce, gas, max_fee, tip
            )
            if status == "pending":
                return approval_tx, "pending"  # the swap waits for a later run
            if status != "confirmed":
                raise SimulationError(f"the approval was {status}; the swap was not sent")
            self.journal.update(run_id, t.id, TradeStatus.APPROVED)
            nonce += 1
        swap = checked.built.tx
        assert isinstance(swap, EvmTx)
        gas = gas_limit(sim.gas_used, swap.gas)
        self.say(f"{t.chain}: {t.id} signing the swap")
        return await self._sign_send_wait_evm(
            run_id, t.id, adapter, signer, swap, nonce, gas, max_fee, tip
        )

    async def _sign_send_wait_evm(
        self,
        run_id: int,
        trade_id: str,
        adapter: EvmChain,
        signer: Any,
        tx: EvmTx,
        nonce: int,
        gas: int,
        max_fee: int,
        tip: int,
    ) -> tuple[str, str]:
        signed = await signer.sign_evm_transaction(
            {
                "type": 2,
                "chainId": tx.chain_id,
                "nonce": nonce,
                "to": tx.to,
                "data": tx.data,
                "value": tx.value,
                "gas": gas,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
            }
        )
        tx_hash = "0x" + signed.hash.hex()
        # NOTE: durably recorded before the send: a crash from here on is recovered by hash.
        self.journal.update(
            run_id,
            trade_id,
            TradeStatus.SIGNED,
            tx_hash=tx_hash,
            raw_tx=signed.raw_transaction.hex(),
            nonce=nonce,
        )
        await adapter.send_raw(signed.raw_transaction)
        self.journal.update(run_id, trade_id, TradeStatus.SENT)
        status = await self._wait(adapter, tx_hash)
        await self._record_fee(run_id, trade_id, adapter, tx_hash)
        if status != "pending" and (trade_id.endswith("/approve") or status != "confirmed"):
            self.journal.update(run_id, trade_id, TradeStatus(status))
        return tx_hash, status

    # -- Solana: sign, record, send, confirm ---------------------------------------------
    async def _send_solana(
        self, run_id: int, t: TradeIntent, adapter: SolanaChain, checked: CheckedSwap
    ) -> tuple[str, str]:
        from solders.transaction import VersionedTransaction

        from rebalancer.wallet.base import sign_versioned_transaction

        tx = checked.built.tx
        assert isinstance(tx, SolanaTx)
        signer = await self.s.signer(t.chain, t.wallet)
        signed = await sign_versioned_transaction(signer, VersionedTransaction.from_bytes(tx.raw))
        raw = bytes(signed)
        sig = str(signed.signatures[0])
        self.journal.update(run_id, t.id, TradeStatus.SIGNED, tx_hash=sig, raw_tx=raw.hex())
        await adapter.send_raw(raw)
        self.journal.update(run_id, t.id, TradeStatus.SENT)
        status = await self._wait(adapter, sig)
        await self._record_fee(run_id, t.id, adapter, sig)
        return sig, status

    async def _record_fee(self, run_id: int, trade_id: str, adapter: Any, tx_id: str) -> None:
        """What the landed transaction paid the network (reports read it); best effort."""
        try:
            fee = await adapter.fee_paid(tx_id)
        except ChainError:
            return
        if fee is not None:
            self.journal.set_fee(run_id, trade_id, fee)

    async def _wait(self, adapter: Any, tx_id: str, timeout: float = CONFIRM_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        delay = 0.01
        while time.monotonic() < deadline:
            status = str(await adapter.tx_status(tx_id))
            if status in ("confirmed", "failed"):
                return status
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        return "pending"

    # -- recovery --------------------------------------------------------------------------
    async def recover(self) -> list[TradeRow]:
        """Settle what a crash left between signing and confirmation; never sign anything."""
        settled = []
        for row in self.journal.unfinished():
            if row.chain not in self.s.config.chains:
                continue
            adapter = self.s.adapter(row.chain)
            assert row.tx_hash is not None
            self.say(f"recovering {row.chain} trade {row.trade_id} from run {row.run_id}")
            status = str(await adapter.tx_status(row.tx_hash))
            if status == "unknown":
                status = await self._rebroadcast(adapter, row)
            if status in ("confirmed", "failed", "dropped"):
                self.journal.update(row.run_id, row.trade_id, TradeStatus(status))
                settled.append(row.model_copy(update={"state": TradeStatus(status)}))
        return settled

    async def _rebroadcast(self, adapter: Any, row: TradeRow) -> str:
        """Send the journalled bytes again if they can still land; else call them dropped,
        after asking once more whether they landed meanwhile (a lagging node, a race)."""
        raw = bytes.fromhex(row.raw_tx or "")
        tx_id = str(row.tx_hash)
        cannot_land = False
        if isinstance(adapter, EvmChain):
            # that nonce is used by another transaction, or by ours on a lagging receipt node
            cannot_land = (
                row.nonce is not None and await adapter.mined_nonce(row.wallet) > row.nonce
            )
        elif isinstance(adapter, SolanaChain):
            from solders.transaction import VersionedTransaction

            blockhash = str(VersionedTransaction.from_bytes(raw).message.recent_blockhash)
            cannot_land = not await adapter.blockhash_valid(blockhash)
        if cannot_land:
            status = str(await adapter.tx_status(tx_id))
            return status if status in ("confirmed", "failed") else "dropped"
        try:
            await adapter.send_raw(raw)
        except ExternalError as exc:
            if "already" not in exc.message.lower():
                raise
        return await self._wait(adapter, tx_id, timeout=60)
