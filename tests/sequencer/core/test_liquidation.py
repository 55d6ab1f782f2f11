"""Liquidation (design.md "Risk", docs/liquidation.md): detection at a block's marks, the Dutch
auction and its price, partial and full takes, the insurance fund's takeover, the shortfall and
its haircut, the fee share, rules version 1 without any of it, and the replay's detection check
(each refusal with its code)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.core import (
    Liquidate,
    LiquidateTx,
    Withdraw,
    decode_tx,
    encode_tx,
    genesis,
    insurance,
    liquidation,
    make_instrument,
)
from sequencer.core.accounttree import AccountTree
from sequencer.core.chain import BadBlock, replay_block, touched_leaves
from sequencer.core.header import ZERO32, Header
from sequencer.core.margin import value
from sequencer.core.state import account_leaf, set_position
from sequencer.core.txs import AuctionEndTx, AuctionStartTx, FillTx, TakeoverTx
from sequencer.errors import OptrollupError
from tests.sequencer.core.core_world import CALL, PUT, T0, USERS, Key, World, order
from tests.sequencer.core.test_portfolio import C3100, C3200, P2800, P3100, pm_world

B, C, D = USERS[1], USERS[2], USERS[3]
U = 10**6
PPM = 10**6


def code(fn, *a, **kw) -> str:
    with pytest.raises(OptrollupError) as e:
        fn(*a, **kw)
    return e.value.code


class Flow:
    """A World whose blocks are kept (time, txs), so the tests can replay them."""

    def __init__(self, schedule: tuple[tuple[int, int], ...] = ((0, 2),)) -> None:
        self.w = World(schedule=schedule)
        self.blocks: list[tuple[int, list]] = []
        self.t = T0
        self.nonce = 100

    def block(self, spot: int | None = None, dt: int = 1) -> list:
        """Seal; the next block starts `dt` s later (its detection runs), then feeds `spot`."""
        eng = self.w.engine
        self.blocks.append((eng.now, eng.end_block()))
        self.t += dt
        started = eng.begin_block(self.t)
        if spot is not None:
            self.w.feed_all(spot, self.t)
        return started

    def bid(self, who: Key, account: Key, fraction: int, max_price: int = 10**15,
            signer: Key | None = None) -> liquidation.Take:
        self.nonce += 1
        msg = Liquidate(who.address, account.address, fraction, max_price, self.nonce)
        return self.w.engine.liquidate(msg, self.w.sign(signer or who, msg))

    def margin(self, key: Key):
        w = self.w
        return liquidation.margin(w.engine.ctx.marks(w.state), w.state.accounts[key.address])

    def replay(self) -> None:
        """Replay the kept blocks with chain.replay_block (the verifier's code)."""
        w = self.w
        self.blocks.append((w.engine.now, list(w.engine.txs)))
        st = genesis(w.config, [make_instrument(CALL), make_instrument(PUT)])
        tree = AccountTree()
        tree.update({st.index[a]: account_leaf(a, x) for a, x in st.accounts.items()})
        st.touched.clear()
        head = Header(0, ZERO32, T0, ZERO32, tree.root(), ZERO32, 0)
        for ts, txs in self.blocks:
            if txs:
                head = replay_block(st, tree, head, ts, [encode_tx(t) for t in txs])
        self.blocks.pop()
        assert st.accounts == w.state.accounts and st.auctions == w.state.auctions
        assert st.channels == w.state.channels
        assert st.shortfall == w.state.shortfall


def short_account(f: Flow, collateral: int = 500 * U, amount: int = U, price: int = 380 * U) -> Key:
    """A fresh account with `collateral` per contract that sold `amount` calls to B at `price`
    and keeps a bid resting."""
    w = f.w
    poor = Key(500)
    w.fund(poor, collateral * amount // U)
    w.place(poor, is_buy=False, price=price, amount=amount, nonce=1)
    w.place(B, is_buy=True, price=price, amount=amount, nonce=1, tif=1)
    w.place(poor, instrument=PUT, price=U, amount=10_000, nonce=2)  # a resting bid
    assert w.state.accounts[poor.address].positions == {CALL: -amount}
    return poor


def auctioned(f: Flow, **short: int) -> Key:
    """A `short_account(f, **short)` in liquidation: feeds at 3,300 then 3,600, then the block
    whose detection starts its auction."""
    poor = short_account(f, **short)
    f.block(3300 * U)
    f.block(3600 * U)
    f.block()
    return poor


def deposits(w: World) -> int:
    return sum(w.state.accounts[a].collateral for a in w.state.accounts) - w.state.shortfall


def test_discount_curve_rounds_up_and_caps() -> None:
    d = liquidation.discount_ppm
    assert [d(100, 100 + e) for e in (0, 1, 450, 899, 900, 10_000)] == \
        [50_000, 50_278, 175_000, 299_723, 300_000, 300_000]
    assert d(100, 50) == 50_000  # never before the start


def test_detection_starts_an_auction_cancels_orders_and_refuses_risk() -> None:
    f = Flow()
    w = f.w
    poor = short_account(f)
    assert w.engine.by_account.get(poor.address)
    assert f.block(3300 * U) == [] and f.block(3600 * U) == []
    m = f.margin(poor)
    assert 0 < m.equity < m.mm
    txs = f.block()
    assert txs == [AuctionStartTx(poor.address)]
    assert w.state.auctions == {poor.address: f.t}
    assert not w.engine.by_account.get(poor.address)  # open orders cancelled
    assert code(w.place, poor, is_buy=False, price=400 * U, nonce=3) == "account_in_liquidation"
    assert code(w.place, poor, instrument=PUT, price=U, amount=10_000, nonce=4) \
        == "account_in_liquidation"
    wd = Withdraw(poor.address, poor.address, U, 0)
    assert code(w.engine.withdraw, wd, w.sign(poor, wd)) == "account_in_liquidation"
    # reducing is allowed: buy back part of the short (B sells)
    w.place(B, is_buy=False, price=1200 * U, amount=10_000, nonce=2)
    r = w.place(poor, is_buy=True, price=1200 * U, amount=10_000, nonce=5, tif=1)
    assert r.filledAmount == 10_000
    assert f.block() == []  # already in liquidation: nothing new
    f.replay()


def test_partial_take_pays_the_discounted_value_and_full_take_ends_it() -> None:
    f = Flow()
    w = f.w
    poor = auctioned(f, amount=2 * U)
    start = w.state.auctions[poor.address]
    f.block(3600 * U, dt=300)  # 5 minutes into the auction
    acct = w.state.accounts[poor.address]
    coll0, q0 = acct.collateral, acct.positions[CALL]
    m0 = f.margin(poor)
    assert 0 < m0.equity < m0.mm
    c0 = w.state.accounts[C.address].collateral
    total0 = deposits(w)
    take = f.bid(C, poor, 250_000)
    d = liquidation.discount_ppm(start, f.t)
    assert take.discount == d == 50_000 + -(-250_000 * 300 // 900)
    row = w.engine.ctx.marks(w.state).row(CALL)
    moved_coll = -(-coll0 * 250_000 // PPM)
    assert take.positions == ((CALL, q0 // 4),) and take.collateral == moved_coll
    assert take.value == moved_coll + value(q0 // 4, row)
    assert take.price == take.value * (PPM - d) // PPM
    assert acct.positions[CALL] == q0 - q0 // 4
    assert acct.collateral == coll0 - moved_coll + take.price
    assert w.state.accounts[C.address].collateral == c0 + moved_coll - take.price
    assert w.state.accounts[C.address].positions[CALL] == q0 // 4
    assert not take.ended and poor.address in w.state.auctions
    assert deposits(w) == total0
    # the price is what the design says: about f·V·(1 − d), never more for the account
    assert take.price <= m0.equity * 250_000 * (PPM - d) // PPM**2 + 1
    # the rest, at once: the auction ends with no positions left
    take2 = f.bid(D, poor, PPM)
    assert take2.ended and poor.address not in w.state.auctions
    assert not acct.positions and acct.collateral == take2.price
    assert w.state.liquidate_nonces[D.address] == f.nonce + 1
    assert deposits(w) == total0
    f.replay()


@pytest.mark.parametrize("case,want", [
    ("fraction0", "bad_fraction"), ("fraction_big", "bad_fraction"),
    ("self", "self_liquidation"), ("not_in", "not_in_liquidation"),
    ("max_price", "price_above_max"), ("negative_max", "price_above_max"),
    ("nonce", "liquidate_nonce_used"), ("signer", "signer_mismatch"),
    ("margin", "insufficient_margin"), ("tiny", "fraction_too_small"),
    ("unknown", "unknown_account"),
])
def test_bid_refusals(case: str, want: str) -> None:
    f = Flow()
    w = f.w
    poor = auctioned(f)
    assert poor.address in w.state.auctions
    if case == "nonce":
        f.bid(C, poor, 100_000)
        f.nonce -= 1  # the same nonce again
    broke = Key(501)
    if case == "margin":
        w.fund(broke, 200 * U)  # can pay the price, not carry the short
    args = {
        "fraction0": (C, poor, 0), "fraction_big": (C, poor, PPM + 1),
        "self": (poor, poor, PPM), "not_in": (C, B, PPM),
        "max_price": (C, poor, PPM, 0), "negative_max": (C, poor, PPM, -1),
        "nonce": (C, poor, 100_000), "signer": (C, poor, PPM),
        "margin": (broke, poor, PPM), "tiny": (C, poor, 1),
        "unknown": (Key(777), poor, PPM),
    }[case]
    kw = {"signer": D} if case == "signer" else {}
    before = (dict(w.state.accounts[poor.address].positions), w.state.accounts[poor.address].collateral)
    assert code(f.bid, *args, **kw) == want
    assert before == (dict(w.state.accounts[poor.address].positions),
                      w.state.accounts[poor.address].collateral)


def test_recovered_account_leaves_liquidation() -> None:
    f = Flow()
    w = f.w
    poor = auctioned(f)
    assert poor.address in w.state.auctions
    w.fund(poor, 5_000 * U)  # a deposit puts it back above initial margin
    assert f.block() == [AuctionEndTx(poor.address)]
    assert poor.address not in w.state.auctions
    m = f.margin(poor)
    assert m.equity >= m.im >= m.mm
    w.place(poor, is_buy=False, price=2000 * U, amount=10_000, nonce=9)  # trades again
    f.replay()


def test_insolvent_account_is_taken_over_and_the_shortfall_recorded() -> None:
    f = Flow()
    w = f.w
    poor = short_account(f, amount=5 * U, collateral=460 * U)
    fund = w.state.accounts[w.config.insurance_fund]
    f.block(3000 * U)
    f.block(dt=61)  # every feed stale: no marks, no detection; then a gap up
    w.feed_all(4400 * U, f.t)
    m = f.margin(poor)
    assert m.equity <= 0
    fund_before, total = fund.collateral, deposits(w)
    coll = w.state.accounts[poor.address].collateral
    txs = f.block()
    assert txs == [AuctionStartTx(poor.address), TakeoverTx(poor.address)]
    acct = w.state.accounts[poor.address]
    assert acct.collateral == 0 and not acct.positions and poor.address not in w.state.auctions
    assert fund.positions == {CALL: -5 * U}
    s = w.state.shortfall
    assert abs(s - (-m.equity - fund_before)) < U  # (the marks of the next second)
    assert fund.collateral == fund_before + coll + s
    # the fund's collateral now covers the liability it took over, at these marks, exactly
    fm = liquidation.margin(w.engine.ctx.marks(w.state), fund)
    assert fm.equity == 0
    assert deposits(w) == total and w.state.collateral_total == w.total()
    assert f.block() == []  # the fund itself is never liquidated
    f.replay()


def test_haircut_while_a_shortfall_is_open_and_fees_repay_it() -> None:
    w = World()
    st = w.state
    st.shortfall = 1_000 * U  # as after a takeover the fund could not absorb
    st.accounts[w.config.insurance_fund].collateral += 1_000 * U
    st.collateral_total = w.total()
    a = USERS[0]
    acct = st.accounts[a.address]
    c0, C0 = acct.collateral, st.collateral_total
    wd = Withdraw(a.address, a.address, 100 * U, 0)
    w.engine.withdraw(wd, w.sign(a, wd))
    debit = 100 * U + -(-100 * U * 1_000 * U // (C0 - 1_000 * U))
    assert acct.collateral == c0 - debit
    assert st.withdrawal_leaves[-1].amount == 100 * U  # L1 pays the signed amount
    assert st.shortfall == 1_000 * U - (debit - 100 * U)
    assert w.total() - st.shortfall == C0 - 1_000 * U - 100 * U == st.collateral_total - st.shortfall
    # the fund's share of a fee pays the shortfall down first
    s0, f0 = st.shortfall, st.accounts[w.config.insurance_fund].collateral
    fee0 = st.accounts[w.config.fee_account].collateral
    w.place(B, is_buy=False, price=300 * U, amount=U)
    r = w.place(C, price=300 * U, amount=U, tif=1)
    assert r.fills
    # fees 0.3 + 0.9 USDC (100 and 300 ppm of 3000 USDC): 20% of each repays the shortfall
    assert s0 - st.shortfall == 60_000 + 180_000
    assert st.accounts[w.config.fee_account].collateral - fee0 == 240_000 + 720_000
    assert st.accounts[w.config.insurance_fund].collateral == f0
    assert st.collateral_total == w.total()


def test_withdrawal_debit_formula_and_insolvency() -> None:
    w = World()
    st = w.state
    assert insurance.withdrawal_debit(st, 7 * U) == 7 * U
    st.shortfall, st.collateral_total = 10, 110
    assert insurance.withdrawal_debit(st, 50) == 50 + 5  # ceil(50·10/100)
    assert insurance.withdrawal_debit(st, 1) == 1 + 1    # rounded against the account
    st.shortfall, st.collateral_total = 3, 4
    assert insurance.withdrawal_debit(st, 100) == 103    # never more than the shortfall
    st.shortfall = st.collateral_total = 5
    assert code(insurance.withdrawal_debit, st, 1) == "insolvent"


def test_fee_share_goes_to_the_fund() -> None:
    w = World()
    st = w.state
    fund, feeacct = st.accounts[w.config.insurance_fund], st.accounts[w.config.fee_account]
    w.place(B, is_buy=False, price=300 * U, amount=U)
    w.place(C, price=300 * U, amount=U, tif=1)
    # fees 0.3 and 0.9 USDC (100 and 300 ppm of 3000 USDC); 20% of each to the fund
    assert fund.collateral == 60_000 + 180_000
    assert feeacct.collateral == 240_000 + 720_000


def test_rules_version_1_has_no_liquidation() -> None:
    f = Flow(schedule=((0, 1),))
    w = f.w
    assert w.config.insurance_fund not in w.state.accounts
    poor = short_account(f)
    f.block(3300 * U)
    f.block(3600 * U)
    assert f.block() == [] and not w.state.auctions
    assert w.state.accounts[w.config.fee_account].collateral == 1_200_000  # every fee, no share
    msg = Liquidate(C.address, poor.address, PPM, 10**12, 1)
    assert code(w.engine.liquidate, msg, w.sign(C, msg)) == "liquidation_unavailable"
    f.replay()


def test_liquidate_tx_encoding_round_trips_negative_prices() -> None:
    tx = LiquidateTx(Liquidate(B.address, C.address, 5, -(2**63), 2**64 - 1), b"\x01" * 65)
    raw = encode_tx(tx)
    assert raw[1] == 10 and decode_tx(raw) == tx
    for t in (AuctionStartTx(B.address), TakeoverTx(B.address), AuctionEndTx(B.address)):
        assert decode_tx(encode_tx(t)) == t
    with pytest.raises(OptrollupError):
        encode_tx(LiquidateTx(tx.liquidate._replace(maxPrice=-(2**63) - 1), tx.signature))


# -- the replay's detection check (what the verifier enforces) --------------------------------

def _liquidation_flow() -> tuple[Flow, Key]:
    f = Flow()
    poor = auctioned(f, amount=2 * U)
    f.bid(C, poor, 250_000)
    return f, poor


def _replay_with(f: Flow, edit) -> BadBlock:
    """Replay the flow's blocks with block `i`'s tx list edited by `edit(i, txs)`."""
    w = f.w
    blocks = f.blocks + [(w.engine.now, list(w.engine.txs))]
    st = genesis(w.config, [make_instrument(CALL), make_instrument(PUT)])
    tree = AccountTree()
    tree.update({st.index[a]: account_leaf(a, x) for a, x in st.accounts.items()})
    head = Header(0, ZERO32, T0, ZERO32, tree.root(), ZERO32, 0)
    with pytest.raises(BadBlock) as e:
        for i, (ts, txs) in enumerate(blocks):
            txs = edit(i, list(txs))
            if txs:
                head = replay_block(st, tree, head, ts, [encode_tx(t) for t in txs])
    return e.value


def test_replay_refuses_an_omitted_auction_start() -> None:
    f, poor = _liquidation_flow()
    n = len(f.blocks)  # the open block starts with the AuctionStart, then the bid
    e = _replay_with(f, lambda i, txs: txs[1:] if i == n else txs)
    assert e.tx_index == 0 and "liquidation detection" in str(e)


def test_replay_refuses_a_status_tx_outside_the_detection() -> None:
    f, poor = _liquidation_flow()
    n = len(f.blocks)
    e = _replay_with(f, lambda i, txs: txs + [AuctionStartTx(poor.address)] if i == n else txs)
    assert e.tx_index == 2 and "outside the block's liquidation detection" in str(e)


def test_replay_refuses_a_tampered_liquidate() -> None:
    f, poor = _liquidation_flow()
    n = len(f.blocks)

    def more(i: int, txs: list) -> list:
        if i == n:
            t = txs[1]
            assert isinstance(t, LiquidateTx)
            txs[1] = LiquidateTx(t.liquidate._replace(fractionPpm=PPM), t.signature)
        return txs

    e = _replay_with(f, more)
    assert e.tx_index == 1 and "LiquidateTx rejected [signer_mismatch]" in str(e)


def test_replay_refuses_a_fill_that_adds_risk_in_liquidation() -> None:
    """A sequencer that lets an account in liquidation sell more calls is caught."""
    f, poor = _liquidation_flow()
    w = f.w
    o = order(poor, is_buy=False, price=2000 * U, amount=10_000, nonce=50, expiry=f.t + 600)
    t = order(B, is_buy=True, price=2000 * U, amount=10_000, nonce=50, expiry=f.t + 600, tif=1)
    from sequencer.core.txs import SignedOrder
    fill = FillTx(SignedOrder(o, w.sign(poor, o)), SignedOrder(t, w.sign(B, t)), 10_000, 2000 * U)
    n = len(f.blocks)
    e = _replay_with(f, lambda i, txs: txs + [fill] if i == n else txs)
    assert "account_in_liquidation" in str(e)


def test_worked_example_of_docs_liquidation_md() -> None:
    """Every figure of the worked example in docs/liquidation.md."""
    f = Flow()
    w = f.w
    p = short_account(f, amount=2 * U)
    acct, fund = w.state.accounts[p.address], w.state.accounts[w.config.insurance_fund]
    assert acct.collateral == 1_759_400_000 and fund.collateral == 480_000
    assert w.state.accounts[w.config.fee_account].collateral == 1_920_000
    assert f.margin(p)[::2] == (1_012_392_520, 450_000_000)
    f.block(3300 * U)
    assert f.margin(p)[::2] == (639_365_040, 495_000_000)
    f.block(3600 * U)
    assert f.margin(p)[::2] == (203_964_134, 540_000_000)
    assert f.block() == [AuctionStartTx(p.address)]
    f.block(3600 * U, dt=300)
    q = liquidation.quote(w.state, w.engine.ctx.marks(w.state), p.address)
    assert (q.discount, q.equity, q.price) == (133_334, 203_985_450, 176_787_254)
    assert w.engine.ctx.marks(w.state).row(CALL).mark_hi == 777_707_275
    c0 = w.state.accounts[C.address].collateral
    t = f.bid(C, p, 500_000)
    assert (t.collateral, t.value, t.price) == (879_700_000, 101_992_725, 88_393_627)
    assert w.state.accounts[C.address].collateral - c0 == 791_306_373
    assert acct.collateral == 968_093_627 and f.margin(p)[::2] == (190_386_352, 270_000_000)
    t = f.bid(C, p, PPM)
    assert (t.value, t.price, t.ended) == (190_386_352, 165_001_378, True)
    assert acct.collateral == 165_001_378 and not acct.positions
    # the takeover variant
    g = Flow()
    p = short_account(g, amount=2 * U)
    g.block(3300 * U)
    g.block(3600 * U)
    g.block()
    g.block(3960 * U)
    assert g.block() == [TakeoverTx(p.address)]
    fund = g.w.state.accounts[g.w.config.insurance_fund]
    assert g.w.state.shortfall == 381_027_364 and fund.collateral == 2_140_907_364
    assert fund.positions == {CALL: -2 * U}


def test_no_bid_once_the_account_is_back_at_initial_margin_or_empty() -> None:
    """Between the recovery and the next block's AuctionEnd no one buys at a discount."""
    f = Flow()
    w = f.w
    poor = auctioned(f)
    w.fund(poor, 5_000 * U)  # back above IM: the auction ends at the next block
    assert code(f.bid, C, poor, 500_000) == "auction_over"
    assert f.block() == [AuctionEndTx(poor.address)]
    f.replay()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.dictionaries(st.sampled_from(["C", "P", "C3200", "P2800", "C3100", "P3100"]),
                                          st.integers(-3 * 10**6, 3 * 10**6), max_size=4),
                          st.integers(0, 2 * 10**9), st.booleans(), st.booleans()),
                max_size=7))
def test_the_scan_picks_exactly_the_accounts_its_definition_names(accounts) -> None:
    """liquidation.scan against its definition written over every account (not over each
    instrument's holders, as scan walks them): auctions end or are taken over, and every other
    account but the fund holding a short below maintenance starts one (taken over at once when
    its equity is <= 0), in leaf-index order. Generated books, collateral, margin modes and
    open auctions."""
    from sequencer.core.liquidation import margin as margin_at, scan
    from sequencer.core.marks import Marks
    from sequencer.core.portfolio import PORTFOLIO
    from sequencer.core.state import account as new_account, set_position
    names = {"C": CALL, "P": PUT, "C3200": C3200, "P2800": P2800, "C3100": C3100, "P3100": P3100}
    w = pm_world()
    st_ = w.state
    fund = st_.config.insurance_fund
    for i, (book, collateral, portfolio, in_auction) in enumerate(accounts):
        a = USERS[i % len(USERS)].address if i < len(USERS) else bytes([0x70 + i]) * 20
        acct = new_account(st_, a)
        acct.collateral = collateral
        acct.margin_mode = PORTFOLIO if portfolio else 0
        for short, q in book.items():
            set_position(st_, a, acct, names[short], q)
        if in_auction:
            st_.auctions[a] = T0
    marks = Marks(st_, T0 + 5)
    want = []
    for a in sorted(st_.accounts, key=st_.index.__getitem__):
        acct, m = st_.accounts[a], margin_at(marks, st_.accounts[a])
        if a in st_.auctions:
            if not acct.positions or (m is not None and m.equity >= m.im):
                want.append(AuctionEndTx(a))
            elif m is not None and m.equity <= 0:
                want.append(TakeoverTx(a))
        elif a != fund and any(q < 0 for q in acct.positions.values()) and m is not None and m.equity < m.mm:
            want += [AuctionStartTx(a)] + ([TakeoverTx(a)] if m.equity <= 0 else [])
    assert scan(st_, marks) == want
    # the same with every margin priced ahead (a node's `Engine.prepare_scan`), and with
    # entries priced at other collateral, which must not be used
    from sequencer.core.liquidation import scan_margins
    known = scan_margins(st_, marks)
    assert scan(st_, marks, known) == want
    stale = {a: (mode, c + 1, m) for a, (mode, c, m) in known.items()}
    assert scan(st_, marks, stale) == want


def _ready_to_start(f: Flow) -> Key:
    """A short account whose auction the next block's detection starts; then what a node
    does just before a seal: the touched leaves taken (`touched` emptied) and the next
    block's marks and scan priced ahead (`Engine.prepare_scan`)."""
    poor = short_account(f)
    f.block(3300 * U)
    f.block(3600 * U)
    m = f.margin(poor)
    assert 0 < m.equity < m.mm
    eng = f.w.engine
    touched_leaves(f.w.state)
    assert eng.prepare_marks(f.t + 1, 10**6) and eng.prepare_scan(f.t + 1)
    marks, known = eng._next_scan
    assert known[poor.address][2] == liquidation.margin(marks, f.w.state.accounts[poor.address])
    return poor


def _healthy(f: Flow, poor: Key) -> None:
    """Doctor the margin priced ahead for `poor` to one above maintenance (mode and collateral
    kept): the detection then shows whether it used it."""
    known = f.w.engine._next_scan[1]
    mode, c, m = known[poor.address]
    known[poor.address] = (mode, c, m._replace(equity=m.mm + 1))


def test_margins_priced_ahead_start_the_same_auctions() -> None:
    """Nothing changed after `prepare_scan`: the detection starts the same auction as without
    it, and the blocks replay with the verifier's code."""
    f = Flow()
    poor = _ready_to_start(f)
    assert f.block() == [AuctionStartTx(poor.address)]
    f.replay()


def test_margins_priced_ahead_are_used_for_accounts_unchanged_since() -> None:
    f = Flow()
    poor = _ready_to_start(f)
    _healthy(f, poor)
    assert f.block() == []  # the doctored entry was used (a real one equals a fresh pricing)


def test_margins_priced_ahead_are_dropped_for_accounts_touched_since() -> None:
    """An account touched after `prepare_scan` (the node passes the seal's `touched` to
    `forget_scanned`; begin_block drops those its expiries touch) is priced again."""
    f = Flow()
    poor = _ready_to_start(f)
    _healthy(f, poor)
    st_, eng = f.w.state, f.w.engine
    st_.touched.add(poor.address)
    eng.forget_scanned(st_.touched)
    st_.touched.clear()
    assert f.block() == [AuctionStartTx(poor.address)]
    f2 = Flow()
    poor = _ready_to_start(f2)
    _healthy(f2, poor)
    f2.w.state.touched.add(poor.address)  # as a settlement at the block start would
    assert f2.block() == [AuctionStartTx(poor.address)]


def test_margins_priced_ahead_are_not_used_once_the_collateral_moved() -> None:
    """Belt and braces: an entry priced with other collateral (or another margin mode) is not
    used even if the account was somehow not reported as touched."""
    f = Flow()
    poor = _ready_to_start(f)
    _healthy(f, poor)
    f.w.state.accounts[poor.address].collateral -= 1
    assert f.block() == [AuctionStartTx(poor.address)]


def test_margins_priced_ahead_for_another_block_time_are_not_used() -> None:
    f = Flow()
    poor = _ready_to_start(f)
    _healthy(f, poor)
    assert f.block(dt=2) == [AuctionStartTx(poor.address)]
