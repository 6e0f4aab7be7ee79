"""Readable text output (issue 20): symbols and rounded token units in tables, exact JSON, and a
README command reference that matches ``--help``."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.cli import COMMANDS, main
from rebalancer.core.display import short_units
from tests.rebalancer.test_execution import cfg, run_json  # noqa: F401  (the fixture)

README = Path(__file__).parents[2] / "README.md"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("89.140596492857137142", "89.1405"),
        ("0.000012345678", "0.0000123456"),
        ("1234567.891", "1,234,567"),
        ("0", "0"),
        ("1.50", "1.5"),
        ("-3.14159265", "-3.14159"),
        ("0.1", "0.1"),
    ],
)
def test_short_units(value: str, text: str) -> None:
    assert short_units(Decimal(value)) == text


def test_plan_table_rounds_and_json_stays_exact(
    cfg: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, doc = run_json(capsys, "plan", "-c", str(cfg))
    assert code == 0 and doc["trades"]
    assert all(re.fullmatch(r"\d+", t["amount_in"]) for t in doc["trades"])
    assert main(["plan", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    # no token amount in the table carries more than six significant digits
    amounts = re.findall(r"(\d[\d,]*\.\d+) (?!USD)[A-Z]", out)
    assert amounts
    for number in amounts:
        assert len(number.replace(",", "").replace(".", "").lstrip("0")) <= 6, number


def test_history_shows_symbols_and_units(
    cfg: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = run_json(capsys, "run", "-c", str(cfg), "--execute", "--yes")
    assert code == 0 and out["trades"]
    code, hist = run_json(capsys, "history", "-c", str(cfg))
    trades: list[dict[str, Any]] = hist["runs"][0]["trades"]
    # JSON keeps ids and exact base units
    assert all(":" in t["sell"] and re.fullmatch(r"\d+", t["amount_in"]) for t in trades)
    assert main(["history", "-c", str(cfg)]) == 0
    text = capsys.readouterr().out
    for t in out["trades"]:
        assert f" {t['sell']}" in text or t["sell"] in text  # the plan's symbols
    assert "eip155:" not in text and "0x152b9d0FdC" not in text
    for number in re.findall(r"\d[\d,]*\.\d+", text):
        assert len(number.split(".")[1]) <= 10, number


def test_readme_lists_every_command() -> None:
    """The README's command reference (its first code block under "Using it") names exactly the
    commands ``rebalancer --help`` lists."""
    text = README.read_text()
    block = text.split("## Using it", 1)[1].split("```", 2)[1]
    listed = set(re.findall(r"^rebalancer ([a-z]+)", block, re.M))
    assert listed == set(COMMANDS), listed ^ set(COMMANDS)
    json.dumps(sorted(listed))


def test_dashboard_rounds_as_the_tables_do() -> None:
    """One rounding (``core.display``): toward zero, grouped, no trailing zeros, everywhere."""
    from rebalancer import output
    from rebalancer.core import display
    from rebalancer.dashboard import page

    assert (
        page.amount(Decimal("199.99999"))
        == "199.9999"
        == display.fixed_units(Decimal("199.99999"), 4)
    )
    assert (
        page.amount(Decimal("0.0012349"))
        == "0.001234"
        == display.short_units(Decimal("0.0012349"), 4)
    )
    assert page.price(Decimal("0.000123456")) == "$0.0001234"
    assert page.usd(Decimal("-1234.5")) == display.usd(Decimal("-1234.5")) == "-$1,234.50"
    assert not hasattr(output, "fmt_amount")  # no second formatter
