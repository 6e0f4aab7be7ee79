"""Readable text output (issue 20): symbols and rounded token units in tables, exact JSON, and a
README command reference that matches ``--help``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
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


def test_readme_flags_are_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Every ``--flag`` a line of the README's command reference gives a command is one that
    command's ``--help`` lists (the reference cannot drift from the parser)."""
    text = README.read_text()
    block = text.split("## Using it", 1)[1].split("```", 2)[1]
    by_command: dict[str, set[str]] = {}
    for line in block.splitlines():
        m = re.match(r"^rebalancer ([a-z]+)(.*?)(?:#|$)", line)
        if m:
            by_command.setdefault(m.group(1), set()).update(re.findall(r"--[a-z][a-z-]*", m[2]))
    for command, flags in sorted(by_command.items()):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown = capsys.readouterr().out
        missing = sorted(f for f in flags if f not in shown)
        assert not missing, f"rebalancer {command}: {missing} not in --help"


def _usage(parser: Any, path: str) -> Iterator[str]:
    """One line per command and subcommand: its every argument, as ``--help`` defines it."""
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    words = [path]
    for a in parser._actions:
        if isinstance(
            a, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction
        ):
            continue
        if a.option_strings:
            word = "/".join(a.option_strings)
            if a.nargs != 0:
                word += f" {a.metavar or a.dest.upper()}"
        elif a.choices:
            word = "|".join(a.choices)
        else:
            word = a.metavar or a.dest
        if a.nargs in ("*", "+"):
            word += " ..."
        words.append(f"[{word}]" if a.option_strings or a.nargs in ("?", "*") else word)
    if path != "rebalancer":
        yield _wrap(words)
    for sub in subs:
        for name, child in sub.choices.items():
            yield from _usage(child, f"{path} {name}")


def _wrap(words: list[str], width: int = 100) -> str:
    lines = [words[0]]
    for word in words[1:]:
        if len(lines[-1]) + 1 + len(word) > width:
            lines.append("    " + word)
        else:
            lines[-1] += " " + word
    return "\n".join(lines)


def option_reference() -> str:
    """The README's "Every command and option" block, made from the parser itself
    (``python -m tests.rebalancer.test_readable`` prints it)."""
    from rebalancer.cli import build_parser

    return "\n".join(_usage(build_parser(), "rebalancer"))


def test_readme_lists_every_option_of_every_command() -> None:
    """Its "Every command and option" block is exactly what the parser defines: every command,
    subcommand, argument and option (regenerate it with ``python -m
    tests.rebalancer.test_readable``)."""
    text = README.read_text()
    block = text.split("### Every command and option", 1)[1].split("```", 2)[1]
    block = block.split("\n", 1)[1].rstrip("\n")  # past the fence's language word
    assert block == option_reference(), "README out of step with --help; regenerate the block"


if __name__ == "__main__":
    print(option_reference())


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


def _progress(err: str) -> list[str]:
    return [line[2:] for line in err.splitlines() if line.startswith("· ")]


def test_long_steps_show_progress_on_stderr_and_json_stays_clean(
    cfg: Path,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Balances per chain, the quotes, trade i/N quoting and simulating, the wait for each
    confirmation with its time, on stderr in one style; with --json, stdout is the same JSON
    and stderr has no progress line."""
    capsys.readouterr()
    assert main(["plan", "-c", str(cfg), "--json"]) == 0
    quiet = capsys.readouterr()
    assert _progress(quiet.err) == []
    plan = json.loads(quiet.out)
    assert main(["plan", "-c", str(cfg)]) == 0
    loud = capsys.readouterr()
    lines = _progress(loud.err)
    from rebalancer.config import load_config

    for chain in load_config(cfg)[0].chains:
        assert any(re.match(rf"balances: {chain} read, .* \(\d+\.\d s\)$", x) for x in lines), lines
    assert any(x.startswith("costs: reading gas prices") for x in lines), lines
    assert not loud.out.lstrip().startswith("{")  # a table, not JSON
    n = len(plan["trades"])
    assert n > 0
    code, doc = run_json(capsys, "run", "-c", str(cfg))
    assert code == 0 and len(doc["trades"]) == n and _progress(capsys.readouterr().err) == []
    assert main(["run", "-c", str(cfg), "--execute", "--yes"]) == 0
    lines = _progress(capsys.readouterr().err)
    assert any(x.startswith(f"quoting and simulating {n} trade(s)") for x in lines), lines
    for i in range(1, n + 1):
        assert any(f"trade {i}/{n} " in x and x.endswith(": quoting") for x in lines), lines
        assert any(f"trade {i}/{n} " in x and x.endswith(" simulating") for x in lines), lines
    assert any("waiting for confirmation" in x for x in lines), lines
    assert any(re.search(r"waited \d+\.\d s for confirmation$", x) for x in lines), lines


def test_backtest_shows_progress(capsys: pytest.CaptureFixture[str]) -> None:
    examples = Path(__file__).parents[2] / "examples"
    argv = ["backtest", "-c", str(examples / "local.toml"), "--prices"]
    argv.append(str(examples / "prices.csv"))
    assert main(argv) == 0
    lines = _progress(capsys.readouterr().err)
    assert any(re.match(r"backtest: strategy 1/\d+ ", x) for x in lines), lines
    assert main([*argv, "--json"]) == 0
    quiet = capsys.readouterr()
    assert _progress(quiet.err) == [] and json.loads(quiet.out)["strategies"]
