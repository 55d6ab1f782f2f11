"""sequencer.procs.cpu_list and `optrollup devnet --cpus`: CPU sets as operators write them,
and a clear refusal of a malformed list or a CPU this machine does not give the process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sequencer import procs
from sequencer.procs import cpu_list, descendants

HAVE = sorted(os.sched_getaffinity(0))


def test_forms() -> None:
    first = HAVE[0]
    assert cpu_list(str(first)) == {first}
    assert cpu_list(",".join(map(str, HAVE))) == set(HAVE)
    if len(HAVE) >= 2 and HAVE[1] == HAVE[0] + 1:
        assert cpu_list(f"{HAVE[0]}-{HAVE[1]}") == {HAVE[0], HAVE[1]}
        assert cpu_list(f" {HAVE[1]} , {HAVE[0]}") == {HAVE[0], HAVE[1]}


@pytest.mark.parametrize(("text", "says"), [
    ("", "is not a CPU number"), ("a", "'a' is not a CPU number"), ("0-", "is not a CPU number"),
    ("-1", "is not a CPU number"), ("3-1", "runs backwards"), ("0;1", "is not a CPU number"),
])
def test_malformed_lists_name_the_bad_part(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        cpu_list(text)


def test_a_cpu_the_process_may_not_use_is_refused() -> None:
    missing = max(HAVE) + 1
    with pytest.raises(ValueError, match=rf"CPU\(s\) \[{missing}\] are not available"):
        cpu_list(f"{HAVE[0]},{missing}")


def test_devnet_refuses_a_bad_cpu_list_before_starting_anything(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "sequencer.cli", "devnet", "--data-dir", str(tmp_path / "d"),
                          "--cpus", f"{max(HAVE) + 1}"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "are not available" in out.stderr
    assert not (tmp_path / "d").exists()


def test_descendants_from_a_parent_map() -> None:
    parents = {2: 1, 3: 2, 4: 2, 5: 9, 6: 5, 1: 0}
    assert descendants(2, parents) == {2, 3, 4}
    assert descendants(9, parents) == {9, 5, 6}
    assert descendants(7, parents) == {7}


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_descendants_of_this_process_include_a_grandchild() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
                              "print(p.pid, flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(child.stdout.readline())
        tree = descendants(os.getpid())
        assert {os.getpid(), child.pid, grandchild} <= tree
        assert os.getppid() not in tree
    finally:
        os.kill(grandchild, 9)
        child.kill()
        child.wait()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_lower_thread_priority_is_per_thread() -> None:
    import threading
    main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[int] = []

    def work() -> None:
        seen.append(procs.lower_thread_priority(5))
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == [min(19, main_nice + 5)] * 2
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_nice  # unchanged


def test_popen_nice_runs_the_child_nicer_and_still_dies_with_its_parent(tmp_path) -> None:  # noqa: ANN001
    base = os.nice(0)
    p = procs.popen([sys.executable, "-c", "import os; print(os.nice(0))"], stdout=subprocess.PIPE, nice=7)
    out, _ = p.communicate(timeout=30)
    assert int(out) == min(19, base + 7)
    p = procs.popen([sys.executable, "-c", "import os; print(os.nice(0))"], stdout=subprocess.PIPE)
    out, _ = p.communicate(timeout=30)
    assert int(out) == base
