"""What the batch poster posts next: pure decisions, no I/O (the driver supplies the views).

The poster reads what L1 already has (the next L2 block number L1 expects) and what the
sequencer has sealed, and posts the missing range in batches that fit a calldata budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prover.batch import BlockData, encode_batch


def missing_range(l1_next_block: int, sealed_head: int, max_blocks: int) -> range:
    """L2 block numbers to post next: from the first block L1 lacks, at most `max_blocks`,
    never past the sealed head. Empty when L1 is up to date."""
    if max_blocks < 1:
        raise ValueError("max_blocks must be >= 1")
    if l1_next_block > sealed_head + 1:
        raise ValueError(f"L1 expects block {l1_next_block} but the sequencer's head is "
                         f"{sealed_head}: the sequencer is behind L1 (wrong data dir or chain?)")
    return range(l1_next_block, min(sealed_head, l1_next_block + max_blocks - 1) + 1)


class BatchTooLarge(ValueError):
    """A single block does not fit the calldata budget."""


def fit_batch(blocks: Sequence[BlockData], domain: bytes, max_bytes: int,
              encode: Callable[[Sequence[BlockData], bytes], bytes] = encode_batch,
              ) -> tuple[int, bytes]:
    """The longest prefix of `blocks` whose batch encoding is at most `max_bytes`, as
    (number of blocks, batch bytes). Binary search: O(log n) encodings."""
    if not blocks:
        raise ValueError("no blocks to fit")
    lo, hi = 1, len(blocks)
    best = encode(blocks[:1], domain)
    if len(best) > max_bytes:
        raise BatchTooLarge(f"block {blocks[0].number} alone encodes to {len(best)} bytes, "
                            f"over the {max_bytes}-byte batch limit")
    best_n = 1
    full = encode(blocks, domain) if hi > 1 else best
    if len(full) <= max_bytes:
        return hi, full
    hi -= 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        data = encode(blocks[:mid], domain)
        if len(data) <= max_bytes:
            lo, best_n, best = mid, mid, data
        else:
            hi = mid - 1
    return best_n, best
