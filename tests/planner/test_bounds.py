"""Absurd numbers from files are exit 2 naming the field (issue 14, item 7)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.cli import main
from tests.planner.conftest import EXAMPLE

CONFIG = Path(__file__).parents[2] / "examples" / "local.toml"


def _snapshot(tmp_path: Path, amount: str) -> Path:
    """The example snapshot with its first holding's amount replaced by ``amount`` verbatim
    (a JSON number or a quoted string)."""
    text = EXAMPLE.read_text().replace('"amount": "10"', f'"amount": {amount}', 1)
    path = tmp_path / "snap.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("amount", "needle"),
    [
        ('"1e30"', "over 1,000,000,000,000,000 whole tokens"),
        ("1e30", "over 1,000,000,000,000,000 whole tokens"),
        ('"1e400"', "over 1,000,000,000,000,000 whole tokens"),
        ("1e400", "over 1,000,000,000,000,000 whole tokens"),
        ('"lots"', "not a number"),
        ('"NaN"', "not a finite number"),
        ('"-Infinity"', "not a finite number"),
        ('"1e14"', "worth over $10,000,000,000,000"),
    ],
)
def test_absurd_snapshot_amounts_are_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], amount: str, needle: str
) -> None:
    snap = _snapshot(tmp_path, amount)
    assert main(["plan", "-c", str(CONFIG), "--snapshot", str(snap)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holdings[0].amount" in err[0] and needle in err[0], err


def test_a_huge_but_possible_holding_still_plans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 1e9 ETH is $3.5e12 under max_trade_usd = 50k: slices are bounded (MAX_SLICES per swap,
    # the run within max_run_usd), never tens of millions of trades
    snap = _snapshot(tmp_path, '"1000000000"')
    assert main(["plan", "-c", str(CONFIG), "--snapshot", str(snap), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert 0 < len(doc["trades"]) <= 2 * 32
    shown = sum(Decimal(t["value_usd"]) for t in doc["trades"])  # each rounded to the cent
    assert shown <= 250_000 + Decimal("0.01") * len(doc["trades"])


def test_absurd_snapshot_price_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(EXAMPLE.read_text())
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(doc).replace('"ETH": "3500"', '"ETH": 1e400'))
    assert main(["plan", "-c", str(CONFIG), "--snapshot", str(path)]) == 2
    assert "prices.ETH = 1E+400" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("trades", "needle"),
    [
        ({"a": 1}, "trades: Input should be a valid list"),
        ([{"id": "t1"}], "trades[0].chain: missing"),
        ("amount_in=lots", "trades[0].amount_in = 'lots': must be a decimal integer"),
        ("amount_in=1e400", "trades[0].amount_in = inf: must be an integer"),
        ("amount_in=" + "9" * 40, "trades[0].amount_in = " + "9" * 30),
    ],
)
def test_malformed_plan_files_are_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], trades: Any, needle: str
) -> None:
    out = tmp_path / "plan.json"
    snap = _snapshot(tmp_path, '"10"')
    assert main(["plan", "-c", str(CONFIG), "--snapshot", str(snap), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    if isinstance(trades, str):
        key, value = trades.split("=")
        text = json.dumps(doc)
        first = doc["trades"][0]
        old = (
            f'"{key}": "{first[key]}"' if isinstance(first[key], str) else f'"{key}": {first[key]}'
        )
        new = f'"{key}": {value}' if value[0].isdigit() else f'"{key}": "{value}"'
        assert old in text
        out.write_text(text.replace(old, new, 1))
    else:
        doc["trades"] = trades
        out.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["simulate", str(out), "-c", str(CONFIG)]) == 2
    err = capsys.readouterr().err
    assert needle in err, err
