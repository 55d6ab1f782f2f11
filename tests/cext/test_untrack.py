"""`untrack`: an object out of the cyclic collector's lists is never scanned by a collection
and is still freed by reference counting; both twins."""

from __future__ import annotations

import gc
import weakref
from types import ModuleType

from cext import Order


class Record:
    __slots__ = ("a", "b", "__weakref__")

    def __init__(self, a: object, b: object) -> None:
        self.a, self.b = a, b


def _order() -> Order:
    return Order(b"\x01" * 20, "ETH-27DEC26-3000-C", True, 10**6, 10**4, 1, 2, 0, False, False)


def test_untracked_objects_leave_the_collectors_lists(twin: ModuleType) -> None:
    o, r = _order(), Record(b"x", 1)
    assert gc.is_tracked(o) and gc.is_tracked(r)
    twin.untrack(o)
    twin.untrack(r)
    assert not gc.is_tracked(o) and not gc.is_tracked(r)
    assert all(x is not o and x is not r for x in gc.get_objects())
    twin.untrack(o)  # twice: a no-op
    for atomic in (5, b"bytes", "str", None, 1.5):  # not collector objects: a no-op
        twin.untrack(atomic)
    assert o.price == 10**6 and r.b == 1  # the objects themselves are unchanged


def test_an_untracked_object_is_still_freed_by_reference_counting(twin: ModuleType) -> None:
    gc.disable()
    try:
        r = Record(_order(), 2)
        twin.untrack(r)
        alive = weakref.ref(r)
        del r
        assert alive() is None  # freed at once, no collection needed
    finally:
        gc.enable()


def test_a_cycle_through_an_untracked_object_is_never_collected(twin: ModuleType) -> None:
    """The documented hazard, pinned: only objects that cannot be in a cycle may be untracked
    (the engine's Resting and FilledOrder records and their orders: bytes, ints, an Order)."""
    r = Record(None, None)
    box = [r]
    r.a = box  # r -> box -> r
    twin.untrack(r)
    twin.untrack(box)
    alive = weakref.ref(r)
    del r, box
    gc.collect()
    assert alive() is not None  # leaked, as documented
    alive().a = None  # break it by hand so the test leaves nothing behind
    gc.collect()
    assert alive() is None
