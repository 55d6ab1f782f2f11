"""Merkle root/proof/verify against an independent recursive reference of the design.md rule."""

from __future__ import annotations

import os

import pytest
from eth_hash.auto import keccak as H
from hypothesis import given, settings
from hypothesis import strategies as st

import cext

Z = b"\0" * 32


def reference_root(leaves: list[bytes]) -> bytes:
    """Design.md, literally: pad with zero leaves to a power of two, hash pairs recursively."""
    if not leaves:
        return Z
    size = 1
    while size < len(leaves):
        size *= 2
    padded = leaves + [Z] * (size - len(leaves))

    def node(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return padded[lo]
        mid = (lo + hi) // 2
        return H(node(lo, mid) + node(mid, hi))

    return node(0, size)


def leaves_of(n: int) -> list[bytes]:
    return [H(i.to_bytes(4, "big")) for i in range(n)]


SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 65, 100]


@pytest.mark.parametrize("n", SIZES)
def test_root_matches_reference(twin, n: int) -> None:
    leaves = leaves_of(n)
    assert twin.merkle_root(leaves) == reference_root(leaves)


def test_empty_and_single() -> None:
    assert cext.merkle_root([]) == Z
    leaf = H(b"x")
    assert cext.merkle_root([leaf]) == leaf
    assert cext.merkle_proof([leaf], 0) == []
    assert cext.merkle_verify(leaf, leaf, 0, [])


def test_zero_leaf_padding_is_not_ignored() -> None:
    # Appending an explicit zero leaf to an odd tree gives the same root (that is the padding
    # rule), but appending any non-zero leaf does not.
    leaves = leaves_of(5)
    assert cext.merkle_root(leaves + [Z]) == cext.merkle_root(leaves)
    assert cext.merkle_root(leaves + [H(b"y")]) != cext.merkle_root(leaves)


def test_large_tree_threads(twin) -> None:
    leaves = [os.urandom(32) for _ in range((1 << 14) + 3)]
    assert twin.merkle_root(leaves) == cext._pure.merkle_root(leaves)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9, 13, 16, 17])
def test_every_proof_verifies_and_one_bit_flip_fails(twin, n: int) -> None:
    leaves = leaves_of(n)
    root = twin.merkle_root(leaves)
    depth = (n - 1).bit_length()
    for i in range(n):
        proof = twin.merkle_proof(leaves, i)
        assert len(proof) == depth
        assert twin.merkle_verify(root, leaves[i], i, proof)
        assert cext._pure.merkle_verify(root, leaves[i], i, proof)
        # flip one bit in the leaf, in each proof element, in the root, and use the wrong index
        bad_leaf = bytes([leaves[i][0] ^ 1]) + leaves[i][1:]
        assert not twin.merkle_verify(root, bad_leaf, i, proof)
        for k in range(depth):
            bad = list(proof)
            bad[k] = bad[k][:31] + bytes([bad[k][31] ^ 0x80])
            assert not twin.merkle_verify(root, leaves[i], i, bad)
        assert not twin.merkle_verify(root[:31] + bytes([root[31] ^ 1]), leaves[i], i, proof)
        if n > 1:
            assert not twin.merkle_verify(root, leaves[i], i ^ 1, proof)
        # an index beyond the proof's depth cannot be in the tree
        assert not twin.merkle_verify(root, leaves[i], i + (1 << depth), proof)


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40), st.data())
@settings(max_examples=100, deadline=None)
def test_random_trees(leaves: list[bytes], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(leaves) - 1))
    root = cext.merkle_root(leaves)
    assert root == reference_root(leaves)
    proof = cext.merkle_proof(leaves, i)
    assert proof == cext._pure.merkle_proof(leaves, i)
    assert cext.merkle_verify(root, leaves[i], i, proof)


def test_bad_inputs(twin) -> None:
    good = leaves_of(4)
    with pytest.raises(ValueError):
        twin.merkle_root(good + [b"short"])
    with pytest.raises(ValueError):
        twin.merkle_root([b"\0" * 33])
    with pytest.raises(TypeError):
        twin.merkle_root(["0" * 32])
    with pytest.raises(ValueError):
        twin.merkle_proof(good, 4)
    with pytest.raises(ValueError):
        twin.merkle_proof(good, -1)
    with pytest.raises(ValueError):
        twin.merkle_proof([], 0)
    with pytest.raises(TypeError):
        twin.merkle_proof(good, "1")
    with pytest.raises(TypeError):
        twin.merkle_proof(good, True)
    proof = twin.merkle_proof(good, 1)
    root = twin.merkle_root(good)
    with pytest.raises(ValueError):
        twin.merkle_verify(root[:31], good[1], 1, proof)
    with pytest.raises(ValueError):
        twin.merkle_verify(root, good[1] + b"\0", 1, proof)
    with pytest.raises(ValueError):
        twin.merkle_verify(root, good[1], 1, proof + [b"x"])
    with pytest.raises(ValueError):
        twin.merkle_verify(root, good[1], -1, proof)
    with pytest.raises(TypeError):
        twin.merkle_verify(root, good[1], 1.0, proof)
