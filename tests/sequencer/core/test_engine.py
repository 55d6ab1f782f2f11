"""Order validation and matching rules, each failure with its code (adversarial cases)."""

from __future__ import annotations

import pytest

from cext import to_checksum
from tests.sequencer.core.core_world import CALL, EXPIRY, OPERATOR, PUT, T0, USERS, Key, World, order
from sequencer.core import Cancel, CancelAll, Listing, SessionKey, Withdraw, state_bytes
from sequencer.errors import OptrollupError

A, B, C, D, E = USERS[:5]
U = 10**6


def code(fn, *a, **kw) -> str:
    with pytest.raises(OptrollupError) as e:
        fn(*a, **kw)
    return e.value.code


def test_wrong_signer_names_both_addresses(world: World) -> None:
    o = order(A)
    with pytest.raises(OptrollupError) as e:
        world.engine.place_order(o, world.sign(B, o))
    assert e.value.code == "signer_mismatch"
    assert to_checksum(B.address) in e.value.message and to_checksum(A.address) in e.value.message
    assert code(world.engine.place_order, o, b"\0" * 65) == "bad_signature"


def test_session_key_signs_until_revoked(world: World) -> None:
    w, key = world, USERS[10]
    sk = SessionKey(A.address, key.address, T0 + 100)
    assert code(w.engine.session_key, sk, w.sign(B, sk)) == "signer_mismatch"
    w.engine.session_key(sk, w.sign(A, sk))
    assert code(w.engine.session_key, sk, w.sign(A, sk)) == "session_key_replayed"
    o = order(A)
    assert w.engine.place_order(o, w.sign(key, o)).status == "open"
    revoke = SessionKey(A.address, key.address, T0)
    w.engine.session_key(revoke, w.sign(A, revoke))
    o2 = order(A, nonce=1)
    assert code(w.engine.place_order, o2, w.sign(key, o2)) == "signer_mismatch"


@pytest.mark.parametrize("kw,want", [
    (dict(expiry=T0), "order_expired"),
    (dict(expiry=T0 + 31 * 86400), "order_expiry_too_far"),
    (dict(price=100 * U + 1), "price_not_on_tick"),
    (dict(price=0), "bad_price"),
    (dict(amount=10**6 + 1), "amount_not_on_step"),
    (dict(instrument="ETH-27DEC26-9999-C"), "unknown_instrument"),
    (dict(tif=3), "bad_time_in_force"),
    (dict(tif=1, post_only=True), "post_only_not_gtc"),
    (dict(reduce_only=True), "reduce_only_nothing"),
    (dict(amount=10**6 * 10**6), "insufficient_margin"),
])
def test_order_rejections(world: World, kw: dict, want: str) -> None:
    side = {"is_buy": False} if want == "insufficient_margin" else {}
    assert code(world.place, A, **{**side, **kw}) == want


def test_field_named_in_message(world: World) -> None:
    with pytest.raises(OptrollupError) as e:
        world.place(A, price=100 * U + 1)
    assert "price" in e.value.message and "tick_size" in e.value.message


def test_unknown_account_and_replayed_digest(world: World) -> None:
    stranger = Key(999)
    assert code(world.place, stranger) == "unknown_account"
    o = order(A)
    world.engine.place_order(o, world.sign(A, o))
    assert code(world.engine.place_order, o, world.sign(A, o)) == "duplicate_order"


def test_price_time_priority_and_maker_price(world: World) -> None:
    w = world
    w.place(A, is_buy=False, price=120 * U)
    first = w.place(B, is_buy=False, price=110 * U)
    w.place(C, is_buy=False, price=110 * U)
    r = w.place(USERS[3], is_buy=True, price=130 * U, amount=U // 2)
    assert r.status == "filled" and r.fills[0].price == 110 * U
    assert r.fills[0].maker.order.account == B.address  # earlier at the same level
    # second fill of the same maker refers to it by digest
    r2 = w.place(USERS[4], is_buy=True, price=130 * U, amount=U)
    assert r2.fills[0].maker == first.orderHash and r2.fills[0].amount == U // 2
    assert r2.fills[1].maker.order.account == C.address


def test_post_only_ioc_fok(world: World) -> None:
    w = world
    w.place(A, is_buy=False, price=110 * U, amount=U)
    assert code(w.place, B, price=110 * U, post_only=True) == "post_only_would_cross"
    assert w.place(B, price=100 * U, post_only=True).status == "open"
    assert code(w.place, C, price=110 * U, amount=2 * U, tif=2) == "fok_unfilled"
    assert w.engine.books[CALL].depth(False) == [(110 * U, U)]
    r = w.place(C, price=110 * U, amount=2 * U, tif=1, nonce=1)
    assert (r.status, r.filledAmount) == ("cancelled", U) and not w.engine.books[CALL].asks
    w.place(A, is_buy=False, price=110 * U, amount=U, nonce=1)
    r = w.place(C, price=110 * U, amount=U, tif=2, nonce=2)
    assert (r.status, r.filledAmount) == ("filled", U)


def test_reduce_only_is_clipped(world: World) -> None:
    w = world
    w.place(A, is_buy=False, price=110 * U, amount=U)
    w.place(B, price=110 * U, amount=U)                      # B long 1
    w.place(C, is_buy=True, price=100 * U, amount=3 * U)     # bid for 3
    r = w.place(B, is_buy=False, price=100 * U, amount=3 * U, reduce_only=True, nonce=1)
    assert r.filledAmount == U and B.address not in w.state.holders[CALL]
    assert code(w.place, B, is_buy=False, price=100 * U, reduce_only=True, nonce=2) == \
        "reduce_only_nothing"


def test_self_trade_cancels_resting(world: World) -> None:
    w = world
    mine = w.place(A, is_buy=False, price=110 * U)
    w.place(B, is_buy=False, price=111 * U)
    r = w.place(A, price=120 * U, nonce=1)
    assert mine.orderHash not in w.engine.open
    assert r.fills[0].maker.order.account == B.address


def test_resting_order_that_fails_apply_is_cancelled(world: World) -> None:
    w = world
    poor = Key(500)
    w.fund(poor, 50 * U)
    o = order(poor, price=10 * U, amount=U)                  # needs 10 USDC premium + fee
    w.engine.place_order(o, w.sign(poor, o))
    w.state.accounts[poor.address].collateral -= 45 * U     # cash gone (as after a loss)
    w.state.accounts[w.config.fee_account].collateral += 45 * U
    w.place(A, price=9 * U, post_only=True, nonce=5)        # a healthy lower bid
    r = w.place(B, is_buy=False, price=9 * U, amount=U)
    assert r.fills[0].maker.order.account == A.address     # poor bid skipped and cancelled
    assert not w.engine.by_account.get(poor.address)
    assert w.state.accounts[poor.address].collateral == 5 * U


def test_cancel_and_cancel_all_replay(world: World) -> None:
    w = world
    r1 = w.place(A, is_buy=False, price=150 * U)
    w.place(A, is_buy=False, price=160 * U, nonce=1)
    w.place(A, is_buy=False, price=170 * U, instrument=PUT, nonce=2)
    c = Cancel(A.address, r1.orderHash)
    assert code(w.engine.cancel, c, w.sign(B, c)) == "signer_mismatch"
    w.engine.cancel(c, w.sign(A, c))
    assert code(w.engine.cancel, c, w.sign(A, c)) == "unknown_order"
    ca = CancelAll(A.address, CALL, T0)
    assert w.engine.cancel_all(ca, w.sign(A, ca)) == 1
    assert code(w.engine.cancel_all, ca, w.sign(A, ca)) == "cancel_all_replayed"
    old = CancelAll(A.address, "", T0 - 61)
    assert code(w.engine.cancel_all, old, w.sign(A, old)) == "cancel_all_stale"
    ca2 = CancelAll(A.address, "", T0 + 1)
    assert w.engine.cancel_all(ca2, w.sign(A, ca2)) == 1 and not w.engine.open


def test_withdraw_rules(world: World) -> None:
    w = world
    acct = w.state.accounts[A.address]
    wd = Withdraw(A.address, A.address, 10 * U, 1)
    assert code(w.engine.withdraw, wd, w.sign(A, wd)) == "bad_withdrawal_nonce"
    wd = wd._replace(nonce=0)
    assert code(w.engine.withdraw, wd, w.sign(B, wd)) == "signer_mismatch"
    big = wd._replace(amount=acct.collateral + 1)
    assert code(w.engine.withdraw, big, w.sign(A, big)) == "insufficient_collateral"
    w.engine.withdraw(wd, w.sign(A, wd))
    assert acct.withdrawal_nonce == 1
    # margin: a large short leaves little to withdraw
    w.place(A, is_buy=False, price=100 * U, amount=1000 * U)
    w.place(B, price=100 * U, amount=1000 * U)
    view = w.engine.account_view(A.address)
    assert view.initialMargin > 0 and view.available < acct.collateral
    wd2 = Withdraw(A.address, A.address, view.available + 1, 1)
    assert code(w.engine.withdraw, wd2, w.sign(A, wd2)) == "insufficient_margin"
    wd3 = wd2._replace(amount=view.available)
    w.engine.withdraw(wd3, w.sign(A, wd3))


def test_risk_reducing_order_always_allowed(world: World) -> None:
    w = world
    w.place(A, is_buy=False, price=300 * U, amount=100 * U)
    w.place(B, price=300 * U, amount=100 * U)
    # crash A's equity: spot rallies, A short calls is now under water
    w.engine.begin_block(T0 + 1)
    w.feed_all(3300 * U, T0 + 1)
    w.engine.begin_block(T0 + 2)
    w.feed_all(3600 * U, T0 + 2)
    w.engine.begin_block(T0 + 3)
    w.feed_all(3900 * U, T0 + 3)
    acct = w.state.accounts[A.address]
    acct.collateral = 1000 * U
    w.state.accounts[w.config.fee_account].collateral += 999_000 * U
    v = w.engine.account_view(A.address)
    assert v.equity < v.initialMargin
    assert code(w.place, A, is_buy=False, price=1000 * U, amount=U, nonce=1) == "insufficient_margin"
    assert w.place(A, is_buy=True, price=100 * U, amount=U, nonce=2).status == "open"


def test_listing(world: World) -> None:
    w = world
    lst = Listing("ETH-27DEC26-3500-C", 100_000, 10_000, 10_000)
    assert code(w.engine.list_instrument, lst, w.sign(A, lst)) == "signer_mismatch"
    w.engine.list_instrument(lst, w.sign(OPERATOR, lst))
    assert code(w.engine.list_instrument, lst, w.sign(OPERATOR, lst)) == "instrument_listed"
    past = Listing("ETH-1JAN26-3000-C", 100_000, 10_000, 10_000)
    assert code(w.engine.list_instrument, past, w.sign(OPERATOR, past)) == "instrument_expired"
    bad = Listing("ETH-1JAN26-3000", 100_000, 10_000, 10_000)
    assert code(w.engine.list_instrument, bad, w.sign(OPERATOR, bad)) == "bad_instrument_name"
    assert w.place(A, instrument="ETH-27DEC26-3500-C").status == "open"
    assert EXPIRY == w.state.instruments["ETH-27DEC26-3500-C"].expiry


# -- a rejected request changes nothing ---------------------------------------------------------

def _engine_picture(w: World) -> tuple:
    """Everything a request may change, as plain comparable data."""
    e = w.engine
    books = {n: ([(p, [(r.digest, r.remaining) for r in lvl.values()]) for p, lvl in b.bids.items()],
                 [(p, [(r.digest, r.remaining) for r in lvl.values()]) for p, lvl in b.asks.items()])
             for n, b in e.books.items()}
    accts = {a: (x.collateral, sorted(x.positions.items())) for a, x in w.state.accounts.items()}
    orders = {d: fo.filled for d, fo in w.state.orders.items()}
    return books, sorted(e.open), sorted(e.seen), sorted(e.expiring), accts, orders, len(e.txs)


def test_rejected_taker_keeps_the_resting_orders_it_met() -> None:
    """The attack of issue 10: A rests a small ask, then sends a buy that crosses its own ask
    (self-trade prevention) and then fails on its own collateral against B's ask. The buy is
    rejected; A's ask must still be there (before the fix it was silently dropped, and a restart
    replayed to a different book)."""
    w = World(funds=1)
    w.fund(A, 50 * U)
    w.fund(B, 100_000 * U)
    w.fund(C, 100_000 * U)
    own = w.place(A, is_buy=False, price=290 * U, amount=10_000, nonce=1)
    assert own.status == "open"
    assert w.place(B, is_buy=False, price=300 * U, amount=U, nonce=1).status == "open"
    before = _engine_picture(w)
    assert code(w.place, A, is_buy=True, price=300 * U, amount=U, nonce=2) == "insufficient_collateral"
    assert _engine_picture(w) == before
    # and the ask trades later exactly as a replay of the accepted requests would have it
    r = w.place(C, is_buy=True, price=290 * U, amount=10_000, nonce=1, tif=1)
    assert r.filledAmount == 10_000 and r.fills[0].price == 290 * U


def test_rejected_fok_keeps_state_books_and_dropped_makers() -> None:
    """A FOK that meets a reduce-only maker with nothing left to reduce, its own order and a
    real maker it fills, and then cannot complete: everything, state included, is as before."""
    w = World()
    w.place(C, is_buy=True, price=300 * U, amount=20_000, nonce=1)
    assert w.place(B, is_buy=False, price=300 * U, amount=20_000, nonce=1, tif=1).filledAmount == 20_000
    assert w.place(B, is_buy=True, price=290 * U, amount=20_000, nonce=2, reduce_only=True).status == "open"
    w.place(D, is_buy=False, price=295 * U, amount=20_000, nonce=1)
    assert w.place(B, is_buy=True, price=295 * U, amount=20_000, nonce=3, tif=1).filledAmount == 20_000
    assert CALL not in w.state.accounts[B.address].positions  # the reduce-only bid has nothing to reduce
    w.place(A, is_buy=True, price=285 * U, amount=10_000, nonce=2)            # A's own bid
    w.place(D, is_buy=True, price=280 * U, amount=10_000, nonce=3)            # a real bid
    picture = _engine_picture(w)
    total = w.total()
    assert code(w.place, A, is_buy=False, price=280 * U, amount=30_000, nonce=9, tif=2) == "fok_unfilled"
    assert _engine_picture(w) == picture and w.total() == total


def test_a_refused_margin_check_leaves_no_half_built_risk_cache() -> None:
    """Found by the model test: with the oracle stale, a withdrawal by an account with open
    orders in two instruments was refused (oracle_stale) but left a risk cache with no parts
    behind, so the same withdrawal sent again was accepted without counting the open orders,
    and a replay of the log (which never saw the refused one) rejected it."""
    w = World()
    w.place(A, instrument=CALL, is_buy=True, price=300 * U, amount=10_000, nonce=1, expiry=T0 + 86400)
    w.place(A, instrument=PUT, is_buy=True, price=300 * U, amount=10_000, nonce=2, expiry=T0 + 86400)
    w.engine.begin_block(T0 + 10_000)  # every feed is stale now
    wd = Withdraw(A.address, A.address, U, 0)
    for _ in range(2):
        assert code(w.engine.withdraw, wd, w.sign(A, wd)) == "oracle_stale"


def test_a_withdrawal_to_address_zero_is_refused() -> None:
    """L1 can never pay address zero (issue 11 #4): refused by the state transition itself."""
    w = World()
    wd = Withdraw(A.address, b"\0" * 20, U, 0)
    assert code(w.engine.withdraw, wd, w.sign(A, wd)) == "bad_recipient"
    ok = Withdraw(A.address, B.address, U, 0)
    w.engine.withdraw(ok, w.sign(A, ok))


def test_one_order_fills_at_most_max_fills_makers(world: World) -> None:
    """A taker meeting more makers than MAX_FILLS_PER_ORDER fills that many and the rest of it
    is cancelled (IOC and GTC alike: a GTC may not rest crossing the book); a FOK that needs
    more is refused whole, naming the cap. This bounds the block bytes one request adds."""
    from sequencer.core.engine import MAX_FILLS_PER_ORDER as CAP
    from sequencer.core.txs import FillTx
    w = world
    makers = [B, C, D, E]

    def asks(n: int, nonce0: int) -> None:  # n one-contract asks from 100.0 up, four accounts
        for i in range(n):
            w.place(makers[i % 4], is_buy=False, price=100 * U + i * 100_000, amount=U,
                    nonce=nonce0 + i)

    n = CAP + 16
    asks(n, 100)
    before = len(w.engine.txs)
    with pytest.raises(OptrollupError, match=f"within {CAP} maker orders") as e:
        w.place(A, price=200 * U, amount=n * U, tif=2, nonce=1)  # FOK
    assert e.value.code == "fok_unfilled"
    assert len(w.engine.txs) == before and len(w.engine.open) == n  # nothing changed
    r = w.place(A, price=200 * U, amount=n * U, tif=1, nonce=2)  # IOC
    fills = [t for t in w.engine.txs[before:] if isinstance(t, FillTx)]
    assert (r.status, r.filledAmount, len(fills)) == ("cancelled", CAP * U, CAP)
    assert [f.price for f in fills] == [100 * U + i * 100_000 for i in range(CAP)]  # best first
    assert len(w.engine.open) == 16
    asks(CAP, 1000)  # 16 + CAP asks again
    r = w.place(A, price=200 * U, amount=n * U, tif=0, nonce=3)  # GTC
    assert (r.status, r.filledAmount) == ("cancelled", CAP * U)
    assert len(w.engine.open) == 16
    assert A.address not in {o.order.account for o in w.engine.open.values()}  # did not rest


def test_a_logged_order_skips_only_the_open_order_margin_check(world: World) -> None:
    """Replaying the log (`logged=True`) does not redo the open-order margin check, an admission
    rule: an order the log holds was accepted. Every other rule still applies, and reduce-only
    sizing (which needs the same side's open total the check also uses) is unchanged."""
    w = world
    big = order(A, is_buy=False, amount=10**6 * 10**6)
    assert code(w.engine.place_order, big, w.sign(A, big)) == "insufficient_margin"
    for kw, want in [(dict(price=100 * U + 1), "price_not_on_tick"),
                     (dict(reduce_only=True), "reduce_only_nothing"),
                     (dict(expiry=T0), "order_expired")]:
        o = order(A, nonce=7, **kw)
        assert code(w.engine.place_order, o, w.sign(A, o), logged=True) == want
    o = order(A, nonce=8)
    assert code(w.engine.place_order, o, w.sign(B, o), logged=True) == "signer_mismatch"
    assert w.engine.place_order(big, w.sign(A, big), logged=True).status == "open"
    assert code(w.engine.place_order, big, w.sign(A, big), logged=True) == "duplicate_order"


def test_logged_replay_of_accepted_orders_equals_the_live_engine() -> None:
    """Two engines: one takes a flow live (some orders refused), the other only the accepted
    ones as a replay does (`logged=True`, amends too); books, positions, collateral and fills
    are the same (the whole committed state). Reduce-only orders are clipped by the same side's open orders in both."""
    live, replay = World(), World()
    flow = [
        (A, dict(is_buy=False, price=110 * U, amount=U)),
        (B, dict(price=110 * U, amount=U)),                                   # B long 1
        (B, dict(is_buy=False, price=130 * U, amount=U // 2, nonce=1)),        # B asks 0.5 (rests)
        (C, dict(price=100 * U, amount=3 * U)),                               # bid for 3
        (B, dict(is_buy=False, price=100 * U, amount=3 * U, reduce_only=True, nonce=2)),  # clipped to 0.5
        (D, dict(is_buy=False, price=100 * U, amount=10**6 * 10**6)),         # refused: margin
        (E, dict(is_buy=False, price=105 * U, amount=2 * U, tif=1)),          # IOC into C's bid
        (A, dict(price=90 * U, amount=U, nonce=1)),
    ]
    results = []
    for key, kw in flow:
        o = order(key, **kw)  # type: ignore[arg-type]
        sig = live.sign(key, o)
        try:
            r = live.engine.place_order(o, sig)
        except OptrollupError as exc:
            results.append(exc.code)
            continue
        results.append((r.status, r.filledAmount))
        assert replay.engine.place_order(o, sig, logged=True) == r
    assert results[4] == ("filled", U // 2) and results[5] == "insufficient_margin"
    # an amend of A's bid, replayed as logged
    old = order(A, price=90 * U, amount=U, nonce=1)
    new = order(A, price=95 * U, amount=U, nonce=2)
    c = Cancel(A.address, live.engine.ctx.digest(live.config.domain, old))
    ra = live.engine.replace_order(c, live.sign(A, c), new, live.sign(A, new))
    assert replay.engine.replace_order(c, live.sign(A, c), new, live.sign(A, new), logged=True) == ra
    for w in (live, replay):
        w.engine.end_block()
    for name in (CALL, PUT):
        for side in (True, False):
            assert live.engine.books[name].depth(side) == replay.engine.books[name].depth(side)
    assert state_bytes(live.state) == state_bytes(replay.state)  # collateral, positions, fills
    assert set(live.engine.open) == set(replay.engine.open)
