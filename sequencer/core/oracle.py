"""Oracle state per underlying: freshest feed per key, the median price, and spot history for
the settlement TWAP. Integers only; the signer of a feed is recovered by the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from sequencer.core.config import OracleParams
from sequencer.core.eip712 import Feed
from sequencer.errors import Conflict, InvalidRequest, InvalidSignature, Rejected

MAX_VOL = 10 * 10**6
"""Largest accepted vol (1000 %, x 10^6)."""


class Price(NamedTuple):
    """Median oracle price of an underlying: `spot` base units, term structure `expiries`
    (unix s, increasing) with median `vols` (x 10^6)."""

    spot: int
    expiries: tuple[int, ...]
    vols: tuple[int, ...]


@dataclass
class OracleState:
    """Per underlying: `feeds` maps oracle key -> its freshest accepted Feed (insertion order
    is acceptance order); `history` is [(timestamp, median spot)] with non-decreasing timestamps,
    one point per accepted feed that left a quorum."""

    feeds: dict[bytes, Feed] = field(default_factory=dict)
    history: list[tuple[int, int]] = field(default_factory=list)


def median(values: list[int]) -> int:
    """Median of integers; the floor of the mean of the two middle values for an even count."""
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n & 1 else (s[n // 2 - 1] + s[n // 2]) // 2


def fresh_feeds(ostate: OracleState, now: int, params: OracleParams) -> list[Feed]:
    """Freshest feed of each key no older than `max_age` at `now`, in key order."""
    return [ostate.feeds[k] for k in params.keys
            if k in ostate.feeds and now - ostate.feeds[k].timestamp <= params.max_age]


def current_price(ostate: OracleState | None, now: int, params: OracleParams) -> Price | None:
    """Median spot and per-expiry median vols over fresh feeds, or None without a quorum."""
    if ostate is None:
        return None
    feeds = fresh_feeds(ostate, now, params)
    if len(feeds) < params.quorum or not feeds:
        return None
    by_expiry: dict[int, list[int]] = {}
    for f in feeds:
        for e, v in zip(f.expiries, f.vols):
            by_expiry.setdefault(e, []).append(v)
    expiries = tuple(sorted(by_expiry))
    return Price(median([f.spot for f in feeds]), expiries,
                 tuple(median(by_expiry[e]) for e in expiries))


def check_feed(ostate: OracleState, feed: Feed, signer: bytes | None, now: int,
               params: OracleParams) -> None:
    """Raise unless `feed` signed by `signer` may be accepted at block time `now`."""
    if signer is None or signer not in params.keys:
        raise InvalidSignature(
            f"feed signer {signer.hex() if signer else None} is not an oracle key",
            code="oracle_unknown_key")
    if feed.spot <= 0 or feed.spot >= 2**64:
        raise InvalidRequest(f"spot must be in (0, 2^64), got {feed.spot}", code="invalid_feed")
    if len(feed.expiries) != len(feed.vols) or not feed.expiries or len(feed.expiries) > 64:
        raise InvalidRequest("expiries and vols must be non-empty, equal length, at most 64",
                             code="invalid_feed")
    if any(b <= a for a, b in zip(feed.expiries, feed.expiries[1:])):
        raise InvalidRequest("expiries must be strictly increasing", code="invalid_feed")
    if any(not 0 < v <= MAX_VOL for v in feed.vols):
        raise InvalidRequest(f"vols must be in (0, {MAX_VOL}]", code="invalid_feed")
    if now - feed.timestamp > params.max_age:
        raise Rejected(f"feed timestamp {feed.timestamp} older than {params.max_age}s at {now}",
                       code="oracle_stale")
    if feed.timestamp - now > params.max_future:
        raise Rejected(f"feed timestamp {feed.timestamp} is ahead of block time {now}",
                       code="oracle_future")
    prev = ostate.feeds.get(signer)
    if prev is not None and feed.timestamp <= prev.timestamp:
        raise Conflict(f"feed timestamp {feed.timestamp} not after this key's last "
                       f"{prev.timestamp}", code="oracle_out_of_order")
    others = [f.spot for f in fresh_feeds(ostate, now, params) if f is not prev]
    if len(others) >= params.quorum:
        ref = median(others)
        if abs(feed.spot - ref) * 10**6 > params.max_deviation * ref:
            raise Rejected(f"feed spot {feed.spot} is more than {params.max_deviation} ppm from "
                           f"the median {ref} of the other keys", code="oracle_deviation")


def accept_feed(ostate: OracleState, feed: Feed, signer: bytes, now: int,
                params: OracleParams) -> None:
    """Record a checked feed and, with a quorum, a history point (timestamp kept monotone)."""
    ostate.feeds[signer] = feed
    price = current_price(ostate, now, params)
    if price is not None:
        ts = max(feed.timestamp, ostate.history[-1][0]) if ostate.history else feed.timestamp
        ostate.history.append((ts, price.spot))


def prune_history(ostate: OracleState, keep_from: int) -> None:
    """Drop history points not needed for any TWAP window starting at or after `keep_from`
    (the last point before it is kept)."""
    h = ostate.history
    i = 0
    while i + 1 < len(h) and h[i + 1][0] <= keep_from:
        i += 1
    if i:
        del h[:i]


def twap(history: list[tuple[int, int]], start: int, end: int) -> int | None:
    """Time-weighted average (floor) of the step function `history` over [start, end]; the
    window begins at the first point if that is later than `start`. None when no point lies in
    [start, end]."""
    if not any(start <= t <= end for t, _ in history):
        return None
    acc = dur = 0
    for i, (t, v) in enumerate(history):
        if t > end:
            break
        t_next = history[i + 1][0] if i + 1 < len(history) else end
        a, b = max(t, start), min(t_next, end)
        if b > a:
            acc += v * (b - a)
            dur += b - a
    if dur == 0:  # all points at `end`
        return [v for t, v in history if t <= end][-1]
    return acc // dur
