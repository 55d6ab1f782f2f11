"""Oracle feeds: quorum, median, staleness, ordering, deviation, TWAP."""

from __future__ import annotations

import pytest

from tests.sequencer.core.core_world import EXPIRY, ORACLES, SPOT, T0, USERS, World
from sequencer.core import OracleParams, OracleState, current_price, twap
from sequencer.core.eip712 import Feed, digest
from sequencer.core.oracle import median
from sequencer.errors import OptrollupError

P = OracleParams(keys=(b"a" * 20, b"b" * 20, b"c" * 20), quorum=2, max_age=60)


def feed(spot: int, ts: int, vols: tuple[int, ...] = (500_000, 700_000)) -> Feed:
    return Feed("ETH", spot, ts, (1000, 2000)[:len(vols)], vols)


def test_median_and_quorum() -> None:
    o = OracleState({b"a" * 20: feed(100, 10), b"b" * 20: feed(104, 20, (600_000, 800_000))})
    p = current_price(o, 30, P)
    assert p is not None and p.spot == 102 and p.vols == (550_000, 750_000)
    assert current_price(o, 71, P) is None  # a is stale -> no quorum
    assert median([5, 1, 3]) == 3


def err(fn, *a) -> str:
    with pytest.raises(OptrollupError) as e:
        fn(*a)
    return e.value.code


def test_feed_rejections() -> None:
    w = World()
    eng, dom = w.engine, w.config.domain

    def submit(key, f):
        return eng.feed(f, key.sign(digest(dom, f)))

    good = Feed("ETH", SPOT, T0, (EXPIRY,), (800_000,))
    assert err(submit, USERS[0], good) == "oracle_unknown_key"
    assert err(submit, ORACLES[0], good) == "oracle_out_of_order"  # same ts as its last feed
    assert err(submit, ORACLES[0], good._replace(timestamp=T0 - 61)) == "oracle_stale"
    assert err(submit, ORACLES[0], good._replace(timestamp=T0 + 60)) == "oracle_future"
    eng.begin_block(T0 + 10)
    assert err(submit, ORACLES[0], good._replace(timestamp=T0 + 10, spot=SPOT * 12 // 10)) == \
        "oracle_deviation"
    assert err(submit, ORACLES[0], good._replace(timestamp=T0 + 10, expiries=(2, 1),
                                                 vols=(1, 1))) == "invalid_feed"
    assert err(submit, ORACLES[0], good._replace(underlying="BTC")) == "unknown_underlying"
    submit(ORACLES[0], good._replace(timestamp=T0 + 10, spot=SPOT * 105 // 100))


def test_halt_when_stale() -> None:
    w = World()
    w.engine.begin_block(T0 + 61)
    with pytest.raises(OptrollupError) as e:
        w.place(USERS[0], expiry=T0 + 3600)
    assert e.value.code == "oracle_stale"
    w.feed_all(SPOT, T0 + 61)
    assert w.place(USERS[0], expiry=T0 + 3600).status == "open"


def test_twap() -> None:
    h = [(0, 100), (10, 200), (30, 300)]
    assert twap(h, 0, 40) == (100 * 10 + 200 * 20 + 300 * 10) // 40
    assert twap(h, 5, 20) == (100 * 5 + 200 * 10) // 15
    assert twap(h, 31, 40) is None
    assert twap([(50, 7)], 0, 60) == 7


def test_a_market_wide_jump_halts_then_resumes_at_the_new_price() -> None:
    """Every oracle key reports a 20% crash at once: each feed is more than 10% from the
    median of the others (still fresh at the old price), so all are refused and the old price
    stands until it ages out (max_age); then nothing is fresh (trading halts: oracle_stale) and
    the next feeds are accepted at the new price. The deviation rule is a circuit breaker of at
    most max_age seconds, never a permanent freeze (docs/liquidation.md, "Oracle")."""
    w = World()
    eng, dom = w.engine, w.config.domain
    crash = SPOT * 80 // 100

    def submit(key, spot: int, ts: int):
        f = Feed("ETH", spot, ts, (EXPIRY - 86400 * 30, EXPIRY), (800_000, 800_000))
        return eng.feed(f, key.sign(digest(dom, f)))

    eng.begin_block(T0 + 5)
    for k in ORACLES:
        assert err(submit, k, crash, T0 + 5) == "oracle_deviation"
    assert eng.ctx.marks(w.state).price("ETH").spot == SPOT
    eng.begin_block(T0 + 61)                      # the old feeds age out: no price, no trading
    assert eng.ctx.marks(w.state).price("ETH") is None
    with pytest.raises(OptrollupError) as e:
        w.place(USERS[0], expiry=T0 + 3600)
    assert e.value.code == "oracle_stale"
    for k in ORACLES:
        submit(k, crash, T0 + 61)
    assert eng.ctx.marks(w.state).price("ETH").spot == crash
    assert w.place(USERS[0], expiry=T0 + 3600).status == "open"


def test_marks_after_a_feed_keep_only_what_an_unchanged_median_allows() -> None:
    """Each key's post bumps the oracle version; the block's marks then keep the rows, marks and
    scenario rows of an underlying whose median price did not move (the first post of a round)
    and reprice after the one that moves it. Whatever was kept equals marks computed afresh."""
    from sequencer.core.marks import Marks
    from tests.sequencer.core.core_world import CALL, ORACLES, PUT, SPOT, T0, USERS, World

    w = World()
    eng, st = w.engine, w.state
    assert w.place(USERS[0], instrument=CALL, is_buy=False, amount=2 * 10**6).status == "open"
    m0 = eng.ctx.marks(st)
    before = {n: (m0.row(n), m0.mark(n), m0.scenarios(n)) for n in (CALL, PUT)}
    m0.positions(USERS[0].address, st.accounts[USERS[0].address])

    def fresh_equal(m: Marks) -> None:
        f = Marks(st, T0)
        for n in (CALL, PUT):
            assert (m.row(n), m.mark(n), m.scenarios(n)) == (f.row(n), f.mark(n), f.scenarios(n))

    w.feed(ORACLES[0], SPOT + 50 * 10**6, T0 + 1)  # median of (new, old, old): unchanged
    m1 = eng.ctx.marks(st)
    assert m1 is not m0 and m1.version == st.oracle_version
    assert {n: (m1._rows[n], m1._marks[n], m1._scen[n]) for n in (CALL, PUT)} == before  # kept
    assert m1._pos == m0._pos  # no priced underlying moved: the account sums stay
    fresh_equal(m1)

    w.feed(ORACLES[1], SPOT + 50 * 10**6, T0 + 1)  # two of three moved: the median moves
    m2 = eng.ctx.marks(st)
    assert not m2._rows and not m2._marks and not m2._pos  # repriced from scratch
    fresh_equal(m2)
    assert m2.row(CALL) != before[CALL][0]

    w.feed(ORACLES[2], SPOT + 50 * 10**6, T0 + 1)  # the third: the median stays at the new spot
    m3 = eng.ctx.marks(st)
    assert set(m3._rows) == {CALL, PUT}
    fresh_equal(m3)
    # prepared marks for the next block are carried the same way
    assert eng.prepare_marks(T0 + 1, 10)
    ahead = eng._next_marks
    w.feed(ORACLES[0], SPOT + 50 * 10**6, T0 + 2)  # a repeat of the same observation: median unchanged
    assert eng.prepare_marks(T0 + 1, 0)  # nothing left to price
    assert eng._next_marks is not ahead
    f = Marks(st, T0 + 1)
    assert all(eng._next_marks.row(n) == f.row(n) for n in (CALL, PUT))


def test_marks_are_repriced_when_feeds_moved_the_median_in_between() -> None:
    """Two posts that move the median before anyone reads the marks: nothing stale is kept."""
    from sequencer.core.marks import Marks
    from tests.sequencer.core.core_world import CALL, ORACLES, PUT, SPOT, T0, World

    w = World()
    eng, st = w.engine, w.state
    m0 = eng.ctx.marks(st)
    old = {n: (m0.row(n), m0.scenarios(n)) for n in (CALL, PUT)}
    for k in ORACLES[:2]:
        w.feed(k, SPOT - 300 * 10**6, T0 + 1)
    m = eng.ctx.marks(st)
    f = Marks(st, T0)
    for n in (CALL, PUT):
        assert (m.row(n), m.mark(n), m.scenarios(n)) == (f.row(n), f.mark(n), f.scenarios(n))
        assert (m.row(n), m.scenarios(n)) != old[n]
