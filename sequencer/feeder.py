"""Simulated oracle feed for the devnet: GBM spot and a vol term structure, signed by dev
oracle keys and posted to `/v1/oracle/feeds` (each key signs the same observation)."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Sequence

import httpx
from eth_account import Account

from sequencer.core.eip712 import Feed, digest

log = logging.getLogger("optrollup.feeder")
YEAR = 365 * 86400


class GbmSpot:
    """Driftless geometric Brownian motion: S <- S·exp(-σ²dt/2 + σ√dt·Z), dt in years."""

    def __init__(self, spot: float, sigma: float, seed: int | None = None) -> None:
        self.spot, self.sigma = spot, sigma
        self.rng = random.Random(seed)

    def step(self, seconds: float) -> float:
        dt = seconds / YEAR
        z = self.rng.gauss(0.0, 1.0)
        self.spot *= math.exp(-0.5 * self.sigma**2 * dt + self.sigma * math.sqrt(dt) * z)
        return self.spot


def vol_curve(expiries: Sequence[int], now: int, short: float = 0.75, long: float = 0.60,
              tau_days: float = 30.0) -> list[int]:
    """Annualised vols × 10^6 per expiry: from `short` towards `long` as expiry grows."""
    out = []
    for e in expiries:
        days = max(e - now, 0) / 86400
        out.append(round((long + (short - long) * math.exp(-days / tau_days)) * 1e6))
    return out


def make_feed(underlying: str, spot_units: int, ts: int, expiries: Sequence[int]) -> Feed:
    live = sorted(e for e in set(expiries) if e > ts)
    return Feed(underlying, spot_units, ts, tuple(live), tuple(vol_curve(live, ts)))


def signed_feed_body(domain: bytes, feed: Feed, key: str) -> dict:
    sig = Account.from_key(key).unsafe_sign_hash(digest(domain, feed)).signature
    return {"feed": {"underlying": feed.underlying, "spot": str(feed.spot), "timestamp": feed.timestamp,
                     "expiries": list(feed.expiries), "vols": list(feed.vols)},
            "signature": "0x" + bytes(sig).hex()}


class Feeder(threading.Thread):
    """Posts one signed feed per key every `interval` seconds until `stop` is set."""

    def __init__(self, url: str, domain: bytes, keys: Sequence[str], underlying: str,
                 spot: float, expiries: Sequence[int], *, sigma: float = 0.7,
                 interval: float = 1.0, seed: int | None = None) -> None:
        super().__init__(name="oracle-feeder", daemon=True)
        self.url, self.domain, self.keys = url.rstrip("/"), domain, list(keys)
        self.underlying, self.expiries, self.interval = underlying, list(expiries), interval
        self.path = GbmSpot(spot, sigma, seed)
        self.stop = threading.Event()
        self.posted = 0

    def run(self) -> None:
        with httpx.Client(timeout=5.0) as http:
            while not self.stop.is_set():
                ts = int(time.time())
                spot = round(self.path.step(self.interval) * 1e6)
                feed = make_feed(self.underlying, spot, ts, self.expiries)
                for key in self.keys:
                    try:
                        r = http.post(f"{self.url}/v1/oracle/feeds", json=signed_feed_body(self.domain, feed, key))
                        if r.status_code == 200:
                            self.posted += 1
                        else:
                            log.warning("feed rejected: %s %s", r.status_code, r.text[:200])
                    except httpx.HTTPError as exc:
                        log.warning("feed not posted: %s", exc)
                self.stop.wait(self.interval)
