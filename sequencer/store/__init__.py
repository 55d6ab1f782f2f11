"""Persistence of the node: the input log (group-committed, synced) and blocks in LevelDB,
snapshots in files beside it."""

from sequencer.store.blocks import BlockStore, SealedBlock, block_puts
from sequencer.store.db import DataDirLocked, StoreError, open_db
from sequencer.store.log import GroupCommitter, InputLog
from sequencer.store.snapshots import SnapshotFiles, SnapshotUnusable

__all__ = ["BlockStore", "DataDirLocked", "GroupCommitter", "InputLog", "SealedBlock",
           "SnapshotFiles", "SnapshotUnusable", "StoreError", "block_puts", "open_db"]
