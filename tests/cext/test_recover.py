"""Batch address recovery against eth-account and py-ecc, with malformed and malleable signatures."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from eth_hash.auto import keccak as H
from hypothesis import given, settings
from hypothesis import strategies as st
from py_ecc.secp256k1 import ecdsa_raw_recover

import cext
from cext._types import SECP256K1_N as N

KEYS = [Account.from_key(H(b"optrollup test key %d" % i)) for i in range(4)]


def addr(acct) -> bytes:
    return bytes.fromhex(acct.address[2:])


def sign(acct, digest: bytes) -> bytes:
    return bytes(acct.unsafe_sign_hash(digest).signature)


def parts(sig: bytes) -> tuple[int, int, int]:
    return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]


def make(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def py_ecc_address(digest: bytes, sig: bytes) -> bytes:
    r, s, v = parts(sig)
    v = v if v >= 27 else v + 27
    x, y = ecdsa_raw_recover(digest, (v, r, s))
    return H(x.to_bytes(32, "big") + y.to_bytes(32, "big"))[12:]


def test_valid_signatures_match_eth_account_and_py_ecc(twin) -> None:
    digests = [H(i.to_bytes(4, "big")) for i in range(40)]
    signers = [KEYS[i % len(KEYS)] for i in range(40)]
    sigs = [sign(a, d) for a, d in zip(signers, digests)]
    got = twin.recover_addresses(digests, sigs)
    assert got == [addr(a) for a in signers]
    for d, s, g in zip(digests[:8], sigs[:8], got[:8]):
        assert g == py_ecc_address(d, s)
        assert g == bytes.fromhex(Account._recover_hash(d, signature=s)[2:])


def test_v_forms_0_1_and_27_28_agree(twin) -> None:
    d = H(b"v forms")
    sig = sign(KEYS[0], d)
    low_v = sig[:64] + bytes([sig[64] - 27])
    assert twin.recover_addresses([d, d], [sig, low_v]) == [addr(KEYS[0])] * 2


def test_zero_digest_recovers_like_reference(twin) -> None:
    d = b"\0" * 32
    sig = sign(KEYS[1], d)
    assert twin.recover_addresses([d], [sig]) == [addr(KEYS[1])] == [py_ecc_address(d, sig)]


def adversarial() -> list[tuple[str, bytes]]:
    d = H(b"adversarial")
    sig = sign(KEYS[2], d)
    r, s, v = parts(sig)
    flipped = 55 - v  # 27 <-> 28
    return [
        ("high_s", make(r, N - s, flipped)),
        ("v_2", make(r, s, 2)),
        ("v_29", make(r, s, 29)),
        ("v_35", make(r, s, 35)),
        ("v_255", make(r, s, 255)),
        ("r_zero", make(0, s, v)),
        ("s_zero", make(r, 0, v)),
        ("r_eq_n", make(N, s, v)),
        ("r_gt_n", make(N + 5, s, v)),
        ("s_eq_n", make(r, N, v)),
        ("s_max", make(r, 2**256 - 1, v)),
        ("r_max", make(2**256 - 1, s, v)),
        ("half_n_plus_1", make(r, N // 2 + 1, v)),
        ("r_not_on_curve", make(5, s, v)),  # x = 5 has no point on secp256k1
    ]


@pytest.mark.parametrize("name,bad", adversarial(), ids=[n for n, _ in adversarial()])
def test_adversarial_signatures_give_none(twin, name: str, bad: bytes) -> None:
    d = H(b"adversarial")
    good = sign(KEYS[2], d)
    # the bad one is None and does not disturb its neighbours in the batch
    assert twin.recover_addresses([d, d, d], [good, bad, good]) == [addr(KEYS[2]), None, addr(KEYS[2])]


def test_s_exactly_half_n_is_accepted_by_range_check(twin) -> None:
    # s = floor(n/2) is the largest low-s value; the twins must agree on it (a point may or may
    # not exist, but neither twin may reject it as malleable).
    d = H(b"edge")
    r, _, v = parts(sign(KEYS[0], d))
    sig = make(r, N // 2, v)
    assert cext._pure.recover_addresses([d], [sig]) == twin.recover_addresses([d], [sig])
    assert twin.recover_addresses([d], [sig])[0] is not None


@given(st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64),
                          st.sampled_from([0, 1, 27, 28, 2, 29])), max_size=20))
@settings(max_examples=100, deadline=None)
def test_random_garbage_twins_agree(items) -> None:
    digests = [d for d, _, _ in items]
    sigs = [rs + bytes([v]) for _, rs, v in items]
    assert cext.recover_addresses(digests, sigs) == cext._pure.recover_addresses(digests, sigs)


@given(st.integers(1, N - 1), st.binary(min_size=32, max_size=32))
@settings(max_examples=50, deadline=None)
def test_random_keys_match_eth_account(key: int, digest: bytes) -> None:
    acct = Account.from_key(key.to_bytes(32, "big"))
    assert cext.recover_addresses([digest], [sign(acct, digest)]) == [addr(acct)]


def test_thread_counts_agree(twin) -> None:
    digests = [os.urandom(32) for _ in range(300)]
    sigs = [sign(KEYS[i % 4], d) for i, d in enumerate(digests)]
    sigs[7] = sigs[7][:64] + b"\x05"
    want = twin.recover_addresses(digests, sigs, threads=1)
    assert want[7] is None and want[8] == addr(KEYS[0])
    for t in (0, 2, 3, 64):
        assert twin.recover_addresses(digests, sigs, threads=t) == want


def test_empty_batch(twin) -> None:
    assert twin.recover_addresses([], []) == []


def test_wrong_shapes_raise(twin) -> None:
    d = H(b"x")
    sig = sign(KEYS[0], d)
    with pytest.raises(ValueError):
        twin.recover_addresses([d], [sig[:64]])
    with pytest.raises(ValueError):
        twin.recover_addresses([d], [sig + b"\0"])
    with pytest.raises(ValueError):
        twin.recover_addresses([d[:31]], [sig])
    with pytest.raises(ValueError):
        twin.recover_addresses([d, d], [sig])
    with pytest.raises(TypeError):
        twin.recover_addresses([d.hex()], [sig])
    with pytest.raises(TypeError):
        twin.recover_addresses([d], [None])
    with pytest.raises(ValueError):
        twin.recover_addresses([d], [sig], threads=-1)
    with pytest.raises(TypeError):
        twin.recover_addresses([d], [sig], threads="2")


@pytest.mark.parametrize("n", [1, 3, 4, 70])  # either side of the GIL thresholds
def test_release_gil_never_changes_the_answer(twin, n: int) -> None:
    """Holding or releasing the GIL (by size, forced on, forced off) is a scheduling choice:
    the addresses are eth-account's in every case, invalid signatures still None."""
    digests = [H(b"gil %d" % i) for i in range(n)]
    sigs = [sign(KEYS[i % 4], d) for i, d in enumerate(digests)]
    sigs[-1] = make(0, 1, 27)  # invalid: r = 0
    want = [addr(KEYS[i % 4]) for i in range(n - 1)] + [None]
    for release in (None, True, False):
        assert twin.recover_addresses(digests, sigs, release_gil=release) == want
    items = [b"x" * i for i in range(n)]  # hashing holds the GIL below 64 items, not above
    assert twin.keccak256_many(items) == [H(x) for x in items]
