"""Amend (`Engine.replace_order`, design.md "Amend and mass quote"): cancel and place, both or
neither; a failed replace leaves the old order exactly where it was in the queue."""

from __future__ import annotations

import pytest

from sequencer.core.eip712 import Cancel
from sequencer.errors import OptrollupError
from tests.sequencer.core.core_world import CALL, USERS, World, order

U = 10**6
MM, OTHER = USERS[0], USERS[1]


def place(w: World, key, nonce: int, **kw):
    o = order(key, nonce=nonce, **kw)
    return o, w.engine.place_order(o, w.sign(key, o))


def replace(w: World, key, old_hash: bytes, new):
    c = Cancel(key.address, old_hash)
    return w.engine.replace_order(c, w.sign(key, c), new, w.sign(key, new))


def queue(w: World, price: int, is_buy: bool = False) -> list[bytes]:
    book = w.engine.books[CALL]
    return list((book.bids if is_buy else book.asks)[price])


def test_replace_cancels_and_places() -> None:
    w = World()
    _, a = place(w, MM, 1, is_buy=False, price=200 * U)
    new = order(MM, nonce=2, is_buy=False, price=190 * U)
    r = replace(w, MM, a.orderHash, new)
    assert r.status == "open"
    assert a.orderHash not in w.engine.open and r.orderHash in w.engine.open
    assert [o.order.price for o in w.engine.by_account[MM.address][CALL].values()] == [190 * U]


def test_replaced_order_loses_priority() -> None:
    w = World()
    _, a = place(w, MM, 1, is_buy=False, price=200 * U)
    _, b = place(w, OTHER, 1, is_buy=False, price=200 * U)
    r = replace(w, MM, a.orderHash, order(MM, nonce=2, is_buy=False, price=200 * U))
    assert queue(w, 200 * U) == [b.orderHash, r.orderHash]


def test_failed_order_leaves_the_old_one_in_place() -> None:
    w = World()
    _, first = place(w, OTHER, 1, is_buy=False, price=200 * U)
    _, a = place(w, MM, 1, is_buy=False, price=200 * U)
    _, last = place(w, OTHER, 2, is_buy=False, price=200 * U)
    before = queue(w, 200 * U)
    assert before == [first.orderHash, a.orderHash, last.orderHash]
    huge = order(MM, nonce=2, is_buy=False, price=200 * U, amount=10**6 * U)  # far beyond margin
    with pytest.raises(OptrollupError) as e:
        replace(w, MM, a.orderHash, huge)
    assert e.value.code == "insufficient_margin" and e.value.party == "order"
    assert queue(w, 200 * U) == before  # same place in the time-priority queue
    assert w.engine.open[a.orderHash].remaining == U
    assert w.engine._side_total(MM.address, CALL, False) == U


def test_failed_cancel_places_nothing() -> None:
    w = World()
    _, a = place(w, MM, 1, is_buy=False, price=200 * U)
    new = order(MM, nonce=2, is_buy=False, price=190 * U)
    with pytest.raises(OptrollupError) as e:
        replace(w, MM, b"\x11" * 32, new)
    assert e.value.code == "unknown_order" and e.value.party == "cancel"
    assert list(w.engine.open) == [a.orderHash]
    # another account's order cannot be replaced either
    c = Cancel(OTHER.address, a.orderHash)
    with pytest.raises(OptrollupError) as e:
        w.engine.replace_order(c, w.sign(OTHER, c), order(OTHER, nonce=5), w.sign(OTHER, order(OTHER, nonce=5)))
    assert e.value.code == "unknown_order"
    c = Cancel(MM.address, a.orderHash)
    o = order(OTHER, nonce=6)
    with pytest.raises(OptrollupError) as e:
        w.engine.replace_order(c, w.sign(MM, c), o, w.sign(OTHER, o))
    assert e.value.code == "replace_account_mismatch" and a.orderHash in w.engine.open


def test_replace_frees_the_old_orders_margin() -> None:
    """An account whose collateral covers one large short but not two can still move it."""
    w = World(funds=900 * U)  # one short needs ~624 USDC here, two ~1,247
    _, a = place(w, MM, 1, is_buy=False, price=200 * U, amount=U)
    second = order(MM, nonce=2, is_buy=False, price=210 * U, amount=U)
    with pytest.raises(OptrollupError) as e:
        w.engine.place_order(second, w.sign(MM, second))
    assert e.value.code == "insufficient_margin"
    r = replace(w, MM, a.orderHash, order(MM, nonce=3, is_buy=False, price=210 * U, amount=U))
    assert r.status == "open" and list(w.engine.by_account[MM.address][CALL]) == [r.orderHash]
