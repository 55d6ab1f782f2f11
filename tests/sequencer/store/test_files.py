"""write_synced: the file is replaced whole or not at all, in synced chunks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sequencer.store.files import write_synced


def test_writes_the_parts_in_order_and_replaces_the_file(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    p.write_bytes(b"old")
    parts = [b"head", os.urandom(3 * 1024 + 7), memoryview(b"tail")]
    write_synced(p, parts, chunk=1024)
    assert p.read_bytes() == b"".join(bytes(x) for x in parts)
    assert not (tmp_path / "f.bin.tmp").exists()
    write_synced(p, [])
    assert p.read_bytes() == b""


def test_syncs_every_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(os.fstat(fd).st_size), real(fd)))
    write_synced(tmp_path / "f", [b"x" * 10, b"y" * 5000], chunk=1000)
    # never more than one chunk (plus the small header part) unsynced
    assert synced[0] <= 1010 and all(b - a <= 1000 for a, b in zip(synced, synced[1:]))
    assert len(synced) >= 5


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    p.write_bytes(b"old")

    def parts():
        yield b"new" * 1000
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_synced(p, parts(), chunk=512)
    assert p.read_bytes() == b"old" and not (tmp_path / "f.bin.tmp").exists()
