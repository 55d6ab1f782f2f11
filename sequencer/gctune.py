"""Process-wide garbage-collector settings for a long-lived node (used by `optrollup serve` and
by the benchmarks that measure the core as the node runs it)."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Freeze everything alive now (the recovered state) out of the cyclic collector, and
    collect the young generation less often: full collections over a large state paused the
    event loop for 30-50 ms, and frequent young collections cost ~3 % of matching throughput.
    Call after the long-lived state is built. Objects frozen here are never collected, so call
    it once, not per block."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
