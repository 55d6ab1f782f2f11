"""The node's own background work, on the event loop that owns `Node.core`: keeping block time
fresh (`Node.tick`) and following L1 (processing confirmed L1 messages, deposits and forced
withdrawals, in nonce order, exactly once).
It belongs to the node, not to the HTTP layer: `optrollup serve` runs it through the app's
lifespan, and anything else that hosts a node (tests, benchmarks) runs it the same way."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType

from sequencer.errors import OptrollupError
from sequencer.loopwatch import LoopWatch
from sequencer.node.node import Node

log = logging.getLogger("optrollup.node")


async def follow_l1_once(node: Node) -> int:
    """One follower round: poll L1 off the loop, process the confirmed L1 messages (deposits,
    forced withdrawals) the node lacks in nonce order, and wait until they are durable. Returns
    how many were processed. A message that cannot be processed ends the round (the next round
    retries from it)."""
    l1 = node.l1
    if l1 is None:
        return 0
    loop = asyncio.get_running_loop()
    _, messages = await loop.run_in_executor(None, l1.poll, node.core.l1_block)
    futs = []
    for m in messages:
        try:
            f = node.process_l1_message(m)
        except OptrollupError as exc:
            log.warning("L1 message %d (%s) not processed: %s", m.nonce, m.kind_name, exc)
            break
        if f is not None:
            futs.append(asyncio.wrap_future(f))
    n = len(futs)
    for c in await loop.run_in_executor(None, l1.poll_conclusions):
        try:
            f = node.process_conclusion(c)
        except OptrollupError as exc:
            log.warning("conclusion of channel 0x%s not applied: %s", c.channel_id.hex(), exc)
            continue
        if f is not None:
            futs.append(asyncio.wrap_future(f))
    if futs:
        await asyncio.gather(*futs)
    return n


STALL_SECONDS = 0.02  # a loop this late is logged (at most once a second, the worst one)


def _report_stall(lag: float, stack: str) -> None:
    log.warning("event loop ran %.0f ms late; its thread was in: %s", lag * 1e3,
                stack or "(not caught: the stall ended before the watcher looked)")


class NodeRunner:
    """`async with NodeRunner(node, tick_seconds):` ticks the node and follows L1 (if the node
    has a follower) until the block exits; the node stays open (closing it is the owner's).
    With `watch_loop`, the loop's lag goes to `optrollup_loop_lag_seconds` and a stall of
    `STALL_SECONDS` or more is logged with what the loop's thread was running
    (sequencer.loopwatch)."""

    def __init__(self, node: Node, tick_seconds: float = 0.2, *, watch_loop: bool = False) -> None:
        self.node, self.tick_seconds = node, tick_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self._watch = (LoopWatch(node.metrics.loop_lag.observe, _report_stall, threshold=STALL_SECONDS)
                       if watch_loop else None)

    async def __aenter__(self) -> "NodeRunner":
        self.node.bind_loop(asyncio.get_running_loop())
        if self._watch is not None:
            self._watch.start()
        self._tasks = [asyncio.create_task(self._ticker(), name="node-ticker")]
        if self.node.l1 is not None:
            self._tasks.append(asyncio.create_task(self._follower(), name="l1-follower"))
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._watch is not None:
            self._watch.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    SEAL_AHEAD_SECONDS = 0.01
    """How long before a due seal the ticker runs `Node.seal_ahead`: short, so that few
    accounts change in between (each one changed is done again by the seal)."""

    async def _ticker(self) -> None:
        node = self.node
        while True:
            wait = self.tick_seconds
            due = node.seal_due()
            if due is not None and due - node.clock() <= self.tick_seconds:
                # the seal falls before the next tick: split its work in two, the part done
                # just before it and the seal at its time (requests run in between)
                await asyncio.sleep(min(max(due - node.clock() - self.SEAL_AHEAD_SECONDS, 0.0),
                                        self.tick_seconds))
                try:
                    node.seal_ahead()
                except Exception:  # noqa: BLE001 - keep ticking; the error is logged
                    log.exception("seal ahead failed")
                wait = min(max(due - node.clock(), 0.0) + 0.001, self.tick_seconds)
            await asyncio.sleep(wait)
            try:
                node.tick()
                node.prepare_next_block()
                node.hash_ahead()
            except Exception:  # noqa: BLE001 - keep ticking; the error is logged
                log.exception("tick failed")

    async def _follower(self) -> None:
        assert self.node.l1 is not None
        while True:
            if self.node.failed is None:
                try:
                    await follow_l1_once(self.node)
                except Exception:  # noqa: BLE001 - one bad round must not end the follower
                    log.exception("L1 follower round failed; retrying")
            await asyncio.sleep(self.node.l1.settings.poll_seconds)
