"""Devnet demo market: a dev market maker keeps small two-sided ladders around the mark in the
near-the-money instruments, and a dev taker now and then crosses a touch, so that a newcomer's
page shows books, trades and positions moving. Devnet only (dev keys); off with
`optrollup devnet --no-demo-market` (the tests and benchmarks run without it).

`ladders` decides what to quote without I/O; `DemoMarket` is the thread that reads the node,
requotes (through the light SDK's `requote`: one mass quote per round) and takes.

Units: prices USDC base units (× 10^6) per contract, amounts contracts × 10^6.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable

from optrollup_client import ApiError, Client, Instrument, NewOrder, OptrollupError
from sequencer import procs

log = logging.getLogger("optrollup.demomarket")

LEVELS = 3          # per side
STRIKES_PER_EXPIRY = 3
SIZE_STEPS = 10     # each level's amount, in the instrument's minimum amounts


def _round_to(x: int, step: int) -> int:
    return x // step * step


def ladder(ins: Instrument, levels: int = LEVELS) -> list[NewOrder]:
    """`levels` post-only bids and asks around the mark: half-spread max(2 ticks, 2 % of mark),
    levels max(1 tick, 1 % of mark) apart; bids below one tick are left out. [] without a mark."""
    if ins.mark is None or ins.mark <= 0:
        return []
    tick = ins.tick_size
    mid = _round_to(ins.mark, tick)
    half = max(2 * tick, _round_to(ins.mark // 50, tick))
    step = max(tick, _round_to(ins.mark // 100, tick))
    size = max(ins.min_amount, ins.amount_step) * SIZE_STEPS
    out = []
    for k in range(levels):
        bid, ask = mid - half - k * step, mid + half + k * step
        if bid >= tick:
            out.append(NewOrder(ins.name, "buy", bid, size, post_only=True))
        out.append(NewOrder(ins.name, "sell", ask, size, post_only=True))
    return out


def quoted_instruments(instruments: Iterable[Instrument], now: float,
                       per_expiry: int = STRIKES_PER_EXPIRY) -> list[Instrument]:
    """Per expiry not yet passed (unix s `now`), the calls and puts of the `per_expiry` strikes
    nearest spot; only instruments with a mark. Sorted by name."""
    by_expiry: dict[int, list[Instrument]] = {}
    for i in instruments:
        if i.expiry > now and i.mark is not None and i.spot is not None:
            by_expiry.setdefault(i.expiry, []).append(i)
    out = []
    for group in by_expiry.values():
        strikes = sorted({i.strike for i in group}, key=lambda k: (abs(k - group[0].spot), k))[:per_expiry]
        out += [i for i in group if i.strike in strikes]
    return sorted(out, key=lambda i: i.name)


def needs_requote(quoted_mid: int | None, mark: int, tick: int) -> bool:
    """Requote when nothing is quoted or the mark moved by max(2 ticks, 0.5 %) since."""
    return quoted_mid is None or abs(mark - quoted_mid) >= max(2 * tick, mark // 200)


class DemoMarket(threading.Thread):
    """The thread: every `interval` s, requote the ladders whose mark moved; every `take_every`
    rounds, the taker crosses one quoted touch (IOC, one level's size). Errors are logged and
    the next round goes on (the node may be restarting)."""

    def __init__(self, url: str, maker_key: str, taker_key: str, *, interval: float = 5.0,
                 take_every: int = 3, seed: int = 0, nice: int = 0) -> None:
        super().__init__(name="devnet-demo-market", daemon=True)
        self.url, self.maker_key, self.taker_key = url, maker_key, taker_key
        self.nice = nice  # run at this much lower priority than the process (a background job)
        self.interval, self.take_every = interval, take_every
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.hashes: dict[str, list[str | None]] = {}   # instrument -> the ladder's open orders
        self.mids: dict[str, int] = {}                  # instrument -> the mark it was quoted at

    def round(self, maker: Client, taker: Client | None, n: int, now: float) -> int:
        """One round; returns how many orders were (re)quoted."""
        quoted = quoted_instruments(maker.instruments(), now)
        hashes: list[str | None] = []
        orders: list[NewOrder] = []
        names: list[tuple[str, int]] = []
        for ins in quoted:
            if not needs_requote(self.mids.get(ins.name), ins.mark or 0, ins.tick_size):
                continue
            new = ladder(ins)
            old = self.hashes.get(ins.name, [])
            hashes += (old + [None] * len(new))[:len(new)]
            orders += new
            names.append((ins.name, ins.mark or 0, len(new)))
        if orders:
            acks = maker.requote(hashes, orders)
            i = 0
            for name, mark, k in names:
                self.hashes[name] = [a.order_hash if not isinstance(a, ApiError) else None
                                     for a in acks[i:i + k]]
                if all(h is not None for h in self.hashes[name]):  # else retried next round
                    self.mids[name] = mark                       # (e.g. not credited yet)
                i += k
        if taker is not None and quoted and n % self.take_every == 0:
            ins = self.rng.choice(quoted)
            book = taker.book(ins.name, depth=1)
            side = self.rng.choice(("buy", "sell"))
            touch = (book.asks if side == "buy" else book.bids)[:1]
            if touch:
                amount = max(ins.min_amount, ins.amount_step)
                try:
                    taker.place_order(ins.name, side, touch[0].price, amount, time_in_force="ioc")
                except ApiError as exc:  # margin, a moved book: the next take may do
                    log.info("demo take refused: %s", exc.code)
        return len(orders)

    def run(self) -> None:
        if self.nice:
            procs.lower_thread_priority(self.nice)
        n = 0
        with Client(self.url, private_key=self.maker_key) as maker, \
                Client(self.url, private_key=self.taker_key) as taker:
            try:
                maker.cancel_all()  # a resumed devnet: the last run's ladders are not ours to track
            except OptrollupError as exc:
                log.warning("demo market: cancel-all failed: %s", exc)
            while not self.stop.is_set():
                try:
                    self.round(maker, taker, n, time.time())
                except OptrollupError as exc:
                    log.warning("demo market round failed: %s", exc)
                n += 1
                self.stop.wait(self.interval)

