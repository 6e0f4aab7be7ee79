"""``drift``, ``plan`` and ``harvest`` through ``rebalancer.cli.main`` with --snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rebalancer.cli import main
from tests.planner.conftest import DRIFT_ROW_KEYS, EXAMPLE, PLAN_KEYS, TRADE_KEYS


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_drift_json(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    code, out, _ = _run(
        capsys, "drift", "-c", str(config_file), "--snapshot", str(EXAMPLE), "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assert set(doc) >= {"total_usd", "band_pp", "rows", "triggered"}
    assert doc["triggered"] is True
    row = doc["rows"][0]
    assert set(row) >= DRIFT_ROW_KEYS
    assert {r["kind"] for r in doc["rows"]} == {"class", "asset"}


def test_drift_table(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    code, out, _ = _run(capsys, "drift", "-c", str(config_file), "--snapshot", str(EXAMPLE))
    assert code == 0 and "STABLES" in out and "threshold" in out


def test_plan_json_and_file(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path
) -> None:
    out_file = tmp_path / "plan.json"
    code, out, _ = _run(
        capsys,
        "plan",
        "-c",
        str(config_file),
        "--snapshot",
        str(EXAMPLE),
        "--json",
        "-o",
        str(out_file),
    )
    assert code == 0
    doc = json.loads(out)
    assert set(doc) >= PLAN_KEYS
    assert doc["trades"]
    for t in doc["trades"]:
        assert set(t) >= TRADE_KEYS
        assert int(t["min_out"]) <= int(t["expected_out"])
    assert all(not r["triggered"] for r in doc["after"])
    saved = json.loads(out_file.read_text())
    assert saved["trades"] == doc["trades"]


def test_plan_table(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    code, out, _ = _run(capsys, "plan", "-c", str(config_file), "--snapshot", str(EXAMPLE))
    assert code == 0 and "after the plan" in out and "estimated cost" in out


def test_harvest(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    code, out, _ = _run(
        capsys, "harvest", "-c", str(config_file), "--snapshot", str(EXAMPLE), "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assets = {c["asset"] for c in doc["candidates"]}
    assert {"ETH", "SOL"} <= assets
    sol = next(c for c in doc["candidates"] if c["asset"] == "SOL")
    assert sol["substitute"] == "JUP"


def _bad_snapshot(tmp_path: Path, **change: object) -> Path:
    data = json.loads(EXAMPLE.read_text())
    data.update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("change", "code", "needle"),
    [
        (
            {"holdings": [{"chain": "ethereum", "wallet": "w", "token": "WBTC", "amount": "-1"}]},
            2,
            "amount = '-1'",
        ),
        ({"prices": {"ETH": "3500"}}, 2, "prices.BTC: missing"),
        ({"reference_prices": {"BTC": "80000"}}, 3, "price of BTC"),
    ],
)
def test_bad_snapshots_exit_codes(
    capsys: pytest.CaptureFixture[str],
    config_file: Path,
    tmp_path: Path,
    change: dict[str, object],
    code: int,
    needle: str,
) -> None:
    path = _bad_snapshot(tmp_path, **change)
    got, out, err = _run(capsys, "plan", "-c", str(config_file), "--snapshot", str(path), "--json")
    assert got == code
    assert out == ""
    assert needle in err and err.count("\n") == 1


def test_bad_strategy_exit_2(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    config_file.write_text(
        config_file.read_text() + "\n[strategy]\ntargets = { BTC = 60, DOGE = 40 }\n"
    )
    code, _, err = _run(capsys, "drift", "-c", str(config_file), "--snapshot", str(EXAMPLE))
    assert code == 2 and "DOGE" in err


def test_missing_files_exit_2(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    code, _, err = _run(capsys, "plan", "-c", str(config_file), "--snapshot", "/nonexistent.json")
    assert code == 2 and "not found" in err
    code, _, err = _run(
        capsys,
        "plan",
        "-c",
        str(config_file),
        "--snapshot",
        str(EXAMPLE),
        "--lots",
        "/nonexistent.csv",
    )
    assert code == 2 and "not found" in err


def test_live_without_prices_exit_2(capsys: pytest.CaptureFixture[str], config_file: Path) -> None:
    # NOTE: since issue 12 the oracles and the quotes price live runs; with both off and no
    # [prices] there is no price source at all.
    text = config_file.read_text()
    config_file.write_text('price_check = "off"\n' + text + "\n[oracles]\nenabled = false\n")
    code, _, err = _run(capsys, "plan", "-c", str(config_file))
    assert code == 2 and "no prices configured" in err


def test_lots_csv_option(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path
) -> None:
    lots = tmp_path / "lots.csv"
    lots.write_text("date,asset,amount,cost_basis_usd\n2024-01-01,BTC,2,240000\n")
    code, out, _ = _run(
        capsys,
        "harvest",
        "-c",
        str(config_file),
        "--snapshot",
        str(EXAMPLE),
        "--lots",
        str(lots),
        "--json",
    )
    assert code == 0
    assert [c["asset"] for c in json.loads(out)["candidates"]] == ["BTC"]
    lots.write_text("date,asset,amount,cost_basis_usd\n2024-01-01,BTC,two,200000\n")
    code, _, err = _run(
        capsys, "harvest", "-c", str(config_file), "--snapshot", str(EXAMPLE), "--lots", str(lots)
    )
    assert code == 2 and "lots.csv line 2: amount = 'two'" in err


def test_live_mode_reads_holdings_and_config_prices(
    capsys: pytest.CaptureFixture[str], config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --snapshot: balances from rebalancer.portfolio, prices from [prices]."""
    import rebalancer.portfolio as portfolio_mod
    from rebalancer.chains.base import ReadFailure
    from rebalancer.chains.registry import Registry
    from rebalancer.core.types import Holding

    reg = Registry.load()
    address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    wbtc = reg.by_symbol("ethereum", "WBTC")
    eth = reg.native("ethereum")
    assert wbtc is not None
    failures: list[ReadFailure] = []

    async def fake(config: object, registry: object, **_: object) -> object:
        return portfolio_mod.Snapshot(
            holdings=[
                Holding("ethereum", address, eth, 10**18),
                Holding("ethereum", address, wbtc, 10**8),
            ],
            failures=list(failures),
        )

    monkeypatch.setattr(portfolio_mod, "read_holdings", fake)
    config_file.write_text(
        config_file.read_text() + "\n[prices]\nBTC = 100000\nETH = 3500\nUSDC = 1\n"
    )
    code, out, _ = _run(capsys, "drift", "-c", str(config_file), "--json")
    assert code == 0
    rows = {(r["kind"], r["name"]): r for r in json.loads(out)["rows"]}
    assert rows[("class", "BTC")]["value_usd"] == "100000.00"
    code, out, _ = _run(capsys, "plan", "-c", str(config_file), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["trades"] and doc["trades"][0]["wallet_name"] == "demo"
    failures.append(ReadFailure("ethereum", address, wbtc, "reverted"))
    code, out, err = _run(capsys, "plan", "-c", str(config_file), "--json")
    assert code == 3 and out == "" and "partial portfolio" in err
