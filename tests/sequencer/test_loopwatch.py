"""sequencer.loopwatch: the event loop's lag, and what held the loop when it stalled."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from sequencer.loopwatch import LoopWatch, describe_stack


def _hold_the_loop_for(seconds: float) -> None:
    """Busy on the loop's thread (a handler that never yields), in Python code."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def _watched(body, **kw) -> tuple[list[float], list[tuple[float, str]]]:  # noqa: ANN001
    lags: list[float] = []
    reports: list[tuple[float, str]] = []
    w = LoopWatch(lags.append, lambda lag, stack: reports.append((lag, stack)), **kw)
    w.start()
    try:
        await body()
    finally:
        w.stop()
    return lags, reports


def test_a_stall_is_reported_with_the_code_that_held_the_loop() -> None:
    async def body() -> None:
        await asyncio.sleep(0.05)
        _hold_the_loop_for(0.2)
        await asyncio.sleep(0.05)

    lags, reports = asyncio.run(_watched(body, period=0.005, threshold=0.02))
    assert len(reports) == 1, reports
    lag, stack = reports[0]
    assert 0.17 <= lag <= 1.0
    assert stack.split(" < ")[0].endswith("_hold_the_loop_for"), stack
    assert "test_loopwatch.py" in stack and " body" in stack
    assert max(lags) == lag and len(lags) >= 10


def test_an_idle_or_busy_but_yielding_loop_reports_nothing() -> None:
    async def body() -> None:
        for _ in range(40):  # 5 ms slices of work, yielding in between
            _hold_the_loop_for(0.005)
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)

    lags, reports = asyncio.run(_watched(body, period=0.005, threshold=0.03))
    assert reports == []
    assert lags and max(lags) < 0.03


def test_stalls_within_report_every_give_one_report_of_the_worst() -> None:
    async def body() -> None:
        await asyncio.sleep(0.02)
        _hold_the_loop_for(0.05)
        await asyncio.sleep(0.02)
        _hold_the_loop_for(0.15)
        await asyncio.sleep(0.02)
        _hold_the_loop_for(0.05)
        await asyncio.sleep(0.05)

    lags, reports = asyncio.run(_watched(body, period=0.005, threshold=0.02, report_every=10.0))
    # the first stall is reported at once (nothing reported before); the rest wait for the
    # next report window, which never comes in this test: the worst is kept, not a later one
    assert len(reports) == 1 and 0.04 <= reports[0][0] < 0.14, reports
    assert sum(1 for x in lags if x >= 0.02) == 3


def test_a_stall_shorter_than_the_watchers_look_still_counts() -> None:
    """The beat reports its lag even if the watcher thread did not see it overdue (stack "")."""
    reports: list[tuple[float, str]] = []
    w = LoopWatch(lambda _lag: None, lambda lag, stack: reports.append((lag, stack)),
                  period=0.01, threshold=0.01)
    w._due = 0.0  # as if the beat were due long ago and the watcher never looked
    w._loop = asyncio.new_event_loop()
    try:
        w._clock = lambda: 0.5
        w._beat()
    finally:
        w._stop.set()
        w._loop.close()
    assert reports == [(0.5, "")]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="period"):
        LoopWatch(lambda _: None, lambda *_: None, period=0.05, threshold=0.02)
    with pytest.raises(ValueError, match="period"):
        LoopWatch(lambda _: None, lambda *_: None, period=0.0)


def test_describe_stack_innermost_first() -> None:
    import sys

    def inner() -> str:
        return describe_stack(sys._getframe(), depth=2)

    text = inner()
    first, second = text.split(" < ")
    assert first.endswith(" inner") and "sequencer/test_loopwatch.py:" in first
    assert second.endswith(" test_describe_stack_innermost_first")
    assert describe_stack(None) == "(thread gone)"


def test_node_runner_feeds_the_metric_and_logs_the_stall(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    """`serve`'s runner (watch_loop=True): every beat in optrollup_loop_lag_seconds, a stall
    logged with the handler's frame."""
    from sequencer.node.runner import NodeRunner
    from tests.sequencer.node.kit import Kit

    kit = Kit(tmp_path)
    node = kit.node

    async def run() -> None:
        async with NodeRunner(node, tick_seconds=0.05, watch_loop=True):
            await asyncio.sleep(0.1)
            _hold_the_loop_for(0.1)
            await asyncio.sleep(1.2)  # past report_every: the stall is reported at its beat

    try:
        with caplog.at_level(logging.WARNING, logger="optrollup.node"):
            asyncio.run(run())
    finally:
        node.close()
    count = node.metrics.registry.get_sample_value("optrollup_loop_lag_seconds_count")
    assert count is not None and count >= 50
    # the held beat (on a loaded machine, e.g. beside the other test pass, a few more beats
    # may be late too; the watcher's own tests pin down one report per window)
    late = count - node.metrics.registry.get_sample_value("optrollup_loop_lag_seconds_bucket", {"le": "0.05"})
    assert late >= 1
    msgs = [r.getMessage() for r in caplog.records if "event loop ran" in r.getMessage()]
    assert any("_hold_the_loop_for" in m for m in msgs), msgs
