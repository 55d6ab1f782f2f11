"""Price levels: priority, lazy matching iteration that tolerates removals, depth."""

from __future__ import annotations

from cext import Order
from sequencer.core import Book, Resting


def r(i: int, buy: bool, price: int, amt: int = 1) -> Resting:
    o = Order(b"\1" * 20, "X", buy, price, amt, i, 0, 0, False, False)
    return Resting(i.to_bytes(32, "big"), o, b"", amt)


def test_price_time_priority_and_removal_while_iterating() -> None:
    b = Book()
    asks = [r(1, False, 105), r(2, False, 101), r(3, False, 101), r(4, False, 110)]
    for x in asks:
        b.add(x)
    got = []
    for x in b.matches(True, 106):
        got.append(x.order.nonce)
        b.remove(x)
    assert got == [2, 3, 1] and b.depth(False) == [(110, 1)]
    b.add(r(5, True, 100, 2))
    b.add(r(6, True, 102, 3))
    assert [x.order.nonce for x in b.matches(False, 100)] == [6, 5]
    assert b.depth(True) == [(102, 3), (100, 2)]
    assert b.crosses(False, 102) and not b.crosses(False, 103) and b.crosses(True, 110)
