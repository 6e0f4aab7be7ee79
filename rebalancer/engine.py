"""The engine: one rebalance as one straight line.

For each trade of a plan, chains in parallel and each chain's trades in order (nonces):

    quote -> policy(quote) -> build -> check -> simulate -> policy(simulation)
          -> finalize -> policy(fee) -> sign -> record -> send -> confirm -> reconcile

Nothing is signed before the checks and the simulation passed; the transactions signed are the
ones finalized before the fee check; every signed transaction is written to the journal before
it is sent. The engine asks the chain adapter (``chains.base.ChainAdapter``) for every step
that depends on the chain and never which family it holds. Recovery after a crash is in
``rebalancer.recovery``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rebalancer.chains.base import ChainAdapter, SimResult, SwapLegs
from rebalancer.core.errors import (
    ChainError,
    DeviceError,
    LookupTableError,
    PolicyError,
    RefusedError,
    SimulationError,
    SimulationUnavailable,
    SuspiciousResponseError,
    UserRejectedError,
)
from rebalancer.core.tx import UnsignedTx
from rebalancer.dex.base import BuiltSwap, CheckedSwap, NoRouteError, Quote, SwapRequest
from rebalancer.documents.status import TradeStatus
from rebalancer.intents import (
    TradeIntent,
    TradeResult,
    intents_from_plan,
    intents_from_trades,
    pre_swap_ids,
    reset_id,
)
from rebalancer.journal import Journal, NewTrade, TradeRow
from rebalancer.services import Services
from rebalancer.wallet.base import Signer

__all__ = [
    "Engine",
    "Prepared",
    "TradeIntent",
    "TradeResult",
    "intents_from_plan",
    "intents_from_trades",
]

Progress = Callable[[str], None]


class ExpiredUnsentError(ChainError):
    """The signed transaction can no longer land (a Solana blockhash expired while it was being
    signed, e.g. a long Ledger review), so it was not sent; it is never sent again."""


def rebuilt_id(trade_id: str) -> str:
    """The journal row of a trade's rebuilt attempt (the first stays, marked dropped)."""
    return f"{trade_id}-rebuilt"


@dataclass(frozen=True)
class Prepared:
    """A trade quoted, built, checked, simulated and finalized: all that comes before signing."""

    quote: Quote
    checked: CheckedSwap
    sim: SimResult
    txs: tuple[UnsignedTx, ...]
    """What will be signed, in sending order (an approval first): fees checked on these."""


WAIT_TICK_S = 2.0
"""How often a progress line says how long a sent transaction has been waited for."""


def _units(raw: int, token: Any) -> str:
    """A raw amount in token units with its symbol, rounded for people (``core.display``)."""
    from rebalancer.core.display import short_units

    return f"{short_units(Decimal(raw).scaleb(-token.decimals))} {token.symbol}"


class Engine:
    """Runs trades through the straight line and keeps the journal."""

    def __init__(self, services: Services, journal: Journal, progress: Progress) -> None:
        self.s = services
        self.journal = journal
        self.say = progress
        self.policy = services.config.policy
        self._place: dict[str, tuple[int, int]] = {}
        """Each trade's place in the run (``trade 2/5``), for the progress lines."""

    def number(self, intents: Sequence[TradeIntent]) -> None:
        """Give each trade its place for the progress lines, and say how many there are."""
        self._place = {t.id: (i, len(intents)) for i, t in enumerate(intents, 1)}
        if intents:
            chains = ", ".join(dict.fromkeys(t.chain for t in intents))
            self.say(f"quoting and simulating {len(intents)} trade(s) on {chains}")

    def _who(self, t: TradeIntent) -> str:
        """``ethereum: trade 2/5 t-0002``: which trade a progress line is about."""
        place = self._place.get(t.id)
        where = f"trade {place[0]}/{place[1]} " if place else ""
        return f"{t.chain}: {where}{t.id}"

    # -- the run ---------------------------------------------------------------------------
    async def execute(
        self, run_id: int, intents: Sequence[TradeIntent], *, sign: bool
    ) -> list[TradeResult]:
        self.check_run_total(intents)
        self.number(intents)
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
        with contextlib.ExitStack() as held:
            if sign and intents:
                held.enter_context(self._one_writer(intents))
                await self.unlock(intents)
            # NOTE: a failing chain (node down) must not cancel the others mid-send: every
            # chain finishes its current trade cleanly, then the first error is raised.
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

    def _one_writer(
        self, intents: Sequence[TradeIntent]
    ) -> contextlib.AbstractContextManager[None]:
        """The lock of every wallet the run signs for, held until it ends (``locks``)."""
        from rebalancer.locks import state_dir, wallet_locks

        folder = state_dir(self.s.env) / "locks"
        return wallet_locks(folder, ((t.chain, t.wallet) for t in intents))

    async def unlock(self, intents: Sequence[TradeIntent]) -> None:
        """Open every signer the trades need, on every chain, before the first is signed: a
        wrong passphrase, a missing key file (exit 2), an unreachable Ledger (4) or one that
        says no (5) ends the run with nothing signed anywhere."""
        for chain, wallet in dict.fromkeys((t.chain, t.wallet) for t in intents):
            self.say(f"{chain}: opening the signer of {wallet}")
            await self.s.signer(chain, wallet)

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
                self.say(f"{self._who(t)} refused: {exc.message}")
                results.append(self._result(t, "refused", reason=exc.message))
                if self.policy.on_refusal == "stop":
                    stop.set()
            except NoRouteError as exc:
                self.journal.update(run_id, t.id, TradeStatus.SKIPPED, error=exc.message)
                results.append(self._result(t, "skipped", reason=f"no_route: {exc.message}"))
        return results

    def _result(self, t: TradeIntent, status: str, **kw: Any) -> TradeResult:
        return TradeResult.of(t, status, **kw)

    async def prepare(self, t: TradeIntent, *, queued: int = 0) -> Prepared:
        """Everything before a signature: quote, policy, build, check, simulate, policy,
        finalize, fee budget. ``queued``: the wallet's transactions finalized before and not
        sent yet (an export of several trades).

        Needs no signer, so ``export --unsigned`` runs the very same steps as ``apply``.
        """
        self.say(f"{self._who(t)} sell {_units(t.amount_in, t.sell)} for {t.buy.symbol}: quoting")
        if t.value_usd > self.policy.max_trade_usd:
            raise PolicyError(
                f"trade of ${t.value_usd:,.0f} is over policy.max_trade_usd "
                f"${self.policy.max_trade_usd:,.0f}"
            )
        agg = self.s.aggregator(t.chain)
        adapter = self.s.adapter(t.chain)
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
        if built.quote is not quote:
            # NOTE: the aggregator quoted again while building (Jupiter /build): the quote the
            # transaction is held to is priced too, and reported
            quote = built.quote
            self._within_price(t, quote.expected_out, "the quote")
        tables = await self._lookup_tables(adapter, built)
        checked = agg.check(built, self.s.swap_policy(), tables)
        self.say(f"{self._who(t)} simulating")
        built = checked.built
        legs = SwapLegs(t.wallet, t.sell, t.buy, built.tx, built.approval, built.approval_reset)
        sim = await self._simulate(t, adapter, legs, checked)
        if sim.out < checked.min_out:
            raise SimulationError(
                f"simulated output {sim.out} {t.buy.symbol} (base units) is below the "
                f"transaction's minimum {checked.min_out}"
            )
        self._within_price(t, sim.out, "the simulation")
        # NOTE: what the signed transaction guarantees binds the chain, not the quote: the
        # worst price it can execute at must also be within the deviation limit.
        self._within_price(t, checked.min_out, "the transaction's guaranteed minimum")
        txs = tuple(await adapter.finalize(t.wallet, legs, sim, queued=queued))
        self._fee_within_budget(t, adapter, txs)
        return Prepared(quote, checked, sim, txs)

    def _fee_within_budget(
        self, t: TradeIntent, adapter: ChainAdapter, txs: Sequence[UnsignedTx]
    ) -> None:
        """The network fee the finalized transactions can pay at most (EVM: their gas limits at
        the max fee per gas) stays within policy.max_fee_pct of the trade's value; skipped
        where the adapter bounds no fee, or the native coin has no price."""
        worst = adapter.max_network_fee(txs)
        native = self.s.registry.native(t.chain)
        price = self.s.config.prices.get(native.asset)
        if worst is None or price is None:
            return
        fee_usd = Decimal(worst).scaleb(-native.decimals) * price
        budget = t.value_usd * self.policy.max_fee_pct / 100
        if fee_usd > budget:
            raise PolicyError(
                f"network fee up to ${fee_usd:,.2f} is over policy.max_fee_pct "
                f"({self.policy.max_fee_pct}% of ${t.value_usd:,.2f})"
            )

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
            f"{self._who(t)} simulated ({sim.method}): {_units(t.amount_in, t.sell)} -> "
            f"{_units(sim.out, t.buy)} (guaranteed at least {_units(checked.min_out, t.buy)})"
        )
        if not sign:
            self.journal.update(run_id, t.id, TradeStatus.SIMULATED)
            return result
        adapter = self.s.adapter(t.chain)
        signer = await self.s.signer(t.chain, t.wallet)
        held = await adapter.balance(t.wallet, t.sell)
        if held < t.amount_in:
            raise RefusedError(
                f"stale: {t.wallet} on {t.chain} holds {held} base units of {t.sell.symbol} just "
                f"before signing, less than the {t.amount_in} this trade sells: nothing signed"
            )
        before = await adapter.balance(t.wallet, t.buy)
        *approvals, swap = prepared.txs
        for aid, approval in zip(pre_swap_ids(t.id, len(approvals)), approvals, strict=True):
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
                f"{self._who(t)} signing the reset of the leftover {t.sell.symbol} allowance "
                "to 0 (the token approves only from zero)"
                if aid == reset_id(t.id)
                else f"{self._who(t)} signing the approval of exactly {t.amount_in} {t.sell.symbol}"
            )
            approval_tx, status = await self.send(run_id, aid, t.chain, approval, signer)
            if status == "pending":
                result.tx, result.status = approval_tx, "pending"  # the swap waits for a later run
                result.reason = "not confirmed in time: still in flight"
                self.say(f"{self._who(t)} not confirmed yet: {approval_tx}")
                return result
            self.journal.update(run_id, aid, TradeStatus(status))
            if status != "confirmed":
                raise SimulationError(f"the approval was {status}; the swap was not sent")
            self.journal.update(run_id, t.id, TradeStatus.APPROVED)
        self.say(f"{self._who(t)} signing the swap")
        row = t.id
        try:
            tx_id, status = await self.send(run_id, row, t.chain, swap, signer)
        except ExpiredUnsentError as exc:
            # NOTE: never re-sent blindly: the trade is rebuilt from a fresh quote (a fresh
            # blockhash), held to the same checks and simulation, and signed again (the user is
            # asked again). The first attempt stays journalled as dropped: it cannot land.
            self.say(f"{self._who(t)} {exc}; rebuilding it (fresh quote, checks, simulation)")
            row = rebuilt_id(t.id)
            prepared = await self.prepare(t)
            *approvals, swap = prepared.txs
            if approvals:
                raise SimulationError(
                    "the rebuilt swap needs an approval again; nothing more was signed"
                ) from None
            self.journal.add_trade(
                run_id,
                NewTrade(
                    id=row,
                    chain=t.chain,
                    wallet=t.wallet,
                    sell=t.sell.id,
                    buy=t.buy.id,
                    amount_in=t.amount_in,
                    min_out=prepared.checked.min_out,
                ),
            )
            self.journal.update(
                run_id,
                row,
                TradeStatus.PLANNED,
                simulated_out=prepared.sim.out,
                error=f"rebuilds {t.id}",
            )
            result.min_out, result.simulated_out = prepared.checked.min_out, prepared.sim.out
            result.quoted_out = prepared.quote.expected_out
            self.say(f"{self._who(t)} signing the rebuilt swap")
            tx_id, status = await self.send(run_id, row, t.chain, swap, signer)
        result.tx = tx_id
        result.status = status
        if status == "confirmed":
            gained = await adapter.balance(t.wallet, t.buy) - before
            result.realised_out = gained
            self.journal.update(run_id, row, TradeStatus.CONFIRMED, realised_out=gained)
            self.say(f"{self._who(t)} confirmed in {tx_id}")
        elif status == "pending":
            # NOTE: still in flight: the row stays "sent", so the next run recovers it (and
            # refuses to plan until it has landed or been dropped) instead of trading again.
            result.reason = "not confirmed in time: still in flight"
            self.say(f"{self._who(t)} not confirmed yet: {tx_id}")
        else:
            self.journal.update(run_id, row, TradeStatus(status), error=f"transaction {status}")
            result.reason = f"transaction {status}"
            self.say(f"{self._who(t)} {status}: {tx_id}")
        return result

    async def send(
        self, run_id: int, row_id: str, chain: str, tx: UnsignedTx, signer: Signer
    ) -> tuple[str, str]:
        """Sign ``tx``, journal the signed bytes, send them, wait: ``(tx id, status)``.

        The status (``confirmed``, ``failed``, ``pending``) is left for the caller to record;
        a ``pending`` row stays ``sent`` so the next run recovers it.
        """
        adapter = self.s.adapter(chain)
        await self._still_fresh(adapter, chain, signer.identity)
        try:
            signed = await signer.sign(tx)
        except (UserRejectedError, DeviceError) as exc:
            # NOTE: a reject on the device or a locked Ledger ends the run; the row says why
            self.journal.update(
                run_id, row_id, TradeStatus.NOT_EXECUTED, error=f"signer: {exc.message}"
            )
            raise
        # NOTE: durably recorded before the send: a crash from here on is recovered by id.
        self.journal.update(
            run_id,
            row_id,
            TradeStatus.SIGNED,
            tx_hash=signed.tx_id,
            raw_tx=signed.raw.hex(),
            nonce=tx.nonce,
        )
        if not await adapter.can_still_land(signed.raw, signer.identity):
            why = "expired before it was sent (signing took longer than its blockhash allows)"
            self.journal.update(run_id, row_id, TradeStatus.DROPPED, error=f"{why}; never sent")
            raise ExpiredUnsentError(why)
        # NOTE: a swap that came with the aggregator's own landing service (Jupiter /order's
        # /execute) goes there; everything else through the chain (send_rpc if set).
        via = await self.s.submit(chain, signed)
        if via is None:
            await adapter.send_raw(signed.raw)
            via = adapter.sent_via
        self.journal.update(run_id, row_id, TradeStatus.SENT, sent_via=via)
        status = await self._wait(adapter, f"{chain}: {row_id}", signed.tx_id)
        key = (chain, signer.identity.lower())
        if self.s.activity.get(key) is not None:
            self.s.activity[key] = await adapter.last_activity(signer.identity)  # ours: known
        await self._record_fee(run_id, row_id, adapter, signed.tx_id)
        return signed.tx_id, status

    async def _wait(self, adapter: ChainAdapter, who: str, tx_id: str) -> str:
        """``adapter.wait``, saying how long it has waited every ``WAIT_TICK_S``."""
        start = time.monotonic()
        self.say(f"{who} sent {tx_id}: waiting for confirmation")

        async def tick() -> None:
            while True:
                await asyncio.sleep(WAIT_TICK_S)
                self.say(f"{who} waiting for confirmation: {time.monotonic() - start:.0f} s")

        ticker = asyncio.create_task(tick())
        try:
            return await adapter.wait(tx_id, self.s.confirm_timeout_s)
        finally:
            ticker.cancel()
            self.say(f"{who} waited {time.monotonic() - start:.1f} s for confirmation")

    async def _still_fresh(self, adapter: ChainAdapter, chain: str, wallet: str) -> None:
        """Refuse to sign when the wallet sent anything the journal does not know since its
        balances were read (another machine, another journal): the plan is stale."""
        expected = self.s.activity.get((chain, wallet.lower()))
        if expected is None:
            return
        now = await adapter.last_activity(wallet)
        if now != expected:
            raise RefusedError(
                f"stale: wallet {wallet} on {chain} sent {now} (was {expected} when the "
                "balances were read) that this journal does not know; another run or machine "
                "trades this wallet: nothing signed"
            )

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

    async def _lookup_tables(
        self, adapter: ChainAdapter, built: BuiltSwap
    ) -> dict[str, list[str]] | None:
        """The lookup tables the swap loads accounts from, read from its chain, so the check
        sees every account the runtime will load."""
        try:
            return await adapter.lookup_tables_for(built.tx)
        except LookupTableError as exc:
            # NOTE: a table that is missing or not a table is the aggregator's answer at fault;
            # any other ChainError (the node is down) is exit 4, not this trade's fault.
            raise SuspiciousResponseError(
                f"aggregator transaction refused: {exc.message}"
            ) from None

    async def _simulate(
        self, t: TradeIntent, adapter: ChainAdapter, legs: SwapLegs, checked: CheckedSwap
    ) -> SimResult:
        """Simulate before signing; with no way to simulate, refuse unless the policy
        explicitly allows unsimulated trades (then the transaction's own minimum stands)."""
        try:
            return await adapter.simulate(legs)
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
            self.say(f"{self._who(t)} NOT simulated ({exc.message}): policy allows it")
            return SimResult("none (policy allows unsimulated trades)", checked.min_out)

    async def _record_fee(
        self, run_id: int, trade_id: str, adapter: ChainAdapter, tx_id: str
    ) -> None:
        """What the landed transaction paid the network (reports read it) and its block's time
        (the tax book dates lots by the chain's clock); best effort."""
        try:
            fee = await adapter.fee_paid(tx_id)
        except ChainError:
            return
        if fee is not None:
            self.journal.set_fee(run_id, trade_id, fee)
        try:
            at = await adapter.block_time(tx_id)
        except ChainError:
            return
        if at is not None:
            self.journal.set_block_time(run_id, trade_id, at)

    # -- recovery --------------------------------------------------------------------------
    async def recover(self) -> list[TradeRow]:
        """Settle what a crash left between signing and confirmation; never sign anything."""
        from rebalancer.recovery import recover

        return await recover(self.s, self.journal, self.say)
