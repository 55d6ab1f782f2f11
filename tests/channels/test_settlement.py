"""Expiry settlement inside a channel: conservation, rounding against the receiver, refusal
when the payer's channel balance cannot cover it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels import (CannotSettle, ChannelFinal, DoesNotFollow, final_state, follows_expected,
                      initial_state, payoff, settle_expired)
from sequencer.core.channelmsg import ChannelPosition
from sequencer.core.instruments import parse_name
from tests.channels.world import INSTRUMENTS, channel, deposits, run, steps

U = 10**6
C, P = "ETH-27DEC26-3000-C", "ETH-27DEC26-3000-P"


def reference_net_to_a(positions: dict[str, int], prices: dict[str, int]) -> int:
    """What A receives net: per instrument, the short pays the long floor(|q|·payoff/10^6)."""
    net = 0
    for name, q in positions.items():
        if name not in prices:
            continue
        _, _, strike, is_call = parse_name(name)
        s = prices[name]
        pay = max(s - strike, 0) if is_call else max(strike - s, 0)
        t = abs(q) * pay // U
        net += t if q > 0 else -t
    return net


@settings(max_examples=200, deadline=None)
@given(deposits, deposits, steps,
       st.dictionaries(st.sampled_from(INSTRUMENTS), st.integers(0, 100_000 * U)))
def test_settlement_conserves_and_matches_reference(da, db, seq, prices) -> None:
    prev = run(channel(da, db), seq)[-1][0]
    held = {p.instrument: p.amount for p in prev.positions}
    net = reference_net_to_a(held, prices)
    if not set(held) & set(prices):
        with pytest.raises(CannotSettle) as e:
            settle_expired(prev, prices)
        assert e.value.code == "nothing_to_settle"
        return
    if prev.balanceA + net < 0 or prev.balanceB - net < 0:
        with pytest.raises(CannotSettle) as e:
            settle_expired(prev, prices)
        assert e.value.code == "settlement_exceeds_balance"
        return
    s = settle_expired(prev, prices)
    assert s.balanceA + s.balanceB == prev.balanceA + prev.balanceB == da + db
    assert (s.balanceA, s.balanceB) == (prev.balanceA + net, prev.balanceB - net)
    assert s.turnNum == prev.turnNum + 1 and not s.isFinal
    assert {p.instrument: p.amount for p in s.positions} == {
        k: v for k, v in held.items() if k not in prices}
    follows_expected(prev, s, settle_expired(prev, prices))


def test_payoffs() -> None:
    assert payoff(C, 3_500 * U) == 500 * U and payoff(C, 2_500 * U) == 0
    assert payoff(P, 2_500 * U) == 500 * U and payoff(P, 3_500 * U) == 0
    assert payoff(C, 3_000 * U) == payoff(P, 3_000 * U) == 0


def test_rounding_goes_against_the_receiver() -> None:
    ch = channel(100, 100)
    # A long 1 unit (10^-6 contract) of a call 0.999999 in the money: receives floor -> 0
    s = initial_state(ch)._replace(positions=(ChannelPosition(C, 1),))
    out = settle_expired(s, {C: 3_000 * U + 999_999})
    assert (out.balanceA, out.balanceB, out.positions) == (100, 100, ())
    # A short 3 units of a put 0.5 in the money: pays floor(1.5) = 1 to B
    s = initial_state(ch)._replace(positions=(ChannelPosition(P, -3),))
    out = settle_expired(s, {P: 3_000 * U - 500_000})
    assert (out.balanceA, out.balanceB) == (99, 101)


def test_netting_and_partial_settlement() -> None:
    ch = channel(1_000 * U, 1_000 * U)
    later = "ETH-5JAN27-2500-P"
    s = initial_state(ch)._replace(positions=(
        ChannelPosition(C, 2 * U), ChannelPosition(P, 3 * U), ChannelPosition(later, -U)))
    # at S = 3100: A's 2 calls receive 200; A's 3 puts are worthless; the later expiry stays
    out = settle_expired(s, {C: 3_100 * U, P: 3_100 * U})
    assert (out.balanceA, out.balanceB) == (1_200 * U, 800 * U)
    assert out.positions == (ChannelPosition(later, -U),)
    # netting: at S=4000, B owes A 2000 on the 3000 calls and A owes B 1000 on the 3500
    # calls; neither balance covers its gross payment, the net 1000 from B is covered exactly
    k35 = "ETH-27DEC26-3500-C"
    s = initial_state(channel(0, 1_000 * U))._replace(positions=(
        ChannelPosition(C, 2 * U), ChannelPosition(k35, -2 * U)))
    out = settle_expired(s, {C: 4_000 * U, k35: 4_000 * U})
    assert (out.balanceA, out.balanceB, out.positions) == (1_000 * U, 0, ())


def test_payer_that_cannot_cover_is_refused() -> None:
    ch = channel(100 * U, 50 * U)
    s = initial_state(ch)._replace(positions=(ChannelPosition(C, U),))  # B short 1 call
    settle_expired(s, {C: 3_050 * U})                                   # exactly B's 50
    with pytest.raises(CannotSettle) as e:
        settle_expired(s, {C: 3_050 * U + 1})
    assert e.value.code == "settlement_exceeds_balance" and "B's" in e.value.message
    s = initial_state(ch)._replace(positions=(ChannelPosition(P, -U),))  # A short 1 put
    with pytest.raises(CannotSettle) as e:
        settle_expired(s, {P: 2_899 * U})
    assert "A's" in e.value.message


def test_settlement_errors() -> None:
    ch = channel()
    s = initial_state(ch)._replace(positions=(ChannelPosition(C, U),))
    with pytest.raises(CannotSettle) as e:
        settle_expired(s, {P: 1})
    assert e.value.code == "nothing_to_settle"
    with pytest.raises(ChannelFinal):
        settle_expired(final_state(s), {C: 1})
    with pytest.raises(Exception) as e2:
        settle_expired(s, {C: -1})
    assert getattr(e2.value, "code", None) == "invalid_number"
    # a settlement proposal with another price does not follow
    good = settle_expired(s, {C: 3_100 * U})
    with pytest.raises(DoesNotFollow) as e3:
        follows_expected(s, good, settle_expired(s, {C: 3_200 * U}))
    assert e3.value.code == "balances_mismatch"
