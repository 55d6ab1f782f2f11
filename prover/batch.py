"""Batch data: the compact, compressed encoding of sealed blocks posted to L1 as calldata.

Only what the replay needs goes on L1: per block the timestamp, deposit cursor, the posted
state and withdrawal roots (so a mismatch can be pinned to one block) and the block
transactions. Within a batch each signed order travels once: a later Fill of the same order
refers to it by its index in the batch's order table; an order first posted in an earlier batch
keeps its 32-byte digest (the verifier knows it from the replay). Layout, msgpack then zstd:

    [VERSION, firstBlock, [[timestamp, depositCursor, stateRoot, withdrawalRoot, [tx, ...]], ...]]

where `tx` is the canonical tx (txs.encode_tx) re-packed as its msgpack list, except that in
a Fill a side that is a digest of an order in this batch's table becomes that table index (an
int). `decode_batch` restores exactly the canonical tx bytes the sequencer sealed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgpack
import zstandard

from cext import order_digests
from sequencer.core.header import Block
from sequencer.core.txs import FillTx, SignedOrder, decode_tx, encode_tx

VERSION = 1
# zstd level batches are posted at by default (`post-batches --zstd-level`; any level decodes).
# Batch bodies are mostly signatures and digests: on the mm-flow benchmark's 40 blocks (2.56 MB
# body) level 19 came to 0.508 of the body in 1.24 s, level 6 to 0.519 in 48 ms, level 3 to
# 0.534 in 20 ms. Level 19 saves the most calldata where the poster has a core to itself; the
# devnet, which shares two cores with the node, posts at 3.
ZSTD_LEVEL = 19
MAX_DECOMPRESSED = 64 << 20  # a batch never expands past 64 MiB


class BatchFormatError(ValueError):
    """Batch bytes that do not decode (tampered, truncated, wrong version)."""


@dataclass(frozen=True, slots=True)
class BlockData:
    """What a batch carries for one block (the header's remaining fields are recomputed)."""

    number: int
    timestamp: int
    message_cursor: int
    state_root: bytes
    withdrawal_root: bytes
    txs: tuple[bytes, ...]


def block_data(block: Block) -> BlockData:
    h = block.header
    return BlockData(h.number, h.timestamp, h.l1_message_cursor, h.state_root,
                     h.withdrawal_root, block.txs)


def _digest_of(domain: bytes, so: SignedOrder) -> bytes:
    return order_digests(domain, [so.order])[0]


class BatchPacker:
    """The blocks of a batch that starts at `blocks[0]`, packed (order-table indices in place
    of repeated orders) one block at a time as far as asked. Every prefix of a batch packs its
    blocks exactly as the whole does (a table index only points back), so the poster's tries at
    several prefixes share this work. `blocks` may be lazy: block k is read when packed."""

    def __init__(self, blocks: Sequence[BlockData], domain: bytes) -> None:
        if not blocks:
            raise ValueError("a batch needs at least one block")
        self._blocks, self._domain = blocks, domain
        self._table: dict[bytes, int] = {}
        self._count = 0  # orders appended to the table so far (the decoder counts the same way)
        self._packed: list[list[object]] = []
        self.first = blocks[0].number

    def __len__(self) -> int:
        return len(self._blocks)

    def _pack_next(self) -> None:
        blk = self._blocks[len(self._packed)]
        if blk.number != self.first + len(self._packed):
            raise ValueError(f"blocks not contiguous: {self.first + len(self._packed) - 1} "
                             f"then {blk.number}")
        table, domain = self._table, self._domain
        txs = []
        for raw in blk.txs:
            tx = decode_tx(raw)
            packed = msgpack.unpackb(raw, raw=False)
            if isinstance(tx, FillTx):
                sides = ((1, tx.maker), (2, tx.taker))
                for side, ref in sides:  # refs first, then this tx's new orders, as decoded
                    if not isinstance(ref, SignedOrder) and ref in table:
                        packed[side] = table[ref]
                for _, ref in sides:
                    if isinstance(ref, SignedOrder):
                        table[_digest_of(domain, ref)] = self._count
                        self._count += 1
            txs.append(packed)
        self._packed.append([blk.timestamp, blk.message_cursor, blk.state_root,
                             blk.withdrawal_root, txs])

    def body(self, k: int) -> bytes:
        """The uncompressed batch body (msgpack) of the first `k` blocks, 1 <= k <= len."""
        if not 1 <= k <= len(self._blocks):
            raise ValueError(f"a batch of {k} blocks out of {len(self._blocks)}")
        while len(self._packed) < k:
            self._pack_next()
        return msgpack.packb([VERSION, self.first, self._packed[:k]], use_bin_type=True)


def compress(body: bytes, level: int = ZSTD_LEVEL) -> bytes:
    """Batch data from a batch body: zstd at `level` (batches are posted at ZSTD_LEVEL; a
    lower level is only for estimating sizes)."""
    return zstandard.ZstdCompressor(level=level).compress(body)


def encode_batch(blocks: Sequence[BlockData], domain: bytes) -> bytes:
    """Compress contiguous blocks into batch bytes. `domain` is the EIP-712 domain separator
    (orders are indexed by digest)."""
    return compress(BatchPacker(blocks, domain).body(len(blocks)))


def decode_batch(data: bytes, domain: bytes) -> list[BlockData]:
    """Inverse of encode_batch; BatchFormatError on anything malformed."""
    try:
        body = zstandard.ZstdDecompressor().decompress(data, max_output_size=MAX_DECOMPRESSED)
        version, first, raw_blocks = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:  # zstd/msgpack raise several unrelated types
        raise BatchFormatError(f"batch data does not decode: {exc}") from None
    if version != VERSION:
        raise BatchFormatError(f"unknown batch version {version!r}")
    if type(first) is not int or type(raw_blocks) is not list:
        raise BatchFormatError("batch header malformed")
    table: list[bytes] = []
    blocks = []
    for k, rb in enumerate(raw_blocks):
        try:
            ts, cursor, state_root, wroot, txs = rb
            out_txs = []
            for packed in txs:
                if packed[0] == 2:  # Fill: restore table indices to digests
                    for side in (1, 2):
                        ref = packed[side]
                        if type(ref) is int:
                            if not 0 <= ref < len(table):
                                raise BatchFormatError(
                                    f"block {first + k}: order index {ref} not in the batch table")
                            packed[side] = table[ref]
                raw = msgpack.packb(packed, use_bin_type=True)
                tx = decode_tx(raw)
                if isinstance(tx, FillTx):
                    for ref in (tx.maker, tx.taker):
                        if isinstance(ref, SignedOrder):
                            table.append(_digest_of(domain, ref))
                out_txs.append(encode_tx(tx))
            blocks.append(BlockData(first + k, ts, cursor, state_root, wroot, tuple(out_txs)))
        except BatchFormatError:
            raise
        except Exception as exc:
            raise BatchFormatError(f"block {first + k} in batch does not decode: {exc}") from None
    return blocks
