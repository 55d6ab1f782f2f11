"""Current marks for the in-channel margin rule, from the sequencer's `GET /v1/instruments`.

Per instrument the rollup publishes `mark` (= mark_lo), `markHigh`, `shortInitialMargin` and
`shortMaintenanceMargin` (base units, decimal strings): exactly a `RiskRow(mark_lo, mark_hi, im,
mm)`, so the channel's margin is computed with the rollup's own function and roundings. The
listing fields (`tickSize`, `amountStep`) check a trade's price and amount as the rollup checks
an order's.

`Marks.refresh()` fetches once; `run()` refreshes every `interval` seconds in the background.
`rows()` raises `MissingMark` (oracle_stale) when the last good fetch is older than `max_age`
(the sequencer is unreachable or answers badly): the service then signs nothing that needs a
margin check. An instrument listed without a mark (no oracle price) has no row: a state holding
it cannot be margined (oracle_stale), as on the rollup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from channels.errors import MissingMark
from channels.rules import Trade
from sequencer.core.margin import RiskRow
from sequencer.errors import InvalidRequest, NotFound, OptrollupError

logger = logging.getLogger("optrollup.channels.marks")

__all__ = ["Listing", "Marks", "parse_instruments"]


class Listing(NamedTuple):
    tick_size: int
    amount_step: int
    expiry: int


def _int(v: Any) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError("a boolean is not a number")
    return int(v)


def parse_instruments(body: Any) -> tuple[dict[str, Listing], dict[str, RiskRow]]:
    """(listings, risk rows) of a `GET /v1/instruments` answer."""
    listings: dict[str, Listing] = {}
    rows: dict[str, RiskRow] = {}
    for d in body["instruments"]:
        name = d["name"]
        listings[name] = Listing(int(d["tickSize"]), int(d["amountStep"]), int(d["expiry"]))
        vals = [_int(d.get(k)) for k in ("mark", "markHigh", "shortInitialMargin",
                                          "shortMaintenanceMargin")]
        if all(v is not None for v in vals):
            rows[name] = RiskRow(*vals)  # type: ignore[arg-type]
    return listings, rows


class Marks:
    """The latest instruments and marks. `fetch()` returns the decoded JSON of
    `GET /v1/instruments` (raising on failure)."""

    def __init__(self, fetch: Callable[[], Awaitable[Any]], *, interval: float = 1.0,
                 max_age: float = 5.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._fetch, self.interval, self.max_age, self.monotonic = fetch, interval, max_age, monotonic
        self.listings: dict[str, Listing] = {}
        self._rows: dict[str, RiskRow] = {}
        self.fetched_at: float | None = None
        self.last_error: str | None = None
        self._inflight: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Fetch now (concurrent callers share one request)."""
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.ensure_future(self._refresh())
        await asyncio.shield(self._inflight)

    async def _refresh(self) -> None:
        try:
            listings, rows = parse_instruments(await self._fetch())
        except (OptrollupError, OSError, KeyError, TypeError, ValueError) as exc:
            msg = exc.message if isinstance(exc, OptrollupError) else f"{type(exc).__name__}: {exc}"
            if msg != self.last_error:
                logger.warning("cannot read marks from the sequencer: %s", msg)
            self.last_error = msg
            return
        if self.last_error is not None:
            logger.info("marks from the sequencer are back")
        self.listings, self._rows, self.fetched_at, self.last_error = listings, rows, self.monotonic(), None

    async def run(self) -> None:
        """Refresh every `interval` seconds until cancelled."""
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval)

    @property
    def fresh(self) -> bool:
        return self.fetched_at is not None and self.monotonic() - self.fetched_at <= self.max_age

    async def ready(self) -> None:
        """Fetch now if the marks are not fresh (the first use, or the refresher fell behind)."""
        if not self.fresh:
            await self.refresh()

    def rows(self) -> dict[str, RiskRow]:
        """{instrument: RiskRow} at the current marks; MissingMark when they are stale."""
        if not self.fresh:
            age = "never read" if self.fetched_at is None else \
                f"{self.monotonic() - self.fetched_at:.1f} s old"
            why = f" ({self.last_error})" if self.last_error else ""
            raise MissingMark(f"marks from the sequencer are {age}, more than {self.max_age} s{why}: "
                              "no state is signed without current marks")
        return self._rows

    def check_trade(self, trade: Trade, field: str = "trade") -> None:
        """The trade's instrument is listed, its price on tick and its amount on step."""
        lst = self.listings.get(trade.instrument)
        if lst is None:
            raise NotFound(f"{field}.instrument {trade.instrument!r} is not listed on the rollup",
                           code="unknown_instrument")
        if trade.price % lst.tick_size:
            raise InvalidRequest(f"{field}.price {trade.price} is not a multiple of the tick size "
                                 f"{lst.tick_size}", code="price_not_on_tick")
        if trade.amount % lst.amount_step:
            raise InvalidRequest(f"{field}.amount {trade.amount} is not a multiple of the amount "
                                 f"step {lst.amount_step}", code="amount_not_on_step")
