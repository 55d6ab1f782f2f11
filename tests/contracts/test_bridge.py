"""Bridge: deposits, withdrawals with the two-level proof, escape hatch and deposit refunds."""

from __future__ import annotations

import pytest
from tests.contracts.l1_testkit import (
    CHALLENGE_WINDOW,
    ESCAPE_DELAY,
    H,
    THRESHOLD,
    USDC,
    ZERO32,
    SparseTree,
    System,
    Withdrawal,
    account_leaf,
    make_batch,
    positions_hash,
)

from sequencer.l1 import ContractRevert, sign_pause, sign_reject, sign_unpause


def reverts(name: str, fn, *args, **kwargs) -> ContractRevert:
    with pytest.raises(ContractRevert) as ei:
        fn(*args, **kwargs)
    assert ei.value.error == name, str(ei.value)
    return ei.value


def bal(s: System, who) -> int:
    return s.token.call("balanceOf", who if isinstance(who, str) else who.address)


def pause(s: System):
    n = s.rollup.call("guardianNonce")
    s.rollup.transact("pause", sign_pause(s.guardians[:THRESHOLD], s.chain_id, s.rollup.address, n), sender=s.outsider)


def unpause(s: System):
    n = s.rollup.call("guardianNonce")
    s.rollup.transact("unpause", sign_unpause(s.guardians[:THRESHOLD], s.chain_id, s.rollup.address, n),
                      sender=s.outsider)


# ---------------------------------------------------------------------------------------------
# deposits
# ---------------------------------------------------------------------------------------------


def test_deposit_pulls_tokens_and_emits_nonce(system: System):
    u0, u1 = system.users[:2]
    before = bal(system, u0)
    r = system.bridge.transact("deposit", 250 * USDC, u1.address, sender=u0)
    r2 = system.bridge.transact("deposit", 1 * USDC, u0.address, sender=u1)
    evs = system.bridge.decode_logs(r, "Deposited") + system.bridge.decode_logs(r2, "Deposited")
    assert [e.args for e in evs] == [
        {"nonce": 0, "depositor": u0.address, "l2Account": u1.address, "amount": 250 * USDC},
        {"nonce": 1, "depositor": u1.address, "l2Account": u0.address, "amount": 1 * USDC},
    ]
    assert bal(system, u0) == before - 250 * USDC + 0
    assert bal(system, system.bridge.address) == 251 * USDC
    assert system.bridge.call("depositCount") == 2
    # the deposits follower's query: every Deposited log from the deployment block
    logs = system.bridge.events("Deposited", from_block=system.deployment.deployment_block)
    assert [e["nonce"] for e in logs] == [0, 1]


def test_deposit_reverts(system: System):
    u = system.users[0]
    reverts("ZeroAmount", system.bridge.transact, "deposit", 0, u.address, sender=u)
    reverts("ZeroAddress", system.bridge.transact, "deposit", 1, "0x" + "00" * 20, sender=u)
    # no allowance: the token's own error comes through
    e = reverts("InsufficientAllowance", system.bridge.transact, "deposit", 1, u.address, sender=system.outsider)
    assert e.error_args["spender"] == system.bridge.address
    system.token.transact("approve", system.bridge.address, 10, sender=system.outsider)
    reverts("InsufficientBalance", system.bridge.transact, "deposit", 10, u.address, sender=system.outsider)
    pause(system)
    e = reverts("DepositsClosed", system.bridge.transact, "deposit", 1, u.address, sender=u)
    assert e.error_args == {"isPaused": True, "isFrozen": False}


# ---------------------------------------------------------------------------------------------
# withdrawals
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def funded_batch(system: System):
    """Bridge holds 1,000 USDC; one batch of 3 blocks with 5 withdrawals is submitted."""
    u0, u1, u2 = system.users
    system.bridge.transact("deposit", 1000 * USDC, u0.address, sender=u0)
    ws = [
        [Withdrawal(u0.address, u2.address, 10 * USDC, 0), Withdrawal(u1.address, u1.address, 20 * USDC, 0),
         Withdrawal(u0.address, u0.address, 30 * USDC, 1)],
        [],
        [Withdrawal(u1.address, u2.address, 40 * USDC, 1), Withdrawal(u2.address, u2.address, 50 * USDC, 0)],
    ]
    b = make_batch(system.genesis, ws, state_root=H(b"state"))
    system.rollup.transact("submitBatch", *b.submit_args(), sender=system.poster)
    return system, b


def finalize(s: System, w: Withdrawal, proof: dict, sender=None):
    return s.bridge.transact("finalizeWithdrawal", w.as_dict(), proof, sender=sender or s.outsider)


def test_withdrawal_pays_once_after_window(funded_batch, gas):
    s, b = funded_batch
    w = b.withdrawals[2][1]
    proof = b.proof(0, 2, 1)
    e = reverts("BatchNotFinal", finalize, s, w, proof)
    assert e.error_args == {"batchIndex": 0}
    s.advance(CHALLENGE_WINDOW)
    before = bal(s, w.recipient)
    r = finalize(s, w, proof)
    gas.record("Bridge.finalizeWithdrawal (3-block batch, 2-leaf block)", r.gas_used)
    assert bal(s, w.recipient) == before + w.amount  # exactly the withdrawn amount
    ev = s.bridge.decode_logs(r, "WithdrawalFinalized")[0]
    assert ev.args == {"account": w.account, "nonce": w.nonce, "recipient": w.recipient, "amount": w.amount,
                       "batchIndex": 0}
    assert s.bridge.call("isWithdrawalPaid", w.account, w.nonce)
    e = reverts("WithdrawalAlreadyPaid", finalize, s, w, proof)
    assert e.error_args == {"account": w.account, "nonce": w.nonce}
    # every other withdrawal of the batch is payable too (any sender; funds go to recipient)
    total = w.amount
    for off, ws in enumerate(b.withdrawals):
        for i, x in enumerate(ws):
            if x != w:
                finalize(s, x, b.proof(0, off, i), sender=s.users[0])
                total += x.amount
    assert bal(s, s.bridge.address) == 1000 * USDC - total


def test_withdrawal_bad_leaf_proof(funded_batch):
    s, b = funded_batch
    s.advance(CHALLENGE_WINDOW)
    w = b.withdrawals[0][1]
    good = b.proof(0, 0, 1)
    more = Withdrawal(w.account, w.recipient, w.amount + 1, w.nonce)
    reverts("InvalidLeafProof", finalize, s, more, good)  # amount changed
    other_recipient = Withdrawal(w.account, s.outsider.address, w.amount, w.nonce)
    reverts("InvalidLeafProof", finalize, s, other_recipient, good)
    reverts("InvalidLeafProof", finalize, s, w, {**good, "leafIndex": 0})
    reverts("InvalidLeafProof", finalize, s, w, {**good, "leafIndex": 1 + 4})  # index beyond the tree
    tampered = [bytes([good["leafProof"][0][0] ^ 1]) + good["leafProof"][0][1:], *good["leafProof"][1:]]
    reverts("InvalidLeafProof", finalize, s, w, {**good, "leafProof": tampered})
    reverts("InvalidLeafProof", finalize, s, w, {**good, "leafProof": good["leafProof"][:-1]})
    # a leaf of another block, with its own (valid) leaf proof, against this block's root
    w2 = b.withdrawals[2][0]
    reverts("InvalidLeafProof", finalize, s, w2, {**good, "leafIndex": 0, "leafProof": b.proof(0, 2, 0)["leafProof"]})
    finalize(s, w, good)


def test_withdrawal_bad_block_proof(funded_batch):
    s, b = funded_batch
    s.advance(CHALLENGE_WINDOW)
    w = b.withdrawals[2][0]
    good = b.proof(0, 2, 0)
    reverts("InvalidBlockProof", finalize, s, w, {**good, "blockOffset": 0})
    reverts("InvalidBlockProof", finalize, s, w, {**good, "blockOffset": 2 + 4})
    tampered = [H(b"x"), *good["blockProof"][1:]]
    reverts("InvalidBlockProof", finalize, s, w, {**good, "blockProof": tampered})
    reverts("InvalidBlockProof", finalize, s, w, {**good, "blockProof": []})
    e = reverts("ProofTooLong", finalize, s, w, {**good, "blockProof": [ZERO32] * 33})
    assert e.error_args == {"length": 33, "max": 32}
    reverts("ProofTooLong", finalize, s, w, {**good, "leafProof": [ZERO32] * 33})
    reverts("UnknownBatch", finalize, s, w, {**good, "batchIndex": 1})
    reverts("ZeroAddress", finalize, s, Withdrawal(w.account, "0x" + "00" * 20, w.amount, w.nonce), good)
    finalize(s, w, good)


def test_withdrawal_blocked_while_paused(funded_batch):
    s, b = funded_batch
    s.advance(CHALLENGE_WINDOW)
    pause(s)
    w = b.withdrawals[0][0]
    reverts("RollupIsPaused", finalize, s, w, b.proof(0, 0, 0))
    unpause(s)
    finalize(s, w, b.proof(0, 0, 0))


def test_withdrawal_of_rejected_batch_is_not_payable(funded_batch):
    s, b = funded_batch
    n = s.rollup.call("guardianNonce")
    sigs = sign_reject(s.guardians[:THRESHOLD], s.chain_id, s.rollup.address, 0, b.last_header_hash, n)
    s.rollup.transact("reject", 0, b.last_header_hash, sigs, sender=s.outsider)
    s.advance(CHALLENGE_WINDOW)
    reverts("UnknownBatch", finalize, s, b.withdrawals[0][0], b.proof(0, 0, 0))


def test_same_withdrawal_in_two_batches_pays_once(funded_batch):
    s, b = funded_batch
    w = b.withdrawals[0][0]
    b2 = make_batch(b.headers[-1], [[w]])  # a buggy/malicious re-inclusion
    s.rollup.transact("submitBatch", *b2.submit_args(), sender=s.poster)
    s.advance(CHALLENGE_WINDOW)
    finalize(s, w, b.proof(0, 0, 0))
    reverts("WithdrawalAlreadyPaid", finalize, s, w, b2.proof(1, 0, 0))


# ---------------------------------------------------------------------------------------------
# escape hatch
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def escape_world(system: System):
    """Deposits 300 + 200 + 100 USDC (nonces 0..2). A final batch credits the first two
    (cursor 2) into a depth-32 state; a later batch (cursor 3) never becomes final."""
    s = system
    u0, u1, u2 = s.users
    for u, amt in ((u0, 300), (u1, 200), (u2, 100)):
        s.bridge.transact("deposit", amt * USDC, u.address, sender=u)
    tree = SparseTree()
    # u0 traded: paid 50 of premium to u1, holds a long option; a withdrawal of 20 by u1 is in the batch
    accounts = {
        0: (u0.address, 250 * USDC, positions_hash({"ETH-27DEC26-3000-C": 10**6})),
        1: (u1.address, 230 * USDC, positions_hash({"ETH-27DEC26-3000-C": -(10**6)})),
    }
    for i, (a, c, p) in accounts.items():
        tree.set(i, account_leaf(a, c, p))
    w = Withdrawal(u1.address, u1.address, 20 * USDC, 0)
    b0 = make_batch(s.genesis, [[], [w]], state_root=tree.root(), message_cursor=2)
    s.rollup.transact("submitBatch", *b0.submit_args(), sender=s.poster)
    s.advance(CHALLENGE_WINDOW)
    assert s.rollup.call("isFinal", 0)
    b1 = make_batch(b0.headers[-1], [[]], state_root=H(b"later"), message_cursor=3)
    return s, tree, accounts, b0, b1, w


def escape(s: System, tree: SparseTree, accounts: dict, i: int, sender=None, **over):
    a, c, p = accounts[i]
    args = dict(account=a, collateral=c, positionsHash=p, accountIndex=i, proof=tree.proof(i))
    args.update(over)
    return s.bridge.transact("escape", *args.values(), sender=sender or s.outsider)


def test_escape_before_freeze_fails(escape_world):
    s, tree, accounts, b0, b1, w = escape_world
    e = reverts("FreezeNotAllowed", escape, s, tree, accounts, 0)
    assert e.error_args["freezableAfter"] == e.error_args["lastFinalizedAt"] + ESCAPE_DELAY
    reverts("FreezeNotAllowed", s.rollup.transact, "freeze", sender=s.outsider)
    assert not s.rollup.call("canFreeze")
    reverts("NotFrozen", s.bridge.transact, "refundDeposit", 2, s.users[2].address, s.users[2].address, 100 * USDC,
            b0.headers[-1].as_dict(), sender=s.outsider)


def test_escape_flow(escape_world, gas):
    s, tree, accounts, b0, b1, w = escape_world
    u0, u1, u2 = s.users
    last_final = s.rollup.call("lastFinalizedAt")
    s.advance(ESCAPE_DELAY - 30)
    # the poster is still alive and posts b1, but it does not become final in time
    s.rollup.transact("submitBatch", *b1.submit_args(), sender=s.poster)
    s.advance(40)
    assert s.now() > last_final + ESCAPE_DELAY and not s.rollup.call("isFinal", 1)
    assert s.rollup.call("canFreeze")
    before = bal(s, u0)
    r = escape(s, tree, accounts, 0)  # first escape freezes
    gas.record("Bridge.escape (first: freezes the Rollup, depth-32 proof)", r.gas_used)
    assert bal(s, u0) == before + 250 * USDC
    frozen = s.rollup.decode_logs(r, "RollupFrozen")
    assert frozen and frozen[0].args == {"finalBatchCount": 1, "headerHash": b0.last_header_hash,
                                         "stateRoot": tree.root()}
    assert s.rollup.call("frozen") and s.rollup.call("batchCount") == 1  # b1 dropped
    e = reverts("AlreadyEscaped", escape, s, tree, accounts, 0)
    assert e.error_args == {"account": u0.address}
    escape(s, tree, accounts, 1)
    # the final withdrawal is still payable after the freeze (and paid once)
    proof = b0.proof(0, 1, 0)
    s.bridge.transact("finalizeWithdrawal", w.as_dict(), proof, sender=s.outsider)
    reverts("WithdrawalAlreadyPaid", s.bridge.transact, "finalizeWithdrawal", w.as_dict(), proof, sender=s.outsider)
    # deposit nonce 2 was never credited in a final state: refunded to its depositor, once
    hdr = b0.headers[-1].as_dict()
    before = bal(s, u2)
    r = s.bridge.transact("refundDeposit", 2, u2.address, u2.address, 100 * USDC, hdr, sender=s.outsider)
    gas.record("Bridge.refundDeposit", r.gas_used)
    assert bal(s, u2) == before + 100 * USDC
    reverts("DepositAlreadyRefunded", s.bridge.transact, "refundDeposit", 2, u2.address, u2.address, 100 * USDC,
            hdr, sender=s.outsider)
    # the bridge is now exactly empty: 600 in = 250 + 230 + 20 + 100 out
    assert bal(s, s.bridge.address) == 0


def test_escape_reverts(escape_world):
    s, tree, accounts, b0, b1, w = escape_world
    s.advance(ESCAPE_DELAY + 1)
    s.rollup.transact("freeze", sender=s.outsider)
    reverts("RollupIsFrozen", s.rollup.transact, "freeze", sender=s.outsider)
    reverts("InvalidAccountProof", escape, s, tree, accounts, 0, collateral=251 * USDC)
    reverts("InvalidAccountProof", escape, s, tree, accounts, 0, positionsHash=ZERO32)
    reverts("InvalidAccountProof", escape, s, tree, accounts, 0, accountIndex=1)
    reverts("InvalidAccountProof", escape, s, tree, accounts, 0, accountIndex=2**32)  # outside the tree
    reverts("InvalidAccountProof", escape, s, tree, accounts, 0, proof=tree.proof(1))
    e = reverts("BadAccountProofLength", escape, s, tree, accounts, 0, proof=tree.proof(0)[:31])
    assert e.error_args == {"length": 31, "expected": 32}
    # an account absent from the state cannot claim (its leaf is zero)
    reverts("InvalidAccountProof", escape, s, tree, {5: (s.outsider.address, 1, ZERO32)}, 5)
    # frozen: no more batches, deposits, guardian actions
    reverts("RollupIsFrozen", s.rollup.transact, "submitBatch", *b1.submit_args(), sender=s.poster)
    e = reverts("DepositsClosed", s.bridge.transact, "deposit", 1, s.users[0].address, sender=s.users[0])
    assert e.error_args == {"isPaused": False, "isFrozen": True}
    n = s.rollup.call("guardianNonce")
    reverts("RollupIsFrozen", s.rollup.transact, "pause",
            sign_pause(s.guardians[:THRESHOLD], s.chain_id, s.rollup.address, n), sender=s.outsider)


def test_refund_deposit_reverts(escape_world):
    s, tree, accounts, b0, b1, w = escape_world
    u0, u1, u2 = s.users
    s.advance(ESCAPE_DELAY + 1)
    s.rollup.transact("freeze", sender=s.outsider)
    hdr = b0.headers[-1].as_dict()
    refund = s.bridge.transact
    e = reverts("DepositAlreadyCredited", refund, "refundDeposit", 1, u1.address, u1.address, 200 * USDC, hdr,
                sender=s.outsider)
    assert e.error_args == {"nonce": 1, "l1MessageCursor": 2}
    # a header that is not the last final one (or lies about the cursor) is refused
    lying = {**hdr, "l1MessageCursor": 1}
    reverts("HeaderMismatch", refund, "refundDeposit", 1, u1.address, u1.address, 200 * USDC, lying,
            sender=s.outsider)
    reverts("HeaderMismatch", refund, "refundDeposit", 2, u2.address, u2.address, 100 * USDC,
            b0.headers[0].as_dict(), sender=s.outsider)
    reverts("UnknownDeposit", refund, "refundDeposit", 2, u2.address, u2.address, 101 * USDC, hdr, sender=s.outsider)
    reverts("UnknownDeposit", refund, "refundDeposit", 2, s.outsider.address, u2.address, 100 * USDC, hdr,
            sender=s.outsider)
    reverts("UnknownDeposit", refund, "refundDeposit", 3, u2.address, u2.address, 100 * USDC, hdr, sender=s.outsider)


def test_escape_from_genesis_and_long_pause(system: System):
    """Nothing ever final + guardians pause for longer than the escape delay: users can still
    leave; deposits never credited are refunded against the genesis header."""
    s = system
    u0 = s.users[0]
    s.bridge.transact("deposit", 5 * USDC, u0.address, sender=u0)
    pause(s)
    s.advance(ESCAPE_DELAY + 1)
    assert s.rollup.call("canFreeze")
    s.rollup.transact("freeze", sender=s.outsider)
    assert s.rollup.call("lastFinalState") == (0, s.genesis.hash(), s.genesis.stateRoot)
    before = bal(s, u0)
    s.bridge.transact("refundDeposit", 0, u0.address, u0.address, 5 * USDC, s.genesis.as_dict(), sender=s.outsider)
    assert bal(s, u0) == before + 5 * USDC
