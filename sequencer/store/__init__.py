"""LevelDB persistence of the node: the input log (group-committed, synced) and blocks."""

from sequencer.store.db import DataDirLocked, StoreError, open_db
from sequencer.store.log import GroupCommitter, InputLog

__all__ = ["DataDirLocked", "GroupCommitter", "InputLog", "StoreError", "open_db"]
