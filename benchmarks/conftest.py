"""Benchmark reporting: per group, the ratio of each entry's median to optrollup's accelerated
entry, checked against the targets that the issues set (reported, never asserted)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# (group, reference entry) -> minimum speed-up of the group's "accel" entry over it
TARGETS: dict[tuple[str, str], float] = {}


def target(group: str, other: str, ratio: float) -> None:
    """Declare that `accel` in `group` must be at least `ratio` times faster than `other`."""
    TARGETS[(group, other)] = ratio


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    by_group: dict[str, dict[str, float]] = {}
    for bench in session.benchmarks:
        if bench.stats is None:
            continue
        name = bench.name.split("[")[-1].rstrip("]") if "[" in bench.name else bench.name
        by_group.setdefault(bench.group or "", {})[name] = bench.stats.median
    lines = []
    for group, entries in sorted(by_group.items()):
        base = entries.get("accel")
        lines.append(f"{group}:")
        for name, median in sorted(entries.items(), key=lambda kv: kv[1]):
            ratio = f"{median / base:8.2f}x" if base else ""
            want = TARGETS.get((group, name))
            verdict = ""
            if want is not None and base:
                verdict = f"  target >= {want}x: {'met' if median / base >= want else 'MISSED'}"
            lines.append(f"  {name:<34} {median * 1e3:10.2f} ms {ratio}{verdict}")
    terminalreporter.write_sep("=", "optrollup: speed-up of accel over each entry (median)")
    for line in lines:
        terminalreporter.write_line(line)
    out = os.environ.get("OPTROLLUP_BENCH_SUMMARY")
    if out:
        Path(out).write_text(json.dumps(by_group, indent=2))


@pytest.fixture(scope="session")
def cpu_count() -> int:
    return os.cpu_count() or 1
