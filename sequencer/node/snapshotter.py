"""Snapshots written off the event loop: the forked and inline writers, the mode switch, metrics.

By default the node takes snapshots with a worker process that never forks the node
(`sequencer.node.snapshotworker`, OPTROLLUP_SNAPSHOT_MODE=worker); this module's `Snapshotter`
is the writer of OPTROLLUP_SNAPSHOT_MODE=fork and =inline, and the worker's fallback.

Encoding a node with a million orders takes seconds of CPU under the GIL; done on the loop (or in
a thread, which holds the GIL through msgpack's C packer) it would stall intake for that long.
Instead, like Redis' BGSAVE, the loop forks: the child holds a copy-on-write image of `Core` as
it was right after the seal record, encodes it (`sequencer.node.snapshot.encode_core`) and
streams the bytes back through a pipe; a thread of the parent reads them, waits until the seal
record itself is durable, and only then writes the snapshot file (`SnapshotFiles`, so a
snapshot never runs ahead of the log), then prunes older ones.

The fork itself (page tables) and the copy-on-write faults of the pages the parent writes
next stall the loop: 30-45 ms per snapshot at 1M orders, with or without glibc malloc on
transparent huge pages (benchmarks/README.md, "Snapshots"). Where fork is unavailable, with
OPTROLLUP_SNAPSHOT_MODE=inline or OPTROLLUP_SNAPSHOT_INLINE=1, the snapshot is encoded inline.
At most one snapshot is in flight; a due one is skipped while another runs (the next seal
takes it).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import plyvel
from prometheus_client import CollectorRegistry, Counter, Gauge

from sequencer.store.snapshots import SnapshotFiles, drop_legacy_snapshots

log = logging.getLogger("optrollup.node")

MODES = ("worker", "fork", "inline")


def snapshot_mode(explicit: str | None = None) -> str:
    """worker | fork | inline: `explicit`, else OPTROLLUP_SNAPSHOT_MODE, else inline if
    OPTROLLUP_SNAPSHOT_INLINE=1, else worker. fork becomes inline where fork is unavailable."""
    mode = explicit or os.environ.get("OPTROLLUP_SNAPSHOT_MODE") or (
        "inline" if os.environ.get("OPTROLLUP_SNAPSHOT_INLINE") == "1" else "worker")
    if mode not in MODES:
        raise ValueError(f"snapshot mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "fork" and not hasattr(os, "fork"):
        mode = "inline"
    return mode


class SnapshotMetrics:
    """The node's snapshot counters (registered on the node's registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.snapshots = Counter("optrollup_snapshots_total",
                                 "Snapshots by writer (worker, fork, inline) and outcome (written, "
                                 "failed, abandoned, superseded)", ["writer", "outcome"], registry=r)
        self.worker_restarts = Counter("optrollup_snapshot_worker_restarts_total",
                                       "Snapshot worker (re)starts after a fault, by reason "
                                       "(crashed, stuck, diverged, failed, backlog)", ["reason"],
                                       registry=r)
        self.worker_fallback = Gauge("optrollup_snapshot_worker_fallback",
                                     "1 once the node gave up on the snapshot worker and forks "
                                     "(or encodes inline) instead", registry=r)
        self.worker_lag = Gauge("optrollup_snapshot_worker_lag_records",
                                "Records the snapshot worker has been sent but not applied yet",
                                registry=r)

    def outcome(self, writer: str, outcome: str) -> None:
        self.snapshots.labels(writer, outcome).inc()


def store_snapshot(files: SnapshotFiles, db: plyvel.DB | None, seq: int, data: bytes | memoryview,
                   keep: int) -> tuple[float, float]:
    """Write snapshot `seq`, keep the newest `keep`, drop any left in the LevelDB by earlier
    versions (`db`); (perf_counter before, after) the write."""
    t0 = time.perf_counter()
    files.write(seq, data)
    t1 = time.perf_counter()
    files.prune(keep)
    if db is not None:
        drop_legacy_snapshots(db)
    return t0, t1


class Snapshotter:
    """Writes `encode()` (a pure function of the core at call time) as snapshot `seq` once the
    record `seq` is durable (`durable` resolves), keeping the newest `keep` snapshots in `files`
    (and deleting the legacy ones in `db`)."""

    def __init__(self, files: SnapshotFiles, db: plyvel.DB | None = None, *, keep: int = 2,
                 inline: bool | None = None, metrics: SnapshotMetrics | None = None) -> None:
        self.files, self.db, self.keep = files, db, keep
        if inline is None:
            inline = snapshot_mode() == "inline" or not hasattr(os, "fork")
        self.inline = inline
        self.metrics = metrics
        self._busy: threading.Thread | None = None
        self._closing = threading.Event()
        self._child: int | None = None
        self.written: list[int] = []  # seqs written by this process (for tests and metrics)
        self.store_times: list[tuple[int, float, float]] = []  # (seq, perf_counter of the write)

    @property
    def busy(self) -> bool:
        return self._busy is not None and self._busy.is_alive()

    def take(self, seq: int, encode: Callable[[], bytes], durable: Future[int],
             core: object = None) -> bool:
        """Start snapshot `seq`; False (nothing done) if one is still being written. (`core` is
        for the worker's interface; this writer has `encode`.)"""
        if self.busy:
            return False
        if self.inline:
            data = encode()
            self._start(seq, lambda: data, durable)
            return True
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: encode the copy-on-write image, stream it out, exit hard
            code = 1
            try:
                os.close(r)
                os.nice(19)  # the loop's core and the log writer come first
                data = memoryview(encode())
                while data:
                    n = os.write(w, data[:1 << 20])
                    data = data[n:]
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        self._child = pid
        self._start(seq, lambda: self._read_child(pid, r), durable)
        return True

    def _start(self, seq: int, produce: Callable[[], bytes | None], durable: Future[int]) -> None:
        t = threading.Thread(target=self._write, args=(seq, produce, durable),
                             name=f"snapshot-{seq}", daemon=True)
        self._busy = t
        t.start()

    def _read_child(self, pid: int, fd: int) -> bytes | None:
        chunks = []
        try:
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
            _, status = os.waitpid(pid, 0)
            self._child = None
        if os.waitstatus_to_exitcode(status) != 0:
            log.error("snapshot child exited with status %d; no snapshot this time", status)
            return None
        return b"".join(chunks)

    def _write(self, seq: int, produce: Callable[[], bytes | None], durable: Future[int]) -> None:
        outcome = "failed"
        try:
            data = produce()
            if data is None:
                return
            outcome = "abandoned"
            while not durable.done():  # the seal record is not durable yet
                if self._closing.wait(0.01):
                    return
            if durable.exception() is not None or self._closing.is_set():
                return  # the record never became durable, or the node is closing
            outcome = "failed"
            t0, t1 = store_snapshot(self.files, self.db, seq, data, self.keep)
            self.store_times.append((seq, t0, t1))
            self.written.append(seq)
            outcome = "written"
        except Exception:
            log.exception("snapshot %d not written", seq)
        finally:
            if self.metrics is not None:
                self.metrics.outcome("inline" if self.inline else "fork", outcome)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the snapshot in flight (if any) is written or abandoned."""
        t = self._busy
        if t is not None:
            t.join(timeout)

    def close(self) -> None:
        """Abandon a snapshot in flight (the child is killed) and wait for the writer thread;
        after this nothing touches the database (close it only then)."""
        self._closing.set()
        pid = self._child
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.wait(30)
