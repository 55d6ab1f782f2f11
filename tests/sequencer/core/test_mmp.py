"""Market-maker protection in the engine (sequencer.core.mmp): each of the three limits, fills in
one request, in one block and across blocks, freezes that expire and freezes that need a reset,
`mmp_frozen` refusals, signatures, and that a rejected request leaves no MMP trace. Greeks are
checked against a closed-form Black-76 written here, independently of sequencer.core.pricing."""

from __future__ import annotations

import math

import pytest

from cext import to_checksum
from sequencer.core import Cancel, MmpConfig, MmpReset, SessionKey
from sequencer.core.mmp import GREEK, MAX_INTERVAL_MS, Freeze, in_limit_units
from sequencer.errors import OptrollupError
from tests.sequencer.core.core_world import CALL, EXPIRY, PUT, SPOT, T0, USERS, Key, World, order

A, B, C = USERS[:3]  # A and C make markets, B takes
SK = USERS[10]       # A's session key
U = 10**6
Q = 20_000           # 0.02 contract per maker order
NOW_MS = T0 * 1000


def code(fn, *a, **kw) -> str:
    with pytest.raises(OptrollupError) as e:
        fn(*a, **kw)
    return e.value.code


def bs76(strike: int, is_call: bool, spot: int = SPOT, vol: float = 0.8,
         now: int = T0) -> tuple[float, float]:
    """(delta per contract, vega in base units per vol point per contract), closed form."""
    tau = (EXPIRY - now) / (365 * 86_400)
    sd = vol * math.sqrt(tau)
    d1 = (math.log(spot / strike) + sd * sd / 2) / sd
    n1 = 0.5 * (1 + math.erf(d1 / math.sqrt(2)))
    pdf = math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi)
    return (n1 if is_call else n1 - 1), spot * pdf * math.sqrt(tau) / 100


def configure(w: World, key=A, signer=None, underlying: str = "ETH", interval: int = 1000,
              frozen: int = 5000, amount: int = 0, delta: int = 0, vega: int = 0, nonce: int = 1):
    msg = MmpConfig(key.address, underlying, interval, frozen, amount, delta, vega, nonce)
    return w.engine.mmp_config(msg, w.sign(signer or key, msg))


def reset(w: World, key=A, signer=None, ts: int = T0, underlying: str = "ETH"):
    msg = MmpReset(key.address, underlying, ts)
    return w.engine.mmp_reset(msg, w.sign(signer or key, msg))


def quote(w: World, key=A, instrument: str = CALL, price: int = 100, nonce: int = 1, amount: int = Q,
          is_buy: bool = False):
    """A resting maker order (default: an ask of Q at `price` USDC)."""
    r = w.place(key, instrument=instrument, is_buy=is_buy, price=price * U, amount=amount, nonce=nonce)
    assert r.status == "open", r
    return r.orderHash


def take(w: World, amount: int, price: int = 110, nonce: int = 100, instrument: str = CALL,
         is_buy: bool = True, tif: int = 1):
    return w.place(B, instrument=instrument, is_buy=is_buy, price=price * U, amount=amount,
                   nonce=nonce, tif=tif)


def pair(w: World, key=A):
    return w.engine.mmp.view((key.address, "ETH"))


def test_amount_breach_in_one_request_cancels_and_skips_the_rest(world: World) -> None:
    w = world
    configure(w, amount=30_000)
    a1, a2, a3 = (quote(w, price=p, nonce=n) for n, p in ((1, 100), (2, 101), (3, 102)))
    a_put = quote(w, instrument=PUT, price=50, nonce=4)
    c3 = quote(w, C, price=102, nonce=5)
    r = take(w, 3 * Q, price=102)
    # A's first two asks fill (40,000 > 30,000 breaches on the second); A's 102 ask is then
    # skipped and cancelled, and the taker goes on to C's at the same price
    assert [(f.maker.order.account, f.price // U) for f in r.fills] == [
        (A.address, 100), (A.address, 101), (C.address, 102)]
    assert r.filledAmount == 3 * Q
    eng = w.engine
    assert not eng.by_account.get(A.address)          # every A order in ETH is gone, PUT too
    assert a3 not in eng.open and a_put not in eng.open and c3 not in eng.open
    v = pair(w)
    assert v.freeze == Freeze(NOW_MS, NOW_MS + 5000, "amount", 40_000, 30_000)
    assert v.amount == 0                               # a breach empties the window
    [ev] = eng.mmp.take_events()
    assert ev.kind == "triggered" and ev.cancelled == (a3, a_put) and ev.instruments == (CALL, PUT)
    assert {a1, a2}.isdisjoint(ev.cancelled)          # filled, not cancelled


def test_fills_in_one_block_add_up_across_requests(world: World) -> None:
    w = world
    configure(w, amount=30_000)
    quote(w, price=100, nonce=1)
    quote(w, price=101, nonce=2)
    assert take(w, Q, nonce=100).filledAmount == Q
    assert pair(w).amount == Q and pair(w).freeze is None
    assert take(w, Q, nonce=101).filledAmount == Q   # same block: 40,000 in the window
    assert pair(w).freeze is not None and pair(w).freeze.measure == "amount"


@pytest.mark.parametrize("interval,trips", [(1000, False), (1001, True), (2000, True)])
def test_window_across_blocks(world: World, interval: int, trips: bool) -> None:
    """A fill at t counts at T while T − t < intervalMs: the next block is 1000 ms later."""
    w = world
    configure(w, amount=30_000, interval=interval)
    quote(w, price=100, nonce=1)
    quote(w, price=101, nonce=2)
    take(w, Q, nonce=100)
    w.engine.begin_block(T0 + 1)
    assert pair(w).amount == (Q if trips else 0)
    take(w, Q, nonce=101)
    assert (pair(w).freeze is not None) == trips
    if not trips:
        assert pair(w).amount == Q


def test_delta_limit_nets_calls_against_puts(world: World) -> None:
    w = world
    dc, _ = bs76(3000 * U, True)
    dp, _ = bs76(3000 * U, False)
    one_call = Q * dc                                    # contracts × 10^6 of delta of one ask
    configure(w, delta=int(1.5 * one_call))
    quote(w, price=100, nonce=1)
    quote(w, instrument=PUT, price=50, nonce=2)
    quote(w, price=101, nonce=3)
    take(w, Q, nonce=100)                                # A sells a call: delta −Q·Δc
    take(w, Q, price=60, instrument=PUT, nonce=101)      # A sells a put: delta +Q·|Δp|
    v = pair(w)
    assert v.freeze is None and v.amount == 2 * Q        # |Σ| nets: no breach
    want = -Q * dc - Q * dp                              # Σ s·q·Δ / 10^6
    assert abs(v.delta / GREEK - want) <= 2 * Q * 0.5e-6 + 1e-6
    take(w, Q, nonce=102)                                # a second call, still net of the put
    v = pair(w)
    assert abs(v.delta / GREEK - (want - Q * dc)) <= 3 * Q * 0.5e-6 + 1e-6
    assert abs(want - Q * dc) < 1.5 * one_call and v.freeze is None


def test_delta_limit_trips_on_the_second_call(world: World) -> None:
    w = world
    dc, _ = bs76(3000 * U, True)
    limit = int(1.5 * Q * dc)
    configure(w, delta=limit)
    quote(w, price=100, nonce=1)
    quote(w, price=101, nonce=2)
    take(w, Q, nonce=100)
    assert pair(w).freeze is None
    take(w, Q, nonce=101)
    f = pair(w).freeze
    assert f is not None and f.measure == "delta" and f.limit == limit
    assert abs(f.value / GREEK + 2 * Q * dc) <= 2 * Q * 0.5e-6 + 1e-6   # exact sum, sign kept
    assert in_limit_units("delta", f.value) < -limit                      # shown away from zero


def test_vega_limit_adds_calls_and_puts(world: World) -> None:
    w = world
    _, vc = bs76(3000 * U, True)
    _, vp = bs76(3000 * U, False)
    assert abs(vc - vp) < 1e-6 * vc                      # same strike: same vega
    limit = int(1.5 * Q * vc / U)                        # base units per vol point of one ask
    configure(w, vega=limit, delta=10**12)               # delta: far away
    quote(w, price=100, nonce=1)
    quote(w, instrument=PUT, price=50, nonce=2)
    take(w, Q, nonce=100)
    v = pair(w)
    assert v.freeze is None
    assert abs(v.vega / GREEK + Q * vc / U) <= Q * 0.5 / U + 1e-6   # short vega: negative
    take(w, Q, price=60, instrument=PUT, nonce=101)      # short vega again: adds up
    f = pair(w).freeze
    assert f is not None and f.measure == "vega" and f.limit == limit
    assert abs(f.value / GREEK + Q * (vc + vp) / U) <= 2 * Q * 0.5 / U + 1e-6


def test_engine_greeks_match_the_closed_form(world: World) -> None:
    m = world.engine.ctx.marks(world.state).mark(CALL)
    dc, vc = bs76(3000 * U, True)
    assert abs(m.delta - dc * 1e6) <= 1 and abs(m.vega - vc) <= 1


def test_a_limit_of_zero_is_no_limit(world: World) -> None:
    w = world
    configure(w, delta=10**12)                           # amount 0 and vega 0: unlimited
    for n in range(5):
        quote(w, price=100 + n, nonce=n + 1, amount=10 * Q)
    assert take(w, 50 * Q, price=110).filledAmount == 50 * Q
    assert pair(w).freeze is None and pair(w).amount == 50 * Q
    configure(w, interval=0, amount=1, nonce=2)           # intervalMs 0: off
    assert not pair(w).active and pair(w).amount == 0
    quote(w, price=100, nonce=10)
    take(w, Q, nonce=101)
    assert pair(w).freeze is None and pair(w).amount == 0


def test_frozen_ms_expires_at_the_first_block_at_or_after_it(world: World) -> None:
    w = world
    configure(w, amount=Q, frozen=2500)
    quote(w, price=100, nonce=1, amount=2 * Q)
    take(w, 2 * Q)
    w.engine.mmp.take_events()
    o = order(A, is_buy=False, price=100 * U, amount=Q, nonce=2)
    for t in (T0, T0 + 1, T0 + 2):
        if t > T0:
            w.engine.begin_block(t)
        with pytest.raises(OptrollupError) as e:
            w.engine.place_order(o, w.sign(A, o))
        assert e.value.code == "mmp_frozen"
        msg = e.value.message
        assert to_checksum(A.address) in msg and " ETH " in msg and "amount limit" in msg
        assert f"until block time {NOW_MS + 2500} ms" in msg
    w.engine.begin_block(T0 + 3)                          # 3000 ms ≥ 2500 ms: lifted
    [ev] = w.engine.mmp.take_events()
    assert ev.kind == "expired" and ev.at_ms == NOW_MS + 3000
    assert w.engine.place_order(o, w.sign(A, o)).status == "open"


def test_frozen_ms_zero_needs_a_signed_reset(world: World) -> None:
    w = world
    configure(w, amount=Q, frozen=0)
    quote(w, price=100, nonce=1, amount=2 * Q)
    take(w, 2 * Q)
    assert pair(w).freeze.until_ms is None
    w.engine.begin_block(T0 + 50)                         # no time lifts it
    assert code(quote, w, nonce=2) == "mmp_frozen"
    assert "until an MmpReset" in pytest.raises(OptrollupError, quote, w, nonce=2).value.message
    assert code(reset, w, signer=B, ts=T0 + 50) == "signer_mismatch"   # a stranger
    assert code(reset, w, ts=T0 - 20) == "mmp_reset_stale"             # outside 60 s of block time
    sk = SessionKey(A.address, SK.address, T0 + 3600)
    w.engine.session_key(sk, w.sign(A, sk))
    res = reset(w, signer=SK, ts=T0 + 50)                               # a live session key may
    assert res.lifted is not None and res.lifted.measure == "amount" and res.view.freeze is None
    assert code(reset, w, ts=T0 + 50) == "mmp_reset_replayed"
    assert [e.kind for e in w.engine.mmp.take_events()] == ["triggered", "reset"]
    quote(w, nonce=3)                                     # trading again
    assert reset(w, ts=T0 + 51).lifted is None           # not frozen: accepted, nothing lifted


def test_other_accounts_and_underlyings_are_untouched(world: World) -> None:
    w = world
    configure(w, amount=Q)
    configure(w, C, amount=10**9)
    quote(w, price=100, nonce=1, amount=2 * Q)
    c1 = quote(w, C, price=105, nonce=2)
    b1 = quote(w, B, instrument=PUT, price=10, nonce=3, is_buy=True)
    take(w, 2 * Q)
    assert c1 in w.engine.open and b1 in w.engine.open
    assert pair(w, C).freeze is None
    assert w.place(C, is_buy=False, price=106 * U, amount=Q, nonce=4).status == "open"
    assert w.place(B, is_buy=False, price=107 * U, amount=Q, nonce=5).status == "open"


def test_the_taker_side_never_counts(world: World) -> None:
    w = world
    configure(w, amount=Q)
    quote(w, C, price=100, nonce=1, amount=5 * Q)
    assert w.place(A, is_buy=True, price=100 * U, amount=5 * Q, nonce=2, tif=1).filledAmount == 5 * Q
    assert pair(w).amount == 0 and pair(w).freeze is None


def test_a_rejected_request_leaves_no_trace(world: World) -> None:
    w = world
    configure(w, amount=Q)
    a1 = quote(w, price=100, nonce=1, amount=2 * Q)
    # FOK for more than the book holds: A would breach, then the order fails as a whole
    assert code(take, w, 3 * Q, tif=2) == "fok_unfilled"
    assert pair(w).freeze is None and pair(w).amount == 0 and a1 in w.engine.open
    assert not w.engine.mmp.take_events()
    # a FOK that A's breach would starve is refused whole too: nothing filled, nothing frozen
    quote(w, C, price=101, nonce=2, amount=Q)
    quote(w, price=101, nonce=3, amount=Q)
    assert code(take, w, 4 * Q, price=101, tif=2) == "fok_unfilled"
    assert pair(w).freeze is None and w.engine.open[a1].remaining == 2 * Q


def test_config_rules(world: World) -> None:
    w = world
    assert code(configure, w, signer=B) == "signer_mismatch"
    assert code(configure, w, Key(99)) == "unknown_account"             # never deposited
    assert code(configure, w, underlying="BTC") == "unknown_underlying"
    assert code(configure, w, interval=MAX_INTERVAL_MS + 1) == "bad_mmp_config"
    assert code(configure, w, frozen=MAX_INTERVAL_MS + 1) == "bad_mmp_config"
    assert code(configure, w, vega=2**64) == "bad_mmp_config"
    configure(w, amount=5 * Q, nonce=7)
    assert code(configure, w, amount=Q, nonce=7) == "mmp_nonce_replayed"
    sk = SessionKey(A.address, SK.address, T0 + 3600)
    w.engine.session_key(sk, w.sign(A, sk))
    assert configure(w, signer=SK, amount=3 * Q, nonce=8).config.amountLimit == 3 * Q


def test_new_config_empties_the_window_but_keeps_a_freeze(world: World) -> None:
    w = world
    configure(w, amount=3 * Q)
    quote(w, price=100, nonce=1, amount=2 * Q)
    take(w, 2 * Q)
    assert pair(w).amount == 2 * Q
    configure(w, amount=3 * Q, nonce=2)
    assert pair(w).amount == 0
    quote(w, price=100, nonce=3, amount=4 * Q)
    take(w, 4 * Q, nonce=101)
    assert pair(w).freeze is not None
    configure(w, amount=10 * Q, nonce=3)
    assert pair(w).freeze is not None and code(quote, w, nonce=4) == "mmp_frozen"


def test_an_amend_of_a_frozen_account_is_refused(world: World) -> None:
    w = world
    configure(w, amount=Q, frozen=0)
    quote(w, price=100, nonce=1, amount=2 * Q)
    take(w, 2 * Q)
    new = order(A, is_buy=False, price=100 * U, amount=Q, nonce=9)
    c = Cancel(A.address, b"\1" * 32)
    with pytest.raises(OptrollupError) as e:
        w.engine.replace_order(c, w.sign(A, c), new, w.sign(A, new))
    assert e.value.code == "unknown_order"  # its orders were cancelled by the freeze
    assert code(w.engine.place_order, new, w.sign(A, new)) == "mmp_frozen"
