"""Recovery after a crash: settle what a run left between signing and confirmation.

A trade left ``signed`` or ``sent`` is looked up on chain by its id; if it never arrived and
its journalled bytes can still land, they are re-broadcast byte for byte. Nothing is ever
signed again: a transaction that can no longer land is called ``dropped`` (after asking once
more whether it landed meanwhile) and the next plan trades again from fresh balances.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from rebalancer.chains.base import ChainAdapter
from rebalancer.core.errors import AlreadyKnownError, ChainError
from rebalancer.documents.status import TradeStatus
from rebalancer.journal import Journal, TradeRow
from rebalancer.services import Services

REBROADCAST_WAIT_S = 60.0


async def recover(
    services: Services, journal: Journal, say: Callable[[str], None]
) -> list[TradeRow]:
    """Settle every unfinished trade of a configured chain; returns the rows settled."""
    settled = []
    for row in journal.unfinished():
        if row.chain not in services.config.chains:
            continue
        adapter = services.adapter(row.chain)
        assert row.tx_hash is not None
        say(f"recovering {row.chain} trade {row.trade_id} from run {row.run_id}")
        status = str(await adapter.tx_status(row.tx_hash))
        if status == "unknown":
            status = await rebroadcast(
                adapter, row, min(services.confirm_timeout_s, REBROADCAST_WAIT_S)
            )
        if status in ("confirmed", "failed", "dropped"):
            journal.update(row.run_id, row.trade_id, TradeStatus(status))
            if status == "confirmed":
                with contextlib.suppress(ChainError):  # best effort, as after a send
                    at = await adapter.block_time(row.tx_hash)
                    if at is not None:
                        journal.set_block_time(row.run_id, row.trade_id, at)
            settled.append(row.model_copy(update={"state": TradeStatus(status)}))
    return settled


async def rebroadcast(adapter: ChainAdapter, row: TradeRow, timeout: float) -> str:
    """Send the journalled bytes again if they can still land; else call them dropped,
    after asking once more whether they landed meanwhile (a lagging node, a race)."""
    raw = bytes.fromhex(row.raw_tx or "")
    tx_id = str(row.tx_hash)
    if not await adapter.can_still_land(raw, row.wallet):
        status = str(await adapter.tx_status(tx_id))
        return status if status in ("confirmed", "failed") else "dropped"
    with contextlib.suppress(AlreadyKnownError):  # the node has it: wait for it
        await adapter.send_raw(raw)
    return await adapter.wait(tx_id, timeout=timeout)
