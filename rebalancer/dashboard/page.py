"""The dashboard's HTML and charts, made from one ``State`` (strings and bytes only, no I/O).

Every panel is an element with a stable id (``PANELS``); the page is complete without its
script, which only swaps in newer panels. Every text is HTML-escaped; the page refers to
nothing but its own server (``/static/...``, ``/charts/...``), so it also passes the strict
Content-Security-Policy the server sends. Amounts are shown rounded for people; the journal and
``--json`` of the other commands keep the exact base units.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rebalancer.core import display
from rebalancer.core.display import fixed_units, significant_places
from rebalancer.dashboard.data import JournalView, State, scrub

PANELS = (
    "status",
    "summary",
    "holdings",
    "allocation",
    "drift-history",
    "next-run",
    "trades",
    "performance",
)
"""Element ids of the parts the page refreshes, in page order (``CLI.md`` names them)."""

CHARTS = ("allocation", "drift-history", "value")

_ZERO = Decimal(0)


class Html(str):
    """Text that is already HTML (built here from escaped parts)."""


def e(value: Any) -> str:
    """``value`` as HTML: escaped, unless it is ``Html`` already."""
    if isinstance(value, Html):
        return value
    return html.escape("" if value is None else str(value))


# -- numbers and times for people ------------------------------------------------------------
def usd(v: Decimal | str | None, places: int = 2) -> str:
    return "–" if v is None else display.usd(Decimal(str(v)), places)


def price(v: Decimal | None) -> str:
    """A unit price: cents from $1 up, four significant digits below (rounded as
    ``core.display`` rounds every table)."""
    if v is None:
        return "–"
    if v >= 1:
        return usd(v)
    return f"${fixed_units(v, min(12, max(2, significant_places(v, 4))))}"


def amount(v: Decimal) -> str:
    """A token amount: cents from 1,000 up, four decimals from 1, four significant digits
    below (rounded as ``core.display`` rounds every table)."""
    a = abs(v)
    if a == 0:
        return "0"
    places = 2 if a >= 1000 else 4 if a >= 1 else min(12, significant_places(a, 4))
    text = fixed_units(v, places)
    return "<0.0001" if text in ("0", "-0") else text


def pct(v: Decimal | str | None, places: int = 2) -> str:
    return "–" if v is None else f"{Decimal(str(v)):.{places}f}%"


def pp(v: Decimal | str | None) -> str:
    return "–" if v is None else f"{Decimal(str(v)):+.2f} pp"


def frac(v: float | None) -> str:
    """A fraction (0.05) as a percentage."""
    return "–" if v is None else f"{v * 100:+.2f}%"


def ratio(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f}"


def when(at: float | None, *, short: bool = False, ago: bool = True) -> Html:
    """A moment as UTC text in a ``<time>``; the script keeps an "ago" beside it."""
    if at is None:
        return Html("–")
    moment = datetime.fromtimestamp(at, UTC)
    text = moment.strftime("%H:%M:%S UTC" if short else "%Y-%m-%d %H:%M:%S UTC")
    if not ago:
        return Html(f'<time datetime="{moment.isoformat()}">{text[:-7]}</time>')
    return Html(
        f'<time datetime="{moment.isoformat()}" data-at="{at:.3f}">{text}</time>'
        f'<span class="ago"></span>'
    )


def span(seconds: float) -> str:
    """A duration for people."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def short_id(text: str | None, keep: int = 8) -> Html:
    """A transaction hash or address cut to its ends, whole in the tooltip."""
    if not text:
        return Html("–")
    if len(text) <= 2 * keep + 1:
        return Html(f"<code>{e(text)}</code>")
    return Html(f'<code title="{e(text)}">{e(text[:keep])}…{e(text[-keep + 2 :])}</code>')


def badge(text: str, tone: str) -> Html:
    return Html(f'<span class="badge {tone}">{e(text)}</span>')


_TONES = {
    "confirmed": "good",
    "simulated": "info",
    "refused": "bad",
    "failed": "bad",
    "dropped": "bad",
    "skipped": "muted",
}


def state_badge(state: str) -> Html:
    return badge(state, _TONES.get(state, "warn"))


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    right: Iterable[int] = (),
    foot: Sequence[Any] | None = None,
    css: str = "",
) -> Html:
    """A table; cells are text (escaped) or ``Html``; ``right`` columns are numbers."""
    num = set(right)

    def cells(row: Sequence[Any], tag: str) -> str:
        return "".join(
            f"<{tag}{' class=num' if i in num else ''}>{e(c)}</{tag}>" for i, c in enumerate(row)
        )

    head = "<tr>" + cells(headers, "th") + "</tr>"
    body = "".join(f"<tr>{cells(r, 'td')}</tr>" for r in rows)
    tfoot = f"<tfoot><tr>{cells(foot, 'td')}</tr></tfoot>" if foot else ""
    return Html(
        f'<div class="scroll"><table class="{css}"><thead>{head}</thead>'
        f"<tbody>{body}</tbody>{tfoot}</table></div>"
    )


def _h2(title: str, note: str | Html = "") -> str:
    side = f'<span class="aside">{e(note)}</span>' if note else ""
    return f"<h2>{e(title)}{side}</h2>"


def _p(text: str | Html, css: str = "note") -> str:
    return f'<p class="{css}">{e(text)}</p>'


def _chart(name: str, state: State, alt: str, css: str = "chart") -> str:
    if name not in state.charts:
        return ""
    return f'<img class="{css}" src="/charts/{name}.svg?v={state.version}" alt="{e(alt)}">'


# -- panels ----------------------------------------------------------------------------------
def _status(state: State) -> str:
    live, journal = state.live, state.journal
    parts = [
        f'Last refresh <strong id="last-refresh">{e(when(state.refreshed_at, short=True))}</strong>'
    ]
    if live is not None and live.inputs is not None:
        parts.append(f"balances and prices read {e(when(live.read_at, short=True))}")
    else:
        parts.append("reading balances and prices…" if live is None else "no live read yet")
    parts.append(f"every {state.refresh_s:g} s and after every journal change")
    if journal is not None:
        parts.append(f"journal read {e(when(journal.read_at, short=True))}")
    out = '<p class="status-line">' + " · ".join(parts) + "</p>"
    problems = []
    if live is not None and live.error:
        shown = (
            f" (the panels show the read of {when(live.read_at, short=True)})"
            if live.inputs is not None
            else ""
        )
        problems.append(
            f"Live read failed at {when(live.error_at, short=True)}: {e(live.error)}{shown}"
        )
    if journal is not None and journal.error:
        problems.append(f"Journal: {e(journal.error)}")
    out += "".join(f'<p class="alert">{p}</p>' for p in problems)
    return out


def _tile(label: str, value: str | Html, sub: str | Html = "", tone: str = "") -> str:
    return (
        f'<div class="tile {tone}"><div class="label">{e(label)}</div>'
        f'<div class="value">{e(value)}</div><div class="sub">{e(sub)}</div></div>'
    )


def _summary(state: State) -> str:
    live, journal = state.live, state.journal
    tiles = []
    if live is not None and live.inputs is not None:
        tiles.append(
            _tile(
                "Portfolio value",
                usd(live.inputs.portfolio.total),
                f"{len(live.inputs.portfolio.positions)} holdings",
            )
        )
    else:
        tiles.append(_tile("Portfolio value", "–", "waiting for the first read"))
    plan = live.plan if live is not None else None
    if plan is not None:
        d = plan.before
        out = any(r.triggered for r in d.rows)
        tiles.append(
            _tile(
                "Largest drift",
                f"{d.max_drift_pp:.2f} pp",
                f"band ±{d.band_pp:g} pp: " + ("out of band" if out else "within"),
                "bad" if out else "good",
            )
        )
        fired = [t.name for t in d.triggers if t.fired]
        tiles.append(
            _tile(
                "Next run",
                f"{len(plan.trades)} trade(s)" if plan.trades else "nothing to do",
                ("fired: " + ", ".join(fired)) if fired else "no trigger fired",
                "warn" if plan.trades else "",
            )
        )
    if journal is not None:
        confirmed = sum(1 for t in journal.trades if t.state == "confirmed")
        last = journal.last_rebalance
        day = datetime.fromtimestamp(last, UTC).strftime("%Y-%m-%d · ") if last else ""
        tiles.append(
            _tile(
                "Last rebalance",
                when(last, short=True) if last else "never",
                f"{day}{len(journal.trades)} trades journalled, {confirmed} confirmed",
            )
        )
    return '<div class="tiles">' + "".join(tiles) + "</div>"


def _names(config: Any) -> dict[tuple[str, str], str]:
    return {(c, w.address.lower()): w.name for w in config.wallets for c in w.chains}


def _price_source(config: Any) -> tuple[str, str]:
    """A short label for the price column and the sentence that explains it."""
    if getattr(config, "price_check", "off") == "quotes":
        limit = config.strategy.price_max_deviation_pct
        return (
            "[prices], quotes agree",
            f"Prices: the config's [prices], checked before every read against the "
            f"aggregators' own quotes (about $1,000 of each held asset into USDC), which must "
            f"agree within {limit}%.",
        )
    return "[prices]", "Prices: the config's [prices] table (manual, not checked against quotes)."


def _holdings(state: State) -> str:
    live = state.live
    if live is None or live.inputs is None:
        why = "Reading balances…" if live is None else (live.error or "No live read yet.")
        return _h2("Holdings") + _p(why)
    inputs = live.inputs
    config = inputs.config
    names = _names(config)
    order = {name: i for i, name in enumerate(config.chains)}
    positions = sorted(
        inputs.portfolio.positions,
        key=lambda p: (
            order.get(p.chain, 99),
            names.get((p.chain, p.wallet.lower()), p.wallet),
            not p.token.is_native,
            p.token.asset,
            p.token.symbol,
        ),
    )
    total = inputs.portfolio.total
    label, note = _price_source(config)
    rows = [
        (
            p.chain,
            Html(f"{e(names.get((p.chain, p.wallet.lower()), ''))} {short_id(p.wallet, 6)}"),
            Html(f"<strong>{e(p.token.symbol)}</strong>"),
            p.token.asset,
            amount(Decimal(p.raw).scaleb(-p.token.decimals)),
            price(p.price),
            label,
            usd(p.value),
            pct(p.value / total * 100 if total > 0 else _ZERO, 1),
        )
        for p in positions
    ]
    out = _h2("Holdings", Html(f"{len(rows)} holdings, read {when(live.read_at, short=True)}"))
    out += table(
        ["chain", "wallet", "token", "asset", "amount", "price", "price source", "value", "share"],
        rows,
        right=(4, 5, 7, 8),
        foot=("total", "", "", "", "", "", "", usd(total), "100.0%"),
    )
    for f in inputs.failures:
        out += _p(f"Not read: {f.token.symbol} on {f.chain}: {f.reason}", "alert")
    return out + _p(note)


def _allocation(state: State) -> str:
    live = state.live
    plan = live.plan if live is not None else None
    if plan is not None:
        rows = [
            (
                Html(
                    f"<strong>{e(r.name)}</strong>"
                    if r.kind == "class"
                    else f'<span class="indent">{e(r.name)}</span>'
                ),
                usd(r.value_usd),
                pct(r.weight_pct),
                pct(r.target_pct),
                "–" if r.band_pp is None else f"±{r.band_pp:.2f} pp",
                pp(r.drift_pp),
                badge("out of band", "bad")
                if r.triggered
                else (badge("in band", "good") if r.target_pct is not None else ""),
            )
            for r in plan.before.rows
        ]
        aside = Html(f"now, read {when(live.read_at, short=True)}") if live else ""
    else:
        report = state.journal.report if state.journal is not None else None
        rows = [
            (a["name"], "", pct(a["weight_pct"]), pct(a["target_pct"]), "", pp(a["drift_pp"]), "")
            for a in (report.allocation if report is not None else [])
        ]
        aside = "as of the last journal snapshot"
        if not rows:
            return _h2("Allocation") + _p(
                (live.plan_error or live.error or "No plan.")
                if live is not None
                else "Reading balances…"
            )
    out = _h2("Allocation against target", aside)
    out += '<div class="cols">'
    out += table(
        ["class / asset", "value", "weight", "target", "band", "drift", ""],
        rows,
        right=(1, 2, 3, 4, 5),
    )
    chart = _chart("allocation", state, "Allocation against target and bands", "chart narrow")
    return out + f'<div class="chart-col">{chart}</div></div>'


def _drift_history(state: State) -> str:
    journal = state.journal
    points = len(journal.report.points) if journal and journal.report else 0
    out = _h2(
        "Drift history",
        f"{points} point(s) from the journal, {len(state.samples)} live read(s) since start",
    )
    if "drift-history" not in state.charts:
        return out + _p("No history yet: executing runs record snapshots, live reads add points.")
    return (
        out
        + _chart("drift-history", state, "Drift per class over time with the bands")
        + _p(
            "Drift of each targeted row from its target, in percentage points: the grey strip is "
            "the band, dotted lines the rebalances. Points come from the journal's snapshots "
            "(before and after each executing run) and from this dashboard's live reads."
        )
    )


def _symbol(registry: Any, token_id: str) -> tuple[str, int | None]:
    token = registry.by_id(token_id) if registry is not None else None
    if token is None:
        return token_id.rsplit(":", 1)[-1][:12], None
    return token.symbol, token.decimals


def _units(raw: int | None, decimals: int | None, symbol: str) -> str:
    if raw is None:
        return "–"
    if decimals is None:
        return f"{raw} {symbol} (base units)"
    return f"{amount(Decimal(raw).scaleb(-decimals))} {symbol}"


def _f(row: Any, name: str) -> Any:
    """A field of a journal row or of a stored document, a mapping or a model alike."""
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)


def _plans(journal: JournalView) -> dict[int, dict[str, Any]]:
    """Each run's planned trades by id (their value and why they were planned)."""
    out: dict[int, dict[str, Any]] = {}
    for r in journal.runs:
        plan = _f(r, "plan")
        if isinstance(plan, str):
            try:
                plan = json.loads(plan)
            except ValueError:
                plan = None
        trades = _f(plan, "trades") if plan is not None else None
        out[int(_f(r, "id"))] = {str(_f(t, "id")): t for t in trades or [] if _f(t, "id")}
    return out


def _approved_trade(row_id: str) -> str | None:
    """The trade a journal row approves (None: the row is a trade itself)."""
    from rebalancer.intents import approval_ids

    for suffix in approval_ids(""):  # today's spelling and older journals'
        if row_id.endswith(suffix):
            return row_id.removesuffix(suffix)
    return None


def _trades(state: State, registry: Any, names: Mapping[tuple[str, str], str]) -> str:
    journal = state.journal
    if journal is None or not journal.trades:
        return _h2("Trades") + _p(
            "No trades journalled yet: `rebalancer run` (a dry run) and `run --execute` record "
            "every trade here, with what became of it."
        )
    modes = {int(_f(r, "id")): str(_f(r, "mode")) for r in journal.runs}
    plans = _plans(journal)
    rows = []
    for t in sorted(journal.trades, key=lambda t: (t.updated_at, t.run_id), reverse=True):
        sell, sell_dec = _symbol(registry, t.sell)
        buy, buy_dec = _symbol(registry, t.buy)
        approved = _approved_trade(t.trade_id)
        approval = approved is not None
        entry = plans.get(t.run_id, {}).get(approved or t.trade_id, {})
        got: str
        if approval:
            got = Html('<span class="muted">approval</span>')
        elif t.realised_out is not None:
            got = _units(t.realised_out, buy_dec, buy)
        elif t.simulated_out is not None:
            got = Html(
                f'{e(_units(t.simulated_out, buy_dec, buy))} <span class="muted">sim.</span>'
            )
        else:
            got = Html(f'{e(_units(t.min_out, buy_dec, buy))} <span class="muted">min</span>')
        if t.error:
            reason = Html(f'<span class="why">{e(scrub(t.error))}</span>')
        else:
            why = str(_f(entry, "reason") or "")
            cut = why if len(why) <= 44 else why[:43] + "…"
            reason = Html(f'<span class="muted" title="{e(why)}">{e(cut)}</span>')
        rows.append(
            (
                when(t.updated_at, ago=False),
                Html(f"#{t.run_id} <span class=muted>{e(modes.get(t.run_id, ''))}</span>"),
                t.chain,
                names.get((t.chain, t.wallet.lower()), "") or short_id(t.wallet, 6),
                _units(t.amount_in, sell_dec, sell),
                got,
                "" if approval else usd(_f(entry, "value_usd")),
                state_badge(t.state),
                short_id(t.tx_hash, 6),
                reason,
            )
        )
    counts: dict[str, int] = {}
    for t in journal.trades:
        counts[t.state] = counts.get(t.state, 0) + 1
    aside = f"{len(rows)} journalled: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return _h2("Trades", aside) + table(
        ["time (UTC)", "run", "chain", "wallet", "sell", "buy", "value", "status", "tx", "reason"],
        rows,
        right=(4, 5, 6),
        css="trades",
    )


def _next_run(state: State) -> str:
    live, journal = state.live, state.journal
    out = _h2("Next run", "dry run: what `rebalancer run` would do now")
    if journal is not None:
        running = [r for r in journal.runs if _f(r, "status") == "running"]
        if running:
            r = running[-1]
            since = when(_f(r, "started_at"))
            out += _p(
                Html(f"A run is in progress: #{_f(r, 'id')} ({e(_f(r, 'mode'))}) since {since}."),
                "alert info",
            )
        if journal.unfinished:
            t = journal.unfinished[0]
            out += _p(
                f"{len(journal.unfinished)} trade(s) in flight (first: {t.trade_id} on {t.chain}): "
                "a run settles them first and plans nothing until they land or are dropped.",
                "alert",
            )
    if live is None or (live.plan is None and live.plan_error is None):
        return out + _p(
            "Reading balances…" if live is None else (live.error or "No live read yet.")
        )
    if live.plan is None:
        return out + _p(f"A run would refuse: {live.plan_error}", "alert")
    plan = live.plan
    triggers = [
        (t.name, badge("fired", "warn") if t.fired else badge("not fired", "muted"), t.detail)
        for t in plan.before.triggers
    ]
    out += table(["trigger", "state", "detail"], triggers, css="compact")
    names = _names(live.inputs.config)
    if plan.trades:
        rows = [
            (
                t.chain,
                names.get((t.chain, t.wallet.lower()), "") or short_id(t.wallet, 6),
                f"{amount(Decimal(t.amount_in).scaleb(-t.sell.decimals))} {t.sell.symbol}",
                f"{amount(Decimal(t.expected_out).scaleb(-t.buy.decimals))} {t.buy.symbol}",
                usd(t.value_usd),
                usd(t.est_cost_usd),
                t.reason,
            )
            for t in plan.trades
        ]
        out += table(
            ["chain", "wallet", "sell", "buy (expected)", "value", "est. cost", "why"],
            rows,
            right=(2, 3, 4, 5),
        )
        out += _p(
            f"{len(plan.trades)} trade(s), estimated cost {usd(plan.est_cost_usd)}; largest drift "
            f"{plan.before.max_drift_pp:.2f} pp now, {plan.after_max_drift_pp:.2f} pp after."
        )
    else:
        out += _p(
            "Nothing to do: "
            + (
                "no trigger fired."
                if not plan.before.triggered
                else "a trigger fired but no trade is worth its cost."
            )
        )
    if plan.skipped:
        skipped = [
            (
                badge(str(s.reason), "muted"),
                _f(s, "name")
                or " ".join(x for x in (_f(s, k) for k in ("chain", "sell", "buy")) if x),
                s.detail,
            )
            for s in plan.skipped
        ]
        out += "<h3>Not done, and why</h3>" + table(["reason", "what", "detail"], skipped)
    return out + _p(
        "Planned on the balances and prices above and nothing more: `run` would then quote, "
        "check and simulate every trade, and `run --execute` sign and send. Nothing here is "
        "simulated, signed or recorded."
    )


def _performance(state: State) -> str:
    journal = state.journal
    report = journal.report if journal is not None else None
    out = _h2("Performance", "from the journal's snapshots, like `rebalancer report`")
    if report is None or not report.points:
        return out + _p(
            "No executing runs yet: `rebalancer run --execute` (or `watch --execute`) records a "
            "snapshot before and after each run, and these figures come from them."
        )
    doc = report.as_json()
    v, r, c, period = doc["value"], doc["returns"], doc["costs"], doc["period"]
    ann = r["annualised"] is not None
    figures = [
        ("value at the start", usd(v["start_usd"])),
        ("value now (last snapshot)", usd(v["end_usd"])),
        ("buy-and-hold of the first holdings", usd(v["buy_and_hold_usd"])),
        ("net deposits (+) / withdrawals (−)", usd(v["net_flows_usd"])),
        ("time-weighted return", frac(r["twr"])),
        ("annualised return", frac(r["annualised"]) if ann else "– (under a day)"),
        ("Sharpe ratio", ratio(r["sharpe"]) if ann else "– (under a day)"),
        ("Sortino ratio", ratio(r["sortino"]) if ann else "– (under a day)"),
        ("maximum drawdown", frac(-r["max_drawdown"]) if r["max_drawdown"] else "0.00%"),
    ]
    costs = [
        ("confirmed trades", str(c["trades"])),
        ("value traded", usd(c["traded_usd"])),
        ("fees (est.)", usd(c["fees_usd"])),
        ("price impact (est.)", usd(c["impact_usd"])),
        ("network fees", usd(c["gas_usd"])),
        ("received below expected", usd(c["slippage_vs_expected_usd"])),
        ("total cost", Html(f"<strong>{e(usd(c['total_cost_usd']))}</strong>")),
    ]
    length = span(float(period["days"] or 0) * 86400)
    out += '<div class="cols">'
    out += table(["return", ""], figures, right=(1,), css="compact")
    out += table(["cost", ""], costs, right=(1,), css="compact")
    out += f'<div class="chart-col">{_chart("value", state, "Value against buy-and-hold")}</div>'
    out += "</div>"
    return out + _p(
        f"{period['executed_runs']} executing run(s) over {length}; returns chain the market "
        "move between runs and each run's trading cost, so deposits and withdrawals are not "
        "returns. Costs are the plans' estimates of fees and impact for confirmed trades, the "
        "network fees paid, and what arrived below the expected amount."
    )


def panels(state: State, registry: Any = None, config: Any = None) -> dict[str, str]:
    """The inner HTML of every panel, by element id."""
    names = _names(config) if config is not None else {}
    return {
        "status": _status(state),
        "summary": _summary(state),
        "holdings": _holdings(state),
        "allocation": _allocation(state),
        "drift-history": _drift_history(state),
        "next-run": _next_run(state),
        "trades": _trades(state, registry, names),
        "performance": _performance(state),
    }


def document(state: State, registry: Any = None, config: Any = None) -> str:
    """The whole page."""
    parts = panels(state, registry, config)
    wide = {"holdings", "allocation", "trades", "performance"}
    sections = "".join(
        f'<section id="{pid}" class="panel{" wide" if pid in wide else ""}">{parts[pid]}</section>'
        for pid in PANELS
        if pid not in ("status", "summary")
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>rebalancer · dashboard</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script>'
        f'</head><body data-version="{state.version}">'
        '<header><div class="brand"><h1>rebalancer</h1>'
        f'<span class="sub">portfolio dashboard · {e(state.config_path)} · read-only</span>'
        '<span id="conn" class="conn">live</span></div>'
        f'<div id="status">{parts["status"]}</div></header>'
        f'<main><section id="summary">{parts["summary"]}</section>{sections}</main>'
        "<footer>Read-only: this page and its server cannot sign, send or change anything. "
        "Everything on it is served from this machine; it loads nothing from anywhere else."
        "</footer></body></html>\n"
    )


# -- charts ----------------------------------------------------------------------------------
_drawn: dict[str, tuple[Any, bytes]] = {}
"""The last drawing of each chart and the data it was drawn from: a journal change that does
not move a chart's data (a trade changing state) costs no drawing."""


def _cached(name: str, key: Any, make: Callable[[], bytes]) -> bytes:
    hit = _drawn.get(name)
    if hit is not None and hit[0] == key:
        return hit[1]
    svg = make()
    _drawn[name] = (key, svg)
    return svg


def draw(state: State) -> dict[str, bytes]:
    """The SVG charts for this state (matplotlib, server-side: the page needs no chart code)."""
    from rebalancer.reports import charts

    out: dict[str, bytes] = {}
    live, journal = state.live, state.journal
    report = journal.report if journal is not None else None
    plan = live.plan if live is not None else None
    if plan is not None:
        rows = tuple(
            (r.name, float(r.target_pct), float(r.band_pp or 0), float(r.weight_pct))
            for r in plan.before.rows
            if r.target_pct is not None
        )
        if rows:
            out["allocation"] = _cached(
                "allocation",
                rows,
                lambda: charts.allocation(
                    [r[0] for r in rows],
                    [r[1] for r in rows],
                    [r[2] for r in rows],
                    {"now": [r[3] for r in rows]},
                    title="Weight against target and band",
                    fmt="svg",
                ),
            )
    history = _drift_points(state)
    if history:
        out["drift-history"] = _drift_chart(state, history)
    if report is not None and report.points:
        points = tuple(
            (p.snap.at, float(p.index), float(p.snap.total), float(p.hold)) for p in report.points
        )
        out["value"] = _cached(
            "value",
            points,
            lambda: charts.value(
                [datetime.fromtimestamp(p[0], UTC) for p in points],
                {
                    "portfolio (time-weighted, flows removed)": [p[1] for p in points],
                    "portfolio value": [p[2] for p in points],
                    "buy-and-hold": [p[3] for p in points],
                },
                fmt="svg",
            ),
        )
    return out


def _drift_points(state: State) -> list[tuple[float, Mapping[str, Decimal]]]:
    """(time, drift per row) from the journal's snapshots and this dashboard's live reads."""
    points: list[tuple[float, Mapping[str, Decimal]]] = []
    report = state.journal.report if state.journal is not None else None
    if report is not None:
        points += [(p.snap.at, p.drift) for p in report.points]
    points += [(s.at, s.drift) for s in state.samples]
    return sorted(points, key=lambda p: p[0])


def _drift_chart(state: State, points: list[tuple[float, Mapping[str, Decimal]]]) -> bytes:
    from rebalancer.reports import charts

    nan = float("nan")
    names = list(state.leaves) or sorted({n for _a, d in points for n in d})
    series = tuple((n, tuple(float(d[n]) if n in d else nan for _a, d in points)) for n in names)
    marks: tuple[float, ...] = ()
    if state.journal is not None:
        confirmed = {t.run_id for t in state.journal.trades if t.state == "confirmed"}
        marks = tuple(
            float(_f(r, "finished_at"))
            for r in state.journal.runs
            if _f(r, "mode") == "execute" and int(_f(r, "id")) in confirmed and _f(r, "finished_at")
        )
    times = tuple(at for at, _d in points)
    return _cached(
        "drift-history",
        # NOTE: nan != nan, so the key holds the series as text
        (times, repr(series), state.band_pp, marks),
        lambda: charts.drift(
            [datetime.fromtimestamp(at, UTC) for at in times],
            {n: list(ys) for n, ys in series},
            state.band_pp,
            title="Drift from target per class",
            marks=[datetime.fromtimestamp(m, UTC) for m in marks],
            fmt="svg",
        ),
    )
