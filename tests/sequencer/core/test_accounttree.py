"""AccountTree against cext.merkle_root over the full padded tree (small depths) and proofs."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cext
from sequencer.core.accounttree import DEPTH, ZERO, AccountTree, zero_hashes


def full_root(depth: int, leaves: dict[int, bytes]) -> bytes:
    return cext.merkle_root([leaves.get(i, ZERO) for i in range(1 << depth)])


def test_empty_root_is_zero_hash_of_depth() -> None:
    assert AccountTree().root() == zero_hashes(DEPTH)[DEPTH]
    assert AccountTree(4).root() == full_root(4, {})


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(min_size=32, max_size=32)), max_size=40))
@settings(max_examples=60, deadline=None)
def test_incremental_updates_match_full_recompute(ops) -> None:
    tree, model = AccountTree(8), {}
    for i, leaf in ops:
        tree.update({i: leaf})
        if leaf == ZERO:
            model.pop(i, None)
        else:
            model[i] = leaf
    assert tree.root() == full_root(8, model)
    assert len(tree) == len(model)


def test_batch_update_equals_one_by_one() -> None:
    rng = random.Random(7)
    updates = {rng.randrange(1 << 20): rng.randbytes(32) for _ in range(300)}
    a, b = AccountTree(), AccountTree()
    a.update(updates)
    for i, leaf in updates.items():
        b.update({i: leaf})
    assert a.root() == b.root()


def test_proofs_verify_at_depth_32_and_detect_tampering() -> None:
    tree = AccountTree()
    leaves = {0: b"\1" * 32, 1: b"\2" * 32, 77: b"\3" * 32, (1 << 32) - 1: b"\4" * 32}
    root = tree.update(leaves)
    for i, leaf in leaves.items():
        proof = tree.proof(i)
        assert len(proof) == 32
        assert cext.merkle_verify(root, leaf, i, proof)
        assert not cext.merkle_verify(root, b"\5" * 32, i, proof)
    # an empty slot is provably empty
    assert cext.merkle_verify(root, ZERO, 5, tree.proof(5))


def test_clearing_returns_to_empty_root() -> None:
    tree = AccountTree(6)
    tree.update({3: b"\1" * 32, 9: b"\2" * 32})
    tree.update({3: ZERO, 9: ZERO})
    assert tree.root() == AccountTree(6).root() and len(tree) == 0


def test_bad_input() -> None:
    tree = AccountTree(4)
    with pytest.raises(ValueError):
        tree.update({16: b"\1" * 32})
    with pytest.raises(ValueError):
        tree.update({1: b"\1" * 31})
    with pytest.raises(ValueError):
        tree.proof(-1)
