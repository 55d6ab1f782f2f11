"""Background threads that share the GIL with the node's event loop.

A thread of the node's process that runs Python for a while (the monitor reading the log and
its trade events, for instance) holds the GIL the whole time unless it blocks: the event loop,
wanting it back, waits for the interpreter's switch interval (5 ms) before it may force a
switch, and then again after each slice, so every request in flight waits too. `GilYield`
lets such a thread give the loop a turn: called once per item of work, it sleeps
`pause` seconds (releasing the GIL long enough for a waiting thread to take it) after each
`work` seconds of running.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["GilYield"]


class GilYield:
    """`tick()` after each item of work: a short sleep after every `work` seconds of it
    (perf_counter seconds; the first period starts at construction or at `restart`)."""

    def __init__(self, work: float = 0.0005, pause: float = 0.0001, *,
                 clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.work, self.pause, self._clock, self._sleep = work, pause, clock, sleep
        self._until = clock() + work
        self.pauses = 0

    def restart(self) -> None:
        """Start a new period of work now (after the thread slept or waited anyway)."""
        self._until = self._clock() + self.work

    def tick(self) -> None:
        if self._clock() >= self._until:
            self._sleep(self.pause)
            self.pauses += 1
            self._until = self._clock() + self.work
