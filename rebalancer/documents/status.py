"""The states of a trade and of a run, and a run's mode.

A trade moves through the journal as drawn in :mod:`rebalancer.journal`; a run's trade
results (``run``/``apply``/``submit --json``) use the same names. SQLite and JSON store the
string values, so journals written before these enums read the same.
"""

from __future__ import annotations

from enum import StrEnum


class TradeStatus(StrEnum):
    """Where one trade (or its approval) is: journal ``state`` and result ``status``."""

    PLANNED = "planned"
    """Journalled, not yet signed."""
    SIMULATED = "simulated"
    """A dry run simulated it; nothing was signed."""
    APPROVED = "approved"
    """Its token approval landed; the swap is next."""
    SIGNED = "signed"
    """Signed bytes are in the journal, maybe not broadcast yet."""
    SENT = "sent"
    """Broadcast; not known to have landed."""
    PENDING = "pending"
    """Broadcast and not confirmed in time: still in flight."""
    CONFIRMED = "confirmed"
    FAILED = "failed"
    """Landed and reverted."""
    DROPPED = "dropped"
    """Can no longer land (nonce used, blockhash expired)."""
    REFUSED = "refused"
    """A check or a simulation said no; nothing was signed."""
    SKIPPED = "skipped"
    """No route, or the run stopped before it."""


OPEN_STATES = (
    TradeStatus.PLANNED,
    TradeStatus.APPROVED,
    TradeStatus.SIGNED,
    TradeStatus.SENT,
    TradeStatus.PENDING,
)
"""Trades that may still change."""
IN_FLIGHT_STATES = (TradeStatus.SIGNED, TradeStatus.SENT, TradeStatus.PENDING)
"""Trades a crash may have left between signing and confirmation."""
FINAL_STATES = (
    TradeStatus.CONFIRMED,
    TradeStatus.FAILED,
    TradeStatus.DROPPED,
    TradeStatus.REFUSED,
    TradeStatus.SKIPPED,
    TradeStatus.SIMULATED,
)


class RunMode(StrEnum):
    """What a run did."""

    SIMULATE = "simulate"
    EXECUTE = "execute"
    EXPORT = "export"
    """``export --unsigned``: its summary holds the manifest's hash."""
    SUBMIT = "submit"


class RunStatus(StrEnum):
    """How a run ended (``running`` until it has)."""

    RUNNING = "running"
    OK = "ok"
    PARTIAL = "partial"
    """Some trades failed, were refused or are still pending."""
    ERROR = "error"
    """Stopped by an error or a signal."""
    EXPORTED = "exported"
