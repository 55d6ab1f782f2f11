from __future__ import annotations

import pytest

from prover.batch import BlockData
from prover.plan import BatchTooLarge, fit_batch, missing_range


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
