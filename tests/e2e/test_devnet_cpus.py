"""`optrollup devnet --cpus LIST`: the supervisor and every process it starts (anvil, the node,
the feeder, the channel services...) run on exactly those CPUs. Never touches cext: skipped in
the pure-Python pass."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sequencer.procs import descendants
from tests.e2e.devnet_proc import Devnet

pytestmark = pytest.mark.skipif(os.environ.get("OPTROLLUP_PUREPYTHON") == "1",
                                reason="process affinity does not depend on the cext build")


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs sched_setaffinity")
def test_every_devnet_process_runs_on_the_given_cpus(tmp_path: Path) -> None:
    cpu = max(os.sched_getaffinity(0))
    d = Devnet(tmp_path / "d", "--cpus", str(cpu), "--no-liquidator", "--channel-services", "1",
               "--post-seconds", "3600", timeout=120)
    try:
        named = d.child_pids()
        assert {"anvil", "node"} <= set(named)
        pids = descendants(d.proc.pid)
        assert set(named.values()) <= set(pids)
        seen = {}
        for p in pids:
            try:
                seen[p] = os.sched_getaffinity(p)
            except ProcessLookupError:  # a short-lived child (a cron run) that just ended
                continue
        assert len(seen) >= 4 and all(s == {cpu} for s in seen.values()), seen
    finally:
        d.stop()
