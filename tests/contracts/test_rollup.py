"""Rollup: construction, batch submission and chaining, finality, guardians, pause."""

from __future__ import annotations

import pytest
from tests.contracts.l1_testkit import (
    CHALLENGE_WINDOW,
    ESCAPE_DELAY,
    GENESIS_CONFIG,
    H,
    L2_CHAIN_ID,
    THRESHOLD,
    ZERO32,
    System,
    Withdrawal,
    deploy_system,
    genesis_header,
    make_batch,
)

import cext
from sequencer.l1 import (ContractRevert, Deployment, TxConfig, TxManager, read_deployment, read_genesis_config,
                          send_pause, send_reject, send_unpause, sign_pause, sign_reject, sign_unpause)
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


def sigs_reject(s: System, batch_index: int, header_hash: bytes, keys=None, nonce=None):
    keys = keys if keys is not None else s.guardians[:THRESHOLD]
    nonce = s.rollup.call("guardianNonce") if nonce is None else nonce
    return sign_reject(keys, s.chain_id, s.rollup.address, batch_index, header_hash, nonce)


def do_pause(s: System):
    return send_pause(s.rollup, s.guardians[:THRESHOLD], sender=s.outsider)


def do_unpause(s: System):
    return send_unpause(s.rollup, s.guardians[:THRESHOLD], sender=s.outsider)


# ---------------------------------------------------------------------------------------------
# construction and deployment record
# ---------------------------------------------------------------------------------------------


def test_deployment_reads_back_from_rollup_alone(system: System, tmp_path):
    d = system.deployment
    again = read_deployment(system.client, d.rollup)
    assert again == d  # deployer and tx_hashes are provenance, not part of equality
    assert d.l2_chain_id == L2_CHAIN_ID and d.guardian_threshold == THRESHOLD
    assert d.challenge_window == CHALLENGE_WINDOW and d.escape_delay == ESCAPE_DELAY
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
        ({"escape_delay": CHALLENGE_WINDOW}, "InvalidEscapeDelay"),
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
    stored = system.rollup.call("getBatch", 0)
    assert stored["lastHeaderHash"] == b0.last_header_hash
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

    b1 = make_batch(b0.headers[-1], [[]], state_root=H(b"s2"))
    submit(system, b1)
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
    gap = (b1.first_block + 1, b1.last_block + 1, *b1.submit_args()[2:])
    e = reverts("BlockGap", system.rollup.transact, "submitBatch", *gap, sender=system.poster)
    assert e.error_args == {"expectedFirstBlock": 3, "firstBlock": 4}
    overlap = (2, 2, *b1.submit_args()[2:])
    reverts("BlockGap", system.rollup.transact, "submitBatch", *overlap, sender=system.poster)
    reverts("BlockGap", submit, system, b0)  # the same batch twice
    submit(system, b1)


def test_submit_bad_prev_hash(system: System):
    b0 = make_batch(system.genesis, [[]])
    args = list(b0.submit_args())
    args[2] = H(b"not the genesis")
    e = reverts("PrevHeaderMismatch", system.rollup.transact, "submitBatch", *args, sender=system.poster)
    assert e.error_args["expected"] == system.genesis.hash()
    submit(system, b0)
    b1 = make_batch(b0.headers[-1], [[]])
    args = list(b1.submit_args())
    args[2] = b0.headers[0].parentHash  # genesis hash instead of b0's last header
    reverts("PrevHeaderMismatch", system.rollup.transact, "submitBatch", *args, sender=system.poster)


def test_submit_bad_range_roots_and_zero_hash(system: System):
    b = make_batch(system.genesis, [[], []])
    a = list(b.submit_args())
    reverts("BadBlockRange", system.rollup.transact, "submitBatch", 2, 1, *a[2:], sender=system.poster)
    a_short = a[:5] + [a[5][:1]] + a[6:]
    e = reverts("WithdrawalRootsLength", system.rollup.transact, "submitBatch", *a_short, sender=system.poster)
    assert e.error_args == {"expected": 2, "actual": 1}
    a_zero = a[:3] + [ZERO32] + a[4:]
    reverts("ZeroHeaderHash", system.rollup.transact, "submitBatch", *a_zero, sender=system.poster)


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
    assert system.rollup.call("lastFinalState") == (1, b0.last_header_hash, b0.state_root)


def test_finalized_count_binary_search(system: System):
    prev = system.genesis
    for i in range(7):
        b = make_batch(prev, [[]], data=bytes([i]))
        submit(system, b)
        prev = b.headers[-1]
        system.advance(20)
    # batch i was submitted ~20*(7-i) s ago; window 60 s -> batches 0..3 final (submitted >= 80 s ago)
    ts = [system.rollup.call("getBatch", i)["submittedAt"] for i in range(7)]
    now = system.now()
    expected = sum(1 for t in ts if t + CHALLENGE_WINDOW <= now)
    assert 0 < expected < 7
    assert system.rollup.call("finalizedBatchCount") == expected
    assert [system.rollup.call("isFinal", i) for i in range(7)] == [i < expected for i in range(7)]


# ---------------------------------------------------------------------------------------------
# guardians: reject
# ---------------------------------------------------------------------------------------------


def test_reject_drops_batch_and_later_then_repost(system: System, gas):
    b0, b1, b2 = chain_batches(system, 3)
    sigs = sigs_reject(system, 1, b1.last_header_hash)
    r = system.rollup.transact("reject", 1, b1.last_header_hash, sigs, sender=system.outsider)
    gas.record(f"Rollup.reject ({THRESHOLD} of 5 signatures)", r.gas_used)
    ev = system.rollup.decode_logs(r, "BatchesRejected")[0]
    assert ev.args == {"fromBatchIndex": 1, "count": 2, "guardianNonce": 0}
    assert system.rollup.call("batchCount") == 1
    assert system.rollup.call("tip") == (b0.last_block, b0.last_header_hash)
    reverts("UnknownBatch", system.rollup.call, "getBatch", 1)
    # the poster re-posts a different batch 1 from the new tip
    b1x = make_batch(b0.headers[-1], [[]], data=b"replacement")
    submit(system, b1x)
    assert system.rollup.call("getBatch", 1)["dataHash"] == H(b"replacement")
    # the old signatures are spent (nonce moved on): they now recover to non-guardians
    reverts("BatchMismatch", system.rollup.transact, "reject", 1, b1.last_header_hash, sigs, sender=system.outsider)
    reverts("NotGuardian", system.rollup.transact, "reject", 1, b1x.last_header_hash, sigs_reject(
        system, 1, b1x.last_header_hash, nonce=0), sender=system.outsider)


def test_send_reject_reads_signs_and_sends_through_a_tx_manager(system: System):
    b0, b1 = chain_batches(system, 2)
    txm = TxManager(system.client, system.outsider, TxConfig(confirmations=1, poll=0.02, label="guardian relay"))
    r = send_reject(system.rollup, system.guardians[:THRESHOLD], 1, sender=txm)
    assert r.sender == system.outsider.address and txm.current[-1].tx_hash == r.tx_hash
    assert system.rollup.decode_logs(r, "BatchesRejected")[0]["fromBatchIndex"] == 1
    assert system.rollup.call("batchCount") == 1 and system.rollup.call("guardianNonce") == 1
    reverts("InsufficientSignatures", send_reject, system.rollup, system.guardians[:2], 0, sender=txm)


def test_reject_with_all_guardians_and_threshold_exactly(system: System):
    b0, b1 = chain_batches(system, 2)
    system.rollup.transact("reject", 1, b1.last_header_hash, sigs_reject(system, 1, b1.last_header_hash,
                           keys=system.guardians), sender=system.outsider)
    system.rollup.transact("reject", 0, b0.last_header_hash, sigs_reject(system, 0, b0.last_header_hash),
                           sender=system.outsider)
    assert system.rollup.call("batchCount") == 0
    assert system.rollup.call("tip") == (0, system.genesis.hash())


def test_reject_final_batch_fails(system: System):
    (b0,) = chain_batches(system, 1)
    system.advance(CHALLENGE_WINDOW + 1)
    reverts("BatchAlreadyFinal", system.rollup.transact, "reject", 0, b0.last_header_hash,
            sigs_reject(system, 0, b0.last_header_hash), sender=system.outsider)


def test_reject_unknown_and_mismatched_batch(system: System):
    (b0,) = chain_batches(system, 1)
    reverts("UnknownBatch", system.rollup.transact, "reject", 1, b0.last_header_hash,
            sigs_reject(system, 1, b0.last_header_hash), sender=system.outsider)
    other = H(b"other")
    e = reverts("BatchMismatch", system.rollup.transact, "reject", 0, other, sigs_reject(system, 0, other),
                sender=system.outsider)
    assert e.error_args["storedHeaderHash"] == b0.last_header_hash


@pytest.fixture
def one_batch(system: System):
    (b0,) = chain_batches(system, 1)
    return system, b0


def _reject(s: System, b0, sigs):
    return s.rollup.transact("reject", 0, b0.last_header_hash, sigs, sender=s.outsider)


def test_guardian_sigs_insufficient(one_batch):
    s, b0 = one_batch
    e = reverts("InsufficientSignatures", _reject, s, b0, sigs_reject(s, 0, b0.last_header_hash, s.guardians[:2]))
    assert e.error_args == {"count": 2, "threshold": THRESHOLD}
    reverts("InsufficientSignatures", _reject, s, b0, [])


def test_guardian_sigs_not_guardian(one_batch):
    s, b0 = one_batch
    keys = [*s.guardians[:2], s.outsider]
    e = reverts("NotGuardian", _reject, s, b0, sigs_reject(s, 0, b0.last_header_hash, keys))
    assert e.error_args["signer"] == s.outsider.address


def test_guardian_sigs_duplicate(one_batch):
    s, b0 = one_batch
    sigs = sigs_reject(s, 0, b0.last_header_hash, s.guardians[:2])
    e = reverts("DuplicateSigner", _reject, s, b0, [sigs[0], sigs[1], sigs[1]])
    assert e.error_args["index"] == 2


def test_guardian_sigs_unsorted(one_batch):
    s, b0 = one_batch
    sigs = sigs_reject(s, 0, b0.last_header_hash)
    e = reverts("SignersNotSorted", _reject, s, b0, [sigs[1], sigs[0], sigs[2]])
    assert e.error_args["index"] == 1
    reverts("SignersNotSorted", _reject, s, b0, sigs[::-1])


def test_guardian_sigs_malformed(one_batch):
    s, b0 = one_batch
    sigs = sigs_reject(s, 0, b0.last_header_hash)
    short = [sigs[0][:64], *sigs[1:]]
    assert reverts("InvalidSignature", _reject, s, b0, short).error_args == {"index": 0}
    bad_v = [*sigs[:2], sigs[2][:64] + bytes([29])]
    assert reverts("InvalidSignature", _reject, s, b0, bad_v).error_args == {"index": 2}
    # the malleable twin (n - s, flipped v) recovers the same signer but is refused
    r, s_, v = sigs[1][:32], int.from_bytes(sigs[1][32:64], "big"), sigs[1][64]
    high = r + (_SECP256K1_N - s_).to_bytes(32, "big") + bytes([55 - v])
    assert reverts("InvalidSignature", _reject, s, b0, [sigs[0], high, sigs[2]]).error_args == {"index": 1}
    # v in {0, 1} is accepted (same signature)
    zero_v = [sg[:64] + bytes([sg[64] - 27]) for sg in sigs]
    _reject(s, b0, zero_v)


def test_guardian_sigs_too_many(one_batch):
    s, b0 = one_batch
    sigs = sigs_reject(s, 0, b0.last_header_hash, s.guardians)
    e = reverts("TooManySignatures", _reject, s, b0, [*sigs, sigs[-1]])
    assert e.error_args == {"count": 6, "max": 5}


def test_guardian_sigs_domain_separated(one_batch):
    s, b0 = one_batch
    n = s.rollup.call("guardianNonce")
    keys = s.guardians[:THRESHOLD]
    wrong_chain = sign_reject(keys, s.chain_id + 1, s.rollup.address, 0, b0.last_header_hash, n)
    reverts("NotGuardian", _reject, s, b0, wrong_chain)
    wrong_contract = sign_reject(keys, s.chain_id, s.bridge.address, 0, b0.last_header_hash, n)
    reverts("NotGuardian", _reject, s, b0, wrong_contract)
    wrong_nonce = sign_reject(keys, s.chain_id, s.rollup.address, 0, b0.last_header_hash, n + 1)
    reverts("NotGuardian", _reject, s, b0, wrong_nonce)
    # a pause signature is not a reject signature
    pause_sigs = sign_pause(keys, s.chain_id, s.rollup.address, n)
    reverts("NotGuardian", _reject, s, b0, pause_sigs)


def test_guardian_digest_matches_eip712(system: System):
    from eth_account.messages import encode_typed_data

    from sequencer.l1 import typed_data

    msg = {"batchIndex": 7, "lastHeaderHash": H(b"x"), "nonce": 3}
    signable = encode_typed_data(full_message=typed_data(system.chain_id, system.rollup.address, "Reject", msg))
    from eth_abi import encode

    struct = H(encode(["bytes32", "uint256", "bytes32", "uint256"],
                      [system.rollup.call("REJECT_TYPEHASH"), 7, H(b"x"), 3]))
    digest = system.rollup.call("guardianDigest", struct)
    assert digest == H(b"\x19" + signable.version + signable.header + signable.body)


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
    system.advance(CHALLENGE_WINDOW * 3)
    assert not system.rollup.call("isFinal", 0)  # clock stopped at the pause
    # guardians can still reject while paused
    system.rollup.transact("reject", 0, b0.last_header_hash, sigs_reject(system, 0, b0.last_header_hash),
                           sender=system.outsider)
    r = do_unpause(system)
    gas.record(f"Rollup.unpause ({THRESHOLD} of 5 signatures)", r.gas_used)
    assert not system.rollup.call("paused")
    reverts("RollupNotPaused", do_unpause, system)
    submit(system, make_batch(system.genesis, [[]]))


def test_unpause_resumes_finality(system: System):
    (b0,) = chain_batches(system, 1)
    do_pause(system)
    system.advance(CHALLENGE_WINDOW * 2)
    assert not system.rollup.call("isFinal", 0)
    do_unpause(system)
    assert system.rollup.call("isFinal", 0)  # its window elapsed (during the pause)


def test_pause_signatures_checked(system: System):
    n = system.rollup.call("guardianNonce")
    few = sign_pause(system.guardians[:2], system.chain_id, system.rollup.address, n)
    reverts("InsufficientSignatures", system.rollup.transact, "pause", few, sender=system.outsider)
    unp = sign_unpause(system.guardians[:3], system.chain_id, system.rollup.address, n)
    reverts("NotGuardian", system.rollup.transact, "pause", unp, sender=system.outsider)
    assert system.rollup.call("genesisHeaderHash") == genesis_header().hash()
