"""Issue 11, timing and roles: the constructor's timing rules, the live clock (a pause gives its
time back), pause cooldown and the pause limit, guardian actions with deadlines that work once
(parallel quorums do not interfere), and the rotation of poster and guardians."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_account import Account
from tests.contracts.l1_testkit import (
    ALLOWANCE,
    CHALLENGE_WINDOW,
    ESCAPE_DELAY,
    INCLUSION_DELAY,
    POSTING_INTERVAL,
    ROTATION_DELAY,
    THRESHOLD,
    USDC,
    H,
    System,
    deploy_system,
    eip712_digest,
    guardian_struct_hash,
    make_batch,
    reverts,
)

from sequencer.l1 import (execute_rotation, send_pause, send_rotation, send_unpause, sign_pause,
                          sign_reject, sign_rotation, sign_unpause)

GAS = 1_000_000  # fixed gas: a transaction timed at a boundary skips estimation at the previous block


def digest(s: System, primary: str, message: dict) -> bytes:
    """An action's EIP-712 digest, computed independently of the contract and of guardians.py."""
    typehash = {
        "Reject": H(b"Reject(uint256 batchIndex,bytes32 lastHeaderHash,uint256 deadline)"),
        "Pause": H(b"Pause(uint256 deadline)"),
        "Unpause": H(b"Unpause(uint256 deadline)"),
        "Rotate": H(b"Rotate(address poster,address[] guardians,uint256 threshold,uint256 deadline)"),
    }[primary]
    return eip712_digest("optrollup.guardians", "2", s.chain_id, s.rollup.address,
                         guardian_struct_hash(primary, message, typehash))


def submit(s: System, prev, sender=None, gas=None, **kw):
    b = make_batch(prev, [[]], **kw)
    s.rollup.transact("submitBatch", *b.submit_args(), sender=sender or s.poster, gas=gas)
    return b


def pause_tx(s: System, dl: int, keys=None, gas=None):
    sigs = sign_pause(keys or s.guardians[:THRESHOLD], s.chain_id, s.rollup.address, dl)
    return s.rollup.transact("pause", dl, sigs, sender=s.outsider, gas=gas)


def unpause_tx(s: System, dl: int, keys=None, gas=None):
    sigs = sign_unpause(keys or s.guardians[:THRESHOLD], s.chain_id, s.rollup.address, dl)
    return s.rollup.transact("unpause", dl, sigs, sender=s.outsider, gas=gas)


# ---------------------------------------------------------------------------------------------
# constructor timing rules
# ---------------------------------------------------------------------------------------------

ESCAPE_RULE = "escapeDelay >= 2*challengeWindow + postingInterval + ALLOWANCE"
INCLUSION_RULE = "inclusionDelay >= postingInterval + ALLOWANCE"
ROTATION_RULE = "rotationDelay >= inclusionDelay + challengeWindow"


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"escape_delay": ESCAPE_DELAY - 1}, ESCAPE_RULE),
        ({"challenge_window": CHALLENGE_WINDOW + 1}, ESCAPE_RULE),  # raises the escape minimum by 2
        ({"inclusion_delay": INCLUSION_DELAY - 1, "rotation_delay": ROTATION_DELAY}, INCLUSION_RULE),
        ({"posting_interval": POSTING_INTERVAL + 1, "escape_delay": ESCAPE_DELAY + 1}, INCLUSION_RULE),
        ({"rotation_delay": ROTATION_DELAY - 1}, ROTATION_RULE),
        ({"inclusion_delay": INCLUSION_DELAY + 1}, ROTATION_RULE),
        ({"challenge_window": 0}, "challengeWindow > 0"),
    ],
)
def test_constructor_timing_rules(chain, accounts, overrides, rule):
    e = reverts("InvalidTiming", deploy_system, chain, accounts, **overrides)
    assert e.error_args == {"rule": rule}


def test_timing_rules_minimum_is_accepted(chain, accounts, system: System):
    # the session's system sits exactly on the three minima
    r = system.rollup
    assert r.call("escapeDelay") == 2 * CHALLENGE_WINDOW + POSTING_INTERVAL + ALLOWANCE == ESCAPE_DELAY
    assert r.call("inclusionDelay") == POSTING_INTERVAL + ALLOWANCE == INCLUSION_DELAY
    assert r.call("rotationDelay") == INCLUSION_DELAY + CHALLENGE_WINDOW == ROTATION_DELAY
    # deploy()'s default rotation delay is the minimum too
    other = deploy_system(chain, accounts, inclusion_delay=INCLUSION_DELAY + 7, rotation_delay=None)
    assert other.rollup.call("rotationDelay") == INCLUSION_DELAY + 7 + CHALLENGE_WINDOW


# ---------------------------------------------------------------------------------------------
# the live clock and pauses
# ---------------------------------------------------------------------------------------------


def test_pause_gives_its_time_back(system: System, gas):
    """A batch submitted 10 s before a 1000 s pause is final exactly challengeWindow live seconds
    after submission: 1000 s later than without the pause, not at the unpause."""
    s = system
    t = s.now() + 100
    s.next_at(t)
    submit(s, s.genesis, gas=GAS)
    assert s.rollup.call("getBatch", 0)["submittedLive"] == t
    s.next_at(t + 10)
    r = pause_tx(s, t + 5000, gas=GAS)
    assert s.rollup.call("pausedAt") == t + 10
    s.mine_at(t + CHALLENGE_WINDOW)  # would have been final now
    assert not s.rollup.call("isFinal", 0) and s.rollup.call("liveClock") == t + 10
    s.next_at(t + 1010)
    r = unpause_tx(s, t + 5000, gas=GAS)
    assert s.rollup.decode_logs(r, "RollupUnpaused")[0]["pausedFor"] == 1000
    assert s.rollup.call("pausedTotal") == 1000
    assert not s.rollup.call("isFinal", 0)  # not at the unpause
    s.mine_at(t + 1000 + CHALLENGE_WINDOW - 1)
    assert not s.rollup.call("isFinal", 0) and s.rollup.call("finalizedBatchCount") == 0
    assert s.rollup.call("liveClock") == t + CHALLENGE_WINDOW - 1
    s.mine_at(t + 1000 + CHALLENGE_WINDOW)
    assert s.rollup.call("isFinal", 0) and s.rollup.call("finalizedBatchCount") == 1
    assert s.rollup.call("lastFinalizedLive") == t + CHALLENGE_WINDOW


def test_pause_cooldown(system: System):
    s = system
    send_pause(s.rollup, s.guardians[:THRESHOLD], sender=s.outsider)
    r = send_unpause(s.rollup, s.guardians[:THRESHOLD], sender=s.outsider)
    u = s.client.get_block_timestamp(r.block_number)
    assert s.rollup.call("unpausedAt") == u
    dl = u + 7200  # not the deadline send_pause signed (that pause quorum is spent)
    s.mine_at(u + CHALLENGE_WINDOW - 1)
    e = reverts("PauseCooldown", pause_tx, s, dl)
    assert e.error_args == {"allowedAt": u + CHALLENGE_WINDOW}
    s.next_at(u + CHALLENGE_WINDOW)
    pause_tx(s, dl, gas=GAS)
    assert s.rollup.call("paused")


def test_long_pause_is_freezable_with_reason_3(system: System):
    s = system
    b0 = submit(s, s.genesis)
    s.advance(CHALLENGE_WINDOW)
    b1 = submit(s, b0.last_header)  # not final when the pause starts
    r = send_pause(s.rollup, s.guardians[:THRESHOLD], sender=s.outsider)
    p = s.client.get_block_timestamp(r.block_number)
    s.mine_at(p + ESCAPE_DELAY)
    assert s.rollup.call("freezeReason") == 0
    reverts("FreezeNotAllowed", s.rollup.call, "freeze")
    s.mine_at(p + ESCAPE_DELAY + 1)
    assert s.rollup.call("freezeReason") == 3
    r = s.rollup.transact("freeze", sender=s.outsider)
    assert s.rollup.decode_logs(r, "RollupFrozen")[0].args == {
        "finalBatchCount": 1, "headerHash": b0.last_header_hash, "stateRoot": b0.state_root, "reason": 3}
    assert s.rollup.call("batchCount") == 1 and b1.last_header_hash != b0.last_header_hash
    assert s.rollup.call("frozenAt") == s.client.get_block_timestamp(r.block_number)


# ---------------------------------------------------------------------------------------------
# guardian actions: deadlines, one shot, parallel quorums
# ---------------------------------------------------------------------------------------------


def test_action_deadline_is_inclusive(system: System):
    s = system
    dl = s.now() + 100
    s.next_at(dl)
    r = pause_tx(s, dl, gas=GAS)  # mined at exactly the deadline: valid
    assert s.client.get_block_timestamp(r.block_number) == dl and s.rollup.call("paused")
    dl2 = dl + 50
    s.mine_at(dl2 + 1)
    e = reverts("ActionExpired", unpause_tx, s, dl2)
    assert e.error_args == {"deadline": dl2, "nowTs": dl2 + 1}
    # a reject that expired one second ago
    unpause_tx(s, dl2 + 1000)
    s.advance(CHALLENGE_WINDOW)
    b0 = submit(s, s.genesis)
    dl3 = s.now() + 10
    sigs = sign_reject(s.guardians[:THRESHOLD], s.chain_id, s.rollup.address, 0, b0.last_header_hash, dl3)
    s.mine_at(dl3 + 1)
    e = reverts("ActionExpired", s.rollup.transact, "reject", 0, b0.last_header_hash, dl3, sigs, sender=s.outsider)
    assert e.error_args == {"deadline": dl3, "nowTs": dl3 + 1}


def test_action_works_once(system: System):
    s = system
    dl = s.now() + 3600
    keys = s.guardians[:THRESHOLD]
    pause_sigs = sign_pause(keys, s.chain_id, s.rollup.address, dl)
    unpause_sigs = sign_unpause(keys, s.chain_id, s.rollup.address, dl)
    r = s.rollup.transact("pause", dl, pause_sigs, sender=s.outsider)
    d = digest(s, "Pause", {"deadline": dl})
    assert s.rollup.decode_logs(r, "RollupPaused")[0]["action"] == d and s.rollup.call("actionUsed", d)
    s.rollup.transact("unpause", dl, unpause_sigs, sender=s.outsider)
    s.advance(CHALLENGE_WINDOW)
    e = reverts("ActionAlreadyUsed", s.rollup.transact, "pause", dl, pause_sigs, sender=s.outsider)
    assert e.error_args == {"digest": d}
    # a new quorum (another deadline) is another action
    pause_tx(s, dl + 1)
    e = reverts("ActionAlreadyUsed", s.rollup.transact, "unpause", dl, unpause_sigs, sender=s.outsider)
    assert e.error_args == {"digest": digest(s, "Unpause", {"deadline": dl})}


def test_parallel_quorums_do_not_interfere(system: System):
    """Three quorums gathered at the same time (the old shared nonce let only the first through)."""
    s = system
    prev = s.genesis
    bs = []
    for _ in range(3):
        bs.append(submit(s, prev))
        prev = bs[-1].last_header
    dl = s.now() + 3600
    g = s.guardians
    rej2 = sign_reject([g[0], g[1], g[2]], s.chain_id, s.rollup.address, 2, bs[2].last_header_hash, dl)
    rej1 = sign_reject([g[2], g[3], g[4]], s.chain_id, s.rollup.address, 1, bs[1].last_header_hash, dl)
    pau = sign_pause([g[0], g[3], g[4]], s.chain_id, s.rollup.address, dl)
    pau_other = sign_pause([g[1], g[2], g[3]], s.chain_id, s.rollup.address, dl + 60)
    s.rollup.transact("reject", 2, bs[2].last_header_hash, dl, rej2, sender=s.outsider)
    s.rollup.transact("reject", 1, bs[1].last_header_hash, dl, rej1, sender=s.users[0])
    assert s.rollup.call("batchCount") == 1
    s.rollup.transact("pause", dl, pau, sender=s.users[1])
    assert s.rollup.call("paused")
    send_unpause(s.rollup, s.guardians[2:], sender=s.outsider)
    s.advance(CHALLENGE_WINDOW)
    s.rollup.transact("pause", dl + 60, pau_other, sender=s.outsider)  # the second pause quorum still works
    assert s.rollup.call("paused")


# ---------------------------------------------------------------------------------------------
# rotation of poster and guardians
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def rotation(system: System):
    s = system
    new_keys = [Account.from_key(H(f"optrollup new guardian {i}".encode())) for i in range(2)]
    new_guardians = [s.guardians[4].address, *(k.address for k in new_keys)]
    return s, s.users[2], new_keys, new_guardians


def pending_hash(poster: str, guardians: list[str], threshold: int) -> bytes:
    return H(encode(["address", "address[]", "uint256"], [poster, guardians, threshold]))


def test_rotation(rotation, gas):
    s, new_poster, new_keys, new_guardians = rotation
    old_keys = s.guardians[:THRESHOLD]
    reverts("NoPendingRotation", execute_rotation, s.rollup, new_poster.address, new_guardians, 2, sender=s.outsider)
    far = 4_102_444_800  # fixed deadline: deterministic signatures, so the gas figure is too
    sigs = sign_rotation(old_keys, s.chain_id, s.rollup.address, new_poster.address, new_guardians, 2, far)
    r = s.rollup.transact("approveRotation", new_poster.address, new_guardians, 2, far, sigs, sender=s.outsider)
    gas.record(f"Rollup.approveRotation ({THRESHOLD} of 5 signatures, 3 new guardians)", r.gas_used)
    a = s.client.get_block_timestamp(r.block_number)
    eta = a + ROTATION_DELAY
    ev = s.rollup.decode_logs(r, "RotationApproved")[0]
    dl = s.rollup.decode_input(bytes.fromhex(s.client.get_transaction(r.tx_hash)["input"][2:]))["deadline"]
    assert dl == far
    assert ev.args == {"poster": new_poster.address, "guardians": new_guardians, "threshold": 2, "eta": eta,
                       "action": digest(s, "Rotate", {"poster": new_poster.address, "guardians": new_guardians,
                                                      "threshold": 2, "deadline": dl})}
    pending = pending_hash(new_poster.address, new_guardians, 2)
    assert s.rollup.call("pendingRotation") == pending and s.rollup.call("rotationEta") == eta
    # wrong arguments
    for args in ((new_poster.address, new_guardians, 3), (s.outsider.address, new_guardians, 2),
                 (new_poster.address, new_guardians[::-1], 2), (new_poster.address, new_guardians[:2], 2)):
        e = reverts("RotationMismatch", execute_rotation, s.rollup, *args, sender=s.outsider)
        assert e.error_args == {"pending": pending, "given": pending_hash(*args)}
    # not before the delay
    s.mine_at(eta - 1)
    e = reverts("RotationNotDue", execute_rotation, s.rollup, new_poster.address, new_guardians, 2, sender=s.outsider)
    assert e.error_args == {"eta": eta}
    # until then the old roles still act
    b0 = submit(s, s.genesis)
    s.next_at(eta)
    r = s.rollup.transact("executeRotation", new_poster.address, new_guardians, 2, sender=s.outsider, gas=GAS)
    gas.record("Rollup.executeRotation (3 old -> 3 new guardians)", r.gas_used)
    assert s.rollup.decode_logs(r, "Rotated")[0].args == {"poster": new_poster.address, "guardians": new_guardians,
                                                          "threshold": 2}
    assert s.rollup.call("poster") == new_poster.address
    assert s.rollup.call("guardians") == new_guardians and s.rollup.call("guardianThreshold") == 2
    assert [s.rollup.call("isGuardian", g.address) for g in s.guardians] == [False] * 4 + [True]
    assert all(s.rollup.call("isGuardian", k.address) for k in new_keys)
    assert s.rollup.call("pendingRotation") == b"\0" * 32 and s.rollup.call("rotationEta") == 0
    reverts("NoPendingRotation", execute_rotation, s.rollup, new_poster.address, new_guardians, 2, sender=s.outsider)
    # the old poster is out, the new one posts
    b1 = make_batch(b0.last_header, [[]])
    e = reverts("NotPoster", s.rollup.transact, "submitBatch", *b1.submit_args(), sender=s.poster)
    assert e.error_args == {"caller": s.poster.address}
    s.rollup.transact("submitBatch", *b1.submit_args(), sender=new_poster)
    # the old guardians are out (the first signer, by address, is reported)
    dl = s.now() + 3600
    old_sigs = sign_pause(s.guardians[:3], s.chain_id, s.rollup.address, dl)
    e = reverts("NotGuardian", s.rollup.transact, "pause", dl, old_sigs, sender=s.outsider)
    assert e.error_args == {"index": 0, "signer": min((g.address for g in s.guardians[:3]), key=lambda a: int(a, 16))}
    e = reverts("InsufficientSignatures", s.rollup.transact, "pause", dl,
                sign_pause(new_keys[:1], s.chain_id, s.rollup.address, dl), sender=s.outsider)
    assert e.error_args == {"count": 1, "threshold": 2}
    # the new guardians (2 of 3, one of them kept from the old set) act
    send_pause(s.rollup, [s.guardians[4], new_keys[1]], sender=s.outsider)
    assert s.rollup.call("paused")


def test_rotation_approval_checks(rotation):
    s, new_poster, new_keys, new_guardians = rotation
    keys = s.guardians[:THRESHOLD]
    zero = "0x" + "00" * 20
    reverts("ZeroAddress", send_rotation, s.rollup, keys, zero, new_guardians, 2, sender=s.outsider)
    e = reverts("InvalidGuardianSet", send_rotation, s.rollup, keys, new_poster.address, [], 1, sender=s.outsider)
    assert e.error_args == {"count": 0}
    e = reverts("InvalidThreshold", send_rotation, s.rollup, keys, new_poster.address, new_guardians, 4,
                sender=s.outsider)
    assert e.error_args == {"threshold": 4, "guardians": 3}
    reverts("DuplicateGuardian", send_rotation, s.rollup, keys, new_poster.address,
            [new_guardians[0], new_guardians[0]], 1, sender=s.outsider)
    reverts("InsufficientSignatures", send_rotation, s.rollup, keys[:2], new_poster.address, new_guardians, 2,
            sender=s.outsider)
    # the new guardians cannot approve anything before they are in
    reverts("NotGuardian", send_rotation, s.rollup, [*new_keys, s.guardians[0]], new_poster.address, new_guardians,
            2, sender=s.outsider)
    # a signed approval works once; a later approval replaces the pending one
    dl = s.now() + 3600
    sigs = sign_rotation(keys, s.chain_id, s.rollup.address, new_poster.address, new_guardians, 2, dl)
    s.rollup.transact("approveRotation", new_poster.address, new_guardians, 2, dl, sigs, sender=s.outsider)
    e = reverts("ActionAlreadyUsed", s.rollup.transact, "approveRotation", new_poster.address, new_guardians, 2, dl,
                sigs, sender=s.outsider)
    assert e.error_args["digest"] == digest(s, "Rotate", {"poster": new_poster.address, "guardians": new_guardians,
                                                          "threshold": 2, "deadline": dl})
    send_rotation(s.rollup, keys, s.outsider.address, new_guardians, 1, sender=s.outsider)
    s.advance(ROTATION_DELAY)
    reverts("RotationMismatch", execute_rotation, s.rollup, new_poster.address, new_guardians, 2, sender=s.outsider)
    execute_rotation(s.rollup, s.outsider.address, new_guardians, 1, sender=s.users[0])
    assert s.rollup.call("poster") == s.outsider.address and s.rollup.call("guardianThreshold") == 1


def test_no_rotation_after_freeze(rotation):
    s, new_poster, _new_keys, new_guardians = rotation
    send_rotation(s.rollup, s.guardians[:THRESHOLD], new_poster.address, new_guardians, 2, sender=s.outsider)
    s.advance(ESCAPE_DELAY + 1)
    s.rollup.transact("freeze", sender=s.outsider)
    reverts("RollupIsFrozen", execute_rotation, s.rollup, new_poster.address, new_guardians, 2, sender=s.outsider)
    reverts("RollupIsFrozen", send_rotation, s.rollup, s.guardians[:THRESHOLD], new_poster.address, new_guardians, 2,
            sender=s.outsider)


# ---------------------------------------------------------------------------------------------
# guardians cannot hold funds: rotation waits on the live clock, pauses are capped in total
# ---------------------------------------------------------------------------------------------


def test_paused_time_does_not_count_toward_a_rotation(rotation):
    """A quorum that approves a rotation and pauses at once (the queue is closed while paused)
    cannot apply it before users had rotationDelay live seconds to force a withdrawal out."""
    s, new_poster, _new_keys, new_guardians = rotation
    r = send_rotation(s.rollup, s.guardians[:THRESHOLD], new_poster.address, new_guardians, 2, sender=s.outsider)
    a = s.client.get_block_timestamp(r.block_number)
    eta = s.rollup.call("rotationEta")
    assert eta == s.rollup.call("liveClock") + ROTATION_DELAY  # live clock, not wall time
    send_pause(s.rollup, s.guardians[:THRESHOLD], sender=s.outsider)
    reverts("QueueClosed", s.bridge.transact, "requestWithdrawal", 1 * USDC, s.users[0].address, sender=s.users[0])
    s.mine_at(a + ROTATION_DELAY)
    assert s.rollup.call("liveClock") - a <= 1
    reverts("RollupIsPaused", execute_rotation, s.rollup, new_poster.address, new_guardians, 2, sender=s.outsider)
    send_unpause(s.rollup, s.guardians[:THRESHOLD], sender=s.outsider)
    e = reverts("RotationNotDue", execute_rotation, s.rollup, new_poster.address, new_guardians, 2,
                sender=s.outsider)
    assert e.error_args["eta"] == eta
    # only after rotationDelay live seconds, i.e. the whole pause later
    s.advance(eta - s.rollup.call("liveClock"))
    execute_rotation(s.rollup, new_poster.address, new_guardians, 2, sender=s.outsider)
    assert s.rollup.call("poster") == new_poster.address


def test_pause_cycling_cannot_hold_funds(system: System):
    """Guardians that pause for escapeDelay, unpause, and pause again as soon as the cooldown
    allows keep the live clock nearly still; reason 4 still opens the hatch once no batch became
    final for 2·escapeDelay wall seconds (never earlier)."""
    s = system
    b0 = submit(s, s.genesis)
    s.advance(CHALLENGE_WINDOW)
    assert s.rollup.call("finalizedBatchCount") == 1
    final_bound = s.rollup.call("getBatch", 0)["submittedAt"] + CHALLENGE_WINDOW
    assert s.rollup.call("lastFinalizedWallBound") == final_bound
    keys = s.guardians[:THRESHOLD]
    t = s.now() + 1
    for k in range(3):
        s.next_at(t)
        pause_tx(s, t + 10, gas=GAS)
        n = s.rollup.call("batchCount")
        if n > 1:  # what the poster posted since the unpause is not final: rejected while paused
            assert not s.rollup.call("isFinal", n - 1)
            hh = s.rollup.call("getBatch", n - 1)["lastHeaderHash"]
            sigs = sign_reject(keys, s.chain_id, s.rollup.address, n - 1, hh, t + 20)
            s.rollup.transact("reject", n - 1, hh, t + 20, sigs, sender=s.outsider)
        s.mine_at(t + ESCAPE_DELAY - 1)
        reason = s.rollup.call("freezeReason")
        assert reason == (4 if s.now() > final_bound + 2 * ESCAPE_DELAY else 0)
        if reason:
            break
        u = t + ESCAPE_DELAY  # never longer than escapeDelay: reason 3 never applies
        s.next_at(u)
        unpause_tx(s, u + 10, gas=GAS)
        s.next_at(u + 1)  # the poster posts at once
        submit(s, b0.last_header, gas=GAS, data=bytes([k]))
        t = u + CHALLENGE_WINDOW  # the earliest the cooldown allows the next pause
        s.mine_at(t - 1)
        assert s.rollup.call("finalizedBatchCount") == 1
        assert s.rollup.call("freezeReason") == (4 if s.now() > final_bound + 2 * ESCAPE_DELAY else 0)
    assert s.rollup.call("liveClock") - s.rollup.call("lastFinalizedLive") < 4 * CHALLENGE_WINDOW
    assert s.rollup.call("canFreeze") and s.rollup.call("freezeReason") == 4
    s.rollup.transact("freeze", sender=s.outsider)
    assert s.rollup.call("frozen") and s.rollup.call("batchCount") == 1
