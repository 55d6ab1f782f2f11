"""sequencer.gctune: the collector settings of a long-lived node, and the watch on its passes."""

from __future__ import annotations

import gc

from sequencer.gctune import watch_gc


def test_watch_gc_reports_each_pass_with_its_generation_and_time() -> None:
    seen: list[tuple[int, float]] = []
    stop = watch_gc(lambda gen, s: seen.append((gen, s)))
    try:
        for _ in range(20_000):  # cyclic garbage: only the collector frees it
            a: list = []
            a.append(a)
        gc.collect(1)
        gc.collect()
    finally:
        stop()
    gens = [g for g, _ in seen]
    assert gens[-2:] == [1, 2], gens
    assert all(s >= 0 for _, s in seen) and seen[-1][1] > 0
    n = len(seen)
    gc.collect()
    assert len(seen) == n  # stopped: no more reports
    stop()  # twice is harmless
