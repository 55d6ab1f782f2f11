"""Files written durably without flooding the disk: the node's fsyncs share the filesystem.

`write_synced` writes `<path>.tmp` in `chunk`-sized pieces, each followed by fdatasync, so at most
one chunk of dirty pages is ever outstanding (a synced log write on the same filesystem never
waits behind more than that: on ext4 a commit carries every dirty page written before it), then
renames it into place and fsyncs the directory. Used for node snapshots and the devnet's L1 state.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """fsync a directory (makes a rename or a new entry in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_synced(path: str | Path, parts: Iterable[bytes | memoryview], *, chunk: int = 1 << 20,
                 pause: float = 0.0) -> None:
    """Replace `path` with the concatenation of `parts`, durably (complete once this returns,
    the old file intact if it raises): `chunk` bytes written and fdatasynced at a time, with
    `pause` seconds between chunks. The GIL is released by every write and fdatasync."""
    final = Path(path)
    tmp = final.with_name(final.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        pending = 0
        for part in parts:
            view = memoryview(part)
            for i in range(0, len(view), chunk):
                piece = view[i:i + chunk]
                pending += len(piece)
                while piece:
                    n = os.write(fd, piece)
                    piece = piece[n:]
                if pending >= chunk:
                    os.fdatasync(fd)
                    pending = 0
                    if pause:
                        time.sleep(pause)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, final)
    fsync_dir(final.parent)
