"""Child processes that do not outlive their supervisor, even when it is killed hard.

Two layers:
- `popen(..., die_with_parent=True)`: on Linux the child asks the kernel (prctl
  PR_SET_PDEATHSIG) for SIGTERM when the *thread* that forked it dies, so fork from the main
  thread or a thread that lives as long as the child. No-op elsewhere, or with
  OPTROLLUP_NO_PDEATHSIG=1 (tests use it to simulate a platform without prctl).
- pid files (`popen(..., pid_file=P)`, JSON `{"pid", "argv"}`): `reap_pid_files(DIR)` at the
  next start stops every recorded process that still runs *and* still runs the recorded argv
  (a recycled pid running something else is left alone), and removes stale files.

`DirLock` keeps two supervisors off one data dir (flock, released by the kernel on any death).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

_PR_SET_PDEATHSIG = 1
_prctl: Any = None
if sys.platform.startswith("linux"):
    try:  # resolved here, never in the forked child
        _prctl = ctypes.CDLL(None, use_errno=True).prctl
        _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        _prctl.restype = ctypes.c_int
    except (OSError, AttributeError):
        _prctl = None


def cpu_list(text: str) -> set[int]:
    """CPUs from "0", "0,2" or "0-3,6"; ValueError naming what is wrong, or a CPU this process
    may not run on (os.sched_getaffinity)."""
    cpus: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"CPU list {text!r}: {part!r} is not a CPU number or a range like 0-3")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a:
            raise ValueError(f"CPU list {text!r}: range {part!r} runs backwards")
        cpus.update(range(a, b + 1))
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else cpus
    if not cpus <= allowed:
        raise ValueError(f"CPU list {text!r}: CPU(s) {sorted(cpus - allowed)} are not available "
                         f"(this process may run on {sorted(allowed)})")
    return cpus


def parent_map() -> dict[int, int]:
    """pid -> parent pid of every live process (Linux /proc; empty elsewhere)."""
    out: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for d in names:
        if d.isdigit():
            try:
                out[int(d)] = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    return out


def descendants(root: int, parents: dict[int, int] | None = None) -> set[int]:
    """`root` and every process below it, from `parents` (pid -> ppid; default: `parent_map()`)."""
    kids: dict[int, list[int]] = {}
    for pid, ppid in (parent_map() if parents is None else parents).items():
        kids.setdefault(ppid, []).append(pid)
    tree, todo = {root}, [root]
    while todo:
        for child in kids.get(todo.pop(), ()):
            if child not in tree:
                tree.add(child)
                todo.append(child)
    return tree


def pdeathsig_supported() -> bool:
    return _prctl is not None and os.environ.get("OPTROLLUP_NO_PDEATHSIG") != "1"


def arm_death_signal(parent: int, sig: int) -> None:
    """Have the kernel send `sig` to this process when its parent dies (Linux; elsewhere
    nothing), and take `sig` now if `parent` already died before it took effect. For a child
    that arms itself after exec (one started without a `preexec_fn`, e.g. so that subprocess
    can vfork a large parent), and for the `preexec_fn` of `popen`."""
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), sig)


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """A `preexec_fn` that arms PR_SET_PDEATHSIG, or None where unsupported."""
    if not pdeathsig_supported():
        return None
    parent = os.getpid()
    return lambda: arm_death_signal(parent, sig)  # between fork and exec: minimal


def write_pid_file(path: Path, pid: int, argv: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": pid, "argv": list(argv)}))
    os.replace(tmp, path)


def remove_pid_file(path: Path, pid: int) -> None:
    """Remove `path` if it still names `pid` (a newer child may have replaced it)."""
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def lower_thread_priority(increment: int) -> int:
    """Raise the calling thread's nice value by `increment` (Linux nice is per thread; the
    process's other threads keep theirs); returns the new value. A no-op returning 0 where
    threads have no nice value of their own."""
    if sys.platform != "linux":
        return 0
    tid = threading.get_native_id()
    nice = min(19, os.getpriority(os.PRIO_PROCESS, tid) + increment)
    os.setpriority(os.PRIO_PROCESS, tid, nice)
    return nice


def popen(argv: Sequence[str], *, pid_file: Path | None = None, die_with_parent: bool = True,
          death_signal: int = signal.SIGTERM, nice: int = 0, **kwargs: Any) -> subprocess.Popen:
    """`subprocess.Popen(argv, **kwargs)` that dies with this process and records its pid;
    `nice` > 0 runs it at that much lower priority (a background job)."""
    argv = [str(a) for a in argv]
    if die_with_parent and "preexec_fn" not in kwargs:
        kwargs["preexec_fn"] = _die_with_parent(death_signal)
    if nice:
        then = kwargs.get("preexec_fn")

        def preexec() -> None:  # between fork and exec: minimal
            os.nice(nice)
            if then is not None:
                then()
        kwargs["preexec_fn"] = preexec
    proc = subprocess.Popen(argv, **kwargs)
    if pid_file is not None:
        write_pid_file(pid_file, proc.pid, argv)
    return proc


def stop_child(proc: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 15.0,
               pid_file: Path | None = None) -> int | None:
    """Signal our child `proc` (if running), wait `timeout`, SIGKILL; drop its pid file."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
    if pid_file is not None and proc.returncode is not None:
        remove_pid_file(pid_file, proc.pid)
    return proc.returncode


# -- another process, by pid (not our child: no waitpid) -------------------------------------

def cmdline(pid: int) -> list[str] | None:
    """argv of a live process (None if gone, a zombie, or unreadable)."""
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").exists():
        try:
            raw = (proc / "cmdline").read_bytes()
        except OSError:
            return None
        return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]] or None
    try:  # no procfs (macOS, BSD): ps, joined by spaces
        out = subprocess.run(["ps", "-ww", "-o", "command=", "-p", str(pid)], check=False,
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return [out] if out else None


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] not in "ZX"
    except (OSError, ValueError, IndexError):
        return True


def is_ours(pid: int, argv: Sequence[str]) -> bool:
    """`pid` runs exactly `argv` (not a recycled pid running something else)."""
    cmd = cmdline(pid)
    if cmd is None:
        return False
    if len(cmd) == 1 and len(argv) > 1:  # ps output: one string
        return cmd[0] == " ".join(argv)
    return cmd == list(argv)


def terminate_pid(pid: int, timeout: float = 10.0) -> str:
    """SIGTERM, wait `timeout`, SIGKILL; returns how it ended ("terminated" or "killed")."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return "terminated"
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive(pid):
                return "terminated" if sig == signal.SIGTERM else "killed"
            time.sleep(0.05)
    raise OSError(f"pid {pid} survived SIGKILL")


def reap_pid_files(directory: Path, order: Sequence[str] = (), timeout: float = 10.0) -> list[str]:
    """Stop leftovers recorded in DIR/*.pid (names in `order` first), remove the files; one
    message per file."""
    files = sorted(directory.glob("*.pid"), key=lambda p: (
        order.index(p.stem) if p.stem in order else len(order), p.name))
    out = []
    for path in files:
        name = path.stem
        try:
            rec = json.loads(path.read_text())
            pid, argv = int(rec["pid"]), [str(a) for a in rec["argv"]]
        except (OSError, ValueError, KeyError, TypeError):
            msg = f"removed unreadable pid file {path.name}"
        else:
            if not alive(pid):
                msg = f"removed stale pid file {path.name} (pid {pid} no longer runs)"
            elif not is_ours(pid, argv):
                msg = f"removed stale pid file {path.name} (pid {pid} now runs another program; left alone)"
            else:
                how = terminate_pid(pid, timeout)
                msg = f"{how} leftover {name} (pid {pid}) from a previous run"
        path.unlink(missing_ok=True)
        out.append(msg)
    return out


class DirLock:
    """An exclusive flock on `path` held for this process's life (no-op without fcntl)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def acquire(self) -> DirLock:
        try:
            import fcntl
        except ImportError:  # Windows: no lock
            return self
        fh = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise RuntimeError(f"{self.path} is locked by a running process (pid {holder})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the flock
            self._fh = None
