"""Notifications people read: the generic JSON webhook, Telegram, Discord, Slack and ntfy.

A watch check's summary becomes a few :class:`Notice` s (a trigger fired, a plan made, trades
landed, a trade refused with its reason, the run failed, a transaction stale or stuck); each
configured channel formats them its own way and POSTs over one httpx client. Tokens and
webhook URLs come from environment variables named in ``[notify]``; they never appear in a
message or a warning (URLs in message text are redacted, failures name the channel only). A
channel that fails is a warning, never a reason to stop trading.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from rebalancer.core.errors import ConfigError
from rebalancer.core.redact import redact_url


class Event(StrEnum):
    TRIGGER_FIRED = "trigger_fired"
    PLAN_MADE = "plan_made"
    TRADES_LANDED = "trades_landed"
    TRADE_REFUSED = "trade_refused"
    RUN_FAILED = "run_failed"
    TX_STUCK = "tx_stuck"


@dataclass(frozen=True)
class Notice:
    event: Event
    title: str
    text: str


_URL = re.compile(r"https?://[^\s'\"<>]+")


def _clean(text: str) -> str:
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


def _units(t: Mapping[str, Any], field: str, side: str) -> str:
    """A raw amount of ``t`` in token units with its symbol, rounded as the text tables are
    (``core.display``); base units when the summary does not say the token's decimals."""
    from decimal import Decimal

    from rebalancer.core.display import short_units

    raw, symbol, decimals = t.get(field), t.get(side), t.get(f"{side}_decimals")
    if raw is None:
        return str(symbol)
    if not isinstance(decimals, int):
        return f"{raw} base units of {symbol}"
    return f"{short_units(Decimal(int(raw)).scaleb(-decimals))} {symbol}"


def _trade(t: Mapping[str, Any], out: str = "quoted_out") -> str:
    """``t1 on ethereum: 1.5 ETH for 0.0521 WBTC``: what a trade sells and gets, in units."""
    got = next((f for f in (out, "simulated_out", "quoted_out", "min_out") if t.get(f)), None)
    buy = _units(t, got, "buy") if got else str(t.get("buy"))
    return f"{t['id']} on {t['chain']}: {_units(t, 'amount_in', 'sell')} for {buy}"


def notices(summary: Mapping[str, Any]) -> list[Notice]:
    """What a watch check's summary tells a person, one notice per event, with amounts in
    token units and symbols (base units stay in the webhook's JSON)."""
    out: list[Notice] = []
    check = summary.get("check")
    if "error" in summary:
        return [
            Notice(
                Event.RUN_FAILED,
                "rebalancer: run failed",
                _clean(f"check {check}: {summary['error']} (exit {summary.get('exit_code')})"),
            )
        ]
    trades: Sequence[Mapping[str, Any]] = summary.get("trades") or []
    if summary.get("triggered"):
        after = summary.get("after_max_drift_pp")
        out.append(
            Notice(
                Event.TRIGGER_FIRED,
                "rebalancer: trigger fired",
                f"check {check}: max drift {summary.get('before_max_drift_pp')} pp"
                + (f", {after} pp after the plan" if after is not None else ""),
            )
        )
    if trades:
        listed = "; ".join(_trade(t) for t in trades)
        out.append(
            Notice(
                Event.PLAN_MADE,
                "rebalancer: plan made",
                f"{len(trades)} trade(s) ({summary.get('mode')}): {listed}",
            )
        )
    landed = [t for t in trades if t.get("status") == "confirmed"]
    if landed:
        out.append(
            Notice(
                Event.TRADES_LANDED,
                "rebalancer: trades landed",
                "; ".join(f"{_trade(t, 'realised_out')}, tx {t['tx']}" for t in landed),
            )
        )
    for t in trades:
        if t.get("status") == "refused":
            out.append(
                Notice(
                    Event.TRADE_REFUSED,
                    "rebalancer: trade refused",
                    _clean(f"{_trade(t)}: {t.get('reason')}"),
                )
            )
    for t in trades:
        if t.get("status") in ("pending", "sent", "signed", "dropped"):
            out.append(
                Notice(
                    Event.TX_STUCK,
                    "rebalancer: transaction stale or stuck",
                    f"{_trade(t)}: {t.get('status')}, tx {t.get('tx')}",
                )
            )
    return out


Post = Callable[[httpx.Client, Notice, Mapping[str, Any]], httpx.Response]


@dataclass(frozen=True)
class Channel:
    """One configured destination; ``secret`` (a URL or token) stays inside ``post``."""

    name: str
    post: Post


def _scrubbed(value: Any) -> Any:
    """``value`` with every URL in its strings redacted (a reason may quote a keyed node URL)."""
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, Mapping):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return value


def _webhook(url: str) -> Post:
    """The generic webhook gets the check's whole JSON summary, once per check."""
    return lambda c, _n, summary: c.post(url, json=_scrubbed(summary))


def _telegram(api: str, token: str, chat: str) -> Post:
    return lambda c, n, _s: c.post(
        f"{api.rstrip('/')}/bot{token}/sendMessage",
        json={"chat_id": chat, "text": f"{n.title}\n{n.text}", "disable_web_page_preview": True},
    )


def _discord(url: str) -> Post:
    return lambda c, n, _s: c.post(url, json={"content": f"**{n.title}**\n{n.text}"[:2000]})


def _slack(url: str) -> Post:
    return lambda c, n, _s: c.post(url, json={"text": f"*{n.title}*\n{n.text}"})


def _ntfy(url: str, token: str | None) -> Post:
    def post(c: httpx.Client, n: Notice, _s: Mapping[str, Any]) -> httpx.Response:
        headers = {"Title": n.title, "Tags": str(n.event)}
        if n.event in (Event.RUN_FAILED, Event.TRADE_REFUSED, Event.TX_STUCK):
            headers["Priority"] = "high"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return c.post(url, content=n.text.encode(), headers=headers)

    return post


def channels(notify: Any, env: Mapping[str, str]) -> list[Channel]:
    """The channels ``[notify]`` configures; a named variable that is unset is a config error
    (found before the first check, not after the first trade)."""

    def need(field: str) -> str | None:
        var = getattr(notify, field)
        if not var:
            return None
        value = env.get(var)
        if not value:
            raise ConfigError(f"notify.{field} = {var!r}: that environment variable is unset")
        return value

    out: list[Channel] = []
    if url := need("webhook_env"):
        out.append(Channel("webhook", _webhook(url)))
    if token := need("telegram_token_env"):
        chat = need("telegram_chat_env")
        if not chat:
            raise ConfigError("notify.telegram_chat_env: required with telegram_token_env")
        out.append(Channel("telegram", _telegram(notify.telegram_api_url, token, chat)))
    if url := need("discord_webhook_env"):
        out.append(Channel("discord", _discord(url)))
    if url := need("slack_webhook_env"):
        out.append(Channel("slack", _slack(url)))
    if url := need("ntfy_url_env"):
        out.append(Channel("ntfy", _ntfy(url, need("ntfy_token_env"))))
    return out


def send(
    chans: Sequence[Channel],
    summary: Mapping[str, Any],
    warn: Callable[[str], None],
    client: httpx.Client | None = None,
) -> int:
    """Post every notice of ``summary`` to every channel; returns how many posts succeeded."""
    items = notices(summary)
    if not items or not chans:
        return 0
    own = client is None
    c = client or httpx.Client(timeout=10)
    ok = 0
    try:
        for ch in chans:
            if ch.name == "webhook" and not (summary.get("trades") or "error" in summary):
                continue  # NOTE: as before: the webhook hears of checks that traded or failed
            for n in items if ch.name != "webhook" else items[:1]:
                try:
                    r = ch.post(c, n, summary)
                except httpx.HTTPError as exc:
                    warn(f"notify {ch.name} failed: {type(exc).__name__}")
                    break
                if r.status_code >= 400:
                    warn(f"notify {ch.name} answered HTTP {r.status_code}")
                    break
                ok += 1
    finally:
        if own:
            c.close()
    return ok
