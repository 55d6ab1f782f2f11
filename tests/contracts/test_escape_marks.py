"""Issue 11: the escape hatch values an account at the final batch's committed marks, pays
max(0, collateral + Σ value(q)) capped by the Bridge's balance, and pays escapes and refunds to
another recipient only with the owner's EIP-712 signature. Every expected figure is computed
independently (by hand in the comments, and by the test kit's Python twin)."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from tests.contracts.l1_testkit import (
    CHALLENGE_WINDOW,
    ESCAPE_DELAY,
    SECP256K1_N,
    USDC,
    ZERO32,
    H,
    Marks,
    SparseTree,
    System,
    account_leaf,
    bridge_typed_data,
    escape_claim,
    escape_value,
    make_batch,
    mark_leaf,
    position_value,
    positions_hash,
    reverts,
    sign_escape_to,
    sign_refund_to,
)

ZERO_ADDRESS = "0x" + "00" * 20

X = "ETH-27DEC26-3000-C"
Y = "BTC-27DEC26-90000-P"
Z = "ETH-27DEC26-9999-C-a-very-long-instrument-name-beyond-32-bytes"
N = "SOL-27DEC26-200-C"  # no valid oracle price: marks 0/0
W = "eth-lowercase-sorts-after-uppercase"
MARKS = {X: (40_123_456, 40_500_000), Y: (16_900_000, 17_000_001), Z: (1_000_001, 1_100_000), N: (0, 0), W: (5, 6)}
STALE_MARKS = {**MARKS, X: (50 * USDC, 51 * USDC)}  # an earlier batch's marks

# account A (users[0]), index 0: collateral 1,000 USDC and five positions
A_COLLATERAL = 1_000 * USDC
A_POSITIONS = {X: 2_500_000, Y: -1_300_000, Z: -7, N: 3_000_000, W: 1_999_999}
# by hand: X long 2.5 @ lo 40.123456  -> +100,308,640 (exact)
#          Y short 1.3 @ hi 17.000001 -> -22,100,001.3 -> floor -22,100,002
#          Z short 7e-6 @ hi 1.1       -> -7.7 -> floor -8
#          N long 3 @ 0                ->  0
#          W long 1.999999 @ lo 5e-6   -> +9.999995 -> floor 9
A_VALUE = 1_000_000_000 + 100_308_640 - 22_100_002 - 8 + 0 + 9  # 1,078,208,639
# account B (users[1]), index 1: insolvent, 10 USDC and short 5 X @ hi 40.5 -> 10 - 202.5 < 0 -> 0
B_COLLATERAL, B_POSITIONS = 10 * USDC, {X: -5_000_000}
# account C (users[2]), index 7: 300 USDC, long 1 X @ lo -> 340,123,456
C_COLLATERAL, C_POSITIONS, C_VALUE = 300 * USDC, {X: 1_000_000}, 340_123_456
# account D (outsider), last index: more collateral than the Bridge holds
D_COLLATERAL, D_INDEX = 10_000 * USDC, 2**32 - 1
# account E (deployer), index 3: 1 USDC, no positions
E_COLLATERAL = 1 * USDC
DEPOSITS = (1_500 * USDC, 10 * USDC, 300 * USDC)  # by users[0..2], nonces 0..2 (credited); nonce 3 is not
LATE_DEPOSIT = 25 * USDC  # users[1], nonce 3, never credited


def test_hand_computed_values_match_the_python_twin():
    m = Marks(MARKS)
    assert A_VALUE == 1_078_208_639 == escape_value(A_COLLATERAL, A_POSITIONS, m)
    assert position_value(-1_300_000, *MARKS[Y]) == -22_100_002
    assert position_value(-7, *MARKS[Z]) == -8
    assert escape_value(B_COLLATERAL, B_POSITIONS, m) == 0
    assert escape_value(C_COLLATERAL, C_POSITIONS, m) == C_VALUE
    # the leaves are ordered by name, bytewise (upper case before lower case)
    assert m.names == [Y, X, Z, N, W]


@pytest.fixture
def world(system: System):
    """Two final batches with the same state and different marks (b0 stale, b1 current), a
    later deposit never credited, and the Rollup frozen."""
    s = system
    u0, u1, u2 = s.users
    for u, amount in zip(s.users, DEPOSITS, strict=True):
        s.bridge.transact("deposit", amount, u.address, sender=u)
    tree = SparseTree()
    accounts = {
        0: (u0.address, A_COLLATERAL, A_POSITIONS),
        1: (u1.address, B_COLLATERAL, B_POSITIONS),
        7: (u2.address, C_COLLATERAL, C_POSITIONS),
        3: (s.deployer.address, E_COLLATERAL, {}),
        D_INDEX: (s.outsider.address, D_COLLATERAL, {}),
    }
    for i, (a, c, p) in accounts.items():
        tree.set(i, account_leaf(a, c, positions_hash(p)))
    marks, stale = Marks(MARKS), Marks(STALE_MARKS)
    b0 = make_batch(s.genesis, [[]], state_root=tree.root(), message_cursor=3, marks_root=stale.root())
    s.rollup.transact("submitBatch", *b0.submit_args(), sender=s.poster)
    b1 = make_batch(b0.last_header, [[], []], state_root=tree.root(), message_cursor=3, marks_root=marks.root())
    s.rollup.transact("submitBatch", *b1.submit_args(), sender=s.poster)
    s.bridge.transact("deposit", LATE_DEPOSIT, u1.address, sender=u1)  # nonce 3
    s.advance(CHALLENGE_WINDOW + ESCAPE_DELAY + 1)
    s.rollup.transact("freeze", sender=s.outsider)
    assert s.rollup.call("lastFinalState") == (2, b1.last_header_hash, tree.root(), marks.root())
    assert s.token.call("balanceOf", s.bridge.address) == sum(DEPOSITS) + LATE_DEPOSIT
    return s, tree, marks, stale, accounts, b0, b1


def claim(w, i: int, marks: Marks | None = None) -> dict:
    _s, tree, m, _stale, accounts, _b0, _b1 = w
    a, c, p = accounts[i]
    return escape_claim(a, c, i, tree, p, marks or m)


def escape(s: System, header, c: dict, recipient=ZERO_ADDRESS, sig=b""):
    hdr = header.as_dict() if hasattr(header, "as_dict") else header
    return s.bridge.transact("escape", hdr, c, recipient, sig, sender=s.outsider)


def bal(s: System, who: str) -> int:
    return s.token.call("balanceOf", who)


def test_escape_pays_collateral_plus_positions_at_marks(world, gas):
    s, *_, b1 = world
    u0 = s.users[0]
    before, held = bal(s, u0.address), bal(s, s.bridge.address)
    r = escape(s, b1.last_header, claim(world, 0))
    gas.record("Bridge.escape (after freeze, depth-32 proof, 5 positions at marks)", r.gas_used)
    assert bal(s, u0.address) == before + A_VALUE
    assert bal(s, s.bridge.address) == held - A_VALUE
    assert s.bridge.decode_logs(r, "Escaped")[0].args == {
        "account": u0.address, "recipient": u0.address, "value": A_VALUE, "paid": A_VALUE,
        "stateRoot": b1.last_header.stateRoot}
    assert s.bridge.call("escaped", u0.address)
    reverts("AlreadyEscaped", escape, s, b1.last_header, claim(world, 0))
    # anyone may send an escape; the funds always go to the account
    before = bal(s, s.users[2].address)
    escape(s, b1.last_header, claim(world, 7))
    assert bal(s, s.users[2].address) == before + C_VALUE


def test_insolvent_account_gets_zero_and_is_marked_escaped(world):
    s, *_, b1 = world
    u1 = s.users[1]
    before, held = bal(s, u1.address), bal(s, s.bridge.address)
    r = escape(s, b1.last_header, claim(world, 1))
    assert s.bridge.decode_logs(r, "Escaped")[0].args == {
        "account": u1.address, "recipient": u1.address, "value": 0, "paid": 0, "stateRoot": b1.last_header.stateRoot}
    assert bal(s, u1.address) == before and bal(s, s.bridge.address) == held
    assert s.bridge.call("escaped", u1.address)
    reverts("AlreadyEscaped", escape, s, b1.last_header, claim(world, 1))


def test_wrong_mark_proofs_are_refused(world):
    s, _tree, marks, stale, _accounts, b0, b1 = world
    good = claim(world, 0)
    hdr = b1.last_header
    ps = good["positions"]
    assert [p["instrument"] for p in ps] == [Y, X, Z, N, W]

    def with_pos(i, **over):
        return {**good, "positions": [*ps[:i], {**ps[i], **over}, *ps[i + 1:]]}

    # a better mark for the holder (long at markHi, short at markLo) is not the committed one
    e = reverts("InvalidMarkProof", escape, s, hdr, with_pos(1, markLo=MARKS[X][1]))
    assert e.error_args == {"position": 1}
    assert reverts("InvalidMarkProof", escape, s, hdr, with_pos(0, markHi=MARKS[Y][0])).error_args == {"position": 0}
    # markHi is committed too, even for a long
    assert reverts("InvalidMarkProof", escape, s, hdr, with_pos(4, markHi=7)).error_args == {"position": 4}
    # another leaf's index / proof
    assert reverts("InvalidMarkProof", escape, s, hdr, with_pos(2, markIndex=3)).error_args == {"position": 2}
    assert reverts("InvalidMarkProof", escape, s, hdr,
                   with_pos(3, markProof=marks.proof(W))).error_args == {"position": 3}
    # the no-oracle instrument must be proven at 0/0 as well
    assert reverts("InvalidMarkProof", escape, s, hdr, with_pos(3, markLo=1, markHi=1)).error_args == {"position": 3}
    e = reverts("ProofTooLong", escape, s, hdr, with_pos(1, markProof=[ZERO32] * 33))
    assert e.error_args == {"length": 33, "max": 32}
    # the marks of an earlier final batch (b0) are not the last final state's (position 0 already
    # fails: its proof's first sibling is b0's X leaf)
    old = claim(world, 0, stale)
    assert reverts("InvalidMarkProof", escape, s, hdr, old).error_args == {"position": 0}
    # nor is b0's header accepted
    e = reverts("HeaderMismatch", escape, s, b0.last_header, old)
    assert e.error_args == {"lastFinalHeaderHash": b1.last_header_hash, "givenHeaderHash": b0.last_header_hash}
    escape(s, hdr, good)


def test_wrong_positions_are_refused(world):
    s, *_, b1 = world
    good = claim(world, 0)
    hdr = b1.last_header
    ps = good["positions"]
    # each variant carries valid mark proofs: only the account leaf (positionsHash) can reject it
    variants = [
        [*ps[1:]],  # the losing short (Y) hidden
        [ps[1], ps[0], *ps[2:]],  # order not the leaf's (sorted by name)
        [{**ps[0], "amount": ps[0]["amount"] + 1}, *ps[1:]],  # amount changed
        [{**p, "amount": abs(p["amount"])} for p in ps],  # shorts turned long
        [],  # no positions (positionsHash = 0)
    ]
    for v in variants:
        reverts("InvalidAccountProof", escape, s, hdr, {**good, "positions": v})
    # positions with valid marks grafted onto another account's leaf
    reverts("InvalidAccountProof", escape, s, hdr, {**claim(world, 7), "positions": ps})
    escape(s, hdr, good)


def test_forged_state_or_header_is_refused(world):
    s, _tree, marks, _stale, _accounts, _b0, b1 = world
    u0 = s.users[0]
    # an attacker's own tree, with a fat leaf, and a header committing to it
    forged = SparseTree()
    forged.set(0, account_leaf(u0.address, 1_800 * USDC, positions_hash(A_POSITIONS)))
    fake_header = {**b1.last_header.as_dict(), "stateRoot": forged.root()}
    fake_claim = escape_claim(u0.address, 1_800 * USDC, 0, forged, A_POSITIONS, marks)
    e = reverts("HeaderMismatch", escape, s, fake_header, fake_claim)
    assert e.error_args["lastFinalHeaderHash"] == b1.last_header_hash
    assert e.error_args["givenHeaderHash"] != b1.last_header_hash
    # the real header with the forged claim: the leaf is not in the state
    reverts("InvalidAccountProof", escape, s, b1.last_header, fake_claim)
    # any other field of the header changed
    for k, v in (("number", 99), ("l1MessageCursor", 4), ("timestamp", 1), ("withdrawalRoot", H(b"w"))):
        reverts("HeaderMismatch", escape, s, {**b1.last_header.as_dict(), k: v}, claim(world, 0))


def test_payout_capped_by_the_bridge_balance(world):
    s, *_, b1 = world
    hdr = b1.last_header
    escape(s, hdr, claim(world, 0))
    escape(s, hdr, claim(world, 7))
    held = bal(s, s.bridge.address)
    # 1,810 + 25 in, 1,078.208639 + 340.123456 out
    assert held == sum(DEPOSITS) + LATE_DEPOSIT - A_VALUE - C_VALUE == 416_667_905
    before = bal(s, s.outsider.address)
    r = escape(s, hdr, claim(world, D_INDEX))
    ev = s.bridge.decode_logs(r, "Escaped")[0]
    assert (ev["value"], ev["paid"]) == (D_COLLATERAL, held)
    assert bal(s, s.outsider.address) == before + held and bal(s, s.bridge.address) == 0
    # the Bridge is empty: the next claim is worth 1 USDC and paid nothing, but it is used up
    r = escape(s, hdr, claim(world, 3))
    ev = s.bridge.decode_logs(r, "Escaped")[0]
    assert (ev["value"], ev["paid"]) == (E_COLLATERAL, 0)
    assert s.bridge.call("escaped", s.deployer.address)
    # and the never-credited deposit cannot be refunded any more (first come, first served)
    u1 = s.users[1]
    e = reverts("InsufficientBalance", s.bridge.transact, "refundDeposit", 3, u1.address, u1.address, LATE_DEPOSIT,
                hdr.as_dict(), ZERO_ADDRESS, b"", sender=s.outsider)
    assert e.error_args == {"account": s.bridge.address, "balance": 0, "needed": LATE_DEPOSIT}


def _recovered(s: System, primary: str, message: dict, sig: bytes) -> str:
    """Who `sig` recovers to over this message (eth-account, independent of the contract)."""
    signable = encode_typed_data(full_message=bridge_typed_data(s.chain_id, s.bridge.address, primary, message))
    return Account.recover_message(signable, signature=sig)


def test_escape_to_a_signed_recipient(world):
    s, *_, b1 = world
    u0, u1, u2 = s.users
    hdr = b1.last_header
    c = claim(world, 7)  # u2's account
    to = s.outsider.address
    # EscapeTo typehash and digest, as the contract defines them
    assert s.bridge.call("ESCAPE_TO_TYPEHASH") == H(b"EscapeTo(address account,address recipient)")
    assert s.bridge.call("REFUND_TO_TYPEHASH") == H(b"RefundTo(uint256 nonce,address recipient)")
    good = sign_escape_to(u2, s.chain_id, s.bridge.address, u2.address, to)
    # signed by somebody else
    bad = sign_escape_to(u1, s.chain_id, s.bridge.address, u2.address, to)
    e = reverts("BadOwnerSignature", escape, s, hdr, c, to, bad)
    assert e.error_args == {"expected": u2.address, "recovered": u1.address}
    # signed by the owner for another recipient
    other = sign_escape_to(u2, s.chain_id, s.bridge.address, u2.address, u0.address)
    e = reverts("BadOwnerSignature", escape, s, hdr, c, to, other)
    rec = _recovered(s, "EscapeTo", {"account": u2.address, "recipient": to}, other)
    assert e.error_args == {"expected": u2.address, "recovered": rec} and rec != u2.address
    # signed for another chain / another contract
    for chain_id, contract in ((s.chain_id + 1, s.bridge.address), (s.chain_id, s.rollup.address)):
        sg = sign_escape_to(u2, chain_id, contract, u2.address, to)
        assert reverts("BadOwnerSignature", escape, s, hdr, c, to, sg).error_args["expected"] == u2.address
    # no signature, malformed, or the malleable (high-s) twin: recovers to nobody
    r_, s_, v_ = good[:32], int.from_bytes(good[32:64], "big"), good[64]
    high_s = r_ + (SECP256K1_N - s_).to_bytes(32, "big") + bytes([55 - v_])
    for sg in (b"", good[:64], high_s):
        e = reverts("BadOwnerSignature", escape, s, hdr, c, to, sg)
        assert e.error_args == {"expected": u2.address, "recovered": ZERO_ADDRESS}
    # never to the Bridge or the token
    for bad_to in (s.bridge.address, s.token.address):
        sg = sign_escape_to(u2, s.chain_id, s.bridge.address, u2.address, bad_to)
        assert reverts("BadRecipient", escape, s, hdr, c, bad_to, sg).error_args == {"recipient": bad_to}
    # the valid signature works, for whoever sends it; the account gets nothing, the recipient the value
    before_to, before_u2 = bal(s, to), bal(s, u2.address)
    r = escape(s, hdr, c, to, good)
    assert bal(s, to) == before_to + C_VALUE and bal(s, u2.address) == before_u2
    assert s.bridge.decode_logs(r, "Escaped")[0]["recipient"] == to
    # and only once
    reverts("AlreadyEscaped", escape, s, hdr, c, to, good)
    # recipient = the account itself needs no signature
    before = bal(s, u0.address)
    escape(s, hdr, claim(world, 0), u0.address, b"")
    assert bal(s, u0.address) == before + A_VALUE


def test_refund_deposit_to_a_signed_recipient(world, gas):
    s, *_, b1 = world
    u0, u1, _u2 = s.users
    hdr = b1.last_header.as_dict()
    to = s.outsider.address

    def refund(recipient, sig, nonce=3, depositor=u1.address):
        return s.bridge.transact("refundDeposit", nonce, depositor, u1.address, LATE_DEPOSIT, hdr, recipient, sig,
                                 sender=s.outsider)

    good = sign_refund_to(u1, s.chain_id, s.bridge.address, 3, to)
    e = reverts("BadOwnerSignature", refund, to, sign_refund_to(u0, s.chain_id, s.bridge.address, 3, to))
    assert e.error_args == {"expected": u1.address, "recovered": u0.address}
    other_nonce = sign_refund_to(u1, s.chain_id, s.bridge.address, 2, to)
    e = reverts("BadOwnerSignature", refund, to, other_nonce)
    assert e.error_args == {"expected": u1.address,
                            "recovered": _recovered(s, "RefundTo", {"nonce": 3, "recipient": to}, other_nonce)}
    e = reverts("BadOwnerSignature", refund, u0.address, good)  # signed for `to`, sent for u0
    assert e.error_args["expected"] == u1.address and e.error_args["recovered"] != u1.address
    sg = sign_refund_to(u1, s.chain_id, s.bridge.address, 3, s.token.address)
    assert reverts("BadRecipient", refund, s.token.address, sg).error_args == {"recipient": s.token.address}
    before_to, before_u1 = bal(s, to), bal(s, u1.address)
    r = refund(to, good)
    gas.record("Bridge.refundDeposit (to a signed recipient)", r.gas_used)
    assert bal(s, to) == before_to + LATE_DEPOSIT and bal(s, u1.address) == before_u1
    assert s.bridge.decode_logs(r, "DepositRefunded")[0].args == {
        "nonce": 3, "depositor": u1.address, "recipient": to, "amount": LATE_DEPOSIT}
    reverts("DepositAlreadyRefunded", refund, to, good)
    reverts("DepositAlreadyRefunded", refund, ZERO_ADDRESS, b"")


def test_node_mark_leaf_matches_eth_abi(world):
    """The node's mark_leaf (hand-written ABI encoding) gives the same leaves as the test kit's
    eth-abi twin, whose roots the escapes above prove on chain: the marks root the poster submits
    is the one escapes are proven against."""
    from sequencer.core.header import mark_leaf as node_mark_leaf

    _s, *_ = world
    m = Marks(MARKS)
    for name in m.names:
        assert node_mark_leaf(name, *MARKS[name]) == mark_leaf(name, *MARKS[name])
    for name, lo, hi in (("", 0, 0), ("x" * 32, 2**64 - 1, 2**64 - 1), ("é-ünïcode-名", 1, 2), ("y" * 65, 3, 4)):
        assert node_mark_leaf(name, lo, hi) == mark_leaf(name, lo, hi)
