"""The PLAN file: what ``plan -o PLAN`` (and ``plan --json``) writes, ``simulate``, ``apply`` and
``export`` read.

Keys as in ../shared/CLI.md. Only what a trade needs to be executed is required (``created_at``
and each trade's ``id``, ``chain``, ``wallet``, ``sell``, ``buy``, ``amount_in``, ``min_out``);
the planner's figures are optional, and a file without them (written by hand or by a script)
still applies. What a trade is worth is never taken from the file: ``apply`` recomputes it from
the config's prices (:func:`rebalancer.engine.intents_from_plan`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from rebalancer.core.documents import (
    Bool,
    DecimalText,
    Document,
    Int,
    IntText,
    IsoTime,
    Str,
    load_json,
    parse,
)
from rebalancer.core.errors import ConfigError
from rebalancer.intents import approval_id, reset_id
from rebalancer.planner.skips import SKIP_TAGS, Skip

_TRADE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class TokenRef(Document):
    symbol: Str
    id: Str
    """The CAIP-19 id: the only part ``apply`` reads (the registry has the rest)."""
    asset: Str
    decimals: Annotated[Int, Field(ge=0, le=255)]


class LotUse(Document):
    id: Str
    amount: DecimalText


class RealisedGain(Document):
    """The tax a trade realises (tax-aware plans)."""

    gain_usd: DecimalText
    short_term_gain_usd: DecimalText
    long_term_gain_usd: DecimalText
    tax_usd: DecimalText
    lots: list[LotUse]
    uncovered_amount: DecimalText


class PlanTrade(Document):
    id: Str
    chain: Str
    wallet: Str
    sell: TokenRef
    buy: TokenRef
    amount_in: IntText
    expected_out: IntText | None = None
    min_out: IntText
    value_usd: DecimalText | None = None
    est_cost_usd: DecimalText | None = None
    fee_usd: DecimalText | None = None
    impact_usd: DecimalText | None = None
    gas_usd: DecimalText | None = None
    gas_native: IntText | None = None
    reason: Str | None = None
    realised: RealisedGain | None = None
    wallet_name: Str | None = None

    @field_validator("id")
    @classmethod
    def _plain_id(cls, v: str) -> str:
        # NOTE: the id names files (export) and journal rows: never a path, never an approval's
        if not _TRADE_ID.fullmatch(v):
            raise ValueError("letters, digits, '.', '_', '-' only (at most 64)")
        if v.endswith((approval_id(""), reset_id(""))):
            raise ValueError("names an approval; pick another id")
        return v

    @field_validator("amount_in")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("must be positive")
        return v

    @field_validator("min_out", "expected_out", "gas_native")
    @classmethod
    def _not_negative(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise ValueError("must not be negative")
        return v


class DriftRowDoc(Document):
    name: Str
    kind: Literal["class", "asset"]
    value_usd: DecimalText
    weight_pct: DecimalText | None
    target_pct: DecimalText | None
    drift_pp: DecimalText | None
    band_pp: DecimalText | None
    triggered: Bool


SolverValue = Str | Int | float | Bool | None


class PlanFile(Document):
    """A plan document; field order is the order of the JSON keys."""

    union_tags = SKIP_TAGS

    created_at: IsoTime
    as_of: IsoTime | None = None
    mode: Literal["target", "band_edge"] | None = None
    method: Str | None = None
    triggered: Bool | None = None
    reachable: Bool | None = None
    """False when no plan can bring every row inside its band (the planner says why)."""
    unreachable_why: Str | None = None
    left_for_next_run_usd: DecimalText | None = None
    """What ``policy.max_run_usd`` left for the next run."""
    total_usd: DecimalText | None = None
    trades: list[PlanTrade]
    skipped: list[Skip] = Field(default_factory=list)
    before: list[DriftRowDoc] | None = None
    after: list[DriftRowDoc] | None = None
    before_max_drift_pp: DecimalText | None = None
    after_max_drift_pp: DecimalText | None = None
    est_cost_usd: DecimalText | None = None
    est_tax_usd: DecimalText | None = None
    naive_cost_usd: DecimalText | None = None
    solver: dict[str, SolverValue] | None = None
    """The optimiser's diagnostics (free-form)."""
    cost_inputs: dict[str, Any] | None = None
    """Per chain: each cost input's value and where it came from (measured, configured,
    assumed)."""

    @model_validator(mode="after")
    def _unique_ids(self) -> PlanFile:
        seen: set[str] = set()
        for t in self.trades:
            if t.id in seen:
                raise ValueError(f"trades: id {t.id!r} appears twice")
            seen.add(t.id)
        return self

    def text(self) -> str:
        """The file's text (what ``plan -o`` writes)."""
        return json.dumps(self.as_json(), indent=2) + "\n"

    @classmethod
    def of(cls, doc: Any, where: str) -> PlanFile:
        """A plan document from its JSON value; anything malformed is one ConfigError line."""
        if not isinstance(doc, dict):
            raise ConfigError(f"{where}: not a plan (a JSON object with created_at and trades)")
        return parse(cls, doc, where)

    @classmethod
    def read(cls, path: str | Path) -> PlanFile:
        where = f"plan file {str(path)!r}"
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"plan file {str(path)!r} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{where}: cannot read: {exc}") from None
        try:
            doc = load_json(text)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"{where} is not a plan: {exc}") from None
        return cls.of(doc, where)
