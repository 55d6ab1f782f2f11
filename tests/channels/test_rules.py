"""Channel state rules: properties over random trade sequences, and every way a proposed state
can fail to follow."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels import (BadSignature, ChannelError, ChannelFinal, DoesNotFollow,
                      InsufficientBalance, InvalidState, InvalidTrade, StaleTurn,
                      TooManyPositions, Trade, apply_trade, check_state, final_state, follows,
                      follows_expected, initial_state, positions_of, verify_signatures)
from sequencer.core.channelmsg import MAX_POSITIONS, ChannelPosition, ChannelState, state_digest
from sequencer.core.instruments import UNIT
from tests.channels.world import (INSTRUMENTS, KEY_A, KEY_B, KEY_X, channel, deposits, run, steps,
                                  trades)

C, P = "ETH-27DEC26-3000-C", "ETH-27DEC26-3000-P"


# --- properties over random trade sequences ----------------------------------------------

@settings(max_examples=150, deadline=None)
@given(deposits, deposits, steps)
def test_trade_sequences_keep_the_invariants(da: int, db: int, seq) -> None:
    ch = channel(da, db)
    ledger: dict[str, int] = {}          # A's positions, kept independently
    bal_a = da                           # A's balance, kept independently
    hist = run(ch, seq)
    for (prev, _, _), (s, trade, proposer_is_a) in zip(hist, hist[1:]):
        # conservation and turn monotonicity
        assert s.balanceA + s.balanceB == da + db
        assert s.balanceA >= 0 and s.balanceB >= 0
        assert s.turnNum == prev.turnNum + 1 and not s.isFinal
        # the independent ledger
        a_buys = proposer_is_a == trade.isBuy
        premium = trade.price * trade.amount // UNIT
        assert trade.price * trade.amount % UNIT == 0  # tick x step: exact premiums
        bal_a += -premium if a_buys else premium
        ledger[trade.instrument] = ledger.get(trade.instrument, 0) + (
            trade.amount if a_buys else -trade.amount)
        assert s.balanceA == bal_a
        assert positions_of(s, True) == {k: v for k, v in ledger.items() if v}
        # B holds the negative: every instrument nets to zero across the two sides
        pa, pb = positions_of(s, True), positions_of(s, False)
        assert set(pa) == set(pb) and all(pa[k] + pb[k] == 0 for k in pa)
        # the stored representation: sorted bytewise, no zeros, one entry per instrument
        names = [p.instrument.encode() for p in s.positions]
        assert names == sorted(set(names)) and all(p.amount for p in s.positions)
        # valid for the channel, after its predecessor, and exactly what follows it
        check_state(ch, s, prev)
        follows(prev, s, trade, proposer_is_a)


@settings(max_examples=100, deadline=None)
@given(deposits, deposits, steps)
def test_turns_strictly_increase_and_replays_are_refused(da, db, seq) -> None:
    ch = channel(da, db)
    hist = [s for s, _, _ in run(ch, seq)]
    for i, s in enumerate(hist):
        for earlier in hist[:i]:
            check_state(ch, s, earlier)
        for later in hist[i:]:
            with pytest.raises(StaleTurn):
                check_state(ch, s, later)


@settings(max_examples=150, deadline=None)
@given(deposits, deposits, steps, trades, st.booleans(), st.data())
def test_a_mutated_state_follows_only_if_unchanged(da, db, seq, trade, proposer_is_a, data) -> None:
    prev = run(channel(da, db), seq)[-1][0]
    try:
        good = apply_trade(prev, trade, proposer_is_a)
    except InsufficientBalance:
        return
    field = data.draw(st.sampled_from(ChannelState._fields))
    if field == "channelId":
        bad = good._replace(channelId=data.draw(st.binary(min_size=32, max_size=32)))
    elif field == "turnNum":
        bad = good._replace(turnNum=data.draw(st.integers(0, 2**64 - 1)))
    elif field in ("balanceA", "balanceB"):
        d = data.draw(st.integers(-10**9, 10**9))
        other = "balanceB" if field == "balanceA" else "balanceA"
        moved = data.draw(st.booleans())  # move value between sides, or break conservation
        bad = good._replace(**{field: max(0, getattr(good, field) + d)})
        if moved:
            bad = bad._replace(**{other: good.balanceA + good.balanceB - getattr(bad, field)})
    elif field == "positions":
        ps = list(good.positions)
        op = data.draw(st.sampled_from(["drop", "add", "scale", "flip"]))
        if op == "drop" and ps:
            ps.pop(data.draw(st.integers(0, len(ps) - 1)))
        elif op == "add":
            name = data.draw(st.sampled_from(INSTRUMENTS))
            ps = [p for p in ps if p.instrument != name] + [ChannelPosition(name, 10_000)]
            ps.sort(key=lambda p: p.instrument.encode())
        elif ps:
            i = data.draw(st.integers(0, len(ps) - 1))
            q = ps[i].amount * 2 if op == "scale" else -ps[i].amount
            ps[i] = ps[i]._replace(amount=q)
        bad = good._replace(positions=tuple(ps))
    else:
        bad = good._replace(isFinal=not good.isFinal)
    if bad == good:
        follows(prev, bad, trade, proposer_is_a)
    else:
        with pytest.raises(ChannelError):
            follows(prev, bad, trade, proposer_is_a)


# --- each way a proposal fails -------------------------------------------------------------

def _opened():
    ch = channel(1_000 * UNIT, 2_000 * UNIT)
    s0 = initial_state(ch)
    s1 = apply_trade(s0, Trade(C, True, 100 * UNIT, 2 * UNIT), True)   # A buys 2 calls @100
    return ch, s0, s1


def test_apply_trade_moves_premium_and_positions() -> None:
    ch, s0, s1 = _opened()
    assert s1 == ChannelState(ch.id, 1, 800 * UNIT, 2_200 * UNIT, (ChannelPosition(C, 2 * UNIT),), False)
    # B proposing a sale is the same trade as A proposing a buy
    assert apply_trade(s0, Trade(C, False, 100 * UNIT, 2 * UNIT), False) == s1
    # B buys back 2: the position closes, the premium flows back
    s2 = apply_trade(s1, Trade(C, True, 150 * UNIT, 2 * UNIT), False)
    assert s2.positions == () and (s2.balanceA, s2.balanceB) == (1_100 * UNIT, 1_900 * UNIT)
    # a sale through zero flips the side
    s3 = apply_trade(s1, Trade(C, False, 1 * UNIT, 5 * UNIT), True)
    assert s3.positions == (ChannelPosition(C, -3 * UNIT),)


def test_premium_rounds_down_like_the_rollup_fill() -> None:
    _, s0, _ = _opened()
    s = apply_trade(s0, Trade(C, True, 3, 333_333), True)  # 0.999999 -> 0
    assert s.balanceA == s0.balanceA
    s = apply_trade(s0, Trade(C, True, 7, 1_000_001), True)  # 7.000007 -> 7
    assert s.balanceA == s0.balanceA - 7


def test_positions_sort_bytewise() -> None:
    _, s0, _ = _opened()
    s = s0
    for name in ("ETH-27DEC26-3000-C", "ETH-27DEC26-10000-C", "BTC-27DEC26-60000-P"):
        s = apply_trade(s, Trade(name, True, 0, 10_000), True)
    assert [p.instrument for p in s.positions] == [
        "BTC-27DEC26-60000-P", "ETH-27DEC26-10000-C", "ETH-27DEC26-3000-C"]



def test_buyer_must_cover_the_premium() -> None:
    _, s0, _ = _opened()
    apply_trade(s0, Trade(C, True, 500 * UNIT, 2 * UNIT), True)  # exactly A's 1000
    with pytest.raises(InsufficientBalance) as e:
        apply_trade(s0, Trade(C, True, 500 * UNIT + 1, 2 * UNIT), True)
    assert e.value.code == "insufficient_balance" and "buyer A" in e.value.message
    with pytest.raises(InsufficientBalance) as e:
        apply_trade(s0, Trade(C, True, 1_001 * UNIT, 2 * UNIT), False)  # B buys for 2002
    assert "buyer B" in e.value.message


@pytest.mark.parametrize("trade, code", [
    (Trade(C, True, 1, 0), "invalid_trade_amount"),
    (Trade(C, True, 1, -5), "invalid_trade_amount"),
    (Trade(C, True, -1, 5), "invalid_trade_price"),
    (Trade(C, 1, 1, 5), "invalid_trade"),
    (Trade("ETH-27DEC26-3000-X", True, 1, 5), "bad_instrument_name"),
    (Trade("eth-27dec26-3000-c", True, 1, 5), "bad_instrument_name"),
])
def test_malformed_trades(trade, code) -> None:
    _, s0, _ = _opened()
    with pytest.raises(InvalidTrade) as e:
        apply_trade(s0, trade, True)
    assert e.value.code == code


def test_position_limit() -> None:
    ch = channel()
    s = ChannelState(ch.id, 5, ch.open.depositA, ch.open.depositB,
                     tuple(sorted((ChannelPosition(f"ETH-27DEC26-{k}-C", 1)
                                   for k in range(1, MAX_POSITIONS + 1)),
                                  key=lambda p: p.instrument.encode())), False)
    check_state(ch, s)
    apply_trade(s, Trade("ETH-27DEC26-1-C", False, 0, 1), True)  # closing one is fine
    with pytest.raises(TooManyPositions):
        apply_trade(s, Trade("ETH-27DEC26-999-C", True, 0, 1), True)


def _code(exc_type, fn) -> str:
    with pytest.raises(exc_type) as e:
        fn()
    return e.value.code


def test_follows_names_each_failure() -> None:
    _, _, s1 = _opened()
    t = Trade(P, False, 40 * UNIT, 1 * UNIT)             # B proposes selling a put: A buys it
    good = apply_trade(s1, t, False)
    follows(s1, good, t, False)
    cases = [
        # a state of another channel
        (InvalidState, "wrong_channel", good._replace(channelId=channel(nonce=2).id), s1),
        # a replayed turn (the same turn again, or an older one)
        (StaleTurn, "stale_turn", good._replace(turnNum=s1.turnNum), s1),
        (StaleTurn, "stale_turn", s1, s1),
        (StaleTurn, "stale_turn", good._replace(turnNum=0), s1),
        # skipping a turn
        (DoesNotFollow, "turn_not_next", good._replace(turnNum=s1.turnNum + 2), s1),
        # money created
        (InvalidState, "balances_not_conserved", good._replace(balanceA=good.balanceA + 1), s1),
        # a wrong premium (conserved, but not the trade's price)
        (DoesNotFollow, "balances_mismatch",
         good._replace(balanceA=good.balanceA - 1, balanceB=good.balanceB + 1), s1),
        # the wrong side, the wrong amount, a missing position, an extra position
        (DoesNotFollow, "positions_mismatch",
         good._replace(positions=(ChannelPosition(C, 2 * UNIT), ChannelPosition(P, -UNIT))), s1),
        (DoesNotFollow, "positions_mismatch",
         good._replace(positions=(ChannelPosition(C, 2 * UNIT), ChannelPosition(P, 2 * UNIT))), s1),
        (DoesNotFollow, "positions_mismatch", good._replace(positions=(ChannelPosition(C, 2 * UNIT),)), s1),
        # the structure of the positions
        (InvalidState, "positions_not_sorted",
         good._replace(positions=(ChannelPosition(P, UNIT), ChannelPosition(C, 2 * UNIT))), s1),
        (InvalidState, "positions_not_sorted",
         good._replace(positions=(ChannelPosition(C, UNIT), ChannelPosition(C, UNIT))), s1),
        (InvalidState, "zero_position",
         good._replace(positions=(*good.positions, ChannelPosition("ETH-5JAN27-2500-P", 0))), s1),
        # a trade state marked final
        (DoesNotFollow, "final_mismatch", good._replace(isFinal=True), s1),
        # after a final state nothing follows
        (ChannelFinal, "channel_final", good._replace(turnNum=3), final_state(s1)),
    ]
    for exc, code, proposed, prev in cases:
        assert _code(exc, lambda p=prev, s=proposed: follows(p, s, t, False)) == code, code
    # the trade itself cannot apply
    assert _code(InsufficientBalance, lambda: follows(
        s1, good, Trade(P, False, 10**6 * UNIT, UNIT), False)) == "insufficient_balance"
    assert _code(InvalidTrade, lambda: follows(s1, good, t._replace(amount=0), False)) == \
        "invalid_trade_amount"
    # a state built for a different trade: same premium, other instrument
    assert _code(DoesNotFollow, lambda: follows(s1, good, t._replace(instrument=C), False)) == \
        "positions_mismatch"
    # the same state proposed by the other side means the opposite trade
    assert _code(DoesNotFollow, lambda: follows(s1, good, t, True)) == "balances_mismatch"


def test_replay_is_named_before_trade_errors() -> None:
    _, _, s1 = _opened()
    assert _code(StaleTurn, lambda: follows(s1, s1, Trade(C, True, 0, 0), True)) == "stale_turn"


def test_check_state_codes() -> None:
    ch, s0, s1 = _opened()
    check_state(ch, s0)
    check_state(ch, s1, s0)
    cases = [
        (s1._replace(channelId=b"\0" * 32), "wrong_channel"),
        (s1._replace(balanceB=s1.balanceB - 1), "balances_not_conserved"),
        (s1._replace(balanceA=-1, balanceB=s1.balanceA + s1.balanceB + 1), "negative_balance"),
        (s1._replace(positions=(ChannelPosition(C, 0),)), "zero_position"),
        (s1._replace(positions=(ChannelPosition(C, "1"),)), "invalid_position"),
        (s1._replace(positions=(ChannelPosition(C, 2**255),)), "invalid_position"),
        (s1._replace(positions=(ChannelPosition("ETH-31FEB26-3000-C", 1),)), "bad_instrument_name"),
        (s1._replace(positions=(ChannelPosition(P, 1), ChannelPosition(C, 1))), "positions_not_sorted"),
        (s1._replace(positions=(ChannelPosition(C, 1),) * (MAX_POSITIONS + 1)), "too_many_positions"),
    ]
    for s, code in cases:
        assert _code(InvalidState, lambda s=s: check_state(ch, s)) == code, code
    assert _code(StaleTurn, lambda: check_state(ch, s0, s1)) == "stale_turn"
    assert _code(ChannelFinal, lambda: check_state(ch, s1._replace(turnNum=9), final_state(s1))) == \
        "channel_final"


def test_final_state() -> None:
    _, _, s1 = _opened()
    f = final_state(s1)
    assert f == s1._replace(turnNum=2, isFinal=True)
    follows_expected(s1, f, final_state(s1))
    with pytest.raises(DoesNotFollow) as e:
        follows_expected(s1, f._replace(isFinal=False), final_state(s1))
    assert e.value.code == "final_mismatch"
    with pytest.raises(ChannelFinal):
        final_state(f)
    with pytest.raises(ChannelFinal):
        apply_trade(f, Trade(C, True, 1, 1), True)


def test_verify_signatures() -> None:
    ch, _, s1 = _opened()
    d = state_digest(ch.domain, s1)
    sig_a = bytes(KEY_A.unsafe_sign_hash(d).signature)
    sig_b = bytes(KEY_B.unsafe_sign_hash(d).signature)
    assert verify_signatures(ch, s1, sig_a, sig_b) == d
    assert verify_signatures(ch, s1, sig_a, None) == d
    assert _code(BadSignature, lambda: verify_signatures(ch, s1, sig_b, sig_b)) == "bad_signature_a"
    assert _code(BadSignature, lambda: verify_signatures(ch, s1, sig_a, sig_a)) == "bad_signature_b"
    x = bytes(KEY_X.unsafe_sign_hash(d).signature)
    assert _code(BadSignature, lambda: verify_signatures(ch, s1, None, x)) == "bad_signature_b"
    assert _code(BadSignature, lambda: verify_signatures(ch, s1, sig_a[:64], None)) == "bad_signature_a"
    # a signature of another turn does not carry over
    other = bytes(KEY_A.unsafe_sign_hash(state_digest(ch.domain, s1._replace(turnNum=2))).signature)
    assert _code(BadSignature, lambda: verify_signatures(ch, s1, other, None)) == "bad_signature_a"
    # high s (malleable) is refused
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    r, s, v = sig_a[:32], int.from_bytes(sig_a[32:64], "big"), sig_a[64]
    high = r + (n - s).to_bytes(32, "big") + bytes([55 - v])
    assert _code(BadSignature, lambda: verify_signatures(ch, s1, high, None)) == "bad_signature_a"
