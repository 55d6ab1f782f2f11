"""LevelDB persistence of the node: the input log (group-committed, synced) and blocks."""

from sequencer.store.blocks import BlockStore, SealedBlock, block_puts, snapshot_puts
from sequencer.store.db import DataDirLocked, StoreError, open_db
from sequencer.store.log import GroupCommitter, InputLog

__all__ = ["BlockStore", "DataDirLocked", "GroupCommitter", "InputLog", "SealedBlock", "StoreError",
           "block_puts", "open_db", "snapshot_puts"]
