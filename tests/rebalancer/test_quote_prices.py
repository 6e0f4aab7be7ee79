"""The aggregator-quote price source and ``price_check = "quotes"`` (issue 4): the manual
``[prices]`` agree with the local stand-ins' quotes, a wrong manual price refuses to plan
(exit 3), and the arithmetic from base units to USD per unit is exact (no float)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal, localcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rebalancer.chains.registry import Registry
from rebalancer.cli import main
from rebalancer.config import load_config
from rebalancer.core.types import Holding
from rebalancer.dex.base import Quote, SwapRequest
from rebalancer.planner.prices import PriceDisagreementError, deviation_pct
from rebalancer.portfolio import read_holdings
from rebalancer.quote_prices import PRICE_DIGITS, QuotePrices, check_quote_prices

EXAMPLES = Path(__file__).parents[2] / "examples"
SNAPSHOT = {
    "BTC": "95000", "ETH": "3200", "SOL": "180", "AVAX": "25", "LINK": "15", "UNI": "8",
    "AAVE": "250", "JUP": "0.8", "BONK": "0.00002", "USDC": "1", "USDT": "1",
}  # fmt: skip


def local_config(
    tmp_path: Path, *, eth: str = "3200", check: str = "quotes", name: str = "local.toml"
) -> Path:
    """examples/local.toml with its own journal, absolute key paths and the given ETH price."""
    text = (EXAMPLES / "local.toml").read_text()
    text = text.replace('journal = ".demo-journal.sqlite"', f'journal = "{tmp_path / "j.sqlite"}"')
    text = text.replace('file = "keys/', f'file = "{EXAMPLES / "keys"}/')
    text = text.replace('price_check = "quotes"', f'price_check = "{check}"')
    if "\n[prices]\n" not in text:  # NOTE: the example prices live since issue 12
        text += "\n[prices]\n" + "\n".join(f"{a} = {p}" for a, p in SNAPSHOT.items()) + "\n"
    text = text.replace("\nETH = 3200\n", f"\nETH = {eth}\n")
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONEINCH_API_KEY", "test-key")
    monkeypatch.setenv("JUPITER_API_KEY", "test-key")


def test_the_example_config_turns_the_check_on() -> None:
    config, _ = load_config(EXAMPLES / "local.toml")
    assert config.price_check == "quotes"


def test_quotes_agree_with_the_snapshot_prices_on_the_local_worlds(
    evm_worlds: dict[str, Any], tmp_path: Path, keys: None
) -> None:
    config, registry = load_config(local_config(tmp_path))
    live = asyncio.run(read_holdings(config, registry))
    quotes = check_quote_prices(config, registry, live.holdings, config.prices)
    held = {h.token.asset for h in live.holdings if h.raw > 0}
    assert not quotes.skipped and set(quotes.table) == held
    for asset, price in quotes.table.items():
        assert type(price) is Decimal
        assert deviation_pct(price, config.prices[asset]) < config.strategy.price_max_deviation_pct
    assert quotes.table["USDC"] == 1


def test_a_wrong_manual_price_refuses_to_plan_with_exit_3(
    evm_worlds: dict[str, Any],
    tmp_path: Path,
    keys: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = local_config(tmp_path, eth="5000")
    assert main(["plan", "-c", str(cfg), "--json"]) == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = [x for x in captured.err.splitlines() if "price of" in x]
    assert "price of ETH" in line and "[prices] says 5000" in line
    assert "aggregator quotes says 319" in line  # the stand-ins price ETH near 3200
    assert main(["drift", "-c", str(cfg)]) == 3
    capsys.readouterr()
    # with the check off, the same config plans (the manual prices are trusted as given)
    off = local_config(tmp_path, eth="5000", check="off", name="off.toml")
    assert main(["plan", "-c", str(off), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trades"]


# -- the arithmetic, on a stub aggregator -------------------------------------------------------
class _Stub:
    """Quotes a fixed rate (USDC base units per sold base unit, as a fraction) and records
    every request."""

    def __init__(self, out_per_in: tuple[int, int]) -> None:
        self.num, self.den = out_per_in
        self.requests: list[SwapRequest] = []

    async def quote(self, request: SwapRequest) -> Quote:
        self.requests.append(request)
        return Quote(request, request.amount_in * self.num // self.den)


def test_prices_come_from_exact_integer_ratios() -> None:
    reg = Registry.load()
    wbtc, weth = reg.by_symbol("ethereum", "WBTC"), reg.by_symbol("ethereum", "WETH")
    usdt = reg.by_symbol("ethereum", "USDT")
    cbbtc = reg.by_symbol("solana", "cbBTC")
    assert wbtc and weth and usdt and cbbtc
    wallet = "0x38933fB3600db971A459767D149B492e58e40b76"
    holdings = [
        Holding("ethereum", wallet, wbtc, 10**8),  # 1 BTC on Ethereum
        Holding("solana", "sol", cbbtc, 3 * 10**8),  # 3 BTC on Solana: quoted there
        Holding("ethereum", wallet, weth, 2 * 10**18),
        Holding("ethereum", wallet, usdt, 10**6),
    ]
    # 1 BTC (1e8) -> 94,999.5 USDC (94_999_500_000); 1 ETH (1e18) -> 3,199 USDC; USDT at par
    rates = {"ethereum": _Stub((3_199_000_000, 10**18)), "solana": _Stub((94_999_500_000, 10**8))}
    services = SimpleNamespace(
        registry=reg,
        config=SimpleNamespace(
            chains={"ethereum": None, "solana": None},
            wallets=[],
            policy=SimpleNamespace(max_slippage_bps=100),
        ),
        aggregator=lambda chain: rates[chain],
    )
    manual = {"BTC": Decimal(95000), "ETH": Decimal(3200)}
    quotes = asyncio.run(QuotePrices.fetch(services, holdings, manual))  # type: ignore[arg-type]
    (btc_req,) = rates["solana"].requests
    assert btc_req.sell == cbbtc and btc_req.amount_in == 1_052_631  # $1,000 at 95,000, floor
    eth_req = next(r for r in rates["ethereum"].requests if r.sell == weth)
    assert eth_req.amount_in == 312_500_000_000_000_000  # $1,000 at 3,200: 0.3125 ETH
    for r in [*rates["solana"].requests, *rates["ethereum"].requests]:
        assert type(r.amount_in) is int
    out = 1_052_631 * 94_999_500_000 // 10**8
    with localcontext() as ctx:
        ctx.prec = PRICE_DIGITS
        want_btc = Decimal(out * 10**8) / Decimal(1_052_631 * 10**6)
    assert quotes.table["BTC"] == want_btc
    assert quotes.table["ETH"] == Decimal(3199)
    assert quotes.table["USDT"] == Decimal(1)
    assert all(type(p) is Decimal for p in quotes.table.values())


def test_disagreement_names_the_asset_and_both_prices() -> None:
    from rebalancer.planner.prices import ManualPrices, check_agreement

    quotes = QuotePrices({"ETH": Decimal("3199.5")})
    with pytest.raises(PriceDisagreementError, match=r"ETH: \[prices\] says 5000, aggregator"):
        check_agreement(
            ManualPrices({"ETH": Decimal(5000)}, "[prices]"), quotes, ["ETH"], Decimal(2)
        )
