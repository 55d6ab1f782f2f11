"""Devnet lister: keeps the devnet's rolling set of ETH option expiries listed as old ones expire.

The set at time `now` is `expiries(now)`: 08:00 UTC on the next 3 Fridays more than a day away
plus the last Friday of a later month (the rule the devnet genesis lists with). `listings_due`
decides, without I/O, which instruments (every strike x call/put of each expiry in the set) are
missing from the node's listed ones; `Lister` reads GET /v1/instruments, signs those listings with
the operator key and posts them to POST /v1/admin/instruments (the node's real listing path), once
at start (a devnet resumed weeks later catches up) and then every `interval` seconds. Expired
instruments are settled and delisted by the node itself (sequencer.core.engine.begin_block).
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import httpx
from eth_account.signers.base import BaseAccount

from sequencer.core.eip712 import Listing, digest
from sequencer.core.instruments import MONTHS, make_instrument
from sequencer.keys import sign_digest

log = logging.getLogger("optrollup.lister")

DAY = 86400


def expiries(now: int, n_weekly: int = 3) -> list[int]:
    """Expiries (unix s) wanted at `now` (unix s): 08:00 UTC on the next `n_weekly` Fridays more
    than a day away, plus the last Friday of the month 40 days after the last of those."""
    out: list[int] = []
    day = now - now % DAY + 8 * 3600
    while len(out) < n_weekly:
        day += DAY
        if time.gmtime(day).tm_wday == 4 and day - now > DAY:
            out.append(day)
    t = time.gmtime(out[-1] + 40 * DAY)
    last = calendar.monthrange(t.tm_year, t.tm_mon)[1]
    d = calendar.timegm((t.tm_year, t.tm_mon, last, 8, 0, 0))
    while time.gmtime(d).tm_wday != 4:
        d -= DAY
    out.append(d)
    return out


def instrument_name(expiry: int, strike: int, call: bool, underlying: str = "ETH") -> str:
    """`ETH-25DEC26-3000-C` for `expiry` (unix s), `strike` (whole USD) and call/put."""
    t = time.gmtime(expiry)
    return (f"{underlying}-{t.tm_mday}{MONTHS[t.tm_mon - 1]}{t.tm_year % 100:02d}-{strike}-"
            f"{'C' if call else 'P'}")


def listing(name: str) -> Listing:
    """The Listing of `name` with the default steps (what the devnet genesis lists with)."""
    ins = make_instrument(name)
    return Listing(ins.name, ins.tick_size, ins.amount_step, ins.min_amount)


def listings_due(now: int, listed: Iterable[str], strikes: Sequence[int],
                 underlying: str = "ETH") -> list[Listing]:
    """The listings to make at `now` (unix s) given the names of the instruments already listed:
    every strike (whole USD) x call/put of each expiry in `expiries(now)` that is not among them,
    by expiry, strike, call before put. Pure."""
    have = set(listed)
    return [listing(n) for e in expiries(now) for k in strikes for c in (True, False)
            if (n := instrument_name(e, k, c, underlying)) not in have]


def listing_body(domain: bytes, msg: Listing, key: BaseAccount | str) -> dict:
    """The POST /v1/admin/instruments body: `msg` signed by the operator `key`."""
    sig = sign_digest(key, digest(domain, msg))
    return {"list": {"instrument": msg.instrument, "tickSize": str(msg.tickSize),
                     "amountStep": str(msg.amountStep), "minAmount": str(msg.minAmount)},
            "signature": "0x" + bytes(sig).hex()}


def listed_instruments(http: httpx.Client, url: str = "") -> list[dict]:
    """GET {url}/v1/instruments: the node's listed instruments (JSON objects)."""
    r = http.get(f"{url}/v1/instruments")
    r.raise_for_status()
    return r.json()["instruments"]


def send_listings(http: httpx.Client, domain: bytes, key: BaseAccount | str,
                  msgs: Iterable[Listing], url: str = "") -> list[str]:
    """Sign and post each listing; the names the node accepted (or already had). A refusal is
    logged and skipped (the next round retries it)."""
    done = []
    for msg in msgs:
        r = http.post(f"{url}/v1/admin/instruments", json=listing_body(domain, msg, key))
        if r.status_code == 200 or _error_code(r) == "instrument_listed":
            done.append(msg.instrument)
        else:
            log.warning("listing %s refused: %s %s", msg.instrument, r.status_code, r.text[:200])
    return done


def _error_code(r: httpx.Response) -> str | None:
    try:
        return r.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


class Lister(threading.Thread):
    """Keeps `expiries(now)` x `strikes` listed on the node at `url`: one round (`sync`) at once
    when started, then every `interval` seconds until `stop` is set; `clock`: unix s."""

    def __init__(self, url: str, domain: bytes, key: BaseAccount | str, strikes: Sequence[int], *,
                 underlying: str = "ETH", interval: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name="devnet-lister", daemon=True)
        self.url, self.domain, self.key = url.rstrip("/"), domain, key
        self.strikes, self.underlying = tuple(strikes), underlying
        self.interval, self.clock = interval, clock
        self.stop = threading.Event()

    def sync(self, http: httpx.Client | None = None) -> list[str]:
        """One round: list what is due now; the names listed. Raises httpx.HTTPError if the node
        cannot be read."""
        if http is None:
            with httpx.Client(timeout=10.0) as h:
                return self.sync(h)
        names = [i["name"] for i in listed_instruments(http, self.url)]
        due = listings_due(int(self.clock()), names, self.strikes, self.underlying)
        done = send_listings(http, self.domain, self.key, due, self.url) if due else []
        if done:
            log.info("listed %d instruments: %s ... %s", len(done), done[0], done[-1])
        return done

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.sync()
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                log.warning("listing round failed (retried in %gs): %s", self.interval, exc)
            self.stop.wait(self.interval)
