"""The devnet comes back after a hard kill (kill -9 / OOM of the `optrollup devnet` supervisor).

Unit tests of `sequencer.procs` (pid files: alive-and-ours vs stale vs recycled pid; the death
signal; the data-dir lock) on tiny Python processes, then the real devnet: run it on fixed ports
(the `make run` path, where `Address already in use` bit), kill -9 the supervisor only, and run it
again on the same data dir and ports.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sequencer import procs
from sequencer.l1 import L1Client
from tests.e2e.devnet_proc import Devnet

SLEEPER = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_{}); print('up', flush=True); time.sleep(120)"
linux_only = pytest.mark.skipif(not procs.pdeathsig_supported(), reason="needs prctl(PR_SET_PDEATHSIG)")


def wait_gone(pids: list[int], timeout: float = 20) -> list[int]:
    """The pids still alive after `timeout` (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(procs.alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if procs.alive(p)]


def kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts; SIGKILLed and reaped at the end whatever happened."""
    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def sleeper(started: list[subprocess.Popen], *, term: str = "DFL", tag: str = "x", **kw: object) -> subprocess.Popen:
    argv = [sys.executable, "-c", SLEEPER.format(term), tag]
    p = procs.popen(argv, stdout=subprocess.PIPE, **kw)  # type: ignore[arg-type]
    started.append(p)
    assert p.stdout is not None and p.stdout.readline() == b"up\n"  # handler installed
    return p


# -- pid files -------------------------------------------------------------------------------------

def test_reap_stops_a_live_process_that_is_ours(tmp_path: Path, spawned: list) -> None:
    p = sleeper(spawned, pid_file=tmp_path / "node.pid")
    assert json.loads((tmp_path / "node.pid").read_text())["pid"] == p.pid
    msgs = procs.reap_pid_files(tmp_path)
    assert msgs == [f"terminated leftover node (pid {p.pid}) from a previous run"]
    assert p.wait(5) == -signal.SIGTERM
    assert not list(tmp_path.glob("*.pid"))


def test_reap_sigkills_one_that_ignores_sigterm(tmp_path: Path, spawned: list) -> None:
    p = sleeper(spawned, term="IGN", pid_file=tmp_path / "anvil.pid")
    msgs = procs.reap_pid_files(tmp_path, timeout=0.5)
    assert msgs == [f"killed leftover anvil (pid {p.pid}) from a previous run"]
    assert p.wait(5) == -signal.SIGKILL


def test_reap_removes_stale_pid_files_and_spares_recycled_pids(tmp_path: Path, spawned: list) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    procs.write_pid_file(tmp_path / "poster.pid", gone.pid, ["python", "post-batches"])
    # a live pid that now runs something else than recorded: a recycled pid, never touched
    other = sleeper(spawned, tag="someone-else")
    procs.write_pid_file(tmp_path / "node.pid", other.pid, [sys.executable, "-c", SLEEPER.format("DFL"), "x"])
    (tmp_path / "anvil.pid").write_text("garbage")
    msgs = procs.reap_pid_files(tmp_path, order=("poster", "node", "anvil"))
    assert msgs == [f"removed stale pid file poster.pid (pid {gone.pid} no longer runs)",
                    f"removed stale pid file node.pid (pid {other.pid} now runs another program; left alone)",
                    "removed unreadable pid file anvil.pid"]
    assert other.poll() is None and procs.alive(other.pid)
    assert not list(tmp_path.glob("*.pid"))
    assert procs.reap_pid_files(tmp_path) == []


def test_is_ours_compares_the_whole_command_line(spawned: list) -> None:
    p = sleeper(spawned, tag="mine")
    argv = [sys.executable, "-c", SLEEPER.format("DFL"), "mine"]
    assert procs.is_ours(p.pid, argv)
    assert not procs.is_ours(p.pid, [*argv[:-1], "other"])
    assert not procs.is_ours(p.pid, argv[:-1])


def test_stop_child_drops_only_its_own_pid_file(tmp_path: Path, spawned: list) -> None:
    pid_file = tmp_path / "poster.pid"
    first = sleeper(spawned, pid_file=pid_file)
    second = sleeper(spawned, pid_file=pid_file)  # a newer run took the file over
    procs.stop_child(first, pid_file=pid_file)
    assert pid_file.exists()
    procs.stop_child(second, pid_file=pid_file)
    assert not pid_file.exists()


# -- the death signal and the lock ---------------------------------------------------------------

@linux_only
@pytest.mark.parametrize("disabled", [False, True])
def test_children_die_with_a_sigkilled_parent(tmp_path: Path, spawned: list, disabled: bool) -> None:
    """A middle process spawns a grandchild with procs.popen and is SIGKILLed: the grandchild
    gets SIGTERM, unless OPTROLLUP_NO_PDEATHSIG=1 (then only the pid file is left to help)."""
    code = (f"import subprocess, sys; from sequencer import procs; from pathlib import Path\n"
            f"p = procs.popen([sys.executable, '-c', {SLEEPER.format('DFL')!r}], stdout=subprocess.DEVNULL,"
            f" start_new_session=True, pid_file=Path({str(tmp_path / 'child.pid')!r}))\n"
            f"print(p.pid, flush=True); import time; time.sleep(120)")
    env = {**os.environ, "OPTROLLUP_NO_PDEATHSIG": "1" if disabled else "0"}
    middle = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    spawned.append(middle)
    assert middle.stdout is not None
    child = int(middle.stdout.readline())
    try:
        time.sleep(0.5)
        middle.kill()
        middle.wait(5)
        if disabled:
            assert wait_gone([child], 1.0) == [child]  # survived: the bug without PDEATHSIG
            assert procs.reap_pid_files(tmp_path) == [f"terminated leftover child (pid {child}) from a previous run"]
        assert not wait_gone([child], 10)
    finally:
        kill_quietly(child)


def test_dir_lock_keeps_a_second_supervisor_out(tmp_path: Path) -> None:
    first = procs.DirLock(tmp_path / "devnet.lock").acquire()
    with pytest.raises(RuntimeError, match=f"pid {os.getpid()}"):
        procs.DirLock(tmp_path / "devnet.lock").acquire()
    first.release()
    procs.DirLock(tmp_path / "devnet.lock").acquire().release()


# -- the real devnet ---------------------------------------------------------------------------

def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def recorded(run_dir: Path) -> dict[int, list[str]]:
    """pid -> argv from the devnet's pid files."""
    out = {}
    for p in run_dir.glob("*.pid"):
        try:
            rec = json.loads(p.read_text())
            out[rec["pid"]] = rec["argv"]
        except (OSError, ValueError, KeyError):
            pass
    return out


def l2_head(api: str) -> int:
    return httpx.get(f"{api}/v1/health", timeout=5).json()["head"]


def l1_state(url: str, rollup: str) -> tuple[int, bytes]:
    with L1Client(url) as c:
        return c.block_number(), c.get_code(rollup)


@pytest.mark.anvil
def test_devnet_comes_back_after_kill_9_on_the_same_ports(tmp_path: Path) -> None:
    data = tmp_path / "devnet"
    port, l1_port = free_ports(2)
    runs: list[Devnet] = []
    leftovers: dict[int, list[str]] = {}  # every child recorded: pid -> argv

    def start(**env: str) -> Devnet:
        d = Devnet(data, "--post-seconds", "3600", port=port, l1_port=l1_port, env=env, timeout=90)
        runs.append(d)
        assert d.api == f"http://127.0.0.1:{port}" and d.l1 == f"http://127.0.0.1:{l1_port}"
        assert httpx.get(f"{d.api}/v1/health", timeout=5).status_code == 200
        return d

    try:
        # 1. children without the death signal (as on macOS, or a supervisor older than it):
        #    kill -9 leaves the node and anvil holding the ports, the bug of issue 10
        d1 = start(OPTROLLUP_NO_PDEATHSIG="1")
        height1, code1 = l1_state(d1.l1, d1.rollup)
        assert code1
        head1 = d1.wait("an L2 block", lambda: l2_head(d1.api))
        pids1 = d1.child_pids()
        assert {"anvil", "node"} <= set(pids1)
        leftovers |= recorded(data / "run")
        d1.kill()
        time.sleep(1)
        assert procs.alive(pids1["anvil"]) and procs.alive(pids1["node"])

        # 2. same data dir, same ports: the leftovers are stopped first, the chain resumes
        d2 = start()
        out = d2.output()
        for name in ("anvil", "node"):
            assert f"terminated leftover {name} (pid {pids1[name]})" in out, out[-3000:]
        assert not wait_gone(list(pids1.values()), 5)
        assert "(resumed;" in d2.banner and d2.rollup == d1.rollup
        height2, code2 = l1_state(d2.l1, d2.rollup)
        assert height2 >= height1 and code2 == code1
        assert l2_head(d2.api) >= head1  # the node's LevelDB resumed too

        # 3. kill -9 again, death signal on: every child goes by itself, only stale files stay
        pids2 = d2.child_pids()
        leftovers |= recorded(data / "run")
        d2.kill()
        assert not wait_gone(list(pids2.values()), 20), "children outlived their supervisor"

        # 4. and the next run only cleans up the files, comes up, and stops cleanly
        d3 = start()
        assert "terminated leftover" not in d3.output()
        assert f"removed stale pid file anvil.pid (pid {pids2['anvil']} no longer runs)" in d3.output()
        height3, code3 = l1_state(d3.l1, d3.rollup)
        assert height3 >= height2 and code3 == code1
        # a second supervisor on a data dir in use is refused, and leaves the running one alone
        second = subprocess.run([sys.executable, "-m", "sequencer.cli", "devnet", "--data-dir", str(data),
                                 "--port", "0", "--l1-port", "0"], capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "another devnet runs" in second.stderr, second.stderr
        assert all(procs.alive(pid) for pid in d3.child_pids().values())
        assert httpx.get(f"{d3.api}/v1/health", timeout=5).status_code == 200
        assert d3.stop() == 0, d3.output()[-3000:]
        assert not list((data / "run").glob("*.pid"))
    finally:
        leftovers |= recorded(data / "run")
        for d in runs:
            d.stop(timeout=20)
        for pid, argv in leftovers.items():  # still running what we recorded: ours
            if procs.alive(pid) and procs.is_ours(pid, argv):
                kill_quietly(pid)
