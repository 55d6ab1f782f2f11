from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prover.batch import BatchPacker, BlockData, compress, decode_batch, encode_batch
from prover.plan import BatchTooLarge, fit_batch, longest_fitting, missing_range
from tests.prover.test_batch import DOMAIN, blocks_with_flow


def test_missing_range() -> None:
    assert missing_range(1, 0, 10) == range(1, 1)        # nothing sealed past genesis
    assert missing_range(1, 5, 10) == range(1, 6)
    assert missing_range(1, 50, 10) == range(1, 11)
    assert missing_range(6, 5, 10) == range(6, 6)        # L1 up to date
    with pytest.raises(ValueError, match="behind L1"):
        missing_range(9, 5, 10)
    with pytest.raises(ValueError):
        missing_range(1, 5, 0)


def blk(n: int, size: int) -> BlockData:
    return BlockData(n, 0, 0, b"\0" * 32, b"\0" * 32, (b"x" * size,))


def fake_encode(blocks, domain) -> bytes:  # size = sum of tx sizes: easy to reason about
    return b"".join(t for b in blocks for t in b.txs)


def test_fit_batch_takes_longest_prefix_under_budget() -> None:
    blocks = [blk(i, 10) for i in range(1, 11)]
    assert fit_batch(blocks, b"", 100, fake_encode)[0] == 10
    assert fit_batch(blocks, b"", 99, fake_encode)[0] == 9
    n, data = fit_batch(blocks, b"", 35, fake_encode)
    assert n == 3 and len(data) == 30
    assert fit_batch(blocks, b"", 10, fake_encode)[0] == 1
    with pytest.raises(BatchTooLarge, match="block 1 alone"):
        fit_batch(blocks, b"", 9, fake_encode)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 200), answer=st.integers(0, 200), guess=st.integers(-5, 210))
def test_longest_fitting_is_the_brute_force_answer_from_any_guess(n: int, answer: int, guess: int) -> None:
    answer = min(answer, n)
    calls: list[int] = []

    def fits(k: int) -> bool:
        assert 1 <= k <= n, k  # never asked outside the range
        calls.append(k)
        return k <= answer

    assert longest_fitting(n, fits, guess) == answer
    # a guess at the answer costs the answer and the one past it (or the end)
    calls.clear()
    longest_fitting(n, fits, max(answer, 1))
    assert len(calls) <= 2


def brute_force_fit(blocks: list[BlockData], max_bytes: int) -> int:
    """The longest prefix whose real batch encoding fits, trying every prefix."""
    return max((k for k in range(1, len(blocks) + 1)
                if len(encode_batch(blocks[:k], DOMAIN)) <= max_bytes), default=0)


@pytest.mark.parametrize("max_bytes", [1_200, 3_000, 6_000, 12_000, 10**9])
def test_fit_batch_with_the_batch_encoding_is_the_longest_prefix(max_bytes: int) -> None:
    blocks = blocks_with_flow(n_blocks=12, fills=15)
    want = brute_force_fit(blocks, max_bytes)
    if want == 0:
        with pytest.raises(BatchTooLarge):
            fit_batch(blocks, DOMAIN, max_bytes)
        return
    n, data = fit_batch(blocks, DOMAIN, max_bytes)
    assert n == want
    assert data == encode_batch(blocks[:n], DOMAIN)  # exactly what is posted for that prefix


def test_fit_batch_at_another_level_posts_that_level() -> None:
    """The poster's --zstd-level: the prefix is the longest whose level-3 data fits, and the
    data is the level-3 compression of its body (it decodes like any other)."""
    blocks = blocks_with_flow(n_blocks=12, fills=15)
    budget = len(compress(BatchPacker(blocks, DOMAIN).body(7), 3)) + 5
    n, data = fit_batch(blocks, DOMAIN, budget, level=3)
    assert n == max(k for k in range(1, 13) if len(compress(BatchPacker(blocks, DOMAIN).body(k), 3)) <= budget)
    assert data == compress(BatchPacker(blocks, DOMAIN).body(n), 3) != encode_batch(blocks[:n], DOMAIN)
    assert decode_batch(data, DOMAIN) == blocks[:n]


class CountingBlocks(list):
    """A list that records which blocks were read (the poster's source is lazy)."""

    def __init__(self, items: list[BlockData]) -> None:
        super().__init__(items)
        self.read: set[int] = set()

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, int):
            self.read.add(i)
        return super().__getitem__(i)


def test_fit_batch_reads_only_the_blocks_near_the_batch() -> None:
    blocks = CountingBlocks(blocks_with_flow(n_blocks=60, fills=15))
    budget = len(encode_batch(blocks[:3], DOMAIN)) + 10
    n, _ = fit_batch(blocks, DOMAIN, budget)
    assert n == brute_force_fit(list(blocks)[:10], budget)
    assert max(blocks.read) < 2 * n + 2, sorted(blocks.read)  # not the 60-block backlog


def test_packer_prefixes_are_the_prefix_encodings() -> None:
    blocks = blocks_with_flow(n_blocks=5, fills=10)
    packer = BatchPacker(blocks, DOMAIN)
    for k in (3, 1, 5, 2):  # in any order: later ones reuse the packed blocks
        assert compress(packer.body(k)) == encode_batch(blocks[:k], DOMAIN)
    with pytest.raises(ValueError):
        packer.body(6)
    gap = [blocks[0], blocks[2]]
    with pytest.raises(ValueError, match="not contiguous"):
        encode_batch(gap, DOMAIN)
