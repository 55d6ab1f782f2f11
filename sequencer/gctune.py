"""Process-wide garbage-collector settings for a long-lived node (used by `optrollup serve` and
by the benchmarks that measure the core as the node runs it)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any


def tune_gc() -> None:
    """Freeze everything alive now (the recovered state) out of the cyclic collector, and keep
    each young collection short: full collections over a large state paused the event loop for
    30-50 ms. Thresholds (2,000, 5, 100): a generation-0 pass scans at most ~2,000 objects and a
    generation-1 pass ~10,000, measured at most 0.7 ms and 2.4 ms on a 1M-order node (the
    earlier (50,000, 20, 100) cost 5-13 ms and 12-21 ms: the largest request stalls there were
    these passes, benchmarks/README.md "Snapshots"); the total collection time is about the
    same. Not bounded: a full pass (when objects promoted since the last reach 25 % of those it
    kept), which scans every long-lived object created since this call. Call after the
    long-lived state is built. Objects frozen here are never collected, so call it once, not
    per block."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(2_000, 5, 100)


def watch_gc(observe: Callable[[int, float], None]) -> Callable[[], None]:
    """Call `observe(generation, seconds)` after every cyclic-GC pass of this process (on the
    thread that triggered it, which the pass stopped: for the loop's thread, a stall of every
    request). Returns the function that stops watching."""
    started: list[float] = []

    def cb(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            observe(int(info.get("generation", -1)), time.perf_counter() - started.pop())

    gc.callbacks.append(cb)
    return lambda: gc.callbacks.remove(cb) if cb in gc.callbacks else None
