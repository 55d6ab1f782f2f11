"""Rollup: construction, batch submission and chaining, finality, guardians, pause."""

from __future__ import annotations

import pytest
from tests.contracts.l1_testkit import (
    CHALLENGE_WINDOW,
    ESCAPE_DELAY,
    GENESIS_CONFIG,
    INCLUSION_DELAY,
    POSTING_INTERVAL,
    ROTATION_DELAY,
    H,
    L2_CHAIN_ID,
    THRESHOLD,
    ZERO32,
    System,
    Withdrawal,
    deploy_system,
    eip712_digest,
    genesis_header,
    guardian_struct_hash,
    make_batch,
)

import cext
from sequencer.l1 import (ContractRevert, Deployment, TxConfig, TxManager, read_deployment, read_genesis_config,
                          send_reject, sign_pause, sign_reject, sign_unpause)
from sequencer.l1.guardians import _SECP256K1_N

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def submit(s: System, batch, sender=None):
    return s.rollup.transact("submitBatch", *batch.submit_args(), sender=sender or s.poster)


def chain_batches(s: System, n: int, blocks_per_batch: int = 2):
    """Submits n chained batches from genesis; returns them."""
    prev = s.genesis
    out = []
    for i in range(n):
        b = make_batch(prev, [[] for _ in range(blocks_per_batch)], data=f"batch {i}".encode())
        submit(s, b)
        out.append(b)
        prev = b.headers[-1]
    return out


def reverts(name: str, fn, *args, **kwargs) -> ContractRevert:
    with pytest.raises(ContractRevert) as ei:
        fn(*args, **kwargs)
    assert ei.value.error == name, str(ei.value)
    return ei.value


def deadline(s: System, lifetime: int = 3600) -> int:
    return s.now() + lifetime


def sigs_reject(s: System, batch_index: int, header_hash: bytes, keys=None, dl=None):
    keys = keys if keys is not None else s.guardians[:THRESHOLD]
    dl = deadline(s) if dl is None else dl
    return dl, sign_reject(keys, s.chain_id, s.rollup.address, batch_index, header_hash, dl)


def reject(s: System, batch_index: int, header_hash: bytes, signed):
    dl, sigs = signed
    return s.rollup.transact("reject", batch_index, header_hash, dl, sigs, sender=s.outsider)


def reject_digest(s: System, batch_index: int, header_hash: bytes, dl: int) -> bytes:
    """The action digest, computed independently (eth-abi EIP-712)."""
    struct = guardian_struct_hash("Reject", {"batchIndex": batch_index, "lastHeaderHash": header_hash,
                                             "deadline": dl}, H(b"Reject(uint256 batchIndex,bytes32 lastHeaderHash,"
                                                                b"uint256 deadline)"))
    return eip712_digest("optrollup.guardians", "2", s.chain_id, s.rollup.address, struct)


# A fixed far deadline where gas is recorded: deterministic signatures, so contracts/GAS.md does not
# depend on the wall clock (signature bytes change the calldata cost).
FAR_DEADLINE = 4_102_444_800  # 2100-01-01


def do_pause(s: System):
    sigs = sign_pause(s.guardians[:THRESHOLD], s.chain_id, s.rollup.address, FAR_DEADLINE)
    return s.rollup.transact("pause", FAR_DEADLINE, sigs, sender=s.outsider)


def do_unpause(s: System):
    sigs = sign_unpause(s.guardians[:THRESHOLD], s.chain_id, s.rollup.address, FAR_DEADLINE)
    return s.rollup.transact("unpause", FAR_DEADLINE, sigs, sender=s.outsider)


# ---------------------------------------------------------------------------------------------
# construction and deployment record
# ---------------------------------------------------------------------------------------------


def test_deployment_reads_back_from_rollup_alone(system: System, tmp_path):
    d = system.deployment
    again = read_deployment(system.client, d.rollup)
    assert again == d  # deployer and tx_hashes are provenance, not part of equality
    assert d.l2_chain_id == L2_CHAIN_ID and d.guardian_threshold == THRESHOLD
    assert d.challenge_window == CHALLENGE_WINDOW and d.escape_delay == ESCAPE_DELAY
    assert (d.posting_interval, d.inclusion_delay, d.rotation_delay) == (POSTING_INTERVAL, INCLUSION_DELAY,
                                                                          ROTATION_DELAY)
    assert system.rollup.call("ALLOWANCE") == 3600
    assert system.rollup.call("poster") == system.poster.address
    assert system.rollup.call("guardians") == [g.address for g in system.guardians]
    assert system.bridge.call("COLLATERAL_DECIMALS") == 6 and system.bridge.call("MAX_AMOUNT") == 2**64 - 1
    assert d.genesis_header_hash == system.genesis.hash()
    assert system.bridge.call("rollup") == d.rollup
    assert system.bridge.call("token") == d.collateral_token
    assert system.token.call("decimals") == 6
    assert 0 < d.deployment_block <= system.client.block_number()
    deployed = system.rollup.events("RollupDeployed", from_block=d.deployment_block, to_block=d.deployment_block)
    assert deployed and deployed[0]["bridge"] == d.bridge
    assert deployed[0]["genesisConfig"] == d.genesis_config == GENESIS_CONFIG
    assert read_genesis_config(system.client, d.rollup) == GENESIS_CONFIG
    p = tmp_path / "deployment.json"
    d.save(p)
    assert Deployment.load(p) == d
    assert Deployment.load(p).to_json() == d.to_json()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"threshold": 0}, "InvalidThreshold"),
        ({"threshold": 6}, "InvalidThreshold"),
        ({"guardians": []}, "InvalidGuardianSet"),
        ({"escape_delay": CHALLENGE_WINDOW}, "InvalidTiming"),
        ({"challenge_window": 0}, "InvalidTiming"),
        ({"genesis_header_hash": ZERO32}, "ZeroHeaderHash"),
        ({"poster": "0x" + "00" * 20}, "ZeroAddress"),
        ({"collateral_token": "0x" + "11" * 20}, "NotAContract"),
    ],
)
def test_constructor_rejects_bad_config(chain, accounts, overrides, error):
    reverts(error, deploy_system, chain, accounts, **overrides)


def test_constructor_rejects_duplicate_guardian(chain, accounts):
    g = accounts[2].address
    e = reverts("DuplicateGuardian", deploy_system, chain, accounts, guardians=[g, accounts[3].address, g])
    assert e.error_args["guardian"] == g


# ---------------------------------------------------------------------------------------------
# submitBatch
# ---------------------------------------------------------------------------------------------


def test_submit_chain_of_batches_stores_everything(system: System, gas):
    w = Withdrawal(system.users[0].address, system.users[1].address, 5 * 10**6, 0)
    b0 = make_batch(system.genesis, [[w], [], [w, w]], state_root=H(b"s1"), data=b"\x01" * 100)
    r = submit(system, b0)
    ev = system.rollup.decode_logs(r, "BatchSubmitted")[0]
    assert ev["batchIndex"] == 0 and ev["firstBlock"] == 1 and ev["lastBlock"] == 3
    assert ev["lastHeaderHash"] == b0.last_header_hash and ev["messageCursor"] == 0
    assert ev["marksRoot"] == ZERO32 and ev["dataHash"] == H(b"\x01" * 100) and ev["stateRoot"] == H(b"s1")
    stored = system.rollup.call("getBatch", 0)
    assert stored["lastHeaderHash"] == b0.last_header_hash
    assert stored["firstBlock"] == 1 and stored["lastBlock"] == 3 and stored["messageCursor"] == 0
    assert stored["marksRoot"] == ZERO32
    assert stored["submittedLive"] == stored["submittedAt"]  # never paused: live clock = wall clock
    assert stored["stateRoot"] == H(b"s1")
    # Solidity's MerkleLib.root agrees with cext.merkle_root (3 blocks: padding exercised)
    assert stored["withdrawalsRoot"] == cext.merkle_root(b0.withdrawal_roots) == ev["withdrawalsRoot"]
    assert stored["dataHash"] == H(b"\x01" * 100)
    assert stored["l1BlockNumber"] == r.block_number
    assert stored["submittedAt"] == system.client.get_block_timestamp(r.block_number)
    assert system.rollup.call("tip") == (3, b0.last_header_hash)
    # the batch data is recoverable from L1 calldata alone
    tx = system.client.get_transaction(r.tx_hash)
    args = system.rollup.decode_input(bytes.fromhex(tx["input"][2:]))
    assert args["data"] == b"\x01" * 100 and args["withdrawalRoots"] == b0.withdrawal_roots
    assert args["lastHeader"] == b0.last_header.as_dict() and args["firstBlock"] == 1

    marks = H(b"marks after block 4")
    b1 = make_batch(b0.headers[-1], [[]], state_root=H(b"s2"), marks_root=marks)
    r = submit(system, b1)
    assert system.rollup.decode_logs(r, "BatchSubmitted")[0]["marksRoot"] == marks
    assert system.rollup.call("getBatch", 1)["marksRoot"] == marks
    assert system.rollup.call("batchCount") == 2
    assert system.rollup.call("tip") == (4, b1.last_header_hash)


def test_submit_wrong_poster(system: System):
    b = make_batch(system.genesis, [[]])
    e = reverts("NotPoster", submit, system, b, sender=system.outsider)
    assert e.error_args["caller"] == system.outsider.address
    reverts("NotPoster", submit, system, b, sender=system.guardians[0])


def test_submit_gap_and_overlap(system: System):
    b0 = make_batch(system.genesis, [[], []])
    submit(system, b0)
    b1 = make_batch(b0.headers[-1], [[]])
    hdr = b1.last_header.as_dict()
    gap = (b1.first_block + 1, b1.prev_header_hash, {**hdr, "number": 4}, *b1.submit_args()[3:])
    e = reverts("BlockGap", system.rollup.transact, "submitBatch", *gap, sender=system.poster)
    assert e.error_args == {"expectedFirstBlock": 3, "firstBlock": 4}
    overlap = (2, b1.prev_header_hash, {**hdr, "number": 2}, *b1.submit_args()[3:])
    reverts("BlockGap", system.rollup.transact, "submitBatch", *overlap, sender=system.poster)
    reverts("BlockGap", submit, system, b0)  # the same batch twice
    submit(system, b1)


def test_submit_bad_prev_hash(system: System):
    b0 = make_batch(system.genesis, [[]])
    args = list(b0.submit_args())
    args[1] = H(b"not the genesis")
    e = reverts("PrevHeaderMismatch", system.rollup.transact, "submitBatch", *args, sender=system.poster)
    assert e.error_args["expected"] == system.genesis.hash()
    submit(system, b0)
    b1 = make_batch(b0.headers[-1], [[]])
    args = list(b1.submit_args())
    args[1] = b0.headers[0].parentHash  # genesis hash instead of b0's last header
    reverts("PrevHeaderMismatch", system.rollup.transact, "submitBatch", *args, sender=system.poster)


def test_submit_bad_range_roots_and_last_root(system: System):
    w = Withdrawal(system.users[0].address, system.users[0].address, 1, 0)
    b = make_batch(system.genesis, [[], [w]])
    a = list(b.submit_args())
    tx = system.rollup.transact
    e = reverts("BadBlockRange", tx, "submitBatch", 2, a[1], {**a[2], "number": 1}, *a[3:], sender=system.poster)
    assert e.error_args == {"firstBlock": 2, "lastBlock": 1}
    e = reverts("WithdrawalRootsLength", tx, "submitBatch", *a[:3], a[3][:1], *a[4:], sender=system.poster)
    assert e.error_args == {"expected": 2, "actual": 1}
    reverts("WithdrawalRootsLength", tx, "submitBatch", *a[:3], [*a[3], ZERO32], *a[4:], sender=system.poster)
    # the last withdrawal root must be the one the last header commits to
    e = reverts("LastWithdrawalRootMismatch", tx, "submitBatch", *a[:3], [a[3][0], ZERO32], *a[4:],
                sender=system.poster)
    assert e.error_args == {"header": w.leaf(), "given": ZERO32}
    submit(system, b)
    assert system.rollup.call("getBatch", 0)["lastHeaderHash"] == b.last_header_hash


# ---------------------------------------------------------------------------------------------
# finality
# ---------------------------------------------------------------------------------------------


def test_finality_after_challenge_window(system: System):
    (b0,) = chain_batches(system, 1)
    assert not system.rollup.call("isFinal", 0)
    assert not system.rollup.call("isFinal", 1)  # does not exist
    assert system.rollup.call("finalizedBatchCount") == 0
    system.advance(CHALLENGE_WINDOW - 5)
    assert not system.rollup.call("isFinal", 0)
    system.advance(10)
    assert system.rollup.call("isFinal", 0)
    assert system.rollup.call("finalizedBatchCount") == 1
    assert system.rollup.call("lastFinalState") == (1, b0.last_header_hash, b0.state_root, ZERO32)


def test_finalized_count_binary_search(system: System):
    prev = system.genesis
    for i in range(7):
        b = make_batch(prev, [[]], data=bytes([i]))
        submit(system, b)
        prev = b.headers[-1]
        system.advance(20)
    # batch i was submitted ~20*(7-i) s ago; window 60 s -> batches 0..3 final (submitted >= 80 s ago)
    ts = [system.rollup.call("getBatch", i)["submittedLive"] for i in range(7)]
    now = system.rollup.call("liveClock")
    assert now == system.now()
    expected = sum(1 for t in ts if t + CHALLENGE_WINDOW <= now)
    assert 0 < expected < 7
    assert system.rollup.call("finalizedBatchCount") == expected
    assert [system.rollup.call("isFinal", i) for i in range(7)] == [i < expected for i in range(7)]


# ---------------------------------------------------------------------------------------------
# guardians: reject
# ---------------------------------------------------------------------------------------------


def test_reject_drops_batch_and_later_then_repost(system: System, gas):
    b0, b1, _b2 = chain_batches(system, 3)
    signed = sigs_reject(system, 1, b1.last_header_hash, dl=FAR_DEADLINE)
    r = reject(system, 1, b1.last_header_hash, signed)
    gas.record(f"Rollup.reject ({THRESHOLD} of 5 signatures)", r.gas_used)
    ev = system.rollup.decode_logs(r, "BatchesRejected")[0]
    digest = reject_digest(system, 1, b1.last_header_hash, signed[0])
    assert ev.args == {"fromBatchIndex": 1, "count": 2, "action": digest}
    assert system.rollup.call("actionUsed", digest)
    assert system.rollup.call("batchCount") == 1
    assert system.rollup.call("tip") == (b0.last_block, b0.last_header_hash)
    reverts("UnknownBatch", system.rollup.call, "getBatch", 1)
    # the poster re-posts a different batch 1 from the new tip
    b1x = make_batch(b0.headers[-1], [[]], data=b"replacement")
    submit(system, b1x)
    assert system.rollup.call("getBatch", 1)["dataHash"] == H(b"replacement")
    # the old quorum names the old batch: it cannot drop the replacement
    reverts("BatchMismatch", reject, system, 1, b1.last_header_hash, signed)
    # and it is spent: if the poster re-posts the very same batch 1, the old quorum cannot drop it again
    reject(system, 1, b1x.last_header_hash, sigs_reject(system, 1, b1x.last_header_hash))
    submit(system, b1)
    e = reverts("ActionAlreadyUsed", reject, system, 1, b1.last_header_hash, signed)
    assert e.error_args == {"digest": digest}


def test_send_reject_reads_signs_and_sends_through_a_tx_manager(system: System):
    _b0, b1 = chain_batches(system, 2)
    txm = TxManager(system.client, system.outsider, TxConfig(confirmations=1, poll=0.02, label="guardian relay"))
    r = send_reject(system.rollup, system.guardians[:THRESHOLD], 1, sender=txm)
    assert r.sender == system.outsider.address and txm.current[-1].tx_hash == r.tx_hash
    assert system.rollup.decode_logs(r, "BatchesRejected")[0]["fromBatchIndex"] == 1
    assert system.rollup.call("batchCount") == 1
    tx = system.rollup.decode_input(bytes.fromhex(system.client.get_transaction(r.tx_hash)["input"][2:]))
    # the helper signs with deadline = L1 time + its default lifetime (3600 s)
    assert tx["deadline"] == system.client.get_block_timestamp(r.block_number - 1) + 3600
    action = system.rollup.decode_logs(r, "BatchesRejected")[0]["action"]
    assert action == reject_digest(system, 1, b1.last_header_hash, tx["deadline"])
    assert system.rollup.call("actionUsed", action)
    reverts("InsufficientSignatures", send_reject, system.rollup, system.guardians[:2], 0, sender=txm)


def test_reject_with_all_guardians_and_threshold_exactly(system: System):
    b0, b1 = chain_batches(system, 2)
    reject(system, 1, b1.last_header_hash, sigs_reject(system, 1, b1.last_header_hash, keys=system.guardians))
    reject(system, 0, b0.last_header_hash, sigs_reject(system, 0, b0.last_header_hash))
    assert system.rollup.call("batchCount") == 0
    assert system.rollup.call("tip") == (0, system.genesis.hash())


def test_reject_final_batch_fails(system: System):
    (b0,) = chain_batches(system, 1)
    system.advance(CHALLENGE_WINDOW + 1)
    e = reverts("BatchAlreadyFinal", reject, system, 0, b0.last_header_hash, sigs_reject(system, 0, b0.last_header_hash))
    assert e.error_args == {"batchIndex": 0}


def test_reject_unknown_and_mismatched_batch(system: System):
    (b0,) = chain_batches(system, 1)
    e = reverts("UnknownBatch", reject, system, 1, b0.last_header_hash, sigs_reject(system, 1, b0.last_header_hash))
    assert e.error_args == {"batchIndex": 1, "batchCount": 1}
    other = H(b"other")
    e = reverts("BatchMismatch", reject, system, 0, other, sigs_reject(system, 0, other))
    assert e.error_args["storedHeaderHash"] == b0.last_header_hash


@pytest.fixture
def one_batch(system: System):
    (b0,) = chain_batches(system, 1)
    return system, b0


def _reject(s: System, b0, signed):
    return reject(s, 0, b0.last_header_hash, signed)


def _with(signed, sigs):
    return signed[0], sigs


def test_guardian_sigs_insufficient(one_batch):
    s, b0 = one_batch
    e = reverts("InsufficientSignatures", _reject, s, b0, sigs_reject(s, 0, b0.last_header_hash, s.guardians[:2]))
    assert e.error_args == {"count": 2, "threshold": THRESHOLD}
    reverts("InsufficientSignatures", _reject, s, b0, (deadline(s), []))


def test_guardian_sigs_not_guardian(one_batch):
    s, b0 = one_batch
    keys = [*s.guardians[:2], s.outsider]
    e = reverts("NotGuardian", _reject, s, b0, sigs_reject(s, 0, b0.last_header_hash, keys))
    assert e.error_args["signer"] == s.outsider.address


def test_guardian_sigs_duplicate(one_batch):
    s, b0 = one_batch
    dl, sigs = sigs_reject(s, 0, b0.last_header_hash, s.guardians[:2])
    e = reverts("DuplicateSigner", _reject, s, b0, (dl, [sigs[0], sigs[1], sigs[1]]))
    assert e.error_args["index"] == 2


def test_guardian_sigs_unsorted(one_batch):
    s, b0 = one_batch
    dl, sigs = sigs_reject(s, 0, b0.last_header_hash)
    e = reverts("SignersNotSorted", _reject, s, b0, (dl, [sigs[1], sigs[0], sigs[2]]))
    assert e.error_args == {"index": 1}
    reverts("SignersNotSorted", _reject, s, b0, (dl, sigs[::-1]))


def test_guardian_sigs_malformed(one_batch):
    s, b0 = one_batch
    dl, sigs = sigs_reject(s, 0, b0.last_header_hash)
    short = [sigs[0][:64], *sigs[1:]]
    assert reverts("InvalidSignature", _reject, s, b0, (dl, short)).error_args == {"index": 0}
    bad_v = [*sigs[:2], sigs[2][:64] + bytes([29])]
    assert reverts("InvalidSignature", _reject, s, b0, (dl, bad_v)).error_args == {"index": 2}
    # the malleable twin (n - s, flipped v) recovers the same signer but is refused
    r, s_, v = sigs[1][:32], int.from_bytes(sigs[1][32:64], "big"), sigs[1][64]
    high = r + (_SECP256K1_N - s_).to_bytes(32, "big") + bytes([55 - v])
    assert reverts("InvalidSignature", _reject, s, b0, (dl, [sigs[0], high, sigs[2]])).error_args == {"index": 1}
    # v in {0, 1} is accepted (same signature)
    zero_v = [sg[:64] + bytes([sg[64] - 27]) for sg in sigs]
    _reject(s, b0, (dl, zero_v))


def test_guardian_sigs_too_many(one_batch):
    s, b0 = one_batch
    dl, sigs = sigs_reject(s, 0, b0.last_header_hash, s.guardians)
    e = reverts("TooManySignatures", _reject, s, b0, (dl, [*sigs, sigs[-1]]))
    assert e.error_args == {"count": 6, "max": 5}


def test_guardian_sigs_domain_separated(one_batch):
    s, b0 = one_batch
    dl = deadline(s)
    keys = s.guardians[:THRESHOLD]
    wrong_chain = sign_reject(keys, s.chain_id + 1, s.rollup.address, 0, b0.last_header_hash, dl)
    reverts("NotGuardian", _reject, s, b0, (dl, wrong_chain))
    wrong_contract = sign_reject(keys, s.chain_id, s.bridge.address, 0, b0.last_header_hash, dl)
    reverts("NotGuardian", _reject, s, b0, (dl, wrong_contract))
    # signed with one deadline, sent with a later one
    wrong_deadline = sign_reject(keys, s.chain_id, s.rollup.address, 0, b0.last_header_hash, dl)
    reverts("NotGuardian", _reject, s, b0, (dl + 1, wrong_deadline))
    # a pause signature is not a reject signature
    pause_sigs = sign_pause(keys, s.chain_id, s.rollup.address, dl)
    reverts("NotGuardian", _reject, s, b0, (dl, pause_sigs))
    _reject(s, b0, (dl, sign_reject(keys, s.chain_id, s.rollup.address, 0, b0.last_header_hash, dl)))


def test_guardian_digest_matches_eip712(system: System):
    from eth_account.messages import encode_typed_data

    from sequencer.l1 import typed_data

    types = {
        "Reject": b"Reject(uint256 batchIndex,bytes32 lastHeaderHash,uint256 deadline)",
        "Pause": b"Pause(uint256 deadline)",
        "Unpause": b"Unpause(uint256 deadline)",
        "Rotate": b"Rotate(address poster,address[] guardians,uint256 threshold,uint256 deadline)",
    }
    msgs = {
        "Reject": {"batchIndex": 7, "lastHeaderHash": H(b"x"), "deadline": 3},
        "Pause": {"deadline": 2**40},
        "Unpause": {"deadline": 5},
        "Rotate": {"poster": system.users[0].address, "guardians": [g.address for g in system.guardians[:3]],
                   "threshold": 2, "deadline": 9},
    }
    for primary, msg in msgs.items():
        typehash = system.rollup.call(f"{primary.upper()}_TYPEHASH")
        assert typehash == H(types[primary])
        signable = encode_typed_data(full_message=typed_data(system.chain_id, system.rollup.address, primary, msg))
        struct = guardian_struct_hash(primary, msg, typehash)
        digest = system.rollup.call("guardianDigest", struct)
        assert digest == H(b"\x19" + signable.version + signable.header + signable.body)
        assert digest == eip712_digest("optrollup.guardians", "2", system.chain_id, system.rollup.address, struct)


# ---------------------------------------------------------------------------------------------
# guardians: pause
# ---------------------------------------------------------------------------------------------


def test_pause_blocks_batches_and_stops_finality_clock(system: System, gas):
    (b0,) = chain_batches(system, 1)
    r = do_pause(system)
    gas.record(f"Rollup.pause ({THRESHOLD} of 5 signatures)", r.gas_used)
    assert system.rollup.call("paused")
    b1 = make_batch(b0.headers[-1], [[]])
    reverts("RollupIsPaused", submit, system, b1)
    reverts("RollupIsPaused", do_pause, system)
    live = system.rollup.call("liveClock")
    system.advance(CHALLENGE_WINDOW * 3)
    assert not system.rollup.call("isFinal", 0)  # clock stopped at the pause
    assert system.rollup.call("liveClock") == live
    # guardians can still reject while paused
    reject(system, 0, b0.last_header_hash, sigs_reject(system, 0, b0.last_header_hash))
    r = do_unpause(system)
    gas.record(f"Rollup.unpause ({THRESHOLD} of 5 signatures)", r.gas_used)
    assert not system.rollup.call("paused")
    reverts("RollupNotPaused", do_unpause, system)
    submit(system, make_batch(system.genesis, [[]]))


def test_unpause_resumes_finality(system: System):
    (_b0,) = chain_batches(system, 1)
    do_pause(system)
    system.advance(CHALLENGE_WINDOW * 2)
    assert not system.rollup.call("isFinal", 0)
    r = do_unpause(system)
    # the paused time is given back: the window did not elapse during the pause
    assert not system.rollup.call("isFinal", 0)
    ev = system.rollup.decode_logs(r, "RollupUnpaused")[0]
    assert system.rollup.call("pausedTotal") == ev["pausedFor"] >= CHALLENGE_WINDOW * 2
    system.advance(CHALLENGE_WINDOW)
    assert system.rollup.call("isFinal", 0)


def test_pause_signatures_checked(system: System):
    dl = deadline(system)
    few = sign_pause(system.guardians[:2], system.chain_id, system.rollup.address, dl)
    reverts("InsufficientSignatures", system.rollup.transact, "pause", dl, few, sender=system.outsider)
    unp = sign_unpause(system.guardians[:3], system.chain_id, system.rollup.address, dl)
    reverts("NotGuardian", system.rollup.transact, "pause", dl, unp, sender=system.outsider)
    reverts("RollupNotPaused", system.rollup.transact, "unpause", dl, unp, sender=system.outsider)
    ok = sign_pause(system.guardians[2:5], system.chain_id, system.rollup.address, dl)
    system.rollup.transact("pause", dl, ok, sender=system.outsider)
    assert system.rollup.call("paused")
    assert system.rollup.call("genesisHeaderHash") == genesis_header().hash()
