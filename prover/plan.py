"""What the batch poster posts next: pure decisions, no I/O (the driver supplies the views).

The poster reads what L1 already has (the next L2 block number L1 expects) and what the
sequencer has sealed, and posts the missing range in batches that fit a calldata budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prover.batch import ZSTD_LEVEL, BatchPacker, BlockData, compress


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


FAST_LEVEL = 1  # zstd level of the size estimates (batch data is within ~6 % of level 19's)


def longest_fitting(n: int, fits: Callable[[int], bool], guess: int = 1) -> int:
    """The largest k in [1, n] with `fits(k)`, for `fits` true up to some k and false after;
    0 if `fits(1)` is false. Exponential search outwards from `guess`, then bisection:
    O(log |answer - guess|) calls, so a good guess costs two (the answer and one past it)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    guess = min(max(guess, 1), n)
    if fits(guess):
        lo, hi, step = guess, n + 1, 1  # lo fits, hi does not (n + 1: past the end)
        while lo < n:
            probe = min(lo + step, n)
            if not fits(probe):
                hi = probe
                break
            lo, step = probe, step * 2
    else:
        lo, hi, step = 0, guess, 1      # 0: nothing known to fit yet
        while hi > 1:
            probe = max(hi - step, 1)
            if fits(probe):
                lo = probe
                break
            hi, step = probe, step * 2
        if lo == 0:
            return 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def fit_batch(blocks: Sequence[BlockData], domain: bytes, max_bytes: int,
              encode: Callable[[Sequence[BlockData], bytes], bytes] | None = None,
              level: int = ZSTD_LEVEL) -> tuple[int, bytes]:
    """The longest prefix of `blocks` whose batch encoding (zstd at `level`) is at most
    `max_bytes`, as (number of blocks, batch bytes); BatchTooLarge if the first block alone is
    over.

    With the batch encoding (`encode` None) the blocks are packed once, as far as needed
    (`blocks` may be lazy), and the prefix is guessed from cheap zstd level-1 sizes scaled by
    the ratio of one real encoding: about three level-19 compressions of a batch-sized prefix,
    where bisecting over the whole range compressed it all, several times (a backlog of 40
    blocks cost 2 s of CPU per batch). A given `encode` (tests) is bisected from the end."""
    if not blocks:
        raise ValueError("no blocks to fit")
    n = len(blocks)
    packer = BatchPacker(blocks, domain) if encode is None else None
    done: dict[int, bytes] = {}
    fast: dict[int, int] = {}

    def data(k: int) -> bytes:
        if k not in done:
            done[k] = encode(blocks[:k], domain) if packer is None else compress(packer.body(k), level)
        return done[k]

    if packer is None:
        count = longest_fitting(n, lambda k: len(data(k)) <= max_bytes, guess=n)
    else:
        def fast_size(k: int) -> int:
            if k not in fast:
                fast[k] = len(compress(packer.body(k), FAST_LEVEL))
            return fast[k]

        k1 = max(1, longest_fitting(n, lambda k: fast_size(k) <= max_bytes))
        ratio = len(data(k1)) / fast_size(k1)
        guess = longest_fitting(n, lambda k: fast_size(k) * ratio <= max_bytes, guess=k1)
        count = longest_fitting(n, lambda k: len(data(k)) <= max_bytes, guess=max(guess, 1))
    if count == 0:
        raise BatchTooLarge(f"block {blocks[0].number} alone encodes to {len(data(1))} bytes, "
                            f"over the {max_bytes}-byte batch limit")
    return count, data(count)
