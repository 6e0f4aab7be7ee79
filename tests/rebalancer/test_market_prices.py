"""Live prices from two independent sources (issue 12): oracles read with the balances, checked
against the aggregators' quotes; bad feeds and disagreements are one line naming the asset, the
source and the value, and nothing is planned or signed."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rebalancer.chains.oracles import (
    OracleFeed,
    OracleKind,
    OracleReading,
    chainlink_reading,
    feeds_on,
)
from rebalancer.cli import main
from rebalancer.config import Config
from rebalancer.localnet.rpc import Rpc
from rebalancer.market_prices import MissingPriceError, assess, resolve
from rebalancer.planner.prices import PriceDisagreementError
from rebalancer.quote_prices import QuotePrices

EXAMPLES = Path(__file__).parents[2] / "examples"
WALLET = "0x38933fB3600db971A459767D149B492e58e40b76"
ETH_USD = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"
NOW = 1_800_000_000


def config(**extra: Any) -> Config:
    base: dict[str, Any] = {
        "chains": {"ethereum": {"rpc": "localnet:ethereum"}},
        "wallets": [{"name": "w", "address": WALLET, "chains": ["ethereum"]}],
    }
    base.update(extra)
    return Config.model_validate(base)


def feed(asset: str = "ETH", chain: str = "ethereum", heartbeat: int = 3600) -> OracleFeed:
    return OracleFeed(OracleKind.CHAINLINK, chain, asset, "0x" + "11" * 20, heartbeat)


def reading(usd: str | None, age: int = 10, **kw: Any) -> OracleReading:
    f = kw.pop("feed", None) or feed()
    return OracleReading(f, None if usd is None else Decimal(usd), updated_at=NOW - age, **kw)


def quotes(**table: str) -> QuotePrices:
    return QuotePrices(
        {a: Decimal(v) for a, v in table.items()}, via={a: "1inch quote" for a in table}
    )


# -- the decision, unit by unit ---------------------------------------------------------------
def test_oracle_price_is_used_when_the_quote_agrees() -> None:
    got = resolve(config(), {"ETH"}, {"ETH"}, [reading("3200")], quotes(ETH="3198"), now=NOW)
    eth = got.assets["ETH"]
    assert eth.usd == Decimal(3200) and eth.source == "chainlink ethereum"
    assert [s.name for s in eth.sources] == ["chainlink ethereum", "1inch quote"]
    assert eth.as_dict()["sources"][0] == {"name": "chainlink ethereum", "usd": "3200", "age_s": 10}


def test_several_oracles_give_their_median() -> None:
    rs = [
        reading("3190"),
        reading("3200", feed=feed(chain="avalanche")),
        reading("3260", feed=feed(chain="solana")),
    ]
    got = resolve(config(), {"ETH"}, {"ETH"}, rs, quotes(ETH="3201"), now=NOW)
    assert got.assets["ETH"].usd == Decimal(3200)
    assert got.assets["ETH"].source == "median of 3 oracles"
    warned: list[str] = []
    rs[2] = reading("4000", feed=feed(chain="solana"))
    got = resolve(config(), {"ETH"}, {"ETH"}, rs, quotes(ETH="3201"), now=NOW, warn=warned.append)
    assert got.assets["ETH"].usd == Decimal(3200)  # the median shrugs one feed off
    assert warned == ["price of ETH: chainlink solana says 4000, median of 3 oracles 3200"]


def test_disagreement_refuses_naming_the_asset_and_both_prices() -> None:
    with pytest.raises(PriceDisagreementError) as err:
        resolve(config(), {"ETH"}, {"ETH"}, [reading("4000")], quotes(ETH="3198"), now=NOW)
    assert err.value.exit_code == 3
    msg = err.value.message
    assert "price of ETH" in msg and "chainlink ethereum says 4000" in msg
    assert "1inch quote says 3198" in msg and "price_max_deviation_pct" in msg


def test_stale_reading_is_not_used_and_one_source_alone_refuses() -> None:
    stale = reading("3200", age=4000)
    row = assess(stale, NOW, config())
    assert not row.usable and row.reason == "stale: updated 4000 s ago, more than 3660 s"
    with pytest.raises(MissingPriceError) as err:
        resolve(config(), {"ETH"}, {"ETH"}, [stale], quotes(ETH="3198"), now=NOW)
    assert err.value.exit_code == 3
    assert "only 1inch quote (3198)" in err.value.message
    assert "chainlink ethereum: stale" in err.value.message
    # the heartbeat is configurable
    assert assess(stale, NOW, config(oracles={"max_age_s": 5000})).usable


def test_one_source_is_enough_only_when_the_policy_says_so() -> None:
    warned: list[str] = []
    cfg = config(policy={"allow_single_price_source": True})
    got = resolve(cfg, {"ETH"}, {"ETH"}, [reading(None, reason="latestRoundData reverted")],
                  quotes(ETH="3198"), now=NOW, warn=warned.append)  # fmt: skip
    assert got.assets["ETH"].usd == Decimal(3198) and got.assets["ETH"].source == "1inch quote"
    assert warned and "one source only" in warned[0]
    with pytest.raises(MissingPriceError, match="only chainlink ethereum"):
        resolve(config(), {"ETH"}, {"ETH"}, [reading("3200")], None, now=NOW)


def test_chainlink_answers_that_are_not_prices() -> None:
    f = feed()
    word = (1).to_bytes(32, "big")
    negative = b"".join(
        [word, (-5).to_bytes(32, "big", signed=True), word, (NOW).to_bytes(32, "big"), word]
    )
    eight = (True, (8).to_bytes(32, "big"))
    assert chainlink_reading(f, (True, negative), eight).reason == "answer -5 <= 0"
    assert chainlink_reading(f, (False, b""), eight).reason == "latestRoundData reverted"
    assert chainlink_reading(f, (True, b""), eight).reason == "latestRoundData answered 0 bytes"
    assert (
        chainlink_reading(f, (True, negative), (True, (18).to_bytes(32, "big"))).reason
        == "decimals() = 18, the registry says 8"
    )


def test_wide_pyth_confidence_is_not_used() -> None:
    pyth = OracleFeed(OracleKind.PYTH, "solana", "SOL", "7UVim", 60)
    wide = OracleReading(pyth, Decimal(180), updated_at=NOW, conf_usd=Decimal(9))
    row = assess(wide, NOW, config())
    assert row.reason is not None and "confidence ±9 is 5.00% of the price" in row.reason
    assert assess(wide, NOW, config(oracles={"max_confidence_pct": 10})).usable


def test_an_asset_not_held_that_fails_is_left_unpriced_not_refused() -> None:
    warned: list[str] = []
    got = resolve(
        config(), {"ETH", "LINK"}, {"ETH"},
        [reading("3200"), reading("30", feed=feed("LINK"))],
        quotes(ETH="3199", LINK="15"), now=NOW, warn=warned.append,
    )  # fmt: skip
    assert "LINK" not in got.usd and got.usd["ETH"] == Decimal(3200)
    assert "LINK is left unpriced" in warned[0]


def test_manual_prices_override() -> None:
    got = resolve(config(prices={"ETH": "3000"}), {"ETH"}, {"ETH"}, [reading("3200")], None,
                  now=NOW)  # fmt: skip
    assert got.usd["ETH"] == Decimal(3000) and got.assets["ETH"].source == "[prices]"


# -- on the local worlds ----------------------------------------------------------------------
def local_config(tmp_path: Path, extra: str = "", *, prices: bool = False) -> Path:
    """examples/local.toml without [prices] (or with), its own journal, absolute key paths."""
    text = (EXAMPLES / "local.toml").read_text()
    text = text.replace('journal = ".demo-journal.sqlite"', f'journal = "{tmp_path / "j.sqlite"}"')
    text = text.replace('file = "keys/', f'file = "{EXAMPLES / "keys"}/')
    if not prices and "\n[prices]\n" in text:
        head, _, rest = text.partition("\n[prices]\n")
        text = head + "\n" + rest[rest.index("\n[") :]
    path = tmp_path / "local.toml"
    path.write_text(text + extra)
    return path


def eth_only(tmp_path: Path, extra: str = "") -> Path:
    """The demo EVM wallet on Ethereum alone: ETH then has one oracle (Chainlink ETH/USD)."""
    path = tmp_path / "eth.toml"
    path.write_text(f"""
journal = "{tmp_path / "j.sqlite"}"
[chains.ethereum]
rpc = "localnet:ethereum"
[[wallets]]
name = "demo"
address = "{WALLET}"
chains = ["ethereum"]
[strategy]
targets = {{ BTC = 40, ETH = 30, ALTS = 20, STABLES = 10 }}
[aggregators."1inch"]
base_url = "localnet:1inch"
[oracles]
max_age_s = 86400
{extra}
""")
    return path


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    monkeypatch.setenv("JUPITER_API_KEY", "test-key")
    monkeypatch.setenv("REBALANCER_DEMO_PASSPHRASE", "demo")


def push(url: str, feed_address: str, answer: int, updated: int) -> None:
    world = json.loads((Path(__file__).parents[2] / "fixtures/evm/ethereum.world.json").read_text())
    rpc = Rpc(url)
    try:
        rpc.transact(
            world["deployer"], feed_address, "pushRound(int256,uint64,uint64)", answer, updated,
            updated,
        )  # fmt: skip
    finally:
        rpc.close()


def test_balances_json_prices_every_held_asset_by_two_sources(
    evm_worlds: dict[str, Any], tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["balances", "-c", str(local_config(tmp_path)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    held = {h["asset"] for h in out["holdings"] if int(h["raw"]) > 0}
    for asset in held:
        p = out["prices"][asset]
        names = [s["name"] for s in p["sources"]]
        assert any(n.startswith(("chainlink", "pyth")) for n in names), (asset, names)
        assert any("quote" in n or n == "unit of account" for n in names), (asset, names)
        assert set(p) == {"usd", "source", "sources"}
        for s in p["sources"]:
            assert {"name", "usd", "age_s"} <= set(s)
    eth = next(h for h in out["holdings"] if h["symbol"] == "ETH")
    assert eth["price_source"] == "median of 3 oracles" and Decimal(eth["price_usd"]) == 3200
    assert Decimal(out["total_usd"]) > 50_000


def test_drift_plan_and_run_work_without_a_prices_table(
    evm_isolated: dict[str, Any], tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(local_config(tmp_path))
    assert main(["drift", "-c", cfg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"]
    assert main(["plan", "-c", cfg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trades"]
    assert main(["run", "-c", cfg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "ok"


def test_a_reverting_feed_is_named_and_one_source_alone_refuses(
    evm_isolated: dict[str, Any], tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    url = evm_isolated["ethereum"]["url"]
    rpc = Rpc(url)
    try:
        rpc.call("anvil_setCode", ETH_USD, "0x60006000fd")  # PUSH0 PUSH0 REVERT
    finally:
        rpc.close()
    cfg = str(eth_only(tmp_path))
    assert main(["balances", "-c", cfg, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["prices"]["ETH"]["sources"]
    assert got[0] == {
        "name": "chainlink ethereum",
        "usd": None,
        "age_s": None,
        "reason": "latestRoundData reverted",
    }
    assert main(["plan", "-c", cfg, "--json"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert "price of ETH: only 1inch quote" in line
    assert "chainlink ethereum: latestRoundData reverted" in line
    # the policy may accept one source
    cfg = str(eth_only(tmp_path, "[policy]\nallow_single_price_source = true\n"))
    assert main(["plan", "-c", cfg, "--json"]) == 0


@pytest.mark.parametrize(
    ("answer", "age", "words"),
    [
        (-1, 0, "answer -1 <= 0"),
        (320_000_000_000, 200_000, "stale: updated 2000"),  # age in the reason
        (400_000_000_000, 0, "chainlink ethereum says 4000"),
    ],
)
def test_negative_stale_or_disagreeing_oracle_refuses_to_plan(
    evm_isolated: dict[str, Any],
    tmp_path: Path,
    keys: None,
    capsys: pytest.CaptureFixture[str],
    answer: int,
    age: int,
    words: str,
) -> None:
    push(evm_isolated["ethereum"]["url"], ETH_USD, answer, int(time.time()) - age)
    assert main(["plan", "-c", str(eth_only(tmp_path)), "--json"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert "price of ETH" in line and words in line


def test_feeds_ride_in_the_balance_request(evm_worlds: dict[str, Any]) -> None:
    """Still one HTTP request per chain per refresh, with the oracles in it."""
    import asyncio

    import httpx

    from rebalancer.chains.evm import EvmChain
    from rebalancer.chains.registry import Registry

    reg = Registry.load()
    sent: list[bytes] = []

    async def count(request: httpx.Request) -> None:
        sent.append(request.content)

    async def go() -> Any:
        async with httpx.AsyncClient(event_hooks={"request": [count]}) as client:
            chain = EvmChain(reg.chains["ethereum"], evm_worlds["ethereum"]["url"], client)
            return await chain.balances([WALLET], reg.tokens_on("ethereum"), feeds_on("ethereum"))

    got = asyncio.run(go())
    assert len(sent) == 1
    assert len(got.oracles) == len(feeds_on("ethereum")) and all(r.usd for r in got.oracles)


def test_a_plan_file_is_simulated_at_live_prices_without_a_prices_table(
    evm_isolated: dict[str, Any], tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(local_config(tmp_path))
    plan = tmp_path / "plan.json"
    assert main(["plan", "-c", cfg, "-o", str(plan), "--json"]) == 0
    capsys.readouterr()
    assert main(["simulate", "-c", cfg, str(plan), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trades"] and {t["status"] for t in out["trades"]} == {"simulated"}
