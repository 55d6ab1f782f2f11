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


def test_resting_records_and_their_orders_are_kept_out_of_the_collectors_scans() -> None:
    """Each resting order is a Resting of bytes, ints and an Order: never in a cycle, so never
    scanned by a GC pass (a full pass over ~10^5 of them stalled the loop 0.1-0.4 s)."""
    import gc

    from sequencer.core.book import Resting
    from sequencer.core.state import FilledOrder
    o = Order(b"\x01" * 20, "ETH", True, 5, 7, 1, 2, 0, False, False)
    r = Resting(b"\x02" * 32, o, b"\x03" * 65, 7)
    assert not gc.is_tracked(r) and not gc.is_tracked(o)
    f = FilledOrder(Order(b"\x01" * 20, "ETH", False, 5, 7, 2, 2, 0, False, False), 0)
    assert not gc.is_tracked(f) and not gc.is_tracked(f.order)
    f.filled += 7
    assert not gc.is_tracked(f) and f.filled == 7
