"""Sealed blocks and state snapshots in LevelDB.

Keys: `blk/<number:8>` → msgpack [header fields..., [tx bytes...], receipts, marksRoot | nil,
[[account, recipient, amount, nonce]...]] (the last two: the block's marks root and its
withdrawal leaves in leaf order, neither part of the header; a record written before they
existed has neither and reads as nil / nil); `head` → number of the newest sealed block;
`snap/<seq:8>` → a snapshot taken after log record `seq` by versions before snapshots moved to
files (`sequencer.store.snapshots`; read, never written, now). Writers get the puts
(`block_puts`) and put them in the same atomic write as the log record that seals the block, so
a block and its seal marker are never half-written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import msgpack
import plyvel

from sequencer.core.header import Block, Header, WithdrawalLeaf

BLOCK = b"blk/"
HEAD = b"head"
SNAP = b"snap/"  # legacy snapshots (sequencer.store.snapshots)


def _n(x: int) -> bytes:
    return x.to_bytes(8, "big")


class SealedBlock(NamedTuple):
    """A stored block with what is kept beside its header: `marks_root` (docs/encoding.md,
    "Marks root") and `withdrawals`, the block's withdrawal leaves in leaf order (None for a
    record written before they were stored)."""

    block: Block
    receipts: Any
    marks_root: bytes | None
    withdrawals: list[WithdrawalLeaf] | None


def block_puts(block: Block, receipts: Any = None, *, marks_root: bytes | None = None,
               withdrawals: Sequence[WithdrawalLeaf] = ()) -> list[tuple[bytes, bytes]]:
    """The puts that store `block` (with its marks root and withdrawal leaves) as the head."""
    h = block.header
    value = msgpack.packb([h.number, h.parent_hash, h.timestamp, h.tx_root, h.state_root,
                           h.withdrawal_root, h.l1_message_cursor, list(block.txs), receipts,
                           marks_root, [list(w) for w in withdrawals]],
                          use_bin_type=True)
    return [(BLOCK + _n(h.number), value), (HEAD, _n(h.number))]


class BlockStore:
    """Read side of sealed blocks."""

    def __init__(self, db: plyvel.DB) -> None:
        self._db = db

    def head(self) -> int | None:
        raw = self._db.get(HEAD)
        return None if raw is None else int.from_bytes(raw, "big")

    def sealed(self, number: int) -> SealedBlock | None:
        """Block `number` with everything stored beside it, or None."""
        raw = self._db.get(BLOCK + _n(number))
        if raw is None:
            return None
        rec = msgpack.unpackb(raw, raw=False)
        fields, (txs, receipts), extra = rec[:7], rec[7:9], rec[9:]
        marks_root, withdrawals = (extra + [None, None])[:2]
        return SealedBlock(Block(Header(*fields), tuple(txs)), receipts, marks_root,
                           None if withdrawals is None else [WithdrawalLeaf(*w) for w in withdrawals])

    def get(self, number: int) -> tuple[Block, Any] | None:
        """(block, receipts) of block `number`, or None."""
        got = self.sealed(number)
        return None if got is None else (got.block, got.receipts)
