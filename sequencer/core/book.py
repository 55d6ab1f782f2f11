"""Order book of one instrument: price levels in sortedcontainers, FIFO within a level.

Prices are base units per contract, `remaining` contracts x 10^6. A level is an insertion-ordered
dict digest -> Resting, so time priority is dict order and removal is O(1)."""

from __future__ import annotations

from collections.abc import Iterator

from sortedcontainers import SortedDict

from cext import Order, untrack


class Resting:
    """An accepted order with its unfilled `remaining` amount. Its fields only ever hold bytes,
    ints and an Order of atomic values, so it can never be part of a reference cycle: it and its
    order are taken out of the cyclic collector's lists (`cext.untrack`), which otherwise scanned
    every resting order in each full pass (0.1-0.4 s with ~10^5 of them)."""

    __slots__ = ("digest", "order", "signature", "remaining")

    def __init__(self, digest: bytes, order: Order, signature: bytes, remaining: int) -> None:
        self.digest, self.order, self.signature, self.remaining = digest, order, signature, remaining
        untrack(self)
        untrack(order)


class Book:
    """Bids and asks of one instrument; best bid is the highest key, best ask the lowest."""

    __slots__ = ("bids", "asks")

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()

    def add(self, r: Resting) -> None:
        """Append `r` at the back of its price level."""
        side = self.bids if r.order.isBuy else self.asks
        level = side.get(r.order.price)
        if level is None:
            level = side[r.order.price] = {}
        level[r.digest] = r

    def remove(self, r: Resting) -> None:
        """Remove a resting order (must be in the book)."""
        side = self.bids if r.order.isBuy else self.asks
        level = side[r.order.price]
        del level[r.digest]
        if not level:
            del side[r.order.price]

    def crosses(self, is_buy: bool, price: int) -> bool:
        """True iff an order on side `is_buy` at `price` would trade now."""
        if is_buy:
            return bool(self.asks) and self.asks.peekitem(0)[0] <= price
        return bool(self.bids) and self.bids.peekitem(-1)[0] >= price

    def matches(self, is_buy: bool, price: int) -> Iterator[Resting]:
        """Resting orders an incoming order on side `is_buy` with limit `price` would meet, in
        price-time priority. Lazy, and safe against removal of yielded orders meanwhile."""
        side = self.asks if is_buy else self.bids
        p: int | None = None
        while side:
            if is_buy:
                i = 0 if p is None else side.bisect_right(p)
                if i >= len(side):
                    return
            else:
                i = len(side) - 1 if p is None else side.bisect_left(p) - 1
                if i < 0:
                    return
            p, level = side.peekitem(i)
            if (p > price) if is_buy else (p < price):
                return
            yield from list(level.values())

    def depth(self, is_buy: bool, levels: int = 20) -> list[tuple[int, int]]:
        """Aggregated (price, amount) levels from the best, at most `levels`."""
        side = self.bids if is_buy else self.asks
        keys = side.keys()
        ks = reversed(keys) if is_buy else iter(keys)
        out = []
        for p in ks:
            if len(out) == levels:
                break
            out.append((p, sum(r.remaining for r in side[p].values())))
        return out
