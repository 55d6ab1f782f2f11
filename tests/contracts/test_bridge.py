"""Bridge: deposits (bounds, the L1 message queue), withdrawals with the two-level proof, escape
hatch and deposit refunds."""

from __future__ import annotations

import pytest
from tests.contracts.l1_testkit import (
    CHALLENGE_WINDOW,
    ESCAPE_DELAY,
    KIND_DEPOSIT,
    MAX_AMOUNT,
    H,
    THRESHOLD,
    USDC,
    ZERO32,
    Marks,
    SparseTree,
    System,
    Withdrawal,
    account_leaf,
    deploy_system,
    escape_claim,
    escape_value,
    make_batch,
    message_commitment,
    positions_hash,
)

from sequencer.l1 import ContractRevert, deploy_contract, send_pause, send_reject, send_unpause, sign_pause


def reverts(name: str, fn, *args, **kwargs) -> ContractRevert:
    with pytest.raises(ContractRevert) as ei:
        fn(*args, **kwargs)
    assert ei.value.error == name, str(ei.value)
    return ei.value


def bal(s: System, who) -> int:
    return s.token.call("balanceOf", who if isinstance(who, str) else who.address)


def pause(s: System):
    send_pause(s.rollup, s.guardians[:THRESHOLD], sender=s.outsider)


def unpause(s: System):
    send_unpause(s.rollup, s.guardians[:THRESHOLD], sender=s.outsider)


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
    assert system.bridge.call("messageCount") == 2
    # each message's commitment and its queue time on the live clock are stored
    assert system.bridge.call("messageCommitment", 0) == message_commitment(KIND_DEPOSIT, u0.address, u1.address,
                                                                             250 * USDC)
    assert system.bridge.call("messageCommitment", 1) == message_commitment(KIND_DEPOSIT, u1.address, u0.address,
                                                                             1 * USDC)
    assert system.bridge.call("messageCommitment", 2) == ZERO32
    assert system.bridge.call("messageQueuedLive", 0) == system.client.get_block_timestamp(r.block_number)
    assert system.bridge.call("messageQueuedLive", 1) == system.client.get_block_timestamp(r2.block_number)
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
    e = reverts("QueueClosed", system.bridge.transact, "deposit", 1, u.address, sender=u)
    assert e.error_args == {"isPaused": True, "isFrozen": False}
    e = reverts("QueueClosed", system.bridge.transact, "requestWithdrawal", 1, u.address, sender=u)
    assert e.error_args == {"isPaused": True, "isFrozen": False}
    assert system.bridge.call("messageCount") == 0


def test_deposit_amount_bounds(system: System):
    """0 < amount <= 2^64 - 1 (L2 amounts are uint64), for deposits and forced withdrawals alike."""
    u = system.users[0]
    system.token.transact("mint", u.address, 2**64, sender=u)
    e = reverts("AmountTooLarge", system.bridge.transact, "deposit", 2**64, u.address, sender=u)
    assert e.error_args == {"amount": 2**64, "max": MAX_AMOUNT}
    reverts("AmountTooLarge", system.bridge.transact, "deposit", 2**256 - 1, u.address, sender=u)
    e = reverts("AmountTooLarge", system.bridge.transact, "requestWithdrawal", 2**64, u.address, sender=u)
    assert e.error_args == {"amount": 2**64, "max": MAX_AMOUNT}
    reverts("ZeroAmount", system.bridge.transact, "requestWithdrawal", 0, u.address, sender=u)
    assert system.bridge.call("messageCount") == 0
    r = system.bridge.transact("deposit", MAX_AMOUNT, u.address, sender=u)
    assert system.bridge.decode_logs(r, "Deposited")[0]["amount"] == MAX_AMOUNT
    assert bal(system, system.bridge.address) == MAX_AMOUNT
    r = system.bridge.transact("requestWithdrawal", MAX_AMOUNT, u.address, sender=u)
    assert system.bridge.decode_logs(r, "WithdrawalRequested")[0].args == {
        "nonce": 1, "account": u.address, "recipient": u.address, "amount": MAX_AMOUNT}
    assert system.bridge.call("messageCount") == 2


def test_request_withdrawal_recipient_checks(system: System):
    u = system.users[0]
    for bad in ("0x" + "00" * 20, system.bridge.address, system.rollup.address, system.token.address):
        e = reverts("BadRecipient", system.bridge.transact, "requestWithdrawal", 1, bad, sender=u)
        assert e.error_args == {"recipient": bad}
    # it moves no tokens on L1: the L2 pays it (or refuses it) later
    before = bal(system, u)
    system.bridge.transact("requestWithdrawal", 5 * USDC, system.outsider.address, sender=u)
    assert bal(system, u) == before and bal(system, system.bridge.address) == 0


def test_token_with_other_decimals_refused(chain, accounts):
    """The Bridge (created by the Rollup constructor) reads decimals(): anything but 6 is refused,
    and so is a contract without decimals() (EncodingHarness: decimals reads as 255)."""
    harness, _ = deploy_contract(chain, accounts[11], "EncodingHarness")
    e = reverts("BadDecimals", deploy_system, chain, accounts, collateral_token=harness.address)
    assert e.error_args == {"decimals": 255, "expected": 6}
    # a deployed Rollup has no decimals() either
    other = deploy_system(chain, accounts)
    e = reverts("BadDecimals", deploy_system, chain, accounts, collateral_token=other.rollup.address)
    assert e.error_args == {"decimals": 255, "expected": 6}
    # MockUSDC (6 decimals) is accepted when passed explicitly
    again = deploy_system(chain, accounts, collateral_token=other.token.address)
    assert again.bridge.call("token") == other.token.address


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
    send_reject(s.rollup, s.guardians[:THRESHOLD], 0, sender=s.outsider)
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


INSTRUMENT = "ETH-27DEC26-3000-C"
MARK_LO, MARK_HI = 12 * USDC, 12 * USDC + 500_000  # 12.0 / 12.5 USDC per contract


@pytest.fixture
def escape_world(system: System):
    """Deposits 300 + 200 + 100 USDC (nonces 0..2). A final batch credits the first two
    (cursor 2) into a depth-32 state and commits the marks; a later batch (cursor 3) never
    becomes final."""
    s = system
    u0, u1, u2 = s.users
    for u, amt in ((u0, 300), (u1, 200), (u2, 100)):
        s.bridge.transact("deposit", amt * USDC, u.address, sender=u)
    tree = SparseTree()
    marks = Marks({INSTRUMENT: (MARK_LO, MARK_HI), "BTC-27DEC26-90000-P": (3 * USDC, 4 * USDC)})
    # u0 traded: paid 50 of premium to u1, holds a long option; a withdrawal of 20 by u1 is in the batch
    accounts = {
        0: (u0.address, 250 * USDC, {INSTRUMENT: 10**6}),
        1: (u1.address, 230 * USDC, {INSTRUMENT: -(10**6)}),
    }
    for i, (a, c, p) in accounts.items():
        tree.set(i, account_leaf(a, c, positions_hash(p)))
    w = Withdrawal(u1.address, u1.address, 20 * USDC, 0)
    b0 = make_batch(s.genesis, [[], [w]], state_root=tree.root(), message_cursor=2, marks_root=marks.root())
    s.rollup.transact("submitBatch", *b0.submit_args(), sender=s.poster)
    s.advance(CHALLENGE_WINDOW)
    assert s.rollup.call("isFinal", 0)
    assert s.rollup.call("lastFinalState") == (1, b0.last_header_hash, tree.root(), marks.root())
    b1 = make_batch(b0.headers[-1], [[]], state_root=H(b"later"), message_cursor=3)
    return s, tree, marks, accounts, b0, b1, w


def claim(tree: SparseTree, marks: Marks, accounts: dict, i: int) -> dict:
    a, c, p = accounts[i]
    return escape_claim(a, c, i, tree, p, marks)


def escape(s: System, header, c: dict, sender=None, recipient="0x" + "00" * 20, sig=b""):
    hdr = header.as_dict() if hasattr(header, "as_dict") else header
    return s.bridge.transact("escape", hdr, c, recipient, sig, sender=sender or s.outsider)


def refund(s: System, nonce, depositor, l2_account, amount, header, recipient="0x" + "00" * 20, sig=b""):
    hdr = header.as_dict() if hasattr(header, "as_dict") else header
    return s.bridge.transact("refundDeposit", nonce, depositor, l2_account, amount, hdr, recipient, sig,
                             sender=s.outsider)


def test_escape_before_freeze_fails(escape_world):
    s, tree, marks, accounts, b0, _b1, _w = escape_world
    e = reverts("FreezeNotAllowed", escape, s, b0.last_header, claim(tree, marks, accounts, 0))
    stored = s.rollup.call("getBatch", 0)
    assert e.error_args["lastFinalizedLive"] == stored["submittedLive"] + CHALLENGE_WINDOW
    assert e.error_args["lastFinalizedLive"] <= e.error_args["liveClock"] <= s.now() + 1
    reverts("FreezeNotAllowed", s.rollup.transact, "freeze", sender=s.outsider)
    assert not s.rollup.call("canFreeze") and s.rollup.call("freezeReason") == 0
    reverts("NotFrozen", refund, s, 2, s.users[2].address, s.users[2].address, 100 * USDC, b0.last_header)
    assert not s.bridge.call("escaped", s.users[0].address)


def test_escape_flow(escape_world, gas):
    s, tree, marks, accounts, b0, b1, w = escape_world
    u0, u1, u2 = s.users
    last_final = s.rollup.call("lastFinalizedLive")
    s.advance(ESCAPE_DELAY - 30)
    # deposit 2 (queued before b0) has waited longer than the inclusion delay: freezable (reason 2)
    assert s.rollup.call("freezeReason") == 2
    # the poster is still alive and posts b1, which includes it, but b1 does not become final in time
    s.rollup.transact("submitBatch", *b1.submit_args(), sender=s.poster)
    assert s.rollup.call("freezeReason") == 0
    s.advance(40)
    assert s.now() > last_final + ESCAPE_DELAY and not s.rollup.call("isFinal", 1)
    assert s.rollup.call("canFreeze") and s.rollup.call("freezeReason") == 1
    before = bal(s, u0)
    r = escape(s, b0.last_header, claim(tree, marks, accounts, 0))  # first escape freezes
    gas.record("Bridge.escape (first: freezes the Rollup, depth-32 proof, 1 position)", r.gas_used)
    # long 1 contract at markLo: 250 + 12
    assert escape_value(250 * USDC, {INSTRUMENT: 10**6}, marks) == 262 * USDC
    assert bal(s, u0) == before + 262 * USDC
    frozen = s.rollup.decode_logs(r, "RollupFrozen")
    assert frozen and frozen[0].args == {"finalBatchCount": 1, "headerHash": b0.last_header_hash,
                                         "stateRoot": tree.root(), "reason": 1}
    assert s.bridge.decode_logs(r, "Escaped")[0].args == {
        "account": u0.address, "recipient": u0.address, "value": 262 * USDC, "paid": 262 * USDC,
        "stateRoot": tree.root()}
    assert s.rollup.call("frozen") and s.rollup.call("batchCount") == 1  # b1 dropped
    e = reverts("AlreadyEscaped", escape, s, b0.last_header, claim(tree, marks, accounts, 0))
    assert e.error_args == {"account": u0.address}
    before = bal(s, u1)
    escape(s, b0.last_header, claim(tree, marks, accounts, 1))
    assert bal(s, u1) == before + 230 * USDC - MARK_HI  # short 1 contract at markHi: 230 - 12.5
    # the final withdrawal is still payable after the freeze (and paid once)
    proof = b0.proof(0, 1, 0)
    s.bridge.transact("finalizeWithdrawal", w.as_dict(), proof, sender=s.outsider)
    reverts("WithdrawalAlreadyPaid", s.bridge.transact, "finalizeWithdrawal", w.as_dict(), proof, sender=s.outsider)
    # deposit nonce 2 was never credited in a final state: refunded to its depositor, once
    before = bal(s, u2)
    r = refund(s, 2, u2.address, u2.address, 100 * USDC, b0.last_header)
    gas.record("Bridge.refundDeposit", r.gas_used)
    assert s.bridge.decode_logs(r, "DepositRefunded")[0].args == {
        "nonce": 2, "depositor": u2.address, "recipient": u2.address, "amount": 100 * USDC}
    assert bal(s, u2) == before + 100 * USDC
    assert s.bridge.call("messageCommitment", 2) == (1).to_bytes(32, "big")  # REFUNDED
    reverts("DepositAlreadyRefunded", refund, s, 2, u2.address, u2.address, 100 * USDC, b0.last_header)
    # 600 in = 262 + 217.5 + 20 + 100 out + 0.5 left: the marks' spread, rounded against both holders
    assert bal(s, s.bridge.address) == MARK_HI - MARK_LO == 500_000


def test_escape_reverts(escape_world):
    s, tree, marks, accounts, b0, b1, _w = escape_world
    s.advance(ESCAPE_DELAY + 1)
    s.rollup.transact("freeze", sender=s.outsider)
    reverts("RollupIsFrozen", s.rollup.transact, "freeze", sender=s.outsider)
    good = claim(tree, marks, accounts, 0)
    hdr = b0.last_header
    reverts("InvalidAccountProof", escape, s, hdr, {**good, "collateral": 251 * USDC})
    reverts("InvalidAccountProof", escape, s, hdr, {**good, "positions": []})
    reverts("InvalidAccountProof", escape, s, hdr, {**good, "positions": [{**good["positions"][0], "amount": 2 * 10**6}]})
    reverts("InvalidAccountProof", escape, s, hdr, {**good, "accountIndex": 1})
    reverts("InvalidAccountProof", escape, s, hdr, {**good, "accountIndex": 2**32})  # outside the tree
    reverts("InvalidAccountProof", escape, s, hdr, {**good, "accountProof": tree.proof(1)})
    e = reverts("BadAccountProofLength", escape, s, hdr, {**good, "accountProof": tree.proof(0)[:31]})
    assert e.error_args == {"length": 31, "expected": 32}
    # an account absent from the state cannot claim (its leaf is zero)
    reverts("InvalidAccountProof", escape, s, hdr, escape_claim(s.outsider.address, 1, 5, tree))
    reverts("ZeroAddress", escape, s, hdr, {**good, "account": "0x" + "00" * 20})
    # frozen: no more batches, messages, guardian actions
    reverts("RollupIsFrozen", s.rollup.transact, "submitBatch", *b1.submit_args(), sender=s.poster)
    e = reverts("QueueClosed", s.bridge.transact, "deposit", 1, s.users[0].address, sender=s.users[0])
    assert e.error_args == {"isPaused": False, "isFrozen": True}
    reverts("QueueClosed", s.bridge.transact, "requestWithdrawal", 1, s.users[0].address, sender=s.users[0])
    dl = s.now() + 3600
    reverts("RollupIsFrozen", s.rollup.transact, "pause", dl,
            sign_pause(s.guardians[:THRESHOLD], s.chain_id, s.rollup.address, dl), sender=s.outsider)
    escape(s, hdr, good)


def test_refund_deposit_reverts(escape_world):
    s, _tree, _marks, _accounts, b0, _b1, _w = escape_world
    _u0, u1, u2 = s.users
    s.advance(ESCAPE_DELAY + 1)
    s.rollup.transact("freeze", sender=s.outsider)
    hdr = b0.last_header.as_dict()
    e = reverts("DepositAlreadyProcessed", refund, s, 1, u1.address, u1.address, 200 * USDC, hdr)
    assert e.error_args == {"nonce": 1, "l1MessageCursor": 2}
    # a header that is not the last final one (or lies about the cursor) is refused
    lying = {**hdr, "l1MessageCursor": 1}
    e = reverts("HeaderMismatch", refund, s, 1, u1.address, u1.address, 200 * USDC, lying)
    assert e.error_args["lastFinalHeaderHash"] == b0.last_header_hash
    reverts("HeaderMismatch", refund, s, 2, u2.address, u2.address, 100 * USDC, b0.headers[0])
    reverts("UnknownDeposit", refund, s, 2, u2.address, u2.address, 101 * USDC, hdr)
    reverts("UnknownDeposit", refund, s, 2, s.outsider.address, u2.address, 100 * USDC, hdr)
    reverts("UnknownDeposit", refund, s, 2, u2.address, s.outsider.address, 100 * USDC, hdr)
    reverts("UnknownDeposit", refund, s, 3, u2.address, u2.address, 100 * USDC, hdr)
    refund(s, 2, u2.address, u2.address, 100 * USDC, hdr)


def test_escape_from_genesis_and_long_pause(system: System):
    """Nothing ever final + guardians pause for longer than the escape delay: users can still
    leave; deposits never credited are refunded against the genesis header."""
    s = system
    u0 = s.users[0]
    s.bridge.transact("deposit", 5 * USDC, u0.address, sender=u0)
    pause(s)
    paused_at = s.rollup.call("pausedAt")
    s.mine_at(paused_at + ESCAPE_DELAY)
    assert s.rollup.call("freezeReason") == 0
    s.mine_at(paused_at + ESCAPE_DELAY + 1)
    assert s.rollup.call("canFreeze") and s.rollup.call("freezeReason") == 3
    r = s.rollup.transact("freeze", sender=s.outsider)
    assert s.rollup.decode_logs(r, "RollupFrozen")[0]["reason"] == 3
    assert s.rollup.call("lastFinalState") == (0, s.genesis.hash(), s.genesis.stateRoot, ZERO32)
    before = bal(s, u0)
    refund(s, 0, u0.address, u0.address, 5 * USDC, s.genesis)
    assert bal(s, u0) == before + 5 * USDC
    # frozen while paused: the pause cannot block payouts any more, nor can the guardians act
    assert s.rollup.call("paused") and s.rollup.call("frozen")
    reverts("RollupIsFrozen", send_unpause, s.rollup, s.guardians[:THRESHOLD], sender=s.outsider)
