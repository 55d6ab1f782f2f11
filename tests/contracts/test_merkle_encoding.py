"""Solidity (MerkleLib, Encoding via the test-only EncodingHarness) agrees with the Python side
(cext Merkle functions, eth-abi encodings of docs/encoding.md) on random and adversarial
inputs."""

from __future__ import annotations

import random

import pytest
from tests.contracts.l1_testkit import (
    ACCOUNT_TAG,
    MARK_TAG,
    H,
    Marks,
    TX_TAG,
    WITHDRAWAL_TAG,
    ZERO32,
    Header,
    SparseTree,
    account_leaf,
    mark_leaf,
    withdrawal_leaf,
)

import cext
from sequencer.l1 import Contract, deploy_contract


@pytest.fixture(scope="session")
def harness(client, accounts) -> Contract:
    contract, _ = deploy_contract(client, accounts[11], "EncodingHarness")
    return contract


def rand32(rng: random.Random) -> bytes:
    return rng.randbytes(32)


SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257]


@pytest.mark.parametrize("n", SIZES)
def test_roots_agree(harness: Contract, n: int):
    rng = random.Random(n)
    leaves = [rand32(rng) for _ in range(n)]
    assert harness.call("merkleRoot", leaves) == cext.merkle_root(leaves)
    zeros = [ZERO32] * n  # all-zero leaves: padding must be indistinguishable only where cext says
    assert harness.call("merkleRoot", zeros) == cext.merkle_root(zeros)


@pytest.mark.parametrize("n", [s for s in SIZES if s])
def test_python_proofs_verify_on_chain(harness: Contract, n: int):
    rng = random.Random(1000 + n)
    leaves = [rand32(rng) for _ in range(n)]
    root = cext.merkle_root(leaves)
    indices = sorted({0, n - 1, *(rng.randrange(n) for _ in range(4))})
    for i in indices:
        proof = cext.merkle_proof(leaves, i)
        assert cext.merkle_verify(root, leaves[i], i, proof)
        assert harness.call("merkleVerify", root, leaves[i], i, proof) is True
        assert harness.call("merkleComputeRoot", leaves[i], i, proof) == root


@pytest.mark.parametrize("n", [2, 3, 8, 17, 100])
def test_tampered_proofs_rejected_on_both_sides(harness: Contract, n: int):
    rng = random.Random(2000 + n)
    leaves = [rand32(rng) for _ in range(n)]
    root = cext.merkle_root(leaves)
    i = rng.randrange(n)
    proof = cext.merkle_proof(leaves, i)
    k = rng.randrange(len(proof))
    flipped = [*proof]
    flipped[k] = bytes([proof[k][0] ^ 0x80]) + proof[k][1:]
    cases = [
        (root, leaves[i], i, flipped),  # sibling tampered
        (root, bytes([leaves[i][0] ^ 1]) + leaves[i][1:], i, proof),  # leaf tampered
        (root, leaves[i], i ^ 1, proof),  # wrong position
        (root, leaves[i], i + (1 << len(proof)), proof),  # index outside the tree (high bits)
        (root, leaves[i], i, proof[:-1]),  # truncated
        (root, leaves[i], i, [*proof, ZERO32]),  # extended
        (H(root), leaves[i], i, proof),  # wrong root
        (root, leaves[i], i, proof[::-1]) if len(proof) > 1 and proof[0] != proof[-1] else (H(b"r"), ZERO32, 0, []),
    ]
    for r, leaf, idx, pf in cases:
        assert cext.merkle_verify(r, leaf, idx, pf) is False
        assert harness.call("merkleVerify", r, leaf, idx, pf) is False


def test_verify_edge_cases_agree(harness: Contract):
    leaf = H(b"leaf")
    # one leaf: root = leaf, empty proof
    assert cext.merkle_verify(leaf, leaf, 0, []) and harness.call("merkleVerify", leaf, leaf, 0, [])
    assert not cext.merkle_verify(leaf, leaf, 1, []) and not harness.call("merkleVerify", leaf, leaf, 1, [])
    # an internal node is not accepted at the leaf level with a shorter proof under a high index
    leaves = [H(bytes([i])) for i in range(4)]
    root = cext.merkle_root(leaves)
    node = H(leaves[2] + leaves[3])
    assert cext.merkle_verify(root, node, 1, [H(leaves[0] + leaves[1])])  # the rule allows subtree proofs...
    assert harness.call("merkleVerify", root, node, 1, [H(leaves[0] + leaves[1])])  # ...identically on chain
    # which is why the Bridge hashes tagged 160-byte records as leaves (never 64-byte pairs)


def test_sparse_depth32_tree_is_the_same_rule():
    """The test kit's sparse tree (used for stateRoot) equals cext on a dense small tree."""
    rng = random.Random(7)
    t = SparseTree(depth=5)
    dense = [ZERO32] * 32
    for _ in range(6):
        i = rng.randrange(32)
        leaf = rand32(rng)
        t.set(i, leaf)
        dense[i] = leaf
    assert t.root() == cext.merkle_root(dense)
    for i in range(32):
        assert t.proof(i) == cext.merkle_proof(dense, i)


def test_depth32_account_proof_on_chain(harness: Contract):
    t = SparseTree()
    rng = random.Random(32)
    idx = [0, 1, 5, 2**31 + 7, 2**32 - 1]
    for i in idx:
        t.set(i, rand32(rng))
    root = t.root()
    for i in idx:
        assert harness.call("merkleVerify", root, t.leaves[i], i, t.proof(i))
    assert SparseTree().root() == H(SparseTree().zeros[31] * 2)


def test_tags_and_leaves_agree(harness: Contract):
    assert harness.call("tags") == (WITHDRAWAL_TAG, ACCOUNT_TAG, TX_TAG)
    rng = random.Random(3)
    for _ in range(5):
        a, r = "0x" + rng.randbytes(20).hex(), "0x" + rng.randbytes(20).hex()
        amount, nonce = rng.getrandbits(256), rng.getrandbits(64)
        assert harness.call("withdrawalLeaf", a, r, amount, nonce) == withdrawal_leaf(a, r, amount, nonce)
        ph = rand32(rng)
        assert harness.call("accountLeaf", a, amount, ph) == account_leaf(a, amount, ph)


def test_header_hash_agrees(harness: Contract):
    rng = random.Random(4)
    for _ in range(5):
        h = Header(rng.getrandbits(64), rand32(rng), rng.getrandbits(64), rand32(rng), rand32(rng), rand32(rng),
                   rng.getrandbits(64))
        assert harness.call("headerHash", h.as_dict()) == h.hash()
    g = Header(0, ZERO32, 1_700_000_000, ZERO32, ZERO32, ZERO32, 0)
    assert harness.call("headerHash", g.as_dict()) == g.hash()


def test_mark_leaf_and_marks_root_layout():
    """docs/encoding.md "Marks root": H(abi.encode(MARK_TAG, string, uint256, uint256)) leaves,
    sorted by name bytewise, Merkle rule of cext (checked on chain by the escape tests)."""
    assert MARK_TAG == H(b"optrollup.mark.v1")
    name = "ETH-27DEC26-3000-C"
    body = (MARK_TAG + (128).to_bytes(32, "big") + (7).to_bytes(32, "big") + (9).to_bytes(32, "big")
            + len(name).to_bytes(32, "big") + name.encode().ljust(32, b"\0"))
    assert mark_leaf(name, 7, 9) == H(body)
    m = Marks({"b": (1, 2), "B": (3, 4), "a": (0, 0)})
    assert m.names == ["B", "a", "b"]
    assert m.root() == cext.merkle_root([mark_leaf("B", 3, 4), mark_leaf("a", 0, 0), mark_leaf("b", 1, 2)])
    for n in m.names:
        assert cext.merkle_verify(m.root(), mark_leaf(n, *m.marks[n]), m.index(n), m.proof(n))
    assert Marks({}).root() == ZERO32
