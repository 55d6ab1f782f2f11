"""Open-order margin of one account in one instrument, kept incrementally.

An account's open orders count in its initial requirement as if all filled at their limits
(design.md, "Risk"): `max(IM(q + bids), IM(q − asks))` plus the loss each order would book
against the mark, gains never credited. Computed from scratch that walks every open order of the
account in the instrument, so a market maker with a deep ladder paid for its whole ladder on each
new order. `OrderTotals` keeps, per side, the total remaining and per price level the sums
`Σ a` and `Σ p·a`, so adding or removing an order is O(1) (O(log levels) for a new level). Each
side also keeps the sums over its levels on the losing side of a mark (bids above `lo`, asks below
`hi`) for the last mark it was asked about, updated by every add and remove there: the
requirement is O(1) while the marks stay, and a mark that moved costs one walk of the levels on
the losing side (a quoting market maker's jittered ladder puts dozens of price levels between
its best quote and the low mark, walked on every order before).

Rounding (against the account, once per side): the buy-side loss is
`ceil((Σ_{p > lo} p·a − lo·Σ_{p > lo} a) / 10^6)`, the sell-side loss
`ceil((hi·Σ_{p < hi} a − Σ_{p < hi} p·a) / 10^6)`, with `lo`/`hi` the instrument's marks. This is
the admission rule of the sequencer (open orders are not consensus state); every fill is checked
again by the state transition. `requirement` (the from-scratch twin) defines it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable

from sequencer.core.instruments import UNIT
from sequencer.core.margin import RiskRow


def _im(x: int, row: RiskRow) -> int:
    """Initial margin of a signed position (shorts only), rounded up."""
    return -(x * row.im // UNIT) if x < 0 else 0


def requirement(q: int, orders: Iterable[tuple[bool, int, int]], row: RiskRow) -> int:
    """From scratch: the initial requirement of position `q` with open orders (is_buy, price,
    remaining), base units (see the module docstring for the rounding)."""
    bids = asks = buy_num = sell_num = 0
    for is_buy, price, amount in orders:
        if is_buy:
            bids += amount
            if price > row.mark_lo:
                buy_num += (price - row.mark_lo) * amount
        else:
            asks += amount
            if price < row.mark_hi:
                sell_num += (row.mark_hi - price) * amount
    return max(_im(q + bids, row), _im(q - asks, row)) + -(-buy_num // UNIT) + -(-sell_num // UNIT)


class _Side:
    """One side's open orders: total remaining, per price level [Σ a, Σ p·a], and the sums over
    the levels on the losing side of `bound` (bids: price > bound; asks: price < bound)."""

    __slots__ = ("total", "levels", "prices", "is_bid", "bound", "cut_a", "cut_pa")

    def __init__(self, is_bid: bool) -> None:
        self.total = 0
        self.levels: dict[int, list[int]] = {}
        self.prices: list[int] = []  # ascending
        self.is_bid = is_bid
        self.bound: int | None = None  # the mark cut_a/cut_pa are for (None: not computed)
        self.cut_a = self.cut_pa = 0

    def _losing(self, price: int) -> bool:
        b = self.bound
        return b is not None and (price > b if self.is_bid else price < b)

    def add(self, price: int, amount: int) -> None:
        self.total += amount
        lv = self.levels.get(price)
        if lv is None:
            self.levels[price] = [amount, price * amount]
            insort(self.prices, price)
        else:
            lv[0] += amount
            lv[1] += price * amount
        if self._losing(price):
            self.cut_a += amount
            self.cut_pa += price * amount

    def remove(self, price: int, amount: int) -> None:
        self.total -= amount
        lv = self.levels[price]
        lv[0] -= amount
        lv[1] -= price * amount
        if not lv[0]:
            del self.levels[price]
            del self.prices[bisect_left(self.prices, price)]
        if self._losing(price):
            self.cut_a -= amount
            self.cut_pa -= price * amount

    def losing(self, bound: int) -> tuple[int, int]:
        """(Σ a, Σ p·a) over the levels on the losing side of `bound`: kept from the last call
        with the same bound, else summed once over those levels."""
        if bound != self.bound:
            ps, levels, a_sum, pa_sum = self.prices, self.levels, 0, 0
            for p in (ps[bisect_right(ps, bound):] if self.is_bid else ps[:bisect_left(ps, bound)]):
                a, pa = levels[p]
                a_sum += a
                pa_sum += pa
            self.bound, self.cut_a, self.cut_pa = bound, a_sum, pa_sum
        return self.cut_a, self.cut_pa


class OrderTotals:
    """Open orders of one account in one instrument, aggregated (see the module docstring)."""

    __slots__ = ("bids", "asks")

    def __init__(self, orders: Iterable[tuple[bool, int, int]] = ()) -> None:
        self.bids, self.asks = _Side(True), _Side(False)
        for is_buy, price, amount in orders:
            self.add(is_buy, price, amount)

    def __bool__(self) -> bool:
        return bool(self.bids.total or self.asks.total)

    def add(self, is_buy: bool, price: int, amount: int) -> None:
        (self.bids if is_buy else self.asks).add(price, amount)

    def remove(self, is_buy: bool, price: int, amount: int) -> None:
        (self.bids if is_buy else self.asks).remove(price, amount)

    def side_total(self, is_buy: bool) -> int:
        """Σ remaining of the open orders on one side."""
        return (self.bids if is_buy else self.asks).total

    def requirement(self, q: int, row: RiskRow, extra: tuple[bool, int, int] | None = None) -> int:
        """`requirement(q, orders + [extra], row)`, without walking the orders."""
        lo, hi = row.mark_lo, row.mark_hi
        bids, asks = self.bids.total, self.asks.total
        buy_a, buy_pa = self.bids.losing(lo) if bids else (0, 0)
        sell_a, sell_pa = self.asks.losing(hi) if asks else (0, 0)
        if extra is not None:
            is_buy, price, amount = extra
            if is_buy:
                bids += amount
                if price > lo:
                    buy_a += amount
                    buy_pa += price * amount
            else:
                asks += amount
                if price < hi:
                    sell_a += amount
                    sell_pa += price * amount
        long_side, short_side, im = q + bids, q - asks, row.im
        req = max(-(long_side * im // UNIT) if long_side < 0 else 0,
                  -(short_side * im // UNIT) if short_side < 0 else 0)
        if buy_a:
            req -= (lo * buy_a - buy_pa) // UNIT
        if sell_a:
            req -= (sell_pa - hi * sell_a) // UNIT
        return req
