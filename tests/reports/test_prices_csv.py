"""Bad price files: each gives exit 2 through the CLI with a message naming the row."""

from __future__ import annotations

from pathlib import Path

import pytest

from rebalancer.cli import main
from rebalancer.reports.prices_csv import parse_prices_csv

GOOD = """# a comment line
date,symbol,price_usd
2024-01-01,BTC,40000
2024-01-01,ETH,2000
2024-01-01,SOL,100
2024-01-01,LINK,10
2024-01-01,USDC,1
2024-01-02,BTC,41000
2024-01-02,ETH,2100
2024-01-02,SOL,101
2024-01-02,LINK,11
2024-01-02,USDC,1
"""


def _days(n: int, skip: dict[str, set[int]] | None = None) -> str:
    lines = ["date,symbol,price_usd"]
    for t in range(n):
        for s, p in (("BTC", 40000), ("ETH", 2000), ("SOL", 100), ("LINK", 10), ("USDC", 1)):
            if t in (skip or {}).get(s, set()):
                continue
            lines.append(f"2024-01-{t + 1:02d},{s},{p + t}")
    return "\n".join(lines) + "\n"


def test_good_file_parses_with_comments() -> None:
    table = parse_prices_csv(GOOD, "p.csv", known_assets=["BTC", "ETH", "SOL", "LINK", "USDC"])
    h = table.history(["BTC", "ETH"])
    assert len(h) == 2 and h.prices[1, 0] == 41000.0 and h.filled == 0


def test_short_gap_is_forward_filled() -> None:
    text = _days(10, {"BTC": {4, 5}})
    h = parse_prices_csv(text, "p.csv").history(["BTC", "ETH"], max_gap=3)
    assert h.filled == 2
    assert h.prices[4, 0] == h.prices[3, 0] == h.prices[5, 0] == 40003.0


BAD = [
    ("unsorted", GOOD.replace("2024-01-02,BTC", "2023-12-31,BTC"), "line 8", "sorted"),
    ("unknown symbol", GOOD.replace("2024-01-02,SOL", "2024-01-02,DOGE"), "line 10", "DOGE"),
    ("zero price", GOOD.replace("ETH,2100", "ETH,0"), "line 9", "positive"),
    ("negative price", GOOD.replace("ETH,2100", "ETH,-5"), "line 9", "positive"),
    ("not a number", GOOD.replace("ETH,2100", "ETH,abc"), "line 9", "not a number"),
    ("malformed", GOOD.replace("2024-01-02,SOL,101", "2024-01-02,SOL"), "line 10", "malformed"),
    ("bad date", GOOD.replace("2024-01-02,LINK", "2024-13-02,LINK"), "line 11", "not a date"),
    ("duplicate", GOOD.replace("2024-01-02,ETH", "2024-01-02,BTC"), "line 9", "twice"),
    ("header", GOOD.replace("price_usd", "close"), "line 2", "price_usd"),
    (
        "long gap",
        _days(12, {"ETH": {3, 4, 5, 6, 7}}),
        "line 38",
        "no price for 5 days before 2024-01-09",
    ),
    ("late start", _days(6, {"SOL": {0, 1}}), "line 12", "starts on 2024-01-03"),
    ("trailing gap", _days(9, {"LINK": {4, 5, 6, 7, 8}}), "line 20", "no price after"),
]


@pytest.mark.parametrize(("case", "text", "where", "what"), BAD, ids=[b[0] for b in BAD])
def test_bad_csv_exit_2_naming_the_row(
    case: str,
    text: str,
    where: str,
    what: str,
    tmp_path: Path,
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    code = main(["backtest", "-c", str(config_file), "--prices", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "bad.csv" in err and where in err and what in err, err
    assert err.count("\n") == 1


def test_missing_file_and_target_without_prices(
    tmp_path: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backtest", "-c", str(config_file), "--prices", str(tmp_path / "no.csv")]) == 2
    assert "not found" in capsys.readouterr().err
    path = tmp_path / "p.csv"
    path.write_text(GOOD.replace(",LINK,", ",AVAX,"))
    assert main(["backtest", "-c", str(config_file), "--prices", str(path)]) == 2
    assert "strategy.targets.LINK" in capsys.readouterr().err
