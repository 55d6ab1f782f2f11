"""The in-channel margin rule against an independent formula (exact rationals, explicit
floor/ceil), and against the rollup's own account margin."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels import InsufficientMargin, MissingMark, check_margin, initial_state, margins
from sequencer.core.channelmsg import ChannelPosition
from sequencer.core.margin import RiskRow, positions_margin
from tests.channels.world import channel, deposits, marks, run, steps

U = 10**6


def reference(balance: int, positions: dict[str, int], rows: dict[str, RiskRow]) -> tuple[int, int]:
    """(equity, initial margin) of one side: longs valued at mark_lo rounded down, shorts at
    mark_hi with the loss rounded up, shorts' margin rounded up; all against the holder."""
    equity, im = balance, 0
    for name, q in positions.items():
        r = rows[name]
        if q > 0:
            equity += math.floor(Fraction(q * r.mark_lo, U))
        elif q < 0:
            equity -= math.ceil(Fraction(-q * r.mark_hi, U))
            im += math.ceil(Fraction(-q * r.im, U))
    return equity, im


@settings(max_examples=200, deadline=None)
@given(deposits, deposits, steps, marks)
def test_margin_rule_matches_the_independent_formula(da, db, seq, rows) -> None:
    s = run(channel(da, db), seq)[-1][0]
    a_pos = {p.instrument: p.amount for p in s.positions}
    b_pos = {k: -v for k, v in a_pos.items()}
    ea, ia = reference(s.balanceA, a_pos, rows)
    eb, ib = reference(s.balanceB, b_pos, rows)
    ma, mb = margins(s, rows)
    assert (ma.equity, ma.im) == (ea, ia)
    assert (mb.equity, mb.im) == (eb, ib)
    if ea >= ia and eb >= ib:
        check_margin(s, rows)
    else:
        with pytest.raises(InsufficientMargin) as e:
            check_margin(s, rows)
        assert e.value.code == "insufficient_margin"
        assert e.value.side == ("a" if ea < ia else "b")


@settings(max_examples=100, deadline=None)
@given(deposits, deposits, steps, marks)
def test_margin_is_the_rollup_account_margin(da, db, seq, rows) -> None:
    """A side's channel margin is exactly what the rollup computes for an account holding the
    channel balance as collateral and the channel positions (its own function, its rounding)."""
    s = run(channel(da, db), seq)[-1][0]
    ma, mb = margins(s, rows)
    assert ma == positions_margin(s.balanceA, [(p.amount, rows[p.instrument]) for p in s.positions])
    assert mb == positions_margin(s.balanceB, [(-p.amount, rows[p.instrument]) for p in s.positions])


def test_rounding_goes_against_each_side() -> None:
    ch = channel(0, 0)
    name = "ETH-27DEC26-3000-C"
    # A is long 1 unit (10^-6 contract), B short: A's value 1.5 -> 1; B's loss 2.5 -> 3,
    # B's margin 0.7 -> 1
    s = initial_state(ch)._replace(balanceA=0, balanceB=0, positions=(ChannelPosition(name, 1),))
    rows = {name: RiskRow(1_500_000, 2_500_000, 700_000, 0)}
    ma, mb = margins(s, rows)
    assert (ma.equity, ma.im) == (1, 0)
    assert (mb.equity, mb.im) == (-3, 1)


def test_exact_boundary_is_signable() -> None:
    ch = channel(0, 0)
    name = "ETH-27DEC26-3000-P"
    s = initial_state(ch)._replace(balanceA=250, balanceB=0,
                                   positions=(ChannelPosition(name, -U),))
    rows = {name: RiskRow(100, 100, 150, 100)}           # A short 1: equity 250-100, im 150
    check_margin(s, rows)
    with pytest.raises(InsufficientMargin) as e:
        check_margin(s._replace(balanceA=249), rows)
    assert e.value.side == "a"
    # B is long: no margin, equity 0 + 100
    assert margins(s, rows)[1].equity == 100


def test_b_short_fails_on_b() -> None:
    ch = channel(0, 0)
    name = "ETH-27DEC26-3000-C"
    s = initial_state(ch)._replace(balanceA=10**9, balanceB=5, positions=(ChannelPosition(name, U),))
    with pytest.raises(InsufficientMargin) as e:
        check_margin(s, {name: RiskRow(10, 10, 10, 5)})
    assert e.value.side == "b" and "B" in e.value.message


def test_missing_mark_is_refused() -> None:
    ch = channel()
    s = initial_state(ch)._replace(positions=(ChannelPosition("ETH-27DEC26-3000-C", U),))
    with pytest.raises(MissingMark) as e:
        check_margin(s, {})
    assert e.value.code == "oracle_stale"
    check_margin(initial_state(ch), {})  # no positions, no marks needed


@settings(max_examples=50, deadline=None)
@given(deposits, deposits, st.data())
def test_no_positions_always_signable(da, db, data) -> None:
    check_margin(initial_state(channel(da, db)), {})
