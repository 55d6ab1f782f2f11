from __future__ import annotations

from pathlib import Path

from sequencer.core.header import Block, Header
from sequencer.store import BlockStore, GroupCommitter, InputLog, block_puts, open_db


def test_blocks_round_trip(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    store = BlockStore(db)
    assert store.head() is None and store.get(1) is None
    gc = GroupCommitter(InputLog(db))
    blocks = [Block(Header(n, bytes([n]) * 32, 1000 + n, b"\1" * 32, b"\2" * 32, b"\3" * 32, n),
                    (b"tx-a", b"tx-b")) for n in (1, 2)]
    for b in blocks:
        gc.submit(b"seal", extra=block_puts(b, {"fees": 5})).result(timeout=10)
    gc.close()
    assert store.head() == 2
    assert store.get(2) == (blocks[1], {"fees": 5})
    assert store.get(3) is None
    db.close()
