"""Sealed blocks and state snapshots in LevelDB.

Keys: `blk/<number:8>` → msgpack [header fields..., [tx bytes...], receipts];
`head` → number of the newest sealed block; `snap/<seq:8>` → snapshot bytes taken after log
record `seq`. Writers get the puts (`block_puts`, `snapshot_puts`) and put them in the same
atomic write as the log record that seals the block, so a block and its seal marker are
never half-written.
"""

from __future__ import annotations

from typing import Any

import msgpack
import plyvel

from sequencer.core.header import Block, Header

BLOCK = b"blk/"
HEAD = b"head"
SNAP = b"snap/"


def _n(x: int) -> bytes:
    return x.to_bytes(8, "big")


def block_puts(block: Block, receipts: Any = None) -> list[tuple[bytes, bytes]]:
    h = block.header
    value = msgpack.packb([h.number, h.parent_hash, h.timestamp, h.tx_root, h.state_root,
                           h.withdrawal_root, h.l1_message_cursor, list(block.txs), receipts],
                          use_bin_type=True)
    return [(BLOCK + _n(h.number), value), (HEAD, _n(h.number))]


def snapshot_puts(seq: int, snapshot: bytes) -> list[tuple[bytes, bytes]]:
    return [(SNAP + _n(seq), snapshot)]


class BlockStore:
    """Read side of sealed blocks and snapshots."""

    def __init__(self, db: plyvel.DB) -> None:
        self._db = db

    def head(self) -> int | None:
        raw = self._db.get(HEAD)
        return None if raw is None else int.from_bytes(raw, "big")

    def get(self, number: int) -> tuple[Block, Any] | None:
        raw = self._db.get(BLOCK + _n(number))
        if raw is None:
            return None
        *fields, txs, receipts = msgpack.unpackb(raw, raw=False)
        return Block(Header(*fields), tuple(txs)), receipts

    def latest_snapshot(self) -> tuple[int, bytes] | None:
        for key, value in self._db.iterator(prefix=SNAP, reverse=True):
            return int.from_bytes(key[len(SNAP):], "big"), value
        return None

    def prune_snapshots(self, keep: int = 2) -> None:
        keys = list(self._db.iterator(prefix=SNAP, include_value=False))
        for key in keys[:-keep] if keep else keys:
            self._db.delete(key)
