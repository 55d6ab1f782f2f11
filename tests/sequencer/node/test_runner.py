"""NodeRunner's ticker: the seal's work split in two, the part done just before it and the
seal at its time (sequencer.node.runner)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sequencer.node.runner import NodeRunner
from tests.sequencer.node.kit import CALL, T0, USERS, Kit

A, B = USERS[:2]
U = 10**6


def test_the_ticker_takes_each_seals_leaves_just_before_it(tmp_path: Path) -> None:
    """Blocks with trades every second on a clock that runs: the runner calls `seal_ahead` just
    before a seal (the block's leaves taken ahead), and the blocks replay (the reopened node
    checks each against its own)."""
    k = Kit(tmp_path)
    for u in (A, B):
        k.fund(u, 100_000 * U)
    k.feeds()
    node = k.node
    t0 = time.monotonic()
    node.clock = lambda: T0 + 0.5 + (time.monotonic() - t0)  # type: ignore[method-assign]
    calls: list[tuple[str, Any]] = []
    real_ahead, real_seal = node.seal_ahead, node._seal

    def seal_ahead() -> None:
        real_ahead()
        calls.append(("ahead", len(node.__dict__.get("_leaves_ahead", ()))))

    def seal(next_ts: int, *, replay: bool) -> Any:
        calls.append(("seal", len(node.core.engine.txs)))
        return real_seal(next_ts, replay=replay)

    node.seal_ahead = seal_ahead  # type: ignore[method-assign]
    node._seal = seal  # type: ignore[method-assign]

    async def run() -> None:
        async with NodeRunner(node, tick_seconds=0.2):
            for i in range(7):  # a trade every ~0.4 s for ~2.8 s
                k.clock.t = node.clock()
                r = k.place(A, instrument=CALL, is_buy=False, price=100 * U, amount=10_000,
                            nonce=2 * i, expiry=T0 + 3600)
                assert r.status == "open"
                r = k.place(B, instrument=CALL, is_buy=True, price=100 * U, amount=10_000,
                            nonce=2 * i + 1, expiry=T0 + 3600, tif=1)
                assert r.filledAmount == 10_000
                await asyncio.sleep(0.4)

    asyncio.run(run())
    seals = [i for i, (what, _) in enumerate(calls) if what == "seal"]
    assert len(seals) >= 2, calls
    # (a seal may come without: the first one, or a request's own tick while the loop is late
    # on a loaded machine)
    assert any(calls[i - 1][0] == "ahead" and calls[i - 1][1] > 0 and calls[i][1] > 0
               for i in seals), calls  # a block's leaves were taken just before its seal
    head = node.core.head
    node.seal_ahead, node._seal = real_ahead, real_seal  # type: ignore[method-assign]
    assert k.reopen().core.head == head
    k.node.close()
