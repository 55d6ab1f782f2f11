"""Hypothesis properties over random flows of orders, cancels, oracle moves, withdrawals, margin-mode switches,
liquidations and expiries: conservation (Σ collateral − shortfall = deposits − withdrawals)
after every transaction, zero-sum positions, no account below maintenance once its auction
ended or the insurance fund took it over, and byte-for-byte determinism of the engine and of
the verifier's replay of its blocks (`chain.replay_block`, detection check included)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sequencer.core.core_world import CALL, EXPIRY, PUT, SPOT, T0, USERS, World, make_config
from sequencer.core import (Cancel, CancelAll, Liquidate, SetMarginMode, Withdraw, apply, decode_tx, encode_tx,
                            genesis, make_instrument, prepare_block, state_bytes)
from sequencer.core.accounttree import AccountTree
from sequencer.core.chain import replay_block
from sequencer.core.header import ZERO32, Header
from sequencer.core.liquidation import margin
from sequencer.core.marks import Marks
from sequencer.core.state import account_leaf
from sequencer.core.txs import (AuctionEndTx, AuctionStartTx, DepositTx, FillTx, LiquidateTx,
                                SettleTx, TakeoverTx, WithdrawTx)
from sequencer.errors import OptrollupError

U = 10**6
ACCTS = USERS[:4]
FUNDS = 5_000 * U
SPREAD = [0, 2_000 * U, 4_500 * U, 4_700 * U]  # taken from the last two: some accounts run thin

rarely = st.sampled_from([False, False, False, False, True])
place = st.tuples(st.just("place"), st.integers(0, 3), st.sampled_from([CALL, PUT]), st.booleans(),
                  st.integers(25, 40), st.integers(1, 300), st.sampled_from([0, 0, 0, 1, 2]),
                  rarely, rarely)
cancel = st.tuples(st.just("cancel"), st.integers(0, 3), st.integers(0, 50))
cancel_all = st.tuples(st.just("cancel_all"), st.integers(0, 3), st.booleans())
move = st.tuples(st.just("move"), st.integers(-150, 150), st.integers(1, 120))
jump = st.tuples(st.just("jump"), st.integers(1, 12))
withdraw = st.tuples(st.just("withdraw"), st.integers(0, 3), st.integers(1, 3000))
liquidate = st.tuples(st.just("liquidate"), st.integers(0, 3),
                      st.sampled_from([1, 10_000, 250_000, 500_000, 1_000_000]), st.booleans())
short = st.tuples(st.just("short"), st.integers(1, 3), st.sampled_from([CALL, PUT]),
                  st.integers(1, 200))
mode = st.tuples(st.just("mode"), st.integers(0, 3), st.sampled_from([0, 1, 1]))
actions = st.lists(st.one_of(place, cancel, cancel_all, move, jump, withdraw, liquidate,
                             short, mode).filter(bool)
                   | place | place | place | place,
                   min_size=10, max_size=60)


def exposure_sums(exps: dict) -> dict:
    """An account's portfolio exposures per underlying as plain sums (empty ones left out)."""
    return {u: (e.value, e.values, e.short) for u, e in exps.items()
            if e.short or e.value or any(e.values)}


def run(acts: list[tuple], ahead: random.Random | None = None,
        used: list[int] | None = None) -> tuple[World, list[tuple[int, list]], int]:
    """Play `acts`; with `ahead`, the engine is also asked at random moments to price a later
    block's marks ahead (`Engine.prepare_marks`, at the right and at wrong times, before and
    after feeds), counting in `used` the blocks that started from such marks."""
    w = World(funds=FUNDS)
    eng = w.engine
    blocks: list[tuple[int, list]] = []
    now, spot, nonce, flows = T0, SPOT, 0, 0
    for a, thin in zip(ACCTS, SPREAD):  # some accounts run thin
        if thin:
            wd = Withdraw(a.address, a.address, thin, 0)
            eng.withdraw(wd, w.sign(a, wd))
            flows += thin
    eng.deposit(w.config.insurance_fund, 300 * U, w.deposits)  # the fund starts with a little
    ca_ts: dict[int, int] = {}

    def seal(t: int) -> None:
        blocks.append((eng.now, eng.end_block()))
        if ahead is not None and ahead.random() < 0.5:
            eng.prepare_marks(t, ahead.randint(0, 3))
        prepared = eng._next_marks
        eng.begin_block(t)
        if used is not None and prepared is not None and eng.ctx._marks is prepared:
            used.append(t)

    def check() -> None:
        deposits = sum(t.amount for _, txs in blocks for t in txs if isinstance(t, DepositTx))
        deposits += sum(t.amount for t in eng.txs if isinstance(t, DepositTx))
        assert w.total() - w.state.shortfall == deposits - flows
        assert w.state.collateral_total == w.total() and w.state.shortfall >= 0
        for name, holders in w.state.holders.items():
            assert sum(w.state.accounts[a].positions[name] for a in holders) == 0
        assert all(a.collateral >= 0 for a in w.state.accounts.values())
        assert w.config.insurance_fund not in w.state.auctions
        if ahead is not None:  # the marks in use (prepared or not) keep exact account sums
            m = eng.ctx.marks(w.state)
            fresh = Marks(w.state, m.now)
            for a, sums in m._pos.items():
                assert sums == fresh.positions(a, w.state.accounts[a]), a
            for a, exps in m._exp.items():
                again = fresh.exposures(a, w.state.accounts[a])
                assert exposure_sums(exps) == exposure_sums(again), a

    def next_seal(i: int) -> int:
        """The block time of the next seal the actions from `i` on will make."""
        for act in acts[i:]:
            if act[0] == "move":
                return now + act[2]
            if act[0] == "jump" and now < EXPIRY:
                return min(now + act[1] * 86400, EXPIRY) - 120
        return now + 1

    for i, act in enumerate(acts):
        kind = act[0]
        if ahead is not None and ahead.random() < 0.3:  # often trades follow before that seal
            eng.prepare_marks(ahead.choice([now, now + 1, next_seal(i), next_seal(i)]),
                              ahead.randint(0, 3))
        try:
            if kind == "place":
                _, i, name, buy, px, amt, tif, po, ro = act
                if name not in w.state.instruments:
                    continue
                nonce += 1
                w.place(ACCTS[i], instrument=name, is_buy=buy, price=px * 10 * U,
                        amount=amt * 10_000, nonce=nonce, expiry=now + 3600, tif=tif,
                        post_only=po and tif == 0, reduce_only=ro)
            elif kind == "cancel":
                _, i, j = act
                mine = [d for d, r in eng.open.items() if r.order.account == ACCTS[i].address]
                if mine:
                    c = Cancel(ACCTS[i].address, mine[j % len(mine)])
                    eng.cancel(c, w.sign(ACCTS[i], c))
            elif kind == "cancel_all":
                _, i, only_call = act
                ts = ca_ts[i] = max(ca_ts.get(i, now - 1) + 1, now)
                c = CancelAll(ACCTS[i].address, CALL if only_call else "", ts)
                eng.cancel_all(c, w.sign(ACCTS[i], c))
            elif kind == "move":
                _, pct, dt = act
                now += dt
                spot = max(100 * U, spot * (1000 + pct) // 1000)
                seal(now)
                w.feed_all(spot, now, vol=500_000 + 10_000 * (pct % 7))
                now += 1
                seal(now)  # a block whose detection sees the new marks
            elif kind == "jump":
                if now >= EXPIRY:
                    continue
                now = min(now + act[1] * 86400, EXPIRY)
                seal(now - 120)
                w.feed_all(spot, now - 120)
                if now == EXPIRY:
                    now += 60  # the first block at which the expiry can settle
                seal(now)
                w.feed_all(spot, now)
            elif kind == "withdraw":
                _, i, amt = act
                a = ACCTS[i]
                wd = Withdraw(a.address, a.address, amt * U, w.state.accounts[a.address].withdrawal_nonce)
                eng.withdraw(wd, w.sign(a, wd))
                flows += amt * U
            elif kind == "short":  # account i sells to account 0 at the mark (rounded up)
                _, i, name, amt = act
                m = eng.ctx.marks(w.state).mark(name) if name in w.state.instruments else None
                if m is None:
                    continue
                px = max(U // 10, -(-m.mark_hi // (U // 10)) * (U // 10))
                nonce += 2
                w.place(ACCTS[i], instrument=name, is_buy=False, price=px, amount=amt * 10_000,
                        nonce=nonce, expiry=now + 3600)
                w.place(ACCTS[0], instrument=name, is_buy=True, price=px, amount=amt * 10_000,
                        nonce=nonce + 1, expiry=now + 3600, tif=1)
            elif kind == "mode":  # standard or portfolio margin (docs/margin.md)
                _, i, m = act
                acct = w.state.accounts[ACCTS[i].address]
                sm = SetMarginMode(ACCTS[i].address, m, acct.margin_nonce)
                eng.set_margin_mode(sm, w.sign(ACCTS[i], sm))
            elif kind == "liquidate":
                _, i, fraction, cheap = act
                if not w.state.auctions:
                    continue
                target = min(w.state.auctions)
                nonce += 1
                msg = Liquidate(ACCTS[i].address, target, fraction, 0 if cheap else 10**15, nonce)
                eng.liquidate(msg, w.sign(ACCTS[i], msg))
        except OptrollupError:
            pass
        check()
    blocks.append((eng.now, eng.end_block()))
    return w, blocks, flows


def random_flow(seed: int, n: int) -> list[tuple]:
    """A realistic mix (mostly crossing GTC/IOC orders) drawn from a seeded PRNG: hypothesis picks
    the seed, the flow itself is well spread out."""
    rng = random.Random(seed)
    out: list[tuple] = []
    for _ in range(n):
        x = rng.random()
        if x < 0.66:
            out.append(("place", rng.randrange(4), rng.choice([CALL, PUT]), rng.random() < 0.5,
                        rng.randint(25, 40), rng.randint(1, 300), rng.choice([0, 0, 0, 1, 2]),
                        rng.random() < 0.1, rng.random() < 0.1))
        elif x < 0.74:
            out.append(("cancel", rng.randrange(4), rng.randrange(50)))
        elif x < 0.77:
            out.append(("cancel_all", rng.randrange(4), rng.random() < 0.5))
        elif x < 0.85:
            out.append(("move", rng.randint(-150, 150), rng.randint(1, 120)))
        elif x < 0.88:
            out.append(("jump", rng.randint(1, 20)))
        elif x < 0.90:
            out.append(("withdraw", rng.randrange(4), rng.randint(1, 3000)))
        elif x < 0.92:
            out.append(("short", rng.randint(1, 3), rng.choice([CALL, PUT]), rng.randint(1, 200)))
        elif x < 0.94:
            out.append(("mode", rng.randrange(4), rng.choice([0, 1, 1])))
        else:
            out.append(("liquidate", rng.randrange(4),
                        rng.choice([1, 10_000, 250_000, 500_000, 1_000_000]), rng.random() < 0.1))
    return out


def risky_flow(seed: int, n: int) -> list[tuple]:
    """A flow that liquidates: the thin accounts sell options to the rich one, the spot moves in
    steps of up to ±10% (feeds stay fresh) or jumps up to ±35% after a gap, and bids come often."""
    rng = random.Random(seed)
    out: list[tuple] = []
    for _ in range(n):
        x = rng.random()
        if x < 0.03:
            out.append(("mode", rng.randrange(4), rng.choice([0, 1, 1])))
        elif x < 0.25:
            out.append(("short", rng.randint(1, 3), rng.choice([CALL, PUT]), rng.randint(10, 200)))
        elif x < 0.50:
            gap = rng.random() < 0.2
            out.append(("move", rng.randint(-350, 350) if gap else rng.randint(-100, 100),
                        rng.randint(61, 120) if gap else rng.randint(1, 30)))
        elif x < 0.75:
            out.append(("liquidate", rng.randrange(4),
                        rng.choice([10_000, 250_000, 500_000, 1_000_000]), rng.random() < 0.1))
        elif x < 0.90:
            out.append(("place", rng.randrange(4), rng.choice([CALL, PUT]), rng.random() < 0.5,
                        rng.randint(25, 40), rng.randint(1, 300), rng.choice([0, 1]), False,
                        rng.random() < 0.2))
        elif x < 0.95:
            out.append(("withdraw", rng.randrange(4), rng.randint(1, 500)))
        else:
            out.append(("jump", rng.randint(1, 5)))
    return out


def replay(blocks: list[tuple[int, list]]) -> bytes:
    """Replay tx by tx with `apply`, checking at each liquidation step that an account whose
    auction ends (AuctionEnd, a Liquidate that ends it) is at or above maintenance at that
    moment's marks and that one the fund took over is left empty; then replay the same blocks
    with `chain.replay_block` (the verifier's code, detection check included)."""
    cfg = make_config()
    s = genesis(cfg, [make_instrument(CALL), make_instrument(PUT)])
    for ts, txs in blocks:
        txs = [decode_tx(encode_tx(t)) for t in txs]
        ctx = prepare_block(cfg.domain, ts, txs)
        for t in txs:
            apply(s, t, ctx)
            who = (t.liquidate.account if isinstance(t, LiquidateTx)
                   else t.account if isinstance(t, (AuctionEndTx, TakeoverTx)) else None)
            if who is None or who in s.auctions:
                continue
            acct = s.accounts[who]
            if isinstance(t, TakeoverTx):
                assert not acct.positions and acct.collateral == 0
            else:
                m = margin(ctx.marks(s), acct)
                assert m is not None and m.equity >= m.mm, (t, m)
    s2 = genesis(cfg, [make_instrument(CALL), make_instrument(PUT)])
    tree = AccountTree()
    tree.update({s2.index[a]: account_leaf(a, x) for a, x in s2.accounts.items()})
    head = Header(0, ZERO32, T0, ZERO32, tree.root(), ZERO32, 0)
    for ts, txs in blocks:
        if txs:
            head = replay_block(s2, tree, head, ts, [encode_tx(t) for t in txs])
    assert state_bytes(s2) == state_bytes(s)
    return state_bytes(s)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions)
def test_conservation_zero_sum_and_determinism(acts: list[tuple]) -> None:
    check_flow(acts)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(50, 250))
def test_conservation_and_determinism_on_seeded_flows(seed: int, n: int) -> None:
    w = check_flow(random_flow(seed, n))
    assert w.state.oracle  # the flow ran


def check_flow(acts: list[tuple]) -> World:
    w, blocks, _ = run(acts)
    w2, blocks2, _ = run(acts)
    assert state_bytes(w.state) == state_bytes(w2.state)
    assert [[encode_tx(t) for t in b] for _, b in blocks] == \
        [[encode_tx(t) for t in b] for _, b in blocks2]
    assert replay(blocks) == state_bytes(w.state)
    return w


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(50, 200), st.booleans())
def test_marks_priced_ahead_change_nothing(seed: int, n: int, risky: bool) -> None:
    """Blocks that start from marks priced ahead (the node does it between seals) hold the same
    transactions and end in the same state as blocks that price them on the spot."""
    acts = (risky_flow if risky else random_flow)(seed, n)
    w, blocks, _ = run(acts)
    used: list[int] = []
    w2, blocks2, _ = run(acts, ahead=random.Random(seed), used=used)
    assert [[encode_tx(t) for t in b] for _, b in blocks2] == \
        [[encode_tx(t) for t in b] for _, b in blocks]
    assert state_bytes(w2.state) == state_bytes(w.state)


def test_marks_priced_ahead_are_used_and_dropped_after_a_feed() -> None:
    """The path above is taken: some blocks do start from prepared marks; marks prepared before
    a feed are not used after it."""
    used: list[int] = []
    run(risky_flow(5, 200), ahead=random.Random(5), used=used)
    assert len(used) >= 10
    w = World(funds=FUNDS)
    eng = w.engine
    t = eng.now + 1
    assert eng.prepare_marks(t, 100)
    prepared = eng._next_marks
    eng.begin_block(t)
    assert eng.ctx.marks(w.state) is prepared  # same oracle, same time: taken
    assert not eng.prepare_marks(t + 1, 0) and eng.prepare_marks(t + 1, 100)
    assert eng.prepare_marks(t + 1, 0)  # complete: nothing left to price
    prepared = eng._next_marks
    w.feed_all(SPOT * 11 // 10, t)
    assert not eng.prepare_marks(t + 1, 0)  # the feed made them stale: all to price again
    assert eng._next_marks is not prepared and eng.prepare_marks(t + 1, 100)
    assert eng._next_marks.row(CALL) != prepared.row(CALL)
    eng.begin_block(t + 1)
    fresh = eng.ctx.marks(w.state)
    assert fresh is not prepared  # a feed came in between: priced again, at the new spot
    assert fresh.row(CALL) != prepared.row(CALL)
    assert eng.prepare_marks(t + 3, 100)
    eng.begin_block(t + 2)  # another time: not taken
    assert eng.ctx.marks(w.state) is not eng._next_marks


def test_seeded_flows_do_trade_and_settle() -> None:
    kinds: dict[type, int] = {}
    for seed in range(3):
        _, blocks, _ = run(random_flow(seed, 300))
        for _, b in blocks:
            for t in b:
                kinds[type(t)] = kinds.get(type(t), 0) + 1
    assert kinds.get(FillTx, 0) > 20 and kinds.get(SettleTx, 0) >= 2, kinds


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.integers(50, 200))
def test_conservation_and_determinism_on_risky_flows(seed: int, n: int) -> None:
    check_flow(risky_flow(seed, n))


def test_seeded_flows_do_liquidate() -> None:
    """The risky flows reach every liquidation step: auctions start, bids take, auctions end,
    the fund takes over, with a shortfall now and then."""
    kinds: dict[type, int] = {}
    shortfalls = 0
    for seed in range(4):
        w, blocks, _ = run(risky_flow(seed, 200))
        shortfalls += w.state.shortfall > 0
        for _, b in blocks:
            for t in b:
                kinds[type(t)] = kinds.get(type(t), 0) + 1
    assert kinds.get(AuctionStartTx, 0) >= 5 and kinds.get(LiquidateTx, 0) >= 3, kinds
    assert kinds.get(AuctionEndTx, 0) >= 1 and kinds.get(TakeoverTx, 0) >= 1, kinds
    assert shortfalls >= 1


def test_a_flow_that_trades_settles_and_conserves() -> None:
    acts = [("place", 0, CALL, False, 30, 100, 0, False, False),
            ("place", 1, CALL, True, 35, 50, 0, False, False),
            ("place", 2, PUT, False, 20, 100, 0, False, False),
            ("place", 3, PUT, True, 20, 100, 1, False, False),
            ("move", 30, 60), ("jump", 30), ("jump", 30),
            ("withdraw", 1, 100)]
    w, blocks, flows = run(acts)
    assert w.state.settled.keys() == {CALL, PUT}
    assert any(isinstance(t, WithdrawTx) for _, b in blocks for t in b) and flows == 100 * U + sum(SPREAD)
    assert replay(blocks) == state_bytes(w.state)
