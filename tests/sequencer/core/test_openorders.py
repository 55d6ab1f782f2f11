"""Incremental open-order margin (issue 12): `OrderTotals` equals the from-scratch `requirement`
after any sequence of adds, partial fills and removals; both equal an independent formula in
exact rationals; and the engine's totals stay equal to its open orders under real trading."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.core.eip712 import Cancel
from sequencer.core.margin import RiskRow
from sequencer.core.openorders import OrderTotals, requirement
from tests.sequencer.core.core_world import CALL, PUT, USERS, World

U = 10**6


def exact(q: int, orders: list[tuple[bool, int, int]], row: RiskRow) -> int:
    """Independent: IM of the worse side as if all filled, plus the loss against the marks of
    the orders that would book one, each side summed exactly and rounded up once."""
    bids = sum(a for b, _, a in orders if b)
    asks = sum(a for b, _, a in orders if not b)

    def im(x: int) -> int:
        return math.ceil(Fraction(-x * row.im, U)) if x < 0 else 0

    buy = sum(Fraction((p - row.mark_lo) * a, U) for b, p, a in orders if b and p > row.mark_lo)
    sell = sum(Fraction((row.mark_hi - p) * a, U) for b, p, a in orders if not b and p < row.mark_hi)
    return max(im(q + bids), im(q - asks)) + math.ceil(buy) + math.ceil(sell)


prices = st.integers(1, 400).map(lambda k: k * 250_000)  # a tick grid, base units per contract
amounts = st.integers(1, 50).map(lambda k: k * 100_000)
rows = st.builds(lambda lo, spread, im: RiskRow(lo, lo + spread, im, im // 2),
                 st.integers(0, 120 * U), st.integers(0, 3 * U), st.integers(0, 600 * U))
ops = st.lists(st.tuples(st.sampled_from(["add", "fill", "cancel"]), st.booleans(), prices, amounts,
                         st.integers(0, 10**6)), max_size=60)


def apply_op(ot: OrderTotals, live: list[list], op: str, is_buy: bool, price: int, amount: int,
             pick: int) -> None:
    """One step on both `ot` and the model `live` ([is_buy, price, remaining]): add an order, or
    fill part of / cancel the `pick`-th live one (an add when none is live)."""
    if op == "add" or not live:
        live.append([is_buy, price, amount])
        ot.add(is_buy, price, amount)
        return
    o = live[pick % len(live)]
    take = o[2] if op == "cancel" else min(o[2], amount)
    ot.remove(o[0], o[1], take)
    o[2] -= take
    if not o[2]:
        live.remove(o)


@settings(max_examples=300, deadline=None)
@given(ops, rows, st.integers(-5 * U, 5 * U), st.none() | st.tuples(st.booleans(), prices, amounts))
def test_incremental_equals_from_scratch(seq, row, q, extra) -> None:
    live: list[list] = []  # [is_buy, price, remaining]
    ot = OrderTotals()
    for op, is_buy, price, amount, pick in seq:
        apply_op(ot, live, op, is_buy, price, amount, pick)
    orders = [tuple(o) for o in live] + ([extra] if extra else [])
    want = requirement(q, orders, row)
    assert ot.requirement(q, row, extra) == want == exact(q, orders, row)
    assert ot.side_total(True) == sum(o[2] for o in live if o[0])
    assert ot.side_total(False) == sum(o[2] for o in live if not o[0])
    assert bool(ot) == bool(live)
    assert not any(lv[0] == 0 for lv in (*ot.bids.levels.values(), *ot.asks.levels.values()))


# marks on the orders' price grid (so orders lie between them), that come back: kept sums reused
few_rows = st.lists(st.builds(lambda lo, spread, im: RiskRow(lo, lo + spread, im, im // 2),
                              prices, st.integers(0, 3 * U), st.integers(0, 600 * U)),
                    min_size=2, max_size=3)
steps = st.lists(st.one_of(
    st.tuples(st.sampled_from(["add", "fill", "cancel"]), st.booleans(), prices, amounts,
              st.integers(0, 10**6)),
    st.tuples(st.just("check"), st.integers(0, 2), st.integers(-5 * U, 5 * U))), max_size=80)


@settings(max_examples=300, deadline=None)
@given(steps, few_rows)
def test_kept_losing_side_sums_follow_every_change_and_every_mark(seq, marks) -> None:
    """Requirements asked between adds, fills and cancels, at marks that move and come back:
    each equals the from-scratch one and the exact formula (the sums kept for the last mark
    are updated by every change on the losing side of it and recomputed when the mark moves)."""
    live: list[list] = []
    ot = OrderTotals()
    for step in seq:
        if step[0] == "check":
            row, q = marks[step[1] % len(marks)], step[2]
            orders = [tuple(o) for o in live]
            assert ot.requirement(q, row) == requirement(q, orders, row) == exact(q, orders, row)
            continue
        apply_op(ot, live, *step)
    for side, is_buy in ((ot.bids, True), (ot.asks, False)):
        if side.bound is not None:  # what is kept is what a walk gives
            cut = [(p, a) for b, p, a in live if b == is_buy
                   and (p > side.bound if is_buy else p < side.bound)]
            assert (side.cut_a, side.cut_pa) == (sum(a for _, a in cut), sum(p * a for p, a in cut))


def test_a_mark_that_moves_and_comes_back() -> None:
    """Bids at 10, 20 and 30 against a low mark at 5, then 25, then 5 again: all three, then one
    (the other two now gain, never credited), then all three book their loss."""
    ot, bids = OrderTotals(), [(True, p * U, U) for p in (10, 20, 30)]
    for b in bids:
        ot.add(*b)
    got = []
    for lo in (5, 25, 5):
        row = RiskRow(lo * U, lo * U + U, 400 * U, 200 * U)
        got.append(ot.requirement(0, row))
        assert got[-1] == requirement(0, bids, row)
    assert got == [45 * U, 5 * U, 45 * U]


def test_hand_computed_figures() -> None:
    row = RiskRow(100 * U, 101 * U, 450 * U, 225 * U)
    # two bids 0.1 above the mark on 0.5 contracts each: one ceil over the side, not one per order
    orders = [(True, 100 * U + 100_000, U // 2), (True, 100 * U + 100_000, U // 2)]
    assert requirement(0, orders, row) == 100_000
    # an ask below the high mark books hi − p; a covered ask adds no IM
    assert requirement(U, [(False, 99 * U, U)], row) == 2 * U
    # short with bids and asks: IM of the worse side (q − asks)
    assert requirement(-U, [(True, 1 * U, U), (False, 200 * U, U)], row) == 900 * U


def _check_engine_totals(w: World) -> None:
    eng = w.engine
    for a, per in eng.by_account.items():
        for n, orders in per.items():
            fresh = OrderTotals((r.order.isBuy, r.order.price, r.remaining) for r in orders.values())
            got = eng._orders_of(a, n)
            assert got.bids.levels == fresh.bids.levels and got.asks.levels == fresh.asks.levels
            assert got.bids.prices == fresh.bids.prices and got.asks.prices == fresh.asks.prices
    for (a, n), ot in eng._open_totals.items():
        assert n in eng.by_account.get(a, {}), "totals kept for an instrument without open orders"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from([CALL, PUT]), st.booleans(),
                          st.integers(40, 160), st.integers(1, 30), st.integers(0, 2), st.booleans()),
                min_size=1, max_size=50))
def test_engine_totals_follow_the_book(flow) -> None:
    """Resting ladders, partial and full fills, IOC takers, cancels: the incrementally kept totals
    equal totals rebuilt from the engine's open orders after every request."""
    w = World()
    nonce = 0
    placed: list[tuple[int, bytes]] = []
    for who, ins, is_buy, price, size, tif, cancel in flow:
        nonce += 1
        key = USERS[who]
        if cancel and placed:
            k, d = placed.pop(0)
            if d in w.engine.open:
                msg = Cancel(USERS[k].address, d)
                w.engine.cancel(msg, w.sign(USERS[k], msg))
        else:
            try:
                r = w.place(key, instrument=ins, is_buy=is_buy, price=price * U, amount=size * 100_000,
                            nonce=nonce, tif=tif)
            except Exception as exc:  # noqa: BLE001 - rejections are part of the flow
                assert getattr(exc, "code", None), exc
            else:
                placed.append((who, r.orderHash))
        _check_engine_totals(w)
