"""On-chain price oracles: the feed registry and the decoders of what the chains answer.

Chainlink feeds (EVM) are read with ``latestRoundData()`` and ``decimals()`` as sub-calls of the
balance refresh's Multicall3 batch; Pyth PriceUpdateV2 accounts (Solana) with the balance
refresh's JSON-RPC batch. Both come back as ``OracleReading``: a price, when and how sure,
or the reason there is none. Whether a reading is fresh and tight enough is decided above
(``rebalancer.market_prices``), where the configured limits and the clock live.
"""

from __future__ import annotations

import hashlib
import struct
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import cache
from importlib import resources

from rebalancer.core import bounds
from rebalancer.core.errors import RebalancerError

PYTH_RECEIVER = "rec5EKMGg6MxZYaMdyBfgwp4d5rB9T1VQH5pJv5LtFJ"
# Anchor's account discriminator: sha256("account:PriceUpdateV2")[:8].
PRICE_UPDATE_V2_DISCRIMINATOR = hashlib.sha256(b"account:PriceUpdateV2").digest()[:8]
# discriminator 8, write authority 32, verification level 1 (+1 for Partial), feed id 32,
# price i64, conf u64, exponent i32, publish time i64, prev publish time i64, EMA price i64,
# EMA conf u64, posted slot u64 (pyth-network/pyth-crosschain, pyth_solana_receiver_sdk
# src/price_update.rs: PriceUpdateV2::LEN = 134 allots the Partial form).
PRICE_UPDATE_V2_LEN = 134
_FULL_LEN = 133

LATEST_ROUND_DATA = bytes.fromhex("feaf968c")
GET_ROUND_DATA = bytes.fromhex("9a6fc8f5")
DECIMALS = bytes.fromhex("313ce567")


class OracleKind(StrEnum):
    CHAINLINK = "chainlink"
    PYTH = "pyth"


@dataclass(frozen=True, slots=True)
class OracleFeed:
    """One feed pricing one asset in USD on one chain (an entry of chains/data/oracles.toml)."""

    kind: OracleKind
    chain: str
    asset: str
    address: str
    heartbeat_s: int
    decimals: int = 8  # Chainlink: the feed's decimals
    description: str = ""
    feed_id: bytes = b""  # Pyth: the 32-byte price feed id
    exponent: int = 0  # Pyth: the exponent the feed publishes with (seeding local worlds)

    @property
    def name(self) -> str:
        """Shown beside a price: ``chainlink ethereum``, ``pyth solana``."""
        return f"{self.kind} {self.chain}"


@dataclass(frozen=True, slots=True)
class OracleReading:
    """What one feed said in one refresh: a USD price and its time, or why there is none."""

    feed: OracleFeed
    usd: Decimal | None
    updated_at: int | None = None  # unix seconds (Chainlink updatedAt, Pyth publish_time)
    conf_usd: Decimal | None = None  # Pyth's confidence interval, in USD
    round_id: int | None = None  # Chainlink's round id (history walks back from it)
    reason: str | None = None  # why ``usd`` is None, or why it must not be used


def tidy(value: Decimal) -> Decimal:
    """``3200.00000000`` as ``3200``: the same number, shown as people write it."""
    n = value.normalize()
    exponent = n.as_tuple().exponent
    return n.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else n


@cache
def load_feeds() -> tuple[OracleFeed, ...]:
    """The shipped feed registry, parsed once."""
    text = resources.files("rebalancer.chains").joinpath("data/oracles.toml").read_text()
    data = tomllib.loads(text)
    feeds: list[OracleFeed] = []
    for spec in data.get("chainlink", []):
        feeds.append(
            OracleFeed(
                kind=OracleKind.CHAINLINK,
                chain=spec["chain"],
                asset=spec["asset"],
                address=spec["address"],
                heartbeat_s=int(spec["heartbeat_s"]),
                decimals=int(spec["decimals"]),
                description=spec["description"],
            )
        )
    for spec in data.get("pyth", []):
        feeds.append(
            OracleFeed(
                kind=OracleKind.PYTH,
                chain=spec["chain"],
                asset=spec["asset"],
                address=spec["account"],
                heartbeat_s=int(spec["heartbeat_s"]),
                feed_id=bytes.fromhex(spec["feed_id"]),
                exponent=int(spec["exponent"]),
                description=f"{spec['asset']} / USD",
            )
        )
    return tuple(feeds)


def feeds_on(chain: str, assets: set[str] | None = None) -> list[OracleFeed]:
    """The feeds on ``chain``, for ``assets`` if given."""
    return [f for f in load_feeds() if f.chain == chain and (assets is None or f.asset in assets)]


# -- Chainlink --------------------------------------------------------------------------------
def decode_round(ret: bytes) -> tuple[int, int, int, int] | None:
    """(roundId, answer, startedAt, updatedAt) of a latestRoundData/getRoundData answer, or None
    if it is not five words."""
    if len(ret) < 5 * 32:
        return None
    words = [ret[i * 32 : (i + 1) * 32] for i in range(5)]
    round_id = int.from_bytes(words[0], "big")
    answer = int.from_bytes(words[1], "big", signed=True)
    return round_id, answer, int.from_bytes(words[2], "big"), int.from_bytes(words[3], "big")


def chainlink_reading(
    feed: OracleFeed, latest: tuple[bool, bytes], decimals: tuple[bool, bytes]
) -> OracleReading:
    """A Chainlink reading from the two sub-call results of one refresh."""
    ok, ret = latest
    if not ok:
        return OracleReading(feed, None, reason="latestRoundData reverted")
    parsed = decode_round(ret)
    if parsed is None:
        return OracleReading(feed, None, reason=f"latestRoundData answered {len(ret)} bytes")
    d_ok, d_ret = decimals
    if not d_ok or len(d_ret) < 32:
        return OracleReading(feed, None, reason="decimals() reverted")
    dec = int.from_bytes(d_ret[:32], "big")
    if dec != feed.decimals:
        return OracleReading(
            feed, None, reason=f"decimals() = {dec}, the registry says {feed.decimals}"
        )
    round_id, answer, _started, updated = parsed
    if answer <= 0:
        return OracleReading(
            feed, None, updated_at=updated, round_id=round_id, reason=f"answer {answer} <= 0"
        )
    why = out_of_bounds(Decimal(answer).scaleb(-dec), "latestRoundData answer")
    if why is not None:
        return OracleReading(feed, None, updated_at=updated, round_id=round_id, reason=why)
    return OracleReading(
        feed, tidy(Decimal(answer).scaleb(-dec)), updated_at=updated, round_id=round_id
    )


def out_of_bounds(usd: Decimal, what: str) -> str | None:
    """Why an oracle's USD price is outside ``core.bounds`` (the reason the source is dropped),
    or None when it is within them."""
    try:
        bounds.price(usd, what)
    except RebalancerError as exc:
        return exc.message
    return None


# -- Pyth ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PriceUpdate:
    """The fields of a PriceUpdateV2 account this tool uses."""

    write_authority: bytes
    full: bool
    feed_id: bytes
    price: int
    conf: int
    exponent: int
    publish_time: int
    posted_slot: int


def parse_price_update(data: bytes) -> PriceUpdate:
    """Decode a PriceUpdateV2 account's data; ValueError names what is wrong."""
    if len(data) < _FULL_LEN:
        raise ValueError(f"{len(data)} bytes, a PriceUpdateV2 has at least {_FULL_LEN}")
    if data[:8] != PRICE_UPDATE_V2_DISCRIMINATOR:
        raise ValueError("not a PriceUpdateV2 account (discriminator)")
    tag = data[40]
    if tag == 1:
        pos = 41
    elif tag == 0:
        pos = 42
    else:
        raise ValueError(f"verification level tag {tag}")
    if len(data) < pos + 92:
        raise ValueError(f"{len(data)} bytes, too short for a partially verified update")
    feed_id = data[pos : pos + 32]
    price, conf, exponent, publish_time = struct.unpack_from("<qQiq", data, pos + 32)
    (posted_slot,) = struct.unpack_from("<Q", data, pos + 84)
    return PriceUpdate(
        data[8:40], tag == 1, feed_id, price, conf, exponent, publish_time, posted_slot
    )


def encode_price_update(
    feed_id: bytes,
    price: int,
    conf: int,
    exponent: int,
    publish_time: int,
    *,
    write_authority: bytes,
    posted_slot: int,
    ema_price: int | None = None,
    ema_conf: int | None = None,
) -> bytes:
    """A fully verified PriceUpdateV2 account's data, padded to its allotted 134 bytes (the
    local worlds seed these)."""
    body = (
        PRICE_UPDATE_V2_DISCRIMINATOR
        + write_authority
        + b"\x01"
        + feed_id
        + struct.pack(
            "<qQiqqqQQ",
            price,
            conf,
            exponent,
            publish_time,
            publish_time - 1,
            price if ema_price is None else ema_price,
            conf if ema_conf is None else ema_conf,
            posted_slot,
        )
    )
    return body + b"\x00" * (PRICE_UPDATE_V2_LEN - len(body))


MAX_PYTH_EXPONENT = 30
"""Pyth feeds publish with exponents of -5 to -10; anything past this is a corrupt account."""


def out_of_bounds_usd(usd: Decimal, what: str) -> str | None:
    """Why a USD value (a confidence interval) is outside ``core.bounds``, or None."""
    try:
        bounds.usd(usd, what)
    except RebalancerError as exc:
        return exc.message
    return None


def pyth_reading(feed: OracleFeed, owner: str | None, data: bytes | None) -> OracleReading:
    """A Pyth reading from one account of the refresh's getMultipleAccounts."""
    if owner is None or data is None:
        return OracleReading(feed, None, reason=f"account {feed.address} does not exist")
    if owner != PYTH_RECEIVER:
        return OracleReading(
            feed, None, reason=f"account {feed.address} is owned by {owner}, not {PYTH_RECEIVER}"
        )
    try:
        update = parse_price_update(data)
    except ValueError as exc:
        return OracleReading(feed, None, reason=f"account {feed.address}: {exc}")
    if update.feed_id != feed.feed_id:
        return OracleReading(
            feed,
            None,
            reason=f"account {feed.address} holds feed {update.feed_id.hex()[:16]}..., "
            f"not {feed.feed_id.hex()[:16]}...",
        )
    if not update.full:
        return OracleReading(feed, None, reason="update only partially verified")
    if update.price <= 0:
        return OracleReading(
            feed, None, updated_at=update.publish_time, reason=f"price {update.price} <= 0"
        )
    why: str | None = None
    if not -MAX_PYTH_EXPONENT <= update.exponent <= MAX_PYTH_EXPONENT:
        why = f"account {feed.address}: exponent {update.exponent} out of range"
        return OracleReading(feed, None, updated_at=update.publish_time, reason=why)
    why = out_of_bounds(
        Decimal(update.price).scaleb(update.exponent), f"account {feed.address}: price"
    ) or out_of_bounds_usd(
        Decimal(update.conf).scaleb(update.exponent), f"account {feed.address}: conf"
    )
    if why is not None:
        return OracleReading(feed, None, updated_at=update.publish_time, reason=why)
    return OracleReading(
        feed,
        tidy(Decimal(update.price).scaleb(update.exponent)),
        updated_at=update.publish_time,
        conf_usd=tidy(Decimal(update.conf).scaleb(update.exponent)),
    )
