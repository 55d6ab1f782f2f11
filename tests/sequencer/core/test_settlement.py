"""Expiry: TWAP settlement price, cash flows, cancellation, delisting, idempotence."""

from __future__ import annotations

import pytest

from tests.sequencer.core.core_world import CALL, EXPIRY, PUT, SPOT, USERS, World
from sequencer.core import settle
from sequencer.errors import OptrollupError

A, B = USERS[0], USERS[1]
U = 10**6


def near_expiry(schedule: tuple[tuple[int, int], ...] = ((0, 2),)) -> World:
    w = World(schedule=schedule)
    w.engine.begin_block(EXPIRY - 86400)
    w.feed_all(SPOT, EXPIRY - 86400)
    return w


def test_settlement_at_twap_and_idempotent() -> None:
    w = near_expiry()
    w.place(A, is_buy=False, price=300 * U, amount=2 * U, expiry=EXPIRY)
    w.place(B, price=300 * U, amount=2 * U, expiry=EXPIRY)
    resting = w.place(A, is_buy=False, price=900 * U, amount=U, instrument=PUT, nonce=2,
                      expiry=EXPIRY)
    total = w.total()
    # feeds over the last 30 minutes: 3200 for 20 minutes, then 3500 for 10 minutes
    w.engine.begin_block(EXPIRY - 1800)
    w.feed_all(3200 * U, EXPIRY - 1800)
    w.engine.begin_block(EXPIRY - 600)
    w.feed_all(3500 * U, EXPIRY - 600)
    w.engine.begin_block(EXPIRY)
    assert resting.orderHash not in w.engine.open          # orders of expired instruments go
    with pytest.raises(OptrollupError) as e:
        settle(w.state, CALL, EXPIRY)
    assert e.value.code == "settlement_too_early"
    a0, b0 = (w.state.accounts[x.address].collateral for x in (A, B))
    txs = w.engine.begin_block(EXPIRY + 60)
    assert len(txs) == 2                                    # both instruments settled
    s = (3200 * 1200 + 3500 * 600) * U // 1800
    assert w.state.settled[CALL] == s
    pay = 2 * (s - 3000 * U)
    assert w.state.accounts[A.address].collateral == a0 - pay
    assert w.state.accounts[B.address].collateral == b0 + pay
    assert CALL not in w.state.instruments and not w.state.accounts[B.address].positions
    assert w.total() == total
    settle(w.state, CALL, EXPIRY + 120)                     # idempotent no-op
    assert w.total() == total and w.state.settled[CALL] == s


def test_short_that_cannot_pay_is_capped_and_longs_share_under_rules_1() -> None:
    w = near_expiry(((0, 1),))
    w.place(A, is_buy=False, price=300 * U, amount=U, expiry=EXPIRY)
    w.place(B, price=300 * U, amount=U, expiry=EXPIRY)
    w.state.accounts[A.address].collateral = 10 * U        # A lost its cash elsewhere
    total = w.total()
    w.engine.begin_block(EXPIRY - 1800)
    w.feed_all(SPOT + 100 * U, EXPIRY - 1800)
    b0 = w.state.accounts[B.address].collateral
    w.engine.begin_block(EXPIRY + 60)
    assert w.state.accounts[A.address].collateral == 0
    assert w.state.accounts[B.address].collateral == b0 + 10 * U
    assert w.total() == total


def test_fund_then_shortfall_cover_a_short_that_cannot_pay_under_rules_2() -> None:
    """Rules 2: settlement is no longer the loss absorber. The long is paid in full; the
    insurance fund pays what the short could not, and what the fund cannot pay is shortfall."""
    w = near_expiry()
    w.place(A, is_buy=False, price=300 * U, amount=U, expiry=EXPIRY)
    w.place(B, price=300 * U, amount=U, expiry=EXPIRY)
    fund = w.state.accounts[w.config.insurance_fund]
    assert fund.collateral > 0  # its share of the two fees
    w.state.accounts[A.address].collateral = 10 * U        # A lost its cash elsewhere
    w.state.collateral_total = w.total()
    total, f0 = w.total(), fund.collateral
    w.engine.begin_block(EXPIRY - 1800)
    w.feed_all(SPOT + 100 * U, EXPIRY - 1800)
    b0 = w.state.accounts[B.address].collateral
    w.engine.begin_block(EXPIRY + 60)
    assert w.state.accounts[A.address].collateral == 0
    assert w.state.accounts[B.address].collateral == b0 + 100 * U
    assert fund.collateral == 0 and w.state.shortfall == 90 * U - f0
    assert w.total() - w.state.shortfall == total == w.state.collateral_total - w.state.shortfall


def test_no_price_in_window_waits() -> None:
    w = World()
    w.engine.begin_block(EXPIRY + 60)
    assert CALL in w.state.instruments
    with pytest.raises(OptrollupError) as e:
        settle(w.state, CALL, EXPIRY + 60)
    assert e.value.code == "settlement_price_unavailable"


@pytest.mark.parametrize("version", [3, 4])
def test_an_oracle_outage_over_the_window_settles_at_the_first_point_after_expiry_from_rules_4(
        version: int) -> None:
    """No accepted point in [expiry - window, expiry] (the feed was down): rules 3 never settle
    (positions stay open, expired, untradable); rules 4 settle at the first accepted point after
    expiry, once one exists, paying the same way and conserving Σ collateral."""
    w = near_expiry(((0, version),))
    w.place(A, is_buy=False, price=300 * U, amount=2 * U, expiry=EXPIRY)
    w.place(B, price=300 * U, amount=2 * U, expiry=EXPIRY)
    total = w.total()
    a0, b0 = (w.state.accounts[x.address].collateral for x in (A, B))
    assert w.engine.begin_block(EXPIRY + 3600) == []          # down until an hour after expiry
    assert CALL in w.state.instruments
    w.feed_all(3300 * U, EXPIRY + 3600)                       # back: the first point after expiry
    w.engine.begin_block(EXPIRY + 3700)
    w.feed_all(3900 * U, EXPIRY + 3700)                       # a later point must not count
    w.engine.begin_block(EXPIRY + 3800)
    if version == 3:
        assert CALL in w.state.instruments and CALL not in w.state.settled
        with pytest.raises(OptrollupError) as e:
            settle(w.state, CALL, EXPIRY + 3800)
        assert e.value.code == "settlement_price_unavailable"
        return
    assert w.state.settled[CALL] == 3300 * U and CALL not in w.state.instruments
    pay = 2 * 300 * U
    assert w.state.accounts[A.address].collateral == a0 - pay
    assert w.state.accounts[B.address].collateral == b0 + pay
    assert w.total() == total


def test_rules_4_still_settle_at_the_window_twap_when_it_has_points() -> None:
    w = near_expiry(((0, 4),))
    w.engine.begin_block(EXPIRY - 900)
    w.feed_all(3200 * U, EXPIRY - 900)
    w.engine.begin_block(EXPIRY + 30)
    w.feed_all(3900 * U, EXPIRY + 30)                         # after expiry: not part of the price
    w.engine.begin_block(EXPIRY + 120)
    assert w.state.settled[CALL] == w.state.settled[PUT] == (3000 + 3200) * U // 2  # 900 s each
