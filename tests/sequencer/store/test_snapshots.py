"""Snapshot files: round trip, torn and corrupt files refused, legacy LevelDB snapshots still read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sequencer.store import SnapshotFiles, SnapshotUnusable, open_db
from sequencer.store.blocks import SNAP
from sequencer.store.snapshots import drop_legacy_snapshots, legacy_snapshots, newest_first


def test_round_trip_in_chunks_and_prune(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path / "snapshots", chunk=1000)
    body = os.urandom(4321)  # five chunks, the last short
    files.write(7, body)
    files.write(9, b"")
    files.write(8, b"eight")
    assert files.seqs() == [7, 8, 9]
    assert files.read(7) == body and files.read(8) == b"eight" and files.read(9) == b""
    files.prune(keep=2)
    assert files.seqs() == [8, 9]
    assert not list(files.dir.glob("*.tmp"))


@pytest.mark.parametrize("damage", ["truncate_body", "truncate_header", "flip_byte", "other_seq",
                                    "magic"])
def test_damaged_files_are_unusable(tmp_path: Path, damage: str) -> None:
    files = SnapshotFiles(tmp_path)
    files.write(5, b"x" * 100)
    p = files.path(5)
    raw = bytearray(p.read_bytes())
    if damage == "truncate_body":
        raw = raw[:-1]
    elif damage == "truncate_header":
        raw = raw[:10]
    elif damage == "flip_byte":
        raw[-3] ^= 1
    elif damage == "other_seq":
        files.write(6, b"x" * 100)
        raw = bytearray(files.path(6).read_bytes())
    else:
        raw[0] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(SnapshotUnusable) as e:
        files.read(5)
    assert "snapshot" in str(e.value) and e.value.code == "snapshot_unusable"


def test_unfinished_write_is_discarded_on_open(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path)
    (tmp_path / f"{3:016x}.snap.tmp").write_bytes(b"half")
    assert files.seqs() == []
    SnapshotFiles(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))


def test_newest_first_merges_files_and_legacy(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    files = SnapshotFiles(tmp_path / "snapshots")
    db.put(SNAP + (4).to_bytes(8, "big"), b"legacy4")
    db.put(SNAP + (10).to_bytes(8, "big"), b"legacy10")
    files.write(10, b"file10")
    files.write(6, b"file6")
    files.path(6).write_bytes(b"junk")
    got = list(newest_first(files, db))
    assert [s for s, _ in got] == [10, 6, 4]
    assert got[0][1] == b"file10" and got[2][1] == b"legacy4"
    assert isinstance(got[1][1], SnapshotUnusable)
    assert legacy_snapshots(db) == [4, 10]
    drop_legacy_snapshots(db)
    assert legacy_snapshots(db) == []
    db.close()
