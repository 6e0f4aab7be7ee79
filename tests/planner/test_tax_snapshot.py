"""Tax lots (CSV, lot selection, realised gains, harvesting) and the snapshot parser."""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal

import pytest

from rebalancer.chains.registry import Registry
from rebalancer.core.errors import ConfigError
from rebalancer.planner.config import TaxConfig
from rebalancer.planner.snapshot import parse_snapshot
from rebalancer.planner.tax import LotBook, parse_lots_csv
from tests.planner.conftest import EXAMPLE

CSV = """date,asset,amount,cost_basis_usd,id
2021-01-10,BTC,1,30000,old
2024-12-01,BTC,1,100000,new
2025-03-01,BTC,1,80000,mid
"""


def test_lots_csv_parses() -> None:
    lots = parse_lots_csv(CSV, known_assets=["BTC"])
    assert [lot.id for lot in lots] == ["old", "new", "mid"]
    assert lots[1].unit_basis == 100000


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("date,asset,amount\n", "missing column 'cost_basis_usd'"),
        ("date,asset,amount,cost_basis_usd\n2024-01-01,BTC,abc,10\n", "line 2: amount = 'abc'"),
        ("date,asset,amount,cost_basis_usd\n2024-13-01,BTC,1,10\n", "line 2: date = '2024-13-01'"),
        ("date,asset,amount,cost_basis_usd\n2024-01-01,BTC,-1,10\n", "line 2: amount = '-1'"),
        (
            "date,asset,amount,cost_basis_usd\n2024-01-01,BTC,1,10\n2024-01-01,DOGE,1,1\n",
            "line 3: asset = 'DOGE'",
        ),
        (
            "date,asset,amount,cost_basis_usd\n2024-01-01,BTC,1,\n",
            "line 2: cost_basis_usd is missing",
        ),
    ],
)
def test_lots_csv_errors_name_the_line(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_lots_csv(text, known_assets=["BTC"])
    assert needle in str(exc.value)


@pytest.mark.parametrize(
    ("method", "first"),
    [("fifo", "old"), ("hifo", "new"), ("specific", "new")],
)
def test_lot_order(method: str, first: str) -> None:
    lots = parse_lots_csv(CSV)
    book = LotBook(lots, TaxConfig(method=method), date(2025, 6, 1))  # type: ignore[arg-type]
    r = book.sell("BTC", Decimal("0.5"), Decimal(45000))
    assert r.uses[0].lot_id == first


def test_realised_gain_short_long_split() -> None:
    lots = parse_lots_csv(CSV)
    cfg = TaxConfig(method="fifo", short_term_rate_pct=Decimal(30), long_term_rate_pct=Decimal(15))
    book = LotBook(lots, cfg, date(2025, 6, 1))
    r = book.sell("BTC", Decimal("1.5"), Decimal(150000))  # 100k per BTC
    # 1 BTC from "old" (long-term: +70k), 0.5 from "new" (short-term: +0)
    assert r.long_term_gain_usd == 70000
    assert r.short_term_gain_usd == 0
    assert r.tax_usd == Decimal(10500)
    r2 = book.sell("BTC", Decimal(2), Decimal(180000))  # 90k each: 0.5 new (-5k), 1 mid (+10k)
    assert r2.short_term_gain_usd == Decimal(5000)
    assert r2.uncovered_amount == Decimal("0.5")


def test_specific_prefers_loss_lots() -> None:
    lots = parse_lots_csv(CSV)
    book = LotBook(lots, TaxConfig(method="specific"), date(2025, 6, 1))
    r = book.sell("BTC", Decimal(1), Decimal(90000))
    assert r.uses[0].lot_id == "new" and r.gain_usd == -10000


def _snap(**over: object) -> str:
    data = json.loads(EXAMPLE.read_text())
    data.update(over)
    return json.dumps(data)


def test_example_snapshot_parses(registry: Registry) -> None:
    s = parse_snapshot(EXAMPLE.read_text(), registry)
    assert len(s.holdings) == 12 and s.prices["BTC"] == 100000
    assert {h.chain for h in s.holdings} == {"ethereum", "avalanche", "solana"}
    assert s.as_of is not None and len(s.lots) == 5


@pytest.mark.parametrize(
    ("holding", "needle"),
    [
        (
            {"chain": "ethereum", "wallet": "w", "token": "WBTC", "amount": "-1"},
            "amount = '-1': negative",
        ),
        (
            {"chain": "ethereum", "wallet": "w", "token": "WBTC", "amount": "0.000000001"},
            "more decimals",
        ),
        ({"chain": "ethereum", "wallet": "w", "token": "DOGE", "amount": "1"}, "token = 'DOGE'"),
        ({"chain": "mars", "wallet": "w", "token": "WBTC", "amount": "1"}, "chain = 'mars'"),
        ({"chain": "ethereum", "wallet": "w", "token": "WBTC"}, "give amount or raw"),
        ({"chain": "ethereum", "wallet": "w", "token": "WBTC", "raw": "1.5"}, "not an integer"),
        (
            {"chain": "ethereum", "wallet": "w", "token": "UNI", "amount": "1"},
            "prices.UNI: missing",
        ),
    ],
)
def test_bad_holdings(registry: Registry, holding: dict[str, str], needle: str) -> None:
    prices = {"BTC": "100000", "ETH": "3000"}
    text = json.dumps({"prices": prices, "holdings": [holding]})
    with pytest.raises(ConfigError) as exc:
        parse_snapshot(text, registry)
    assert needle in str(exc.value)
    assert "holdings[0]" in str(exc.value) or "prices." in str(exc.value)


def test_duplicate_holding_and_bad_price(registry: Registry) -> None:
    h = {"chain": "ethereum", "wallet": "w", "token": "WBTC", "amount": "1"}
    with pytest.raises(ConfigError, match=re.escape("duplicate holding")):
        parse_snapshot(json.dumps({"prices": {"BTC": 1}, "holdings": [h, h]}), registry)
    with pytest.raises(ConfigError, match=re.escape("prices.BTC = '-5'")):
        parse_snapshot(json.dumps({"prices": {"BTC": "-5"}, "holdings": [h]}), registry)
    with pytest.raises(ConfigError, match=re.escape("prices.DOGE: unknown asset")):
        parse_snapshot(json.dumps({"prices": {"DOGE": 1}, "holdings": []}), registry)
    with pytest.raises(ConfigError, match=re.escape("not valid JSON")):
        parse_snapshot("{", registry)


def test_token_by_caip_id_and_address(registry: Registry) -> None:
    usdc = registry.by_symbol("solana", "USDC")
    assert usdc is not None and usdc.address is not None
    for name in (usdc.id, usdc.address):
        h = {"chain": "solana", "wallet": "w", "token": name, "raw": 5}
        s = parse_snapshot(json.dumps({"prices": {"USDC": 1}, "holdings": [h]}), registry)
        assert s.holdings[0].token == usdc and s.holdings[0].raw == 5
