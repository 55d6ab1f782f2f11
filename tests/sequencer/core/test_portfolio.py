"""Portfolio margin (design.md "Risk"; sequencer.core.portfolio): the 27-scenario figures
against an independent float Black-76 repricing written here, hedged books against standard
margin, naked shorts against the worst scenario, SetMarginMode and its refusals, trading,
withdrawals and liquidation in portfolio mode, and the incremental sums against from-scratch."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.core import SetMarginMode, decode_tx, encode_tx, make_instrument
from sequencer.core.chain import replay_block
from sequencer.core.eip712 import Withdraw
from sequencer.core.liquidation import margin, margin_of
from sequencer.core.marks import Marks
from sequencer.core.portfolio import (PORTFOLIO, SCENARIOS, STANDARD, Exposure,
                                      portfolio_margin, scenario_rows)
from sequencer.core.txs import AuctionStartTx, MarginModeTx
from sequencer.errors import OptrollupError
from tests.sequencer.core.core_world import CALL, EXPIRY, PUT, SPOT, T0, USERS, Key, World

A, B, C = USERS[0], USERS[1], USERS[2]
U = 10**6
YEAR = 365 * 86_400
C3200, P2800, C3100, P3100 = ("ETH-27DEC26-3200-C", "ETH-27DEC26-2800-P",
                              "ETH-27DEC26-3100-C", "ETH-27DEC26-3100-P")


def code(fn, *a, **kw) -> str:
    with pytest.raises(OptrollupError) as e:
        fn(*a, **kw)
    return e.value.code


# -- an independent reference: closed-form Black-76 in floats, written out here ----------------

def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def b76(f: float, k: float, t: float, vol: float, call: bool) -> float:
    if t <= 0 or vol <= 0:
        return max(f - k, 0.0) if call else max(k - f, 0.0)
    sd = vol * math.sqrt(t)
    d1 = (math.log(f / k) + sd * sd / 2) / sd
    d2 = d1 - sd
    c = f * _ncdf(d1) - k * _ncdf(d2)
    return c if call else c - (f - k)


def reference(positions: dict[str, int], spot: int, vol: float, now: int) -> tuple[float, float]:
    """(worst scenario loss, short-contract count) in floats: Σ q·(P_scenario − P_mark) over
    the 27 scenarios of the design, base units."""
    from sequencer.core.instruments import parse_name
    worst = 0.0
    for s, v in SCENARIOS:
        pnl = 0.0
        for name, q in positions.items():
            _, exp, k, call = parse_name(name)
            t = (exp - now) / YEAR
            p0 = b76(spot, k, t, vol, call)
            p1 = b76(spot * (1 + s / 100), k, t, vol * (1 + v / 100), call)
            pnl += q / U * (p1 - p0)
        worst = max(worst, -pnl)
    return worst, sum(-q / U for q in positions.values() if q < 0)


# -- a world with more strikes, everyone in portfolio mode on request ---------------------------

def pm_world() -> World:
    w = World()
    eng = w.engine
    for name in (C3200, P2800, C3100, P3100):
        ins = make_instrument(name)
        w.state.instruments[name] = ins
        w.state.holders[name] = {}
        eng.books[name] = __import__("sequencer.core.book", fromlist=["Book"]).Book()
    return w


def set_mode(w: World, key: Key, mode: int) -> None:
    acct = w.state.accounts[key.address]
    m = SetMarginMode(key.address, mode, acct.margin_nonce)
    w.engine.set_margin_mode(m, w.sign(key, m))


def trade(w: World, maker: Key, taker: Key, name: str, maker_buys: bool, amount: int,
          price: int) -> None:
    """`maker` rests at `price`, `taker` takes it (nonces from a counter on the world)."""
    n = getattr(w, "_n", 1000)
    w._n = n + 2  # type: ignore[attr-defined]
    w.place(maker, instrument=name, is_buy=maker_buys, price=price, amount=amount, nonce=n)
    r = w.place(taker, instrument=name, is_buy=not maker_buys, price=price, amount=amount,
                nonce=n + 1, tif=1)
    assert r.fills, f"no fill in {name}"


def figures(w: World, key: Key, mode: int):
    marks = w.engine.ctx.marks(w.state)
    acct = w.state.accounts[key.address]
    return margin_of(marks, mode, acct.collateral, acct.positions)


# -- the grid against the reference ----------------------------------------------------------

BOOKS = [
    {CALL: -U},                                   # naked short call
    {PUT: -3 * U},                                # naked short puts
    {CALL: -U, C3200: U},                         # call spread
    {CALL: U, PUT: -U, C3100: -U, P3100: U},      # box (long synthetic vs short synthetic)
    {CALL: -U, PUT: -U, C3200: U, P2800: U},      # iron butterfly (straddle against wings)
    {CALL: 2 * U},                                # long only
    {CALL: -5 * U, PUT: 2 * U, C3200: 3 * U},
]


@pytest.mark.parametrize("book", BOOKS)
def test_worst_loss_matches_an_independent_repricing(book: dict[str, int]) -> None:
    w = pm_world()
    marks = Marks(w.state, T0)
    pm = portfolio_margin(marks, 0, book)
    assert pm is not None and len(pm.underlyings) == 1
    u = pm.underlyings[0]
    loss, shorts = reference(book, SPOT, 0.8, T0)
    # integer rounding: each position's value floors/ceils once per price (<= 1 base unit at
    # the mark and at the scenario), plus the fixed-point price error (<< 1 unit)
    assert abs(u.loss - loss) <= 2 * len(book) + 1e-6 * loss
    contingency = math.ceil(0.003 * SPOT * shorts)
    assert u.im == u.loss + contingency
    assert u.mm == math.ceil(0.8 * u.loss) + math.ceil(0.002 * SPOT * shorts)
    s, v = u.spot_shock, u.vol_shock
    if u.loss:  # the reported scenario is a worst one of the reference
        from sequencer.core.instruments import parse_name
        pnl = sum(q / U * (b76(SPOT * (1 + s / 100), parse_name(n)[2], (EXPIRY - T0) / YEAR,
                                0.8 * (1 + v / 100), parse_name(n)[3])
                           - b76(SPOT, parse_name(n)[2], (EXPIRY - T0) / YEAR, 0.8,
                                 parse_name(n)[3])) for n, q in book.items())
        assert abs(-pnl - loss) <= 2 * len(book) + 1e-6 * loss


def test_scenario_zero_is_the_mark() -> None:
    w = pm_world()
    marks = Marks(w.state, T0)
    for name in (CALL, PUT, C3200, P2800):
        rows = marks.scenarios(name)
        row = marks.row(name)
        assert rows is not None and row is not None
        k = SCENARIOS.index((0, 0))
        assert (rows[0][k], rows[1][k]) == (row.mark_lo, row.mark_hi)
        ins = w.state.instruments[name]
        assert rows == scenario_rows(SPOT, ins.strike, ins.expiry - T0, 800_000, ins.is_call)


def test_hedged_books_need_far_less_than_standard_margin() -> None:
    w = pm_world()
    marks = Marks(w.state, T0)
    from sequencer.core.margin import positions_margin
    for book, most in (({CALL: -U, C3200: U}, 0.5),
                       ({CALL: U, PUT: -U, C3100: -U, P3100: U}, 0.05),
                       ({CALL: -U, PUT: -U, C3200: U, P2800: U}, 0.5)):
        std = positions_margin(0, [(q, marks.row(n)) for n, q in book.items()])
        pm = portfolio_margin(marks, 0, book)
        assert pm is not None and pm.im < most * std.im, (book, pm.im, std.im)
        assert pm.mm < std.mm or pm.mm < most * std.im


def test_naked_short_needs_at_least_the_worst_scenario_loss() -> None:
    w = pm_world()
    marks = Marks(w.state, T0)
    for book in ({CALL: -U}, {PUT: -2 * U}, {C3200: -7 * U}):
        pm = portfolio_margin(marks, 0, book)
        assert pm is not None
        loss, _ = reference(book, SPOT, 0.8, T0)
        assert pm.im >= loss and pm.mm >= 0.8 * loss
        # the loss of a naked short call is the +16% / +30% vol corner
        if next(iter(book)).endswith("-C"):
            assert (pm.underlyings[0].spot_shock, pm.underlyings[0].vol_shock) == (16, 30)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([CALL, PUT, C3200, P2800, C3100, P3100]),
                          st.integers(-5, 5)), min_size=1, max_size=12))
def test_incremental_exposure_equals_from_scratch(moves: list[tuple[str, int]]) -> None:
    w = pm_world()
    marks = Marks(w.state, T0)
    pos: dict[str, int] = {}
    exps = {"ETH": Exposure()}
    for name, n in moves:
        old = pos.get(name, 0)
        new = old + n * U
        row, rows = marks.row(name), marks.scenarios(name)
        loss = exps["ETH"].loss_after(old, new, row.mark_lo, row.mark_hi, rows)
        exps["ETH"].move(old, new, row.mark_lo, row.mark_hi, rows)
        assert loss == max(0, exps["ETH"].value - min(exps["ETH"].values))
        pos[name] = new
        pos = {k: q for k, q in pos.items() if q}
        scratch = portfolio_margin(marks, 0, pos)
        e = exps["ETH"]
        if not pos:
            assert e.value == 0 and e.values == [0] * 27 and e.short == 0
            continue
        from sequencer.core.portfolio import of_exposures
        assert of_exposures(marks, 0, exps) == scratch


# -- SetMarginMode -----------------------------------------------------------------------------

def test_set_margin_mode_round_trips_and_is_refused_precisely() -> None:
    w = pm_world()
    eng, acct = w.engine, w.state.accounts[A.address]
    m = SetMarginMode(A.address, PORTFOLIO, 0)
    tx = MarginModeTx(m, w.sign(A, m))
    assert decode_tx(encode_tx(tx)) == tx
    assert code(eng.set_margin_mode, m, w.sign(B, m)) == "signer_mismatch"
    assert code(eng.set_margin_mode, SetMarginMode(A.address, 2, 0),
                w.sign(A, SetMarginMode(A.address, 2, 0))) == "bad_margin_mode"
    assert code(eng.set_margin_mode, SetMarginMode(A.address, 1, 5),
                w.sign(A, SetMarginMode(A.address, 1, 5))) == "bad_margin_nonce"
    unknown = Key(999)
    mu = SetMarginMode(unknown.address, 1, 0)
    assert code(eng.set_margin_mode, mu, w.sign(unknown, mu)) == "unknown_account"
    eng.set_margin_mode(m, w.sign(A, m))
    assert (acct.margin_mode, acct.margin_nonce) == (PORTFOLIO, 1)
    assert code(eng.set_margin_mode, m, w.sign(A, m)) == "bad_margin_nonce"  # no replay
    assert eng.end_block()[-1] == tx
    view = eng.account_view(A.address)
    assert (view.marginMode, view.marginNonce) == (PORTFOLIO, 1)
    set_mode(w, A, STANDARD)
    assert acct.margin_mode == STANDARD and acct.margin_nonce == 2


def test_session_keys_cannot_change_the_margin_mode() -> None:
    from sequencer.core import SessionKey
    w = pm_world()
    sk = Key(777)
    reg = SessionKey(A.address, sk.address, T0 + 3600)
    w.engine.session_key(reg, w.sign(A, reg))
    m = SetMarginMode(A.address, PORTFOLIO, 0)
    assert code(w.engine.set_margin_mode, m, w.sign(sk, m)) == "signer_mismatch"


def test_rules_before_version_3_have_no_margin_modes() -> None:
    w = World(schedule=((0, 2),))
    m = SetMarginMode(A.address, PORTFOLIO, 0)
    assert code(w.engine.set_margin_mode, m, w.sign(A, m)) == "margin_mode_unavailable"


def test_portfolio_mode_lets_a_spread_trade_that_standard_margin_refuses() -> None:
    """A writes 10 call spreads with just enough collateral for portfolio margin; in standard
    mode the short leg alone is refused."""
    w = pm_world()
    poor = Key(4242)
    marks = Marks(w.state, T0)
    book = {CALL: -10 * U, C3200: 10 * U}
    need = portfolio_margin(marks, 0, book)
    from sequencer.core.margin import positions_margin
    std = positions_margin(0, [(q, marks.row(n)) for n, q in book.items()])
    row_c, row_w = marks.row(CALL), marks.row(C3200)
    tick = w.state.instruments[CALL].tick_size
    p_wing = -(-row_w.mark_hi // tick) * tick    # buys the wing at (just above) its mark
    p_body = row_c.mark_lo // tick * tick         # sells the body at (just below) its mark
    # enough to pay for the wings (premium and fee) and for the portfolio requirement
    funds = max(need.im, 10 * p_wing + 50 * U) + 100 * U
    w.engine.deposit(poor.address, funds, w.deposits)
    w.deposits += 1
    assert funds < std.im
    # buy the wing first (no margin), then sell the body: refused in standard mode
    trade(w, B, poor, C3200, False, 10 * U, p_wing)
    n = 5000
    o_sell = dict(instrument=CALL, is_buy=False, price=p_body, amount=10 * U, tif=1)
    w.place(B, instrument=CALL, is_buy=True, price=o_sell["price"], amount=10 * U, nonce=n)
    assert code(w.place, poor, nonce=n + 1, **o_sell) == "insufficient_margin"
    set_mode(w, poor, PORTFOLIO)
    r = w.place(poor, nonce=n + 2, **o_sell)
    assert r.fills and w.state.accounts[poor.address].positions == book
    # switching back to standard is refused: the account cannot meet it
    m = SetMarginMode(poor.address, STANDARD, 1)
    assert code(w.engine.set_margin_mode, m, w.sign(poor, m)) == "insufficient_margin"
    # a withdrawal is checked in portfolio mode: all but the requirement can go, no more
    acct = w.state.accounts[poor.address]
    m = margin(w.engine.ctx.marks(w.state), acct)
    spare = m.equity - m.im
    assert spare > 0
    wd = Withdraw(poor.address, poor.address, min(spare + 1, acct.collateral), 0)
    assert code(w.engine.withdraw, wd, w.sign(poor, wd)) == "insufficient_margin"
    wd = Withdraw(poor.address, poor.address, spare, 0)
    w.engine.withdraw(wd, w.sign(poor, wd))


def test_open_orders_count_as_in_standard_margin() -> None:
    """In portfolio mode a resting order adds what it adds to the standard requirement."""
    w = pm_world()
    set_mode(w, A, PORTFOLIO)
    trade(w, A, B, CALL, False, U, 100 * U)   # A short 1 call
    eng = w.engine
    before = eng.account_view(A.address)
    w.place(A, instrument=CALL, is_buy=False, price=150 * U, amount=2 * U, nonce=1)
    after = eng.account_view(A.address)
    row = eng.ctx.marks(w.state).row(CALL)
    from sequencer.core.openorders import requirement
    add = requirement(-U, [(False, 150 * U, 2 * U)], row) - requirement(-U, [], row)
    assert after.initialMargin - before.initialMargin == add
    assert after.maintenanceMargin == before.maintenanceMargin
    assert before.portfolio and before.portfolio[0].underlying == "ETH"


def test_switching_with_open_orders_counts_them() -> None:
    w = pm_world()
    poor = Key(4343)
    w.fund(poor, 1_000 * U)
    w.place(poor, instrument=CALL, is_buy=False, price=100 * U, amount=U, nonce=1)
    # portfolio figures of no position are 0, the order's standard add-on stays
    set_mode(w, poor, PORTFOLIO)
    v = w.engine.account_view(poor.address)
    assert v.marginMode == PORTFOLIO and v.initialMargin > 0


# -- liquidation uses the account's mode -------------------------------------------------------

def test_liquidation_detection_uses_portfolio_figures() -> None:
    """Two accounts hold the same call spread with the same collateral: after a rally the
    standard one is below its maintenance margin and liquidated, the portfolio one is not."""
    w = pm_world()
    eng = w.engine
    s, p = Key(5151), Key(5252)
    for k in (s, p):
        w.fund(k, 60_000 * U)
    set_mode(w, p, PORTFOLIO)
    for k in (s, p):
        trade(w, B, k, C3200, False, 10 * U, 200 * U)
        trade(w, B, k, CALL, True, 10 * U, 50 * U)
    marks = eng.ctx.marks(w.state)
    for k in (s, p):
        assert w.state.accounts[k.address].positions == {CALL: -10 * U, C3200: 10 * U}
    # after a 10% rally, drain collateral to between the portfolio and the standard MM
    eng.end_block()
    eng.begin_block(T0 + 1)
    w.feed_all(SPOT * 110 // 100, T0 + 1)
    marks = eng.ctx.marks(w.state)
    for k in (s, p):
        acct = w.state.accounts[k.address]
        pm = margin_of(marks, PORTFOLIO, acct.collateral, acct.positions)
        std = margin_of(marks, STANDARD, acct.collateral, acct.positions)
        assert pm.mm < std.mm
        acct.collateral -= pm.equity - (pm.mm + std.mm) // 2  # between the two MMs
    marks.forget()
    std_m = margin(marks, w.state.accounts[s.address])
    pm_m = margin(marks, w.state.accounts[p.address])
    assert std_m.equity < std_m.mm and pm_m.equity >= pm_m.mm
    eng.end_block()
    txs = eng.begin_block(T0 + 2)
    assert AuctionStartTx(s.address) in txs and AuctionStartTx(p.address) not in txs
    # in liquidation: the mode is frozen
    m = SetMarginMode(s.address, PORTFOLIO, 0)
    assert code(eng.set_margin_mode, m, w.sign(s, m)) == "account_in_liquidation"


def test_replay_checks_margin_mode_blocks() -> None:
    """Blocks with SetMarginMode and portfolio-margined fills replay (the verifier's code) to
    the same accounts; a SetMarginMode signed by someone else is refused by the replay."""
    from sequencer.core.chain import BadBlock
    from tests.sequencer.core.test_liquidation import Flow, _replay_with
    f = Flow(schedule=((0, 3),))
    w = f.w
    set_mode(w, A, PORTFOLIO)
    f.block(SPOT)
    trade(w, B, A, CALL, True, U, 100 * U)
    f.block(SPOT)
    set_mode(w, A, STANDARD)
    f.replay()
    assert w.state.accounts[A.address].margin_nonce == 2

    def forge(i: int, txs: list) -> list:
        return [MarginModeTx(t.setMarginMode, w.sign(C, t.setMarginMode))
                if isinstance(t, MarginModeTx) else t for t in txs]
    e = _replay_with(f, forge)
    assert isinstance(e, BadBlock) and "signature" in str(e)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([CALL, PUT, C3200, P2800, C3100, P3100]),
                       st.integers(-10**13, 10**13), max_size=6),
       st.integers(0, 10**15), st.booleans(), st.integers(0, 5))
def test_marks_margin_is_the_sum_of_its_positions(book, collateral, stale, warm) -> None:
    """Marks.margin (the liquidation scan's one-pass sum) equals the per-position definitions
    (value, im_of, mm_of), with rows priced before or on the way; None when a row has no
    price (the feeds are stale)."""
    from sequencer.core.margin import im_of, mm_of, value
    w = pm_world()
    marks = Marks(w.state, T0 + (10**6 if stale else 0))
    for name in list(book)[:warm]:
        marks.row(name)
    got = marks.margin(collateral, book)
    rows = {n: Marks(w.state, marks.now).row(n) for n in book}
    if any(r is None for r in rows.values()):
        assert got is None and stale
        return
    assert got == (collateral + sum(value(q, rows[n]) for n, q in book.items()),
                   sum(im_of(q, rows[n]) for n, q in book.items()),
                   sum(mm_of(q, rows[n]) for n, q in book.items()))
