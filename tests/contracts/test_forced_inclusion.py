"""Issue 11: an operator cannot censor L1 messages. A forced withdrawal or a deposit that the
poster leaves out of its batches makes the Rollup freezable `inclusionDelay` live seconds after
it was queued (not one second earlier), even while batches keep finalizing; the user then
escapes (or is refunded). Included messages never make it freezable. Forced-withdrawal leaves
(nonce 2^63 + message nonce) are paid like any other, once."""

from __future__ import annotations

import pytest
from tests.contracts.l1_testkit import (
    CHALLENGE_WINDOW,
    FORCED_NONCE_BASE,
    INCLUSION_DELAY,
    KIND_DEPOSIT,
    KIND_FORCED_WITHDRAWAL,
    POSTING_INTERVAL,
    THRESHOLD,
    USDC,
    SparseTree,
    System,
    Withdrawal,
    account_leaf,
    escape_claim,
    make_batch,
    message_commitment,
    reverts,
)

from sequencer.l1 import send_reject

ZERO_ADDRESS = "0x" + "00" * 20
GAS = 1_000_000  # fixed gas: a transaction timed at a boundary skips estimation at the previous block


@pytest.fixture
def world(system: System):
    """users[0] deposited 500 USDC (message 0); batch 0 credits it (cursor 1) and is final."""
    s = system
    u0 = s.users[0]
    s.bridge.transact("deposit", 500 * USDC, u0.address, sender=u0)
    tree = SparseTree()
    tree.set(0, account_leaf(u0.address, 500 * USDC))
    b0 = make_batch(s.genesis, [[]], state_root=tree.root(), message_cursor=1)
    s.rollup.transact("submitBatch", *b0.submit_args(), sender=s.poster)
    s.advance(CHALLENGE_WINDOW)
    assert s.rollup.call("finalizedBatchCount") == 1
    return s, tree, b0


def post(s: System, prev, cursor: int, at: int | None = None, **kw):
    b = make_batch(prev.last_header if hasattr(prev, "last_header") else prev, [[]], message_cursor=cursor,
                   state_root=kw.pop("state_root", None) or (prev.state_root if hasattr(prev, "state_root") else None),
                   **kw)
    if at is not None:
        s.next_at(at)
    s.rollup.transact("submitBatch", *b.submit_args(), sender=s.poster, gas=GAS if at is not None else None)
    return b


def censor_until(s: System, b, queued: int, until: int, cursor: int):
    """The poster posts a batch every POSTING_INTERVAL that does not include the message; batches
    keep finalizing and nothing is freezable. Returns the batches."""
    out = []
    t = queued + POSTING_INTERVAL
    while t < until:
        b = post(s, b, cursor, at=t)
        out.append(b)
        assert s.rollup.call("freezeReason") == 0
        t += POSTING_INTERVAL
    return out


def check_deadline(s: System, queued: int):
    """Not freezable at exactly queued + inclusionDelay (live = wall: never paused); freezable,
    reason 2, one second later."""
    s.mine_at(queued + INCLUSION_DELAY)
    assert s.rollup.call("liveClock") == queued + INCLUSION_DELAY
    assert not s.rollup.call("canFreeze") and s.rollup.call("freezeReason") == 0
    e = reverts("FreezeNotAllowed", s.rollup.call, "freeze")
    assert e.error_args["liveClock"] == queued + INCLUSION_DELAY
    assert e.error_args["lastFinalizedLive"] == s.rollup.call("lastFinalizedLive")
    s.mine_at(queued + INCLUSION_DELAY + 1)
    assert s.rollup.call("canFreeze") and s.rollup.call("freezeReason") == 2


def test_censored_forced_withdrawal_lets_anyone_freeze_then_escape(world):
    s, tree, b0 = world
    u0 = s.users[0]
    r = s.bridge.transact("requestWithdrawal", 100 * USDC, u0.address, sender=u0)
    assert s.bridge.decode_logs(r, "WithdrawalRequested")[0].args == {
        "nonce": 1, "account": u0.address, "recipient": u0.address, "amount": 100 * USDC}
    assert s.bridge.call("messageCommitment", 1) == message_commitment(KIND_FORCED_WITHDRAWAL, u0.address, u0.address,
                                                                        100 * USDC)
    queued = s.bridge.call("messageQueuedLive", 1)
    assert queued == s.client.get_block_timestamp(r.block_number)
    # a poster that keeps posting (cursor 1: the request left out); batches keep finalizing
    batches = censor_until(s, b0, queued, queued + INCLUSION_DELAY, cursor=1)
    assert len(batches) == INCLUSION_DELAY // POSTING_INTERVAL - 1 == 6
    check_deadline(s, queued)
    final = s.rollup.call("finalizedBatchCount")
    assert final == 1 + len(batches)  # every batch final: it is not a liveness failure (reason 1)
    assert s.rollup.call("lastFinalizedLive") > queued + INCLUSION_DELAY - POSTING_INTERVAL
    # one more censoring batch is not final when someone freezes: it is dropped
    late = post(s, batches[-1], 1)
    r = s.rollup.transact("freeze", sender=s.outsider)
    ev = s.rollup.decode_logs(r, "RollupFrozen")[0]
    assert ev.args == {"finalBatchCount": final, "headerHash": batches[-1].last_header_hash,
                       "stateRoot": tree.root(), "reason": 2}
    assert s.rollup.call("batchCount") == final and late.last_header_hash != batches[-1].last_header_hash
    # the user escapes with the whole collateral (the request never debited it)
    before = s.token.call("balanceOf", u0.address)
    s.bridge.transact("escape", batches[-1].last_header.as_dict(), escape_claim(u0.address, 500 * USDC, 0, tree),
                      ZERO_ADDRESS, b"", sender=s.outsider)
    assert s.token.call("balanceOf", u0.address) == before + 500 * USDC
    assert s.token.call("balanceOf", s.bridge.address) == 0


def test_uncredited_deposit_lets_anyone_freeze_then_refund(world):
    s, _tree, b0 = world
    u1 = s.users[1]
    r = s.bridge.transact("deposit", 70 * USDC, u1.address, sender=u1)
    queued = s.bridge.call("messageQueuedLive", 1)
    assert queued == s.client.get_block_timestamp(r.block_number)
    batches = censor_until(s, b0, queued, queued + INCLUSION_DELAY, cursor=1)
    check_deadline(s, queued)
    r = s.rollup.transact("freeze", sender=s.outsider)
    assert s.rollup.decode_logs(r, "RollupFrozen")[0]["reason"] == 2
    hdr = batches[-1].last_header.as_dict()
    e = reverts("DepositAlreadyProcessed", s.bridge.transact, "refundDeposit", 0, s.users[0].address,
                s.users[0].address, 500 * USDC, hdr, ZERO_ADDRESS, b"", sender=s.outsider)
    assert e.error_args == {"nonce": 0, "l1MessageCursor": 1}
    before = s.token.call("balanceOf", u1.address)
    s.bridge.transact("refundDeposit", 1, u1.address, u1.address, 70 * USDC, hdr, ZERO_ADDRESS, b"",
                      sender=s.outsider)
    assert s.token.call("balanceOf", u1.address) == before + 70 * USDC
    assert s.token.call("balanceOf", s.bridge.address) == 500 * USDC  # users[0]'s, still in its leaf


def test_overdue_message_included_late_is_no_longer_a_reason(world):
    s, _tree, b0 = world
    u0 = s.users[0]
    s.bridge.transact("requestWithdrawal", 1 * USDC, u0.address, sender=u0)
    queued = s.bridge.call("messageQueuedLive", 1)
    batches = censor_until(s, b0, queued, queued + INCLUSION_DELAY, cursor=1)
    check_deadline(s, queued)
    post(s, batches[-1], 2)  # the poster gives in before anyone freezes
    assert s.rollup.call("freezeReason") == 0
    reverts("FreezeNotAllowed", s.rollup.transact, "freeze", sender=s.outsider)


def test_honest_poster_is_never_freezable(world):
    s, _tree, b0 = world
    u0, u1 = s.users[:2]
    s.bridge.transact("requestWithdrawal", 10 * USDC, u0.address, sender=u0)  # message 1
    q1 = s.bridge.call("messageQueuedLive", 1)
    # it includes message 1 in its next batch, message 2 (queued later) in the one after, then keeps posting
    b = post(s, b0, 2, at=q1 + 500)
    s.next_at(q1 + 1000)
    s.bridge.transact("deposit", 7 * USDC, u1.address, sender=u1, gas=GAS)  # message 2
    q2 = s.bridge.call("messageQueuedLive", 2)
    assert q2 == q1 + 1000
    b = post(s, b, 3, at=q1 + 1100)
    t = q1 + 1100 + POSTING_INTERVAL
    checks = {q1 + INCLUSION_DELAY, q1 + INCLUSION_DELAY + 1, q2 + INCLUSION_DELAY, q2 + INCLUSION_DELAY + 1}
    while t < q2 + 3 * INCLUSION_DELAY:
        for c in sorted(x for x in checks if x < t):
            s.mine_at(c)
            assert s.rollup.call("freezeReason") == 0
            checks.discard(c)
        b = post(s, b, 3, at=t)
        assert s.rollup.call("freezeReason") == 0
        t += POSTING_INTERVAL
    assert not checks
    s.advance(POSTING_INTERVAL)
    assert not s.rollup.call("canFreeze")
    assert s.rollup.call("tipMessageCursor") == 3 == s.bridge.call("messageCount")


def test_message_cursor_can_neither_go_back_nor_pass_the_queue(world):
    s, _tree, b0 = world
    u0 = s.users[0]
    for _ in range(2):
        s.bridge.transact("requestWithdrawal", 1 * USDC, u0.address, sender=u0)  # messages 1, 2
    assert s.bridge.call("messageCount") == 3
    e = reverts("MessageCursorAhead", post, s, b0, 4)
    assert e.error_args == {"cursor": 4, "messageCount": 3}
    e = reverts("MessageCursorBackwards", post, s, b0, 0)
    assert e.error_args == {"tipCursor": 1, "cursor": 0}
    b1 = post(s, b0, 1)  # not moving is fine
    b2 = post(s, b1, 3)  # the whole queue is fine
    assert s.rollup.call("getBatch", 2)["messageCursor"] == 3 == s.rollup.call("tipMessageCursor")
    e = reverts("MessageCursorBackwards", post, s, b2, 2)
    assert e.error_args == {"tipCursor": 3, "cursor": 2}
    # after a rejection the tip (and its cursor) is the previous batch's: a re-post may include less
    send_reject(s.rollup, s.guardians[:THRESHOLD], 2, sender=s.outsider)
    assert s.rollup.call("tipMessageCursor") == 1
    post(s, b1, 2)
    assert s.rollup.call("tipMessageCursor") == 2


def test_forced_withdrawal_and_refund_leaves_are_paid_once(world, gas):
    """Leaves with nonce 2^63 + message nonce (a forced withdrawal, a deposit refunded on L2)
    are paid by finalizeWithdrawal like a signed Withdraw, once, without colliding with the
    account's L2 nonces."""
    s, tree, b0 = world
    u0, u1 = s.users[:2]
    u2 = s.users[2]  # the forced withdrawal's recipient (already holds tokens: comparable gas)
    s.bridge.transact("requestWithdrawal", 100 * USDC, u2.address, sender=u0)  # message 1
    s.bridge.transact("deposit", 40 * USDC, u1.address, sender=u1)  # message 2, refunded on L2
    forced = Withdrawal(u0.address, u2.address, 100 * USDC, FORCED_NONCE_BASE + 1)
    refund = Withdrawal(u1.address, u1.address, 40 * USDC, FORCED_NONCE_BASE + 2)
    signed = Withdrawal(u0.address, u0.address, 5 * USDC, 1)  # an L2 Withdraw with nonce 1
    b1 = make_batch(b0.last_header, [[signed, forced], [refund]], state_root=tree.root(), message_cursor=3)
    s.rollup.transact("submitBatch", *b1.submit_args(), sender=s.poster)
    s.advance(CHALLENGE_WINDOW)
    held = s.token.call("balanceOf", s.bridge.address)
    assert held == 540 * USDC
    before = {a: s.token.call("balanceOf", a) for a in (u0.address, u1.address, u2.address)}
    r = s.bridge.transact("finalizeWithdrawal", forced.as_dict(), b1.proof(1, 0, 1), sender=s.outsider)
    gas.record("Bridge.finalizeWithdrawal (forced withdrawal leaf, nonce 2^63 + n)", r.gas_used)
    assert s.bridge.decode_logs(r, "WithdrawalFinalized")[0].args == {
        "account": u0.address, "nonce": FORCED_NONCE_BASE + 1, "recipient": u2.address,
        "amount": 100 * USDC, "batchIndex": 1}
    assert s.bridge.call("isWithdrawalPaid", u0.address, FORCED_NONCE_BASE + 1)
    assert not s.bridge.call("isWithdrawalPaid", u0.address, 1)  # the L2 nonce 1 is another withdrawal
    s.bridge.transact("finalizeWithdrawal", signed.as_dict(), b1.proof(1, 0, 0), sender=s.outsider)
    s.bridge.transact("finalizeWithdrawal", refund.as_dict(), b1.proof(1, 1, 0), sender=s.outsider)
    for w, off, i in ((forced, 0, 1), (signed, 0, 0), (refund, 1, 0)):
        e = reverts("WithdrawalAlreadyPaid", s.bridge.transact, "finalizeWithdrawal", w.as_dict(), b1.proof(1, off, i),
                    sender=s.outsider)
        assert e.error_args == {"account": w.account, "nonce": w.nonce}
    assert s.token.call("balanceOf", u2.address) == before[u2.address] + 100 * USDC
    assert s.token.call("balanceOf", u0.address) == before[u0.address] + 5 * USDC
    assert s.token.call("balanceOf", u1.address) == before[u1.address] + 40 * USDC
    assert s.token.call("balanceOf", s.bridge.address) == held - 145 * USDC
    # the deposit refunded on L2 was processed (cursor 3): no second refund on L1 after a freeze
    assert s.bridge.call("messageCommitment", 2) == message_commitment(KIND_DEPOSIT, u1.address, u1.address, 40 * USDC)
