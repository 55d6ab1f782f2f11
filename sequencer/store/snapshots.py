"""Node snapshots as files beside the LevelDB: `<data dir>/snapshots/<seq as 16 hex>.snap`.

They are kept out of the input log's LevelDB: one synced ~70 MB put there (a 1M-order node)
queued every group commit behind it for 110-350 ms, and compaction rewrote it again later. A
file is written by `sequencer.store.files.write_synced` (`chunk`-sized pieces, each followed
by fdatasync), so at most one chunk of dirty pages is ever outstanding and the log's fsync on
the same filesystem never waits behind more than that; then it is renamed into place and the
directory is fsynced.

File layout: MAGIC (8 bytes) | seq (u64 BE) | length (u64 BE) | crc32 of the body (u32 BE) |
body (the `encode_core` bytes). A file that is short, carries another magic or seq, or fails its
CRC is not a snapshot: `read` raises `SnapshotUnusable` and recovery takes an older one.

Snapshots written by earlier versions live under `snap/<seq>` in the LevelDB
(`sequencer.store.blocks.SNAP`); `legacy_snapshots` lists them so recovery still uses them, and
writers delete them once a file snapshot exists.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import plyvel

from sequencer.store.blocks import SNAP
from sequencer.store.db import StoreError
from sequencer.store.files import write_synced

MAGIC = b"ORSNAP\x00\x01"
_HEAD = struct.Struct(">8sQQI")
SUFFIX = ".snap"


class SnapshotUnusable(StoreError):
    """A snapshot file is missing, torn or corrupt."""

    code = "snapshot_unusable"


class SnapshotFiles:
    """The snapshot directory. `chunk` bytes are written (and fdatasynced) at a time, with
    `pause` seconds between chunks (0: none). Not thread-safe: one writer at a time."""

    def __init__(self, directory: str | Path, *, chunk: int = 1 << 20, pause: float = 0.0) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.chunk, self.pause = chunk, pause
        for tmp in self.dir.glob(f"*{SUFFIX}.tmp"):  # a write cut short by a crash
            tmp.unlink(missing_ok=True)

    def path(self, seq: int) -> Path:
        return self.dir / f"{seq:016x}{SUFFIX}"

    def seqs(self) -> list[int]:
        """Sequence numbers of the complete files, ascending."""
        out = []
        for p in self.dir.glob(f"*{SUFFIX}"):
            try:
                out.append(int(p.name[:-len(SUFFIX)], 16))
            except ValueError:
                continue
        return sorted(out)

    def write(self, seq: int, data: bytes | memoryview) -> None:
        """Store `data` as snapshot `seq`, durably (it is complete once this returns). The
        GIL is released by every write, fdatasync and the CRC."""
        body = memoryview(data)
        write_synced(self.path(seq), [_HEAD.pack(MAGIC, seq, len(body), zlib.crc32(body)), body],
                     chunk=self.chunk, pause=self.pause)

    def read(self, seq: int) -> bytes:
        """The body of snapshot `seq`; `SnapshotUnusable` if it is missing, torn or corrupt."""
        try:
            with open(self.path(seq), "rb") as f:
                head = f.read(_HEAD.size)
                body = f.read()  # (the body alone: no copy of a ~70 MB file to slice)
        except OSError as exc:
            raise SnapshotUnusable(f"snapshot {seq}: {exc}") from exc
        if len(head) < _HEAD.size:
            raise SnapshotUnusable(f"snapshot {seq}: {len(head)} bytes, shorter than its header")
        magic, got_seq, length, crc = _HEAD.unpack(head)
        if magic != MAGIC:
            raise SnapshotUnusable(f"snapshot {seq}: magic {magic!r}, expected {MAGIC!r}")
        if got_seq != seq:
            raise SnapshotUnusable(f"snapshot file for {seq} holds snapshot {got_seq}")
        if len(body) != length:
            raise SnapshotUnusable(f"snapshot {seq}: body {len(body)} bytes, header says {length}")
        if zlib.crc32(body) != crc:
            raise SnapshotUnusable(f"snapshot {seq}: CRC mismatch")
        return body

    def latest(self) -> tuple[int, bytes] | None:
        """(seq, body) of the newest snapshot file, or None; `SnapshotUnusable` if it is bad."""
        seqs = self.seqs()
        return (seqs[-1], self.read(seqs[-1])) if seqs else None

    def prune(self, keep: int) -> None:
        """Delete all but the newest `keep` snapshots."""
        seqs = self.seqs()
        for seq in seqs[:-keep] if keep else seqs:
            self.path(seq).unlink(missing_ok=True)


def legacy_snapshots(db: plyvel.DB) -> list[int]:
    """Seqs of snapshots an earlier version stored in the LevelDB, ascending."""
    return [int.from_bytes(k[len(SNAP):], "big") for k in db.iterator(prefix=SNAP, include_value=False)]


def drop_legacy_snapshots(db: plyvel.DB) -> None:
    """Delete the LevelDB snapshots (once a file snapshot exists, they are never newest)."""
    for key in list(db.iterator(prefix=SNAP, include_value=False)):
        db.delete(key)


def newest_first(files: SnapshotFiles, db: plyvel.DB) -> Iterator[tuple[int, bytes | SnapshotUnusable]]:
    """Every stored snapshot, files and legacy LevelDB ones, newest first: (seq, body) or
    (seq, the reason it cannot be read). A file wins over a legacy one of the same seq."""
    where = {seq: "db" for seq in legacy_snapshots(db)}
    where.update({seq: "file" for seq in files.seqs()})
    for seq in sorted(where, reverse=True):
        if where[seq] == "file":
            try:
                yield seq, files.read(seq)
            except SnapshotUnusable as exc:
                yield seq, exc
        else:
            value = db.get(SNAP + seq.to_bytes(8, "big"))
            yield seq, value if value is not None else SnapshotUnusable(f"snapshot {seq}: gone")
