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


def encode_batch(blocks: Sequence[BlockData], domain: bytes) -> bytes:
    """Compress contiguous blocks into batch bytes. `domain` is the EIP-712 domain separator
    (orders are indexed by digest)."""
    if not blocks:
        raise ValueError("a batch needs at least one block")
    for a, b in zip(blocks, blocks[1:]):
        if b.number != a.number + 1:
            raise ValueError(f"blocks not contiguous: {a.number} then {b.number}")
    table: dict[bytes, int] = {}
    count = 0  # orders appended to the table so far (the decoder counts the same way)
    out_blocks = []
    for blk in blocks:
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
                        table[_digest_of(domain, ref)] = count
                        count += 1
            txs.append(packed)
        out_blocks.append([blk.timestamp, blk.message_cursor, blk.state_root,
                           blk.withdrawal_root, txs])
    body = msgpack.packb([VERSION, blocks[0].number, out_blocks], use_bin_type=True)
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(body)


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
