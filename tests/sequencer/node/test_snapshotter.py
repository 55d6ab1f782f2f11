"""Snapshots off the loop: written by a forked child, only once their record is durable, never
when the record failed or the child did; closing abandons one in flight."""

from __future__ import annotations

import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from sequencer.node.snapshotter import Snapshotter
from sequencer.store import SnapshotFiles, open_db
from sequencer.store.blocks import SNAP


@pytest.fixture(params=[False, True], ids=["fork", "inline"])
def snap(request, tmp_path: Path):
    files = SnapshotFiles(tmp_path / "snapshots")
    s = Snapshotter(files, keep=2, inline=request.param)
    yield s, files
    s.close()


def stored(files: SnapshotFiles) -> dict[int, bytes]:
    return {seq: files.read(seq) for seq in files.seqs()}


def test_written_only_after_the_record_is_durable_and_pruned(snap) -> None:
    s, db = snap
    durable: Future[int] = Future()
    state = {"x": 1}
    assert s.take(7, lambda: b"state %d" % state["x"], durable)
    state["x"] = 2  # the loop goes on; the snapshot is of the moment it was taken (fork) or encoded
    time.sleep(0.2)
    assert stored(db) == {}  # record 7 is not durable yet
    assert not s.take(8, lambda: b"x", Future())  # one at a time
    durable.set_result(7)
    s.wait(10)
    assert stored(db) == {7: b"state 1"}
    for seq in (8, 9):
        f: Future[int] = Future()
        f.set_result(seq)
        assert s.take(seq, lambda seq=seq: b"s%d" % seq, f)
        s.wait(10)
    assert stored(db) == {8: b"s8", 9: b"s9"}  # the newest two kept


def test_nothing_written_when_the_record_or_the_encoder_fails(snap) -> None:
    s, db = snap
    failed: Future[int] = Future()
    failed.set_exception(OSError("disk full"))
    assert s.take(3, lambda: b"x", failed)
    s.wait(10)
    ok: Future[int] = Future()
    ok.set_result(4)

    def broken() -> bytes:
        raise ValueError("cannot encode")

    if s.inline:
        with pytest.raises(ValueError):
            s.take(4, broken, ok)
    else:
        assert s.take(4, broken, ok)  # the child fails and exits non-zero
        s.wait(10)
    assert stored(db) == {}


def test_close_abandons_a_slow_child(tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path / "snapshots")
    s = Snapshotter(files, inline=False)
    f: Future[int] = Future()
    f.set_result(1)
    s.take(1, lambda: time.sleep(60) or b"late", f)
    t = time.monotonic()
    s.close()
    assert time.monotonic() - t < 10 and stored(files) == {}


def test_legacy_leveldb_snapshots_dropped_once_a_file_is_written(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    db.put(SNAP + (3).to_bytes(8, "big"), b"old format place")
    s = Snapshotter(SnapshotFiles(tmp_path / "snapshots"), db, inline=True)
    f: Future[int] = Future()
    f.set_result(5)
    s.take(5, lambda: b"s5", f)
    s.wait(10)
    assert list(db.iterator(prefix=SNAP)) == [] and s.files.read(5) == b"s5"
    s.close()
    db.close()
