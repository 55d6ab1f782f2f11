"""L1 messages in the state transition and the engine (docs/encoding.md, "L1 messages"): one
nonce space for deposits and forced withdrawals; deposits that would overflow MAX_COLLATERAL
are refunded; forced withdrawals are paid or refused, never rejected once the nonce is right;
every leaf lands in the block's withdrawalRoot in transaction order; a rejected request leaves
no leaf behind."""

from __future__ import annotations

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from sequencer.core import (FORCED_NONCE_BASE, MAX_COLLATERAL, DepositTx, ForcedWithdrawTx,
                            Withdraw, apply, encode_tx, genesis, make_instrument, state_bytes)
from sequencer.core.accounttree import AccountTree
from sequencer.core.chain import replay_block, seal_header
from sequencer.core.engine import _Journal
from sequencer.core.header import Header, WithdrawalLeaf
from sequencer.core.state import account_leaf
from sequencer.errors import OptrollupError
from tests.sequencer.core.core_world import CALL, PUT, T0, USERS, Key, World, make_config

A, B, C = USERS[:3]
STRANGER = Key(9_999)  # never funded (World funds every key in USERS)
U = 10**6
FUNDS = 1_000_000 * U  # World's funding of each user


def code(fn, *a, **kw) -> str:
    with pytest.raises(OptrollupError) as e:
        fn(*a, **kw)
    return e.value.code


def leaf_by_hand(account: bytes, recipient: bytes, amount: int, nonce: int) -> bytes:
    tag = keccak(b"optrollup.withdrawal.v1")
    return keccak(abi_encode(["bytes32", "address", "address", "uint256", "uint64"],
                             [tag, account, recipient, amount, nonce]))


def merkle_by_hand(leaves: list[bytes]) -> bytes:
    if not leaves:
        return b"\0" * 32
    level = list(leaves)
    while len(level) & (len(level) - 1):
        level.append(b"\0" * 32)
    while len(level) > 1:
        level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def cursor(w: World) -> int:
    return w.state.message_cursor


def holdings(w: World) -> list:
    """The committed state apart from the message cursor (state_bytes ends with it)."""
    st = w.state
    return [(a, x.collateral, sorted(x.positions.items()), x.withdrawal_nonce)
            for a, x in sorted(st.accounts.items())] + [sorted(st.orders)]


def short_call(w: World, seller=A, buyer=B, amount: int = 10 * U) -> None:
    """`seller` sells `amount` of CALL to `buyer` at 100 USDC (seller ends up short)."""
    w.place(seller, is_buy=False, price=100 * U, amount=amount, nonce=900)
    assert w.place(buyer, is_buy=True, price=100 * U, amount=amount, nonce=901, tif=1).filledAmount == amount


# -- deposits ---------------------------------------------------------------------------------

def test_a_deposit_that_would_overflow_is_refunded_and_later_ones_are_credited(world: World) -> None:
    w, eng = world, world.engine
    n0 = cursor(w)
    big = MAX_COLLATERAL - FUNDS - 5          # A then holds MAX_COLLATERAL - 5
    eng.deposit(A.address, big, n0, C.address)
    assert w.state.accounts[A.address].collateral == MAX_COLLATERAL - 5
    before = holdings(w)
    eng.deposit(A.address, 6, n0 + 1, C.address)  # one base unit too many: refunded to C
    assert holdings(w) == before and cursor(w) == n0 + 2
    assert w.state.withdrawal_leaves == [WithdrawalLeaf(A.address, C.address, 6,
                                                        FORCED_NONCE_BASE + n0 + 1)]
    eng.deposit(A.address, 5, n0 + 2, C.address)  # exactly up to the cap: credited
    assert w.state.accounts[A.address].collateral == MAX_COLLATERAL and cursor(w) == n0 + 3
    eng.deposit(B.address, 7, n0 + 3, C.address)  # another account is unaffected
    assert w.state.accounts[B.address].collateral == FUNDS + 7
    assert len(w.state.withdrawal_leaves) == 1
    deposits = [t for t in eng.txs if isinstance(t, DepositTx)]
    assert deposits[-4:] == [DepositTx(A.address, big, n0, C.address),
                             DepositTx(A.address, 6, n0 + 1, C.address),
                             DepositTx(A.address, 5, n0 + 2, C.address),
                             DepositTx(B.address, 7, n0 + 3, C.address)]


def test_a_refund_needs_no_account_and_creates_none(world: World) -> None:
    w = world
    st = w.state
    n = cursor(w)
    apply(st, DepositTx(STRANGER.address, MAX_COLLATERAL, n, C.address), w.engine.ctx)
    assert st.accounts[STRANGER.address].collateral == MAX_COLLATERAL  # fits exactly
    fresh = Key(10_000).address
    st.accounts[A.address].collateral = MAX_COLLATERAL
    apply(st, DepositTx(A.address, 1, n + 1, fresh), w.engine.ctx)
    assert fresh not in st.accounts
    assert st.withdrawal_leaves == [WithdrawalLeaf(A.address, fresh, 1, FORCED_NONCE_BASE + n + 1)]


def test_message_nonces_are_one_queue(world: World) -> None:
    w, st, ctx = world, world.state, world.engine.ctx
    n = cursor(w)
    before = state_bytes(st)
    assert code(apply, st, DepositTx(A.address, 1, n + 1, A.address), ctx) == "bad_deposit_nonce"
    assert code(apply, st, ForcedWithdrawTx(A.address, A.address, 1, n + 1), ctx) == "bad_message_nonce"
    assert code(apply, st, ForcedWithdrawTx(A.address, A.address, 1, n - 1), ctx) == "bad_message_nonce"
    assert code(apply, st, ForcedWithdrawTx(A.address, A.address, 0, n), ctx) == "bad_amount"
    assert code(apply, st, DepositTx(A.address, 0, n, A.address), ctx) == "bad_amount"
    assert state_bytes(st) == before and not st.withdrawal_leaves
    apply(st, ForcedWithdrawTx(A.address, B.address, U, n), ctx)       # kind 1 at nonce n
    assert code(apply, st, DepositTx(A.address, 1, n, A.address), ctx) == "bad_deposit_nonce"
    apply(st, DepositTx(A.address, U, n + 1, A.address), ctx)          # kind 0 at nonce n + 1
    assert cursor(w) == n + 2


# -- forced withdrawals -------------------------------------------------------------------------

def test_a_forced_withdrawal_is_paid_when_affordable(world: World) -> None:
    w, eng = world, world.engine
    n = cursor(w)
    res = eng.forced_withdraw(A.address, C.address, 250 * U, n)
    assert res.refusal is None and res.cancelled == []
    assert res.tx == ForcedWithdrawTx(A.address, C.address, 250 * U, n) and eng.txs[-1] == res.tx
    assert w.state.accounts[A.address].collateral == FUNDS - 250 * U
    assert w.state.accounts[A.address].withdrawal_nonce == 0  # its own nonce space
    assert cursor(w) == n + 1
    assert w.state.withdrawal_leaves == [WithdrawalLeaf(A.address, C.address, 250 * U,
                                                        FORCED_NONCE_BASE + n)]
    assert w.state.withdrawal_leaves[0].leaf() == leaf_by_hand(A.address, C.address, 250 * U,
                                                               2**63 + n)
    # all of it, with no positions
    eng.forced_withdraw(A.address, A.address, FUNDS - 250 * U, n + 1)
    assert w.state.accounts[A.address].collateral == 0 and len(w.state.withdrawal_leaves) == 2


@pytest.mark.parametrize("case,want", [
    ("unknown_account", "unknown_account"),
    ("zero_recipient", "bad_recipient"),
    ("too_much", "insufficient_collateral"),
    ("margin", "insufficient_margin"),
    ("stale_oracle", "oracle_stale"),
])
def test_a_forced_withdrawal_that_cannot_be_afforded_is_refused(world: World, case: str,
                                                                  want: str) -> None:
    w, eng = world, world.engine
    who, recipient, amount = A.address, C.address, 10 * U
    if case == "unknown_account":
        who = STRANGER.address
    elif case == "zero_recipient":
        recipient = b"\0" * 20
    elif case == "too_much":
        amount = FUNDS + 1
    elif case == "margin":
        short_call(w)
        amount = w.state.accounts[A.address].collateral  # all of it: nothing left for the IM
    else:
        short_call(w)
        eng.end_block()
        eng.begin_block(T0 + 3600)  # the feeds are an hour old: no valid price for A's short
    n = cursor(w)
    before, txs = holdings(w), len(eng.txs)
    res = eng.forced_withdraw(who, recipient, amount, n)
    assert res.refusal == want
    assert holdings(w) == before and STRANGER.address not in w.state.accounts
    assert cursor(w) == n + 1 and w.state.withdrawal_leaves == []
    assert eng.txs[txs:] == [ForcedWithdrawTx(who, recipient, amount, n)]  # in the block anyway


def test_a_short_account_may_withdraw_down_to_its_initial_margin(world: World) -> None:
    w, eng = world, world.engine
    short_call(w)
    m = eng.account_view(A.address)
    spare = m.equity - m.initialMargin  # no open orders left: positions-only margin
    n = cursor(w)
    assert eng.forced_withdraw(A.address, C.address, spare + 1, n).refusal == "insufficient_margin"
    assert eng.forced_withdraw(A.address, C.address, spare, n + 1).refusal is None
    assert w.state.withdrawal_leaves == [WithdrawalLeaf(A.address, C.address, spare,
                                                        FORCED_NONCE_BASE + n + 1)]


def test_the_engine_cancels_the_accounts_resting_orders_first(world: World) -> None:
    w, eng = world, world.engine
    mine = [w.place(A, instrument=ins, is_buy=b, price=p * U, nonce=i)
            for i, (ins, b, p) in enumerate([(CALL, True, 50), (CALL, False, 500), (PUT, True, 40)])]
    other = w.place(B, is_buy=True, price=60 * U, nonce=7)
    assert all(r.status == "open" for r in [*mine, other])
    n = cursor(w)
    # an invalid message (wrong nonce) cancels nothing
    assert code(eng.forced_withdraw, A.address, C.address, U, n + 1) == "bad_message_nonce"
    assert len(eng.open) == 4
    res = eng.forced_withdraw(A.address, C.address, U, n)
    assert sorted(r.digest for r in res.cancelled) == sorted(r.orderHash for r in mine)
    assert list(eng.open) == [other.orderHash] and not eng.by_account.get(A.address)
    assert not any(r.order.account == A.address for b in eng.books.values()
                   for side in (b.bids, b.asks) for lvl in side.values() for r in lvl.values())
    assert res.refusal is None
    # a refused one cancels them too (the book is off-chain; its orders would no longer fit)
    again = w.place(A, is_buy=True, price=50 * U, nonce=20)
    res = eng.forced_withdraw(A.address, b"\0" * 20, U, n + 1)
    assert res.refusal == "bad_recipient" and [r.digest for r in res.cancelled] == [again.orderHash]


# -- leaves and roots ---------------------------------------------------------------------------

def test_the_withdrawal_root_covers_every_leaf_in_transaction_order(world: World) -> None:
    """Withdraw txs, refunds and forced withdrawals in one block, sealed by the sequencer and
    replayed by the verifier: the same withdrawalRoot, equal to a hand computation."""
    w, eng = world, world.engine
    n = cursor(w)
    wd = Withdraw(A.address, B.address, 3 * U, 0)
    eng.withdraw(wd, w.sign(A, wd))
    eng.forced_withdraw(B.address, C.address, 4 * U, n)
    w.state.accounts[C.address].collateral = MAX_COLLATERAL - 1   # so that C's deposit is refunded
    eng.deposit(C.address, 2, n + 1, A.address)
    eng.forced_withdraw(STRANGER.address, C.address, 5, n + 2)     # refused: no leaf
    wd2 = Withdraw(A.address, A.address, U, 1)
    eng.withdraw(wd2, w.sign(A, wd2))
    want = [leaf_by_hand(A.address, B.address, 3 * U, 0),
            leaf_by_hand(B.address, C.address, 4 * U, 2**63 + n),
            leaf_by_hand(C.address, A.address, 2, 2**63 + n + 1),
            leaf_by_hand(A.address, A.address, U, 1)]
    assert [x.leaf() for x in w.state.withdrawal_leaves] == want
    ts, txs = eng.now, eng.end_block()
    tree = AccountTree()
    parent = Header(0, b"\0" * 32, T0 - 1, b"\0" * 32, b"\0" * 32, b"\0" * 32, 0)
    header = seal_header(w.state, tree, parent, ts, txs, [encode_tx(t) for t in txs])
    assert header.withdrawal_root == merkle_by_hand(want)
    assert header.l1_message_cursor == n + 3
    assert w.state.withdrawal_leaves == []  # emptied at seal


def test_replay_reproduces_refunds_and_forced_withdrawals() -> None:
    """Blocks with every kind of L1 message outcome replay (verifier path) to the same headers."""
    w = World()  # its first block (deposits, feeds at T0) is still open
    eng, st = w.engine, w.state
    g = genesis(make_config(), [make_instrument(CALL), make_instrument(PUT)])  # the verifier's

    def genesis_tree() -> AccountTree:
        t = AccountTree()
        t.update({g.index[a]: account_leaf(a, x) for a, x in g.accounts.items()})
        return t

    tree, gtree = genesis_tree(), genesis_tree()
    g.touched.clear()
    parent = vparent = Header(0, b"\0" * 32, T0 - 1, b"\0" * 32, gtree.root(), b"\0" * 32, 0)

    def seal_and_replay(next_ts: int) -> None:
        nonlocal parent, vparent
        ts, txs = eng.now, eng.end_block()
        raw = [encode_tx(t) for t in txs]
        parent = seal_header(st, tree, parent, ts, txs, raw)
        vparent = replay_block(g, gtree, vparent, ts, raw)
        assert vparent == parent
        eng.begin_block(next_ts)

    seal_and_replay(T0 + 1)
    n = cursor(w)
    short_call(w)
    eng.forced_withdraw(A.address, C.address, FUNDS, n)                 # refused: margin
    eng.forced_withdraw(B.address, C.address, 10 * U, n + 1)            # paid
    eng.deposit(C.address, MAX_COLLATERAL - FUNDS, n + 2, A.address)    # fits exactly
    eng.deposit(C.address, 1, n + 3, B.address)                         # refunded
    seal_and_replay(T0 + 2)
    assert parent.withdrawal_root == merkle_by_hand(
        [leaf_by_hand(B.address, C.address, 10 * U, 2**63 + n + 1),
         leaf_by_hand(C.address, B.address, 1, 2**63 + n + 3)])
    assert parent.l1_message_cursor == n + 4
    assert state_bytes(g) == state_bytes(st)


# -- a rejected request leaves no leaf ---------------------------------------------------------

def test_a_rejected_request_leaves_no_leaf(world: World) -> None:
    w, eng = world, world.engine
    wd = Withdraw(A.address, B.address, 3 * U, 0)
    eng.withdraw(wd, w.sign(A, wd))
    leaves = list(w.state.withdrawal_leaves)
    assert len(leaves) == 1
    rejected = [
        Withdraw(A.address, B.address, 3 * U, 0),            # replayed nonce
        Withdraw(A.address, B.address, FUNDS, 1),            # more than it has
        Withdraw(A.address, b"\0" * 20, U, 1),               # unpayable recipient
    ]
    for bad in rejected:
        with pytest.raises(OptrollupError):
            eng.withdraw(bad, w.sign(A, bad))
    with pytest.raises(OptrollupError):                      # signed by someone else
        good = Withdraw(A.address, B.address, U, 1)
        eng.withdraw(good, w.sign(B, good))
    short_call(w)                                            # margin with open orders
    w.place(A, is_buy=False, price=100 * U, amount=5 * U, nonce=950)
    big = Withdraw(A.address, A.address, w.state.accounts[A.address].collateral, 1)
    with pytest.raises(OptrollupError):
        eng.withdraw(big, w.sign(A, big))
    # an order rejected after it matched (FOK that fills only partly): rolled back whole
    w.place(B, is_buy=False, price=200 * U, amount=U, nonce=960)
    with pytest.raises(OptrollupError):
        w.place(C, is_buy=True, price=200 * U, amount=50 * U, nonce=961, tif=2)
    assert w.state.withdrawal_leaves == leaves


def test_a_rolled_back_request_takes_its_leaves_with_it(world: World) -> None:
    """The journal trims the leaf list to its length when the request began (fills emit no
    leaf today; this keeps it so if a future request type does)."""
    st = world.state
    st.withdrawal_leaves.append(WithdrawalLeaf(A.address, B.address, 1, 0))
    j = _Journal(st)
    st.withdrawal_leaves.append(WithdrawalLeaf(A.address, B.address, 2, 1))
    j.restore()
    assert st.withdrawal_leaves == [WithdrawalLeaf(A.address, B.address, 1, 0)]
