"""Opening the node's LevelDB. One process owns a data dir (LevelDB's LOCK file); a second
opener gets `DataDirLocked`, never a shared or corrupt database."""

from __future__ import annotations

from pathlib import Path

import plyvel

from sequencer.errors import OptrollupError


class StoreError(OptrollupError):
    """The database cannot be opened or written."""

    code = "store_error"


class DataDirLocked(StoreError):
    """Another process holds the data dir."""

    code = "data_dir_locked"


def open_db(path: str | Path) -> plyvel.DB:
    """Open (creating if needed) the LevelDB at `path`; translate plyvel errors once, here."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    try:
        return plyvel.DB(str(p), create_if_missing=True)
    except plyvel.IOError as exc:
        if b"lock" in str(exc).encode() or "lock" in str(exc):
            raise DataDirLocked(
                f"data dir {p} is in use by another process (LevelDB lock held); "
                "stop that process or use another --data-dir") from exc
        raise StoreError(f"cannot open LevelDB at {p}: {exc}") from exc
    except plyvel.Error as exc:
        raise StoreError(f"cannot open LevelDB at {p}: {exc}") from exc
