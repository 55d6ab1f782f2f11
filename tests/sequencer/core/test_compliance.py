"""Compliance (sequencer.core.compliance, docs/compliance.md): the operator's Freeze, Unfreeze
and DenyL1 block txs, every refusal with its code, what a freeze and the deny list do to
orders, fills, withdrawals, forced withdrawals, deposits, channel opens and liquidation, and
replay of blocks with these txs by the verifier's code (a forged signature fails it)."""

from __future__ import annotations

import msgpack
import pytest

from sequencer.core import (FORCED_NONCE_BASE, DenyL1, DenyL1Tx, FreezeAccount, FreezeTx,
                            UnfreezeAccount, UnfreezeTx, Withdraw, decode_tx, encode_tx, genesis,
                            make_instrument, state_bytes)
from sequencer.core.accounttree import AccountTree
from sequencer.core.chain import BadBlock, replay_block
from sequencer.core.channelmsg import ChannelOpen, open_digest
from sequencer.core.eip712 import Liquidate, type_string
from sequencer.core.header import ZERO32, Header, WithdrawalLeaf
from sequencer.core.state import account_leaf
from sequencer.core.transition import apply, forced_withdrawal_refusal
from sequencer.core.txs import ChannelOpenTx, DepositTx, FillTx, ForcedWithdrawTx, SignedOrder
from sequencer.errors import OptrollupError
from tests.sequencer.core.core_world import CALL, OPERATOR, PUT, T0, USERS, Key, World, order
from tests.sequencer.core.test_liquidation import Flow, short_account

A, B, C, D = USERS[0], USERS[1], USERS[2], USERS[3]
L1X = Key(777)  # an L1 address that will be denied
U = 10**6


def code(fn, *a, **kw) -> str:
    with pytest.raises(OptrollupError) as e:
        fn(*a, **kw)
    return e.value.code


class Ops:
    """Signs the operator's actions for a World with the right next nonce (or a given one)."""

    def __init__(self, w: World) -> None:
        self.w = w

    def tx(self, kind: str, address: bytes, *, nonce: int | None = None, denied: bool = True,
           key: Key = OPERATOR):
        n = self.w.state.compliance_nonce if nonce is None else nonce
        msg = {"freeze": lambda: FreezeAccount(address, n),
               "unfreeze": lambda: UnfreezeAccount(address, n),
               "deny": lambda: DenyL1(address, denied, n)}[kind]()
        cls = {"freeze": FreezeTx, "unfreeze": UnfreezeTx, "deny": DenyL1Tx}[kind]
        return cls(msg, self.w.sign(key, msg))

    def do(self, kind: str, address: bytes, **kw):
        return self.w.engine.compliance(self.tx(kind, address, **kw))


def test_types_and_tx_bytes() -> None:
    assert type_string("Freeze") == "Freeze(address account,uint64 nonce)"
    assert type_string("Unfreeze") == "Unfreeze(address account,uint64 nonce)"
    assert type_string("DenyL1") == "DenyL1(address l1Address,bool denied,uint64 nonce)"
    w = World()
    ops = Ops(w)
    for kind, tag in (("freeze", 17), ("unfreeze", 18), ("deny", 19)):
        tx = ops.tx(kind, A.address, nonce=5)
        raw = encode_tx(tx)
        assert msgpack.unpackb(raw)[0] == tag and decode_tx(raw) == tx
    bad = msgpack.packb([19, A.address, 1, 0, b"\1" * 65], use_bin_type=True)  # denied not a bool
    assert code(decode_tx, bad) == "bad_tx"


def test_freeze_cancels_orders_refuses_risk_allows_reducing_and_unfreeze() -> None:
    w = World()
    ops = Ops(w)
    before = state_bytes(w.state)
    # A is short 1 call (sold to B) and has two orders resting
    w.place(A, is_buy=False, price=100 * U, amount=U, nonce=1)
    w.place(B, is_buy=True, price=100 * U, amount=U, nonce=1, tif=1)
    w.place(A, is_buy=False, price=150 * U, amount=10_000, nonce=2)
    w.place(A, instrument=PUT, price=10 * U, amount=10_000, nonce=3)
    assert len(w.engine.by_account[A.address][CALL]) == 1
    cancelled = ops.do("freeze", A.address)
    assert len(cancelled) == 2 and not any(w.engine.by_account.get(A.address, {}).values())
    assert w.state.frozen == {A.address: T0} and w.state.compliance_nonce == 1
    assert w.engine.account_view(A.address).frozenAt == T0
    assert state_bytes(w.state) != before
    # risk-increasing orders refused, whatever their side
    assert code(w.place, A, is_buy=False, price=100 * U, nonce=4) == "account_frozen"
    assert code(w.place, A, instrument=PUT, price=U, amount=10_000, nonce=5) == "account_frozen"
    assert code(w.place, A, is_buy=True, price=100 * U, amount=2 * U, nonce=6) == "account_frozen"
    # reducing the short is allowed: B offers, A buys back half
    w.place(B, is_buy=False, price=120 * U, amount=U, nonce=2)
    r = w.place(A, is_buy=True, price=120 * U, amount=U // 2, nonce=7, tif=1)
    assert r.filledAmount == U // 2 and w.state.accounts[A.address].positions == {CALL: -U // 2}
    # withdrawals refused (checked after the signature: a stranger's learns nothing)
    wd = Withdraw(A.address, A.address, U, 0)
    assert code(w.engine.withdraw, wd, w.sign(A, wd)) == "account_frozen"
    assert code(w.engine.withdraw, wd, w.sign(C, wd)) == "signer_mismatch"
    # a forced withdrawal is refused too (the L1 message is consumed)
    res = w.engine.forced_withdraw(A.address, A.address, U, w.deposits)
    w.deposits += 1
    assert res.refusal == "account_frozen"
    # unfreeze: trading and withdrawing again
    assert ops.do("unfreeze", A.address) == []
    assert w.state.frozen == {} and w.state.compliance_nonce == 2
    assert w.place(A, is_buy=False, price=200 * U, amount=10_000, nonce=8).status == "open"
    w.engine.withdraw(wd, w.sign(A, wd))
    assert w.state.accounts[A.address].withdrawal_nonce == 1


def test_apply_refuses_a_risk_increasing_fill_of_a_frozen_account() -> None:
    """The verifier's rule, not just the engine's: a Fill adding to a frozen account's risk
    fails apply (with the party to blame), a reducing one applies."""
    w = World()
    ops = Ops(w)
    w.place(B, is_buy=False, price=100 * U, amount=U, nonce=1)  # rests
    maker = next(iter(w.engine.open))
    ops.do("freeze", A.address)
    o = order(A, is_buy=True, price=100 * U, amount=10_000, nonce=9)
    fill = FillTx(SignedOrder(*(w.engine.open[maker].order, w.engine.open[maker].signature)),
                  SignedOrder(o, w.sign(A, o)), 10_000, 100 * U)
    with pytest.raises(OptrollupError) as e:
        apply(w.state, fill, w.engine.ctx)
    assert e.value.code == "account_frozen" and getattr(e.value, "party") == "taker"
    # the engine refuses the same order up front (A has no position it would reduce)
    assert code(w.place, A, is_buy=True, price=100 * U, amount=10_000, nonce=10) == "account_frozen"


def test_action_refusals() -> None:
    w = World()
    ops = Ops(w)
    # a non-operator signer, a garbage signature
    assert code(ops.do, "freeze", A.address, key=B) == "signer_mismatch"
    tx = ops.tx("freeze", A.address)
    assert code(w.engine.compliance, tx._replace(signature=b"\0" * 65)) == "bad_signature"
    # nonces: exactly the next one
    assert code(ops.do, "freeze", A.address, nonce=1) == "bad_compliance_nonce"
    first = ops.tx("freeze", A.address)
    w.engine.compliance(first)
    assert code(w.engine.compliance, first) == "bad_compliance_nonce"  # a replay
    assert code(ops.do, "freeze", A.address) == "account_already_frozen"
    assert code(ops.do, "unfreeze", B.address) == "account_not_frozen"
    ops.do("unfreeze", A.address)
    assert code(w.engine.compliance, first) == "bad_compliance_nonce"  # the old freeze is stale
    assert code(ops.do, "freeze", b"\0" * 20) == "bad_address"
    assert code(ops.do, "deny", b"\0" * 20) == "bad_address"
    assert code(ops.do, "deny", L1X.address, denied=False) == "deny_list_unchanged"
    ops.do("deny", L1X.address)
    assert code(ops.do, "deny", L1X.address) == "deny_list_unchanged"
    assert w.state.compliance_nonce == 3 and w.state.denied == {L1X.address: T0}
    # a refused action changed nothing
    ops.do("deny", L1X.address, denied=False)
    assert w.state.denied == {} and w.state.compliance_nonce == 4
    # an account that does not exist yet may be frozen (its deposits are credited, frozen)
    ghost = Key(4242)
    ops.do("freeze", ghost.address)
    w.fund(ghost, 5 * U)
    assert w.state.accounts[ghost.address].collateral == 5 * U
    wd = Withdraw(ghost.address, ghost.address, U, 0)
    assert code(w.engine.withdraw, wd, w.sign(ghost, wd)) == "account_frozen"


def test_deny_list_refunds_deposits_and_refuses_withdrawals_to_it() -> None:
    w = World()
    ops = Ops(w)
    ops.do("deny", L1X.address)
    coll = w.state.accounts[A.address].collateral
    total = w.state.collateral_total
    nonce = w.deposits
    tx = w.engine.deposit(A.address, 7 * U, nonce, L1X.address)
    w.deposits += 1
    assert isinstance(tx, DepositTx) and w.state.message_cursor == nonce + 1
    assert w.state.accounts[A.address].collateral == coll and w.state.collateral_total == total
    assert w.state.withdrawal_leaves[-1] == WithdrawalLeaf(A.address, L1X.address, 7 * U,
                                                           FORCED_NONCE_BASE + nonce)
    # a deposit by anyone else is still credited
    w.engine.deposit(A.address, 3 * U, w.deposits, B.address)
    w.deposits += 1
    assert w.state.accounts[A.address].collateral == coll + 3 * U
    # withdrawals to a denied recipient
    wd = Withdraw(A.address, L1X.address, U, 0)
    with pytest.raises(OptrollupError) as e:
        w.engine.withdraw(wd, w.sign(A, wd))
    assert e.value.code == "recipient_denied" and "0x" in e.value.message
    ftx = ForcedWithdrawTx(A.address, L1X.address, U, w.deposits)
    assert forced_withdrawal_refusal(w.state, ftx, w.engine.ctx) == "recipient_denied"
    leaves = len(w.state.withdrawal_leaves)
    assert w.engine.forced_withdraw(A.address, L1X.address, U, w.deposits).refusal == "recipient_denied"
    w.deposits += 1
    assert len(w.state.withdrawal_leaves) == leaves
    # off the list: paid again
    ops.do("deny", L1X.address, denied=False)
    w.engine.withdraw(wd, w.sign(A, wd))
    assert w.state.withdrawal_leaves[-1] == WithdrawalLeaf(A.address, L1X.address, U, 0)


def test_frozen_party_cannot_open_a_channel() -> None:
    w = World()
    ops = Ops(w)
    sa, sb = Key(901), Key(902)
    msg = ChannelOpen(A.address, B.address, sa.address, sb.address, U, U, 1, 3600)
    d = open_digest(w.config.domain, msg)
    ops.do("freeze", B.address)
    assert code(w.engine.channel_open, ChannelOpenTx(msg, A.sign(d), B.sign(d))) == "account_frozen"
    ops.do("unfreeze", B.address)
    w.engine.channel_open(ChannelOpenTx(msg, A.sign(d), B.sign(d)))


def test_frozen_account_is_still_liquidated_and_may_not_bid() -> None:
    f = Flow(schedule=((0, 3),))
    w = f.w
    ops = Ops(w)
    poor = short_account(f)
    ops.do("freeze", poor.address)
    assert not w.engine.by_account.get(poor.address)  # its resting bid is gone
    f.block(3300 * U)
    f.block(3600 * U)
    f.block()
    assert poor.address in w.state.auctions
    take = f.bid(C, poor, 500_000)
    assert take.account == poor.address
    # a frozen liquidator may not bid
    ops.do("freeze", D.address)
    f.nonce += 1
    msg = Liquidate(D.address, poor.address, 100_000, 10**15, f.nonce)
    assert code(w.engine.liquidate, msg, w.sign(D, msg)) == "account_frozen"
    replayed = replay(f)
    assert state_bytes(replayed) == state_bytes(w.state)


def replay(f: Flow):
    """The kept blocks (and the open one) replayed with chain.replay_block; the final state."""
    w = f.w
    blocks = [*f.blocks, (w.engine.now, list(w.engine.txs))]
    st = genesis(w.config, [make_instrument(CALL), make_instrument(PUT)])
    tree = AccountTree()
    tree.update({st.index[a]: account_leaf(a, x) for a, x in st.accounts.items()})
    st.touched.clear()
    head = Header(0, ZERO32, T0, ZERO32, tree.root(), ZERO32, 0)
    for ts, txs in blocks:
        if txs:
            head = replay_block(st, tree, head, ts, [encode_tx(t) for t in txs])
    return st


def test_replay_of_compliance_blocks_and_a_forged_freeze() -> None:
    f = Flow(schedule=((0, 3),))
    w = f.w
    ops = Ops(w)
    w.place(A, is_buy=False, price=100 * U, amount=U, nonce=1)
    ops.do("freeze", A.address)
    ops.do("deny", L1X.address)
    f.block()
    w.engine.deposit(B.address, 9 * U, w.deposits, L1X.address)  # refunded
    w.deposits += 1
    w.place(B, is_buy=True, price=100 * U, amount=U, nonce=2, tif=1)  # A's order was cancelled
    ops.do("unfreeze", A.address)
    f.block()
    st = replay(f)
    assert state_bytes(st) == state_bytes(w.state)
    assert st.frozen == {} and st.denied == {L1X.address: f.blocks[0][0]}
    assert st.compliance_nonce == 3
    # a Freeze signed by someone else, or bytes edited after signing, do not replay
    forged = [encode_tx(ops.tx("freeze", B.address, key=C))]
    edited = encode_tx(ops.tx("freeze", B.address)).replace(B.address, C.address)
    for txs in (forged, [edited]):
        st2 = replay(f)
        tree = AccountTree()
        tree.update({st2.index[a]: account_leaf(a, x) for a, x in st2.accounts.items()})
        parent = Header(9, ZERO32, w.engine.now, ZERO32, tree.root(), ZERO32, st2.message_cursor)
        with pytest.raises(BadBlock) as e:
            replay_block(st2, tree, parent, w.engine.now + 1, txs)
        assert "signer_mismatch" in e.value.message and e.value.tx_index == 0
