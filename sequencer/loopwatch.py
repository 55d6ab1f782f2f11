"""How late the event loop runs, and what its thread was doing when it ran late.

Every request the node answers waits for the loop's thread; a handler, a GC pass or another
thread holding the GIL delays all of them at once. `LoopWatch` measures that delay directly:
a callback scheduled every `period` seconds records how late it ran (the loop's lag, seconds),
and a watcher thread that finds the callback more than `threshold` seconds overdue takes the
loop thread's Python stack at that moment, so the report of the stall names the code that
held the loop (or, if the stack ends in the loop's `select`, that the thread was waiting, e.g.
for the GIL held by another thread). Cost: `1/period` callbacks per second on the loop and
`2/threshold` wake-ups of the watcher thread.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["LoopWatch", "describe_stack"]


def describe_stack(frame: FrameType | None, depth: int = 8) -> str:
    """The innermost `depth` frames of `frame`'s stack, innermost first: "file:line function"
    joined by " < " (files shown from their package directory on)."""
    if frame is None:
        return "(thread gone)"
    out = []
    f: FrameType | None = frame
    while f is not None and len(out) < depth:  # no source lookups: no file reads while it stalls
        parts = f.f_code.co_filename.replace("\\", "/").split("/")
        out.append(f"{'/'.join(parts[-2:])}:{f.f_lineno} {f.f_code.co_name}")
        f = f.f_back
    return " < ".join(out)


class LoopWatch:
    """`start()` on the loop's thread; `observe(lag_seconds)` on every beat (on the loop's
    thread), `report(lag_seconds, stack)` for a beat at least `threshold` late, with the stack
    the watcher saw while it was overdue ("" if the watcher did not look in time), at most once
    per `report_every` seconds (the longest stall since the last report). Stops with `stop()`."""

    def __init__(self, observe: Callable[[float], None], report: Callable[[float, str], None], *,
                 period: float = 0.01, threshold: float = 0.02, report_every: float = 1.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if not 0 < period <= threshold:
            raise ValueError(f"need 0 < period <= threshold, got {period} and {threshold}")
        self.observe, self.report = observe, report
        self.period, self.threshold, self.report_every = period, threshold, report_every
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tid = 0
        self._due = 0.0                      # when the next beat should run (clock seconds)
        self._seen: tuple[float, str] = (-1.0, "")  # (due it was overdue for, stack)
        self._worst: tuple[float, str] | None = None
        self._last_report = -1e18
        self._handle: asyncio.TimerHandle | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tid = threading.get_ident()
        self._due = self._clock() + self.period
        self._handle = self._loop.call_later(self.period, self._beat)
        self._thread = threading.Thread(target=self._watch, name="loop-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _beat(self) -> None:
        now = self._clock()
        due = self._due
        lag = max(0.0, now - due)
        self.observe(lag)
        if lag >= self.threshold:
            seen_due, stack = self._seen
            stack = stack if seen_due == due else ""
            if self._worst is None or lag > self._worst[0]:
                self._worst = (lag, stack)
        if self._worst is not None and now - self._last_report >= self.report_every:
            self._last_report = now
            worst, self._worst = self._worst, None
            self.report(*worst)
        if not self._stop.is_set():
            self._due = now + self.period
            assert self._loop is not None
            self._handle = self._loop.call_later(self.period, self._beat)

    def _watch(self) -> None:
        step = self.threshold / 2
        while not self._stop.wait(step):
            due = self._due
            if self._clock() - due >= self.threshold and self._seen[0] != due:
                self._seen = (due, describe_stack(sys._current_frames().get(self._tid)))
