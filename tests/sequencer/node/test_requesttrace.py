"""The stages of a slow write request (sequencer/node/requesttrace.py)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, strategies as st
from prometheus_client import CollectorRegistry

from sequencer.node import requesttrace
from sequencer.node.requesttrace import RequestStages, stages


def test_stages_are_the_gaps_between_marks_in_time_order() -> None:
    # the log writer's marks arrive after the loop's, with earlier times
    marks = [("read", 1.0), ("verify", 3.0), ("apply", 3.5), ("queue", 4.5), ("fsync", 9.0),
             ("wake", 9.25)]
    got = stages(0.5, [marks[0], marks[1], marks[2], marks[5], marks[3], marks[4]], 10.0)
    assert got == [("read", 0.5), ("verify", 2.0), ("apply", 0.5), ("queue", 1.0), ("fsync", 4.5),
                   ("wake", 0.25), ("answer", 0.75)]


def test_marks_outside_the_request_are_clipped_and_repeats_add_up() -> None:
    # a batch that started its write before the request did (its record joined late) and a
    # mark after the end: neither makes a stage negative or the sum exceed the request
    got = dict(stages(2.0, [("queue", 1.0), ("fsync", 3.0), ("tick", 3.5), ("tick", 4.0), ("wake", 7.0)], 5.0))
    assert got == {"queue": 0.0, "fsync": 1.0, "tick": 1.0, "wake": 1.0, "answer": 0.0}


@given(st.floats(0, 100), st.lists(st.tuples(st.sampled_from(["read", "verify", "fsync"]), st.floats(-10, 200))),
       st.floats(0, 100))
def test_stages_sum_to_the_request_and_are_never_negative(start: float, marks, length: float) -> None:
    got = stages(start, marks, start + length)
    assert all(d >= 0 for _, d in got)
    assert sum(d for _, d in got) == pytest.approx(length, abs=1e-9)


def test_mark_outside_a_trace_does_nothing_and_a_trace_keeps_its_own() -> None:
    requesttrace.mark("read")
    assert not requesttrace.active()
    token = requesttrace.begin()
    requesttrace.mark("read", 1.5)
    requesttrace.mark("verify")
    marks = requesttrace.end(token)
    assert [s for s, _ in marks] == ["read", "verify"] and marks[0][1] == 1.5
    assert not requesttrace.active()


def test_slow_requests_counted_by_longest_stage_and_logged_once_a_second(caplog: pytest.LogCaptureFixture) -> None:
    reg, now = CollectorRegistry(), [100.0]
    slow = RequestStages(reg, 0.010, sample_every=1, clock=lambda: now[0])
    assert slow.observe("/v1/orders", 0.0, [("verify", 0.001)], 0.0099) is None  # under: nothing
    with caplog.at_level(logging.WARNING, logger="optrollup.node"):
        assert slow.observe("/v1/orders", 0.0, [("verify", 0.001), ("queue", 0.002), ("fsync", 0.012)], 0.013) == "fsync"
        now[0] += 0.5
        assert slow.observe("/v1/quotes", 0.0, [("apply", 0.020)], 0.021) == "apply"  # not logged
        now[0] += 0.6
        assert slow.observe("/v1/orders", 0.0, [("wake", 0.001)], 0.030) == "answer"
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["slow request POST /v1/orders: 13.0 ms (verify 1.0, queue 1.0, fsync 10.0, answer 1.0)",
                     "slow request POST /v1/orders: 30.0 ms (wake 1.0, answer 29.0)"]
    count = lambda stage: reg.get_sample_value("optrollup_slow_requests_total", {"stage": stage})
    assert (count("fsync"), count("apply"), count("answer")) == (1, 1, 1)
    # every request's stages are summed, the quick one's too
    total = lambda stage: reg.get_sample_value("optrollup_request_stage_seconds_total", {"stage": stage})
    assert reg.get_sample_value("optrollup_request_traced_total") == 4
    assert total("verify") == pytest.approx(0.001 + 0.001)
    assert total("fsync") == pytest.approx(0.010) and total("apply") == pytest.approx(0.020)
    assert total("answer") == pytest.approx(0.0099 - 0.001 + 0.001 + 0.001 + 0.029)
    assert total("wake") == pytest.approx(0.001)


def test_stage_sums_are_sampled_but_slow_requests_always_counted() -> None:
    reg = CollectorRegistry()
    s = RequestStages(reg, 0.010, sample_every=3, clock=lambda: 0.0)
    for i in range(1, 10):  # the 3rd, 6th and 9th are summed; the 4th and 5th are slow
        s.observe("/v1/orders", 0.0, [("apply", 0.001 * i)], 0.020 if i in (4, 5) else 0.002 * i)
    assert s.requests == 3
    assert s.seconds["apply"] == pytest.approx(0.003 + 0.006 + 0.009)
    assert reg.get_sample_value("optrollup_slow_requests_total", {"stage": "answer"}) == 2
