"""Margin formulas against hand-computed figures."""

from __future__ import annotations

from sequencer.core import RiskRow, UnderlyingParams, fee, positions_margin, short_margin
from sequencer.core.margin import reduces
from sequencer.core.openorders import requirement as orders_requirement
from hypothesis import given
from hypothesis import strategies as st

P = UnderlyingParams()
U = 10**6


def test_short_margin_per_contract() -> None:
    s = 3000 * U
    assert short_margin(s, 3000 * U, True, P) == (450 * U, 225 * U)          # ATM: 15 % S
    assert short_margin(s, 3300 * U, True, P) == (300 * U, 225 * U)          # 450 − 300 OTM = 150 < 10 %
    assert short_margin(s, 3100 * U, True, P) == (350 * U, 225 * U)          # 450 − 100
    assert short_margin(s, 200 * U, False, P) == (200 * U, 200 * U)          # puts capped at K
    assert short_margin(3001, 3000, True, P) == (451, 226)                   # rounded up


def test_positions_margin_rounds_against_the_account() -> None:
    row = RiskRow(mark_lo=99, mark_hi=100, im=450, mm=225)
    m = positions_margin(1000, [(1_500_001, row), (-1, row)])
    assert m.equity == 1000 + 148 - 1 and m.im == 1 and m.mm == 1


def test_open_orders_no_gain_credited() -> None:
    row = RiskRow(100 * U, 100 * U, 450 * U, 225 * U)
    assert orders_requirement(0, [(False, 1000 * U, U)], row) == 450 * U   # ask far above mark
    assert orders_requirement(0, [(True, 150 * U, U)], row) == 50 * U      # bid above mark: loss
    assert orders_requirement(-U, [(True, 1 * U, U), (False, 200 * U, U)], row) == 900 * U
    assert orders_requirement(U, [(False, 100 * U, U)], row) == 0          # covered sell


def test_fee_cap_and_rounding() -> None:
    # 0.03 % of 3000 USDC notional for 1 contract = 0.9 USDC; cap 12.5 % of a 1 USDC premium
    assert fee(10 * U, U, 3000 * U, 300, 125_000) == 900_000
    assert fee(1 * U, U, 3000 * U, 300, 125_000) == 125_000
    assert fee(1, 1, 1, 300, 125_000) == 1


def test_reduces() -> None:
    assert reduces(5, -5) and reduces(-5, 2) and not reduces(5, -6) and not reduces(0, 1)


@given(st.integers(-10**12, 10**12), st.integers(-10**12, 10**12),
       st.integers(0, 10**10), st.integers(0, 10**10), st.integers(0, 10**10))
def test_position_delta_equals_value_and_im_differences(old, new, lo, extra, im) -> None:
    from sequencer.core.margin import RiskRow, im_of, position_delta, value
    row = RiskRow(lo, lo + extra, im, im // 2)
    assert position_delta(old, new, row) == (value(new, row) - value(old, row),
                                             im_of(new, row) - im_of(old, row))
