from __future__ import annotations

from pathlib import Path

from sequencer.core.header import Block, Header
from sequencer.store import BlockStore, GroupCommitter, InputLog, block_puts, open_db, snapshot_puts


def test_blocks_and_snapshots_round_trip(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    store = BlockStore(db)
    assert store.head() is None and store.get(1) is None and store.latest_snapshot() is None
    gc = GroupCommitter(InputLog(db))
    blocks = [Block(Header(n, bytes([n]) * 32, 1000 + n, b"\1" * 32, b"\2" * 32, b"\3" * 32, n),
                    (b"tx-a", b"tx-b")) for n in (1, 2)]
    for b in blocks:
        gc.submit(b"seal", extra=block_puts(b, {"fees": 5})).result(timeout=10)
    gc.submit(b"r", extra=snapshot_puts(2, b"state@2")).result(timeout=10)
    gc.submit(b"r", extra=snapshot_puts(3, b"state@3")).result(timeout=10)
    gc.close()
    assert store.head() == 2
    assert store.get(2) == (blocks[1], {"fees": 5})
    assert store.latest_snapshot() == (3, b"state@3")
    store.prune_snapshots(keep=1)
    assert [k for k, _ in db.iterator(prefix=b"snap/")] == [b"snap/" + (3).to_bytes(8, "big")]
    db.close()
