"""Simulated oracle feed for the devnet: GBM spot and a vol term structure, signed by dev
oracle keys and posted to `/v1/oracle/feeds` (each key signs the same observation). The keys are
devnet private keys or opened keys (`optrollup devnet --hsm`: keys in a SoftHSM token).

`optrollup feed shock --spot +20%` moves the running devnet's spot at once (to watch margin
calls and liquidations happen): it writes a shock request, `DATA_DIR/feed-shock.json`
{"id", "spotFactor"}; the feeder applies each new id once and answers in `feed-shock-applied.json`
{"id", "before", "after", "feeds"} (USD); the keys then move together by at most 9 % per feed
until the spot is there (the oracle refuses a key more than 10 % from the others' median)."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
from eth_account.signers.base import BaseAccount

from sequencer.core.eip712 import Feed, digest
from sequencer.keys import sign_digest

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


def signed_feed_body(domain: bytes, feed: Feed, key: BaseAccount | str) -> dict:
    """The POST /v1/oracle/feeds body, signed by `key`: an opened key (sequencer.keys.load_key,
    e.g. one in a PKCS#11 token) or a devnet private key (hex)."""
    sig = sign_digest(key, digest(domain, feed))
    return {"feed": {"underlying": feed.underlying, "spot": str(feed.spot), "timestamp": feed.timestamp,
                     "expiries": list(feed.expiries), "vols": list(feed.vols)},
            "signature": "0x" + bytes(sig).hex()}


class Feeder(threading.Thread):
    """Posts one signed feed per key every `interval` seconds until `stop` is set. With
    `follow_listed` its term structure covers the expiries of the instruments the node lists
    (GET /v1/instruments before each feed; `expiries` until the first read succeeds), so
    instruments listed later (sequencer.lister) get their own vol point."""

    def __init__(self, url: str, domain: bytes, keys: Sequence[BaseAccount | str], underlying: str,
                 spot: float, expiries: Sequence[int], *, sigma: float = 0.7,
                 interval: float = 1.0, seed: int | None = None,
                 control: str | Path | None = None, follow_listed: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name="oracle-feeder", daemon=True)
        self.url, self.domain, self.keys = url.rstrip("/"), domain, list(keys)
        self.underlying, self.expiries, self.interval = underlying, list(expiries), interval
        self.follow_listed, self.clock = follow_listed, clock  # clock: unix s
        self.path = GbmSpot(spot, sigma, seed)
        self.stop = threading.Event()
        self.posted = 0
        self.control = None if control is None else Path(control)  # a dir with shock requests
        self.shock_id: str | None = None  # the last request applied (a restart does not redo it)
        self.target: float | None = None  # where a shock is taking the spot
        if self.control is not None:
            try:
                self.shock_id = json.loads((self.control / SHOCK_APPLIED).read_text()).get("id")
            except (OSError, ValueError, AttributeError):
                pass

    def apply_shock(self) -> bool:
        """Apply a new shock request, if there is one (once per id); True if it did."""
        if self.control is None:
            return False
        try:
            req = json.loads((self.control / SHOCK).read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(req, dict) or req.get("id") == self.shock_id:
            return False
        self.shock_id = req.get("id")
        factor = req.get("spotFactor")
        if not isinstance(factor, (int, float)) or not 0 < factor < 100:
            log.warning("feed shock %s ignored: spotFactor %r", self.shock_id, factor)
            return False
        before = self.path.spot
        self.target = before * factor
        steps = math.ceil(abs(math.log(factor)) / math.log(1 + MAX_STEP)) if factor != 1 else 0
        _write_json(self.control / SHOCK_APPLIED, {"id": self.shock_id, "before": before,
                                                   "after": self.target, "feeds": steps})
        log.warning("feed shock %s: spot %.2f -> %.2f over %d feeds", self.shock_id, before,
                    self.target, steps)
        return True

    def next_spot(self) -> float:
        """The spot of the next feed (USD): towards a shock's target by at most MAX_STEP per
        feed (the oracle refuses a key more than maxDeviation from the others' median, so
        the keys must move together in steps), else one step of the random walk."""
        self.apply_shock()
        if self.target is None:
            return self.path.step(self.interval)
        cur, goal = self.path.spot, self.target
        step = min(max(goal / cur, 1 / (1 + MAX_STEP)), 1 + MAX_STEP)
        self.path.spot = goal if step == goal / cur else cur * step
        if self.path.spot == goal:
            self.target = None
        return self.path.spot

    def refresh_expiries(self, http: httpx.Client) -> None:
        """Take the expiries (unix s) of the node's listed `underlying` instruments; keep the
        previous ones if the node cannot be read."""
        try:
            r = http.get(f"{self.url}/v1/instruments")
            r.raise_for_status()
            listed = {int(i["expiry"]) for i in r.json()["instruments"]
                      if i.get("underlying") == self.underlying}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("listed expiries not read (feeding the previous ones): %s", exc)
            return
        if listed:
            self.expiries = sorted(listed)

    def feed_once(self, http: httpx.Client) -> Feed:
        """Post one feed (signed by each key) at `clock()`; returns it."""
        if self.follow_listed:
            self.refresh_expiries(http)
        ts = int(self.clock())
        spot = round(self.next_spot() * 1e6)
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
        return feed

    def run(self) -> None:
        with httpx.Client(timeout=5.0) as http:
            while not self.stop.is_set():
                self.feed_once(http)
                self.stop.wait(self.interval)


SHOCK, SHOCK_APPLIED = "feed-shock.json", "feed-shock-applied.json"
MAX_STEP = 0.09  # per feed: under the oracle's default maxDeviation (10 %) from the other keys


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def parse_move(text: str) -> float:
    """'+20%' -> 1.2, '-15%' -> 0.85, '1.5x' -> 1.5; ValueError on anything else or a
    factor outside (0, 100)."""
    t = text.strip()
    try:
        if t.endswith("%"):
            factor = 1 + float(t[:-1]) / 100
        elif t.lower().endswith("x"):
            factor = float(t[:-1])
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"spot move {text!r}: expected a percentage like +20% or -15%, "
                         "or a factor like 1.5x") from None
    if not 0 < factor < 100:
        raise ValueError(f"spot move {text!r} gives factor {factor}: it must be in (0, 100)")
    return factor


def request_shock(control: str | Path, factor: float, timeout: float = 30.0) -> dict | None:
    """Ask the devnet's feeder (its data dir `control`) to multiply the spot by `factor`; the
    feeder's answer {"id", "before", "after"}, or None if it did not apply it in `timeout` s."""
    d = Path(control)
    ident = f"{time.time_ns():x}"
    _write_json(d / SHOCK, {"id": ident, "spotFactor": factor})
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got = json.loads((d / SHOCK_APPLIED).read_text())
            if got.get("id") == ident:
                return got
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    return None
