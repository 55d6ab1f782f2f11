"""Keccak-256 against eth_hash (pycryptodome backend) and the published empty-input vector."""

from __future__ import annotations

import pytest
from eth_hash.auto import keccak as ref_keccak
from hypothesis import given, settings
from hypothesis import strategies as st

import cext

EMPTY = bytes.fromhex("c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")
ABC = bytes.fromhex("4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45")

# Lengths around the 136-byte rate, where padding bugs live.
EDGE_LENGTHS = [0, 1, 31, 32, 33, 64, 134, 135, 136, 137, 271, 272, 273, 1000, 5000]


def test_known_vectors(twin) -> None:
    assert twin.keccak256(b"") == EMPTY
    assert twin.keccak256(b"abc") == ABC
    assert cext.keccak256(b"") == EMPTY


@pytest.mark.parametrize("n", EDGE_LENGTHS)
def test_rate_boundaries(twin, n: int) -> None:
    data = bytes((i * 7 + n) & 0xFF for i in range(n))
    assert twin.keccak256(data) == ref_keccak(data)


@given(st.binary(max_size=700))
@settings(max_examples=300, deadline=None)
def test_random_matches_reference(data: bytes) -> None:
    assert cext.keccak256(data) == ref_keccak(data)


@given(st.lists(st.binary(max_size=300), max_size=50))
@settings(max_examples=100, deadline=None)
def test_many_matches_single(items: list[bytes]) -> None:
    assert cext.keccak256_many(items) == [ref_keccak(x) for x in items]


def test_many_large_batch_uses_threads_and_keeps_order(twin) -> None:
    items = [i.to_bytes(8, "big") * (i % 20) for i in range(20000)]
    out = twin.keccak256_many(items)
    assert len(out) == len(items)
    for i in (0, 1, 4095, 4096, 9999, 19999):
        assert out[i] == ref_keccak(items[i])


def test_accepts_buffers(twin) -> None:
    data = b"optrollup"
    want = ref_keccak(data)
    assert twin.keccak256(bytearray(data)) == want
    assert twin.keccak256(memoryview(data)) == want
    assert twin.keccak256_many((bytearray(data), memoryview(data), data)) == [want] * 3
    assert twin.keccak256_many(iter([data])) == [want]
    assert twin.keccak256_many([]) == []


@pytest.mark.parametrize("bad", ["text", 5, None, 1.5, [1, 2]])
def test_rejects_non_bytes(twin, bad) -> None:
    with pytest.raises(TypeError):
        twin.keccak256(bad)
    with pytest.raises(TypeError):
        twin.keccak256_many([b"ok", bad])


@pytest.mark.parametrize("n", EDGE_LENGTHS)
def test_prefix_hash_is_the_hash_of_prefix_and_data(twin, n: int) -> None:
    """KeccakPrefix(p).hash(d) == keccak256(p + d) for prefixes and data around the rate
    (the accelerated twin keeps the state after p's whole blocks and must not change it)."""
    prefix = bytes((i * 5 + n) & 0xFF for i in range(n))
    k = twin.KeccakPrefix(prefix)
    assert k.prefix == prefix
    for m in (0, 1, 135, 136, 137, 300, 5000):
        data = bytes((i * 3 + m) & 0xFF for i in range(m))
        assert k.hash(data) == ref_keccak(prefix + data), m
    assert k.hash(b"x") == k.hash(bytearray(b"x")) == ref_keccak(prefix + b"x")  # reused, unchanged


@given(st.binary(max_size=600), st.lists(st.binary(max_size=300), min_size=1, max_size=5))
@settings(max_examples=200, deadline=None)
def test_prefix_hash_random(prefix: bytes, datas: list[bytes]) -> None:
    k = cext.KeccakPrefix(prefix)
    assert [k.hash(d) for d in datas] == [ref_keccak(prefix + d) for d in datas]


@pytest.mark.parametrize("bad", ["text", 5, None])
def test_prefix_rejects_non_bytes(twin, bad) -> None:
    with pytest.raises(TypeError):
        twin.KeccakPrefix(bad)
    with pytest.raises(TypeError):
        twin.KeccakPrefix(b"ok").hash(bad)


WORD_VALUES = [0, 1, -1, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**64, 2**255 - 1, -2**255,
               2**256 - 1, 2**256, -2**256 - 5, 10**30, True]


def _words(values: list[int]) -> bytes:
    """The reference: eth_abi-free, two's complement by arithmetic."""
    return b"".join(((x + (1 << 256)) % (1 << 256)).to_bytes(32, "big") for x in values)


def test_prefix_hash_words_edges(twin) -> None:
    """Every int64 boundary (the accelerated twin's fast path) and beyond, both signs."""
    for prefix in (b"", b"p" * 135, b"q" * 300):
        k = twin.KeccakPrefix(prefix)
        assert k.hash_words(WORD_VALUES) == ref_keccak(prefix + _words(WORD_VALUES))
        assert k.hash_words([]) == ref_keccak(prefix)
        assert k.hash_words(iter([5, -5])) == ref_keccak(prefix + _words([5, -5]))


@given(st.binary(max_size=300), st.lists(st.integers(-2**300, 2**300), max_size=60))
@settings(max_examples=200, deadline=None)
def test_prefix_hash_words_random(prefix: bytes, values: list[int]) -> None:
    assert cext.KeccakPrefix(prefix).hash_words(values) == ref_keccak(prefix + _words(values))


@pytest.mark.parametrize("bad", [1.0, "1", None, b"\x01"])
def test_prefix_hash_words_rejects_non_ints(twin, bad) -> None:
    with pytest.raises(TypeError, match=r"values\[1\] must be an int"):
        twin.KeccakPrefix(b"").hash_words([1, bad])
