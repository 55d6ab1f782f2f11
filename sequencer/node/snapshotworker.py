"""Snapshots by a worker process that keeps its own replica of the node's `Core` (the default).

Forking the node for a snapshot stalls the loop for the fork and for the copy-on-write faults
that follow it (30-45 ms at 1M orders, benchmarks/README.md). The worker never forks the node:
it is a separate interpreter (`sequencer.node.snapshotworker.main`, started with vfork/exec by
subprocess, which copies no page tables) that

1. loads the snapshot the node started from (or genesis) and the log records after it, which
   the node streams from its database;
2. applies every record the node logs, the exact bytes of `encode_record` that went to the
   group committer, with the node's own code (`CoreApplier._apply(replay=True)`, no DB);
3. on "snapshot at S" (sent right after seal record S, so the replica is then exactly at S):
   takes the node's pending-withdrawal index as of S (the one part of `Core` that depends on
   when writes became durable), compares a fingerprint of its core with the node's (head hash,
   clock, order and index sizes; a mismatch is a divergence: the worker stops), encodes with
   `encode_core` in a thread at nice +`nice` (Linux nice is per thread: applying runs at the
   node's priority so that it keeps up, encoding yields), puts the bytes in a memfd (Linux; elsewhere a file in
   DATA_DIR/snapshot-worker) and answers its path (/proc/PID/fd/N) and inode.

The node's side (`WorkerSnapshotter`): the node appends each record's bytes to a deque (its
whole per-record cost); a feeder thread sends them in batches through the worker's stdin; a
reader thread per worker reads its answers, opens the blob (checking its inode), waits until
record S is durable, reads it (one read without the GIL) and stores it as snapshot file S, then
prunes, exactly as the forked writer did. It keeps the newest stored blob open as the base a
restarted worker loads, so a restart costs the node no snapshot read (memory: that blob, and
the worker's last two).

Faults never stall the node: a worker that dies (EOF), is not ready after `start_seconds`,
stops sending heartbeats or progress (`stall_seconds`), or encodes for longer than
`encode_seconds` is killed and restarted from the newest snapshot and the log (`optrollup_snapshot_worker_restarts_total{reason}`); a request
outstanding at a crash is asked again at its place in the replayed log. After `max_failures`
faults in a row without a snapshot written, or if the worker falls more than `max_lag` records
behind, the node gives up on it for this run and forks (or encodes inline) instead
(`optrollup_snapshot_worker_fallback` = 1). Requests queue; a worker that is behind takes only
the newest one it has been sent ("superseded"). Costs: a second copy of the core in memory, and
the CPU to apply every record twice (measured in benchmarks/README.md).

The snapshot is stored as a file beside the LevelDB (`sequencer.store.snapshots`), written in
fdatasynced 1 MiB chunks, so the log's group commits never queue behind it.

Wire format, msgpack (use_bin_type). Node to worker: [INIT, parent pid, pickled NodeConfig,
base seq (-1: genesis), base path | nil, tmp dir, nice of the encoding thread], then
[RECORDS, first seq, [record bytes..]] and [SNAPSHOT, seq, [[digest, [withdraw fields]]..], fingerprint]. Worker to
node: [READY, base seq], [PROGRESS, applied seq, seq being encoded | -1] every 0.5 s,
[DONE, seq, path, size, inode], [SKIPPED, seq, newer seq], [FAILED, seq, reason] (then it exits).
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack
import plyvel

from sequencer.node.snapshotter import SnapshotMetrics, Snapshotter, store_snapshot
from sequencer.procs import arm_death_signal
from sequencer.store.snapshots import SnapshotFiles, SnapshotUnusable
from sequencer.store.log import InputLog

if TYPE_CHECKING:
    from sequencer.node.config import NodeConfig
    from sequencer.node.node import Core

log = logging.getLogger("optrollup.node")

INIT, RECORDS, SNAPSHOT = 0, 1, 2                   # node -> worker
READY, PROGRESS, DONE, SKIPPED, FAILED = 0, 1, 2, 3, 4  # worker -> node
BATCH = 4096          # records per RECORDS message
_F_SETPIPE_SZ = 1031  # Linux fcntl: pipe capacity


def core_check(core: Core) -> list[Any]:
    """A cheap fingerprint of a core (O(instruments)): equal on the node and a replica that
    applied the same records, or the replica diverged."""
    eng, st = core.engine, core.engine.state
    return [core.head.hash(), eng.now, len(eng.open), len(st.orders), len(eng.seen),
            len(eng.expiring), len(eng.txs), len(st.accounts), st.message_cursor,
            sum(core.book_seq.values()), len(core.trades), core.l1_block,
            len(eng.mmp.configs), len(eng.mmp.windows), len(eng.mmp.frozen),
            len(st.auctions), st.shortfall, len(st.liquidate_nonces)]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view[:1 << 22])  # the GIL is released while it blocks
        view = view[n:]


# OPTROLLUP_SNAPSHOT_BLOBS=files: pass snapshots as files even where memfds exist (tests)
_MEMFD = (sys.platform.startswith("linux") and hasattr(os, "memfd_create")
          and os.environ.get("OPTROLLUP_SNAPSHOT_BLOBS") != "files")


def _blob(data: bytes, name: str, tmp_dir: Path) -> tuple[int, str, bool]:
    """`data` where another process can read it: (an fd to keep open while it may, the path it
    opens, whether that is a memfd). Linux: an anonymous memfd, read as /proc/PID/fd/N (no
    disk I/O beside the log's fsyncs); elsewhere a file in `tmp_dir`. The copy runs without
    the GIL."""
    if _MEMFD:
        fd = os.memfd_create(name, os.MFD_CLOEXEC)
        path = f"/proc/{os.getpid()}/fd/{fd}"
    else:
        path = str(tmp_dir / name)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, data)
    except BaseException:
        os.close(fd)
        raise
    return fd, path, _MEMFD


def _pread_all(fd: int, size: int) -> bytes:
    """`size` bytes from offset 0; one read without the GIL (no join, no copy under it)."""
    data = os.pread(fd, size, 0)
    if len(data) != size:
        rest = [data]
        while (got := sum(map(len, rest))) < size:
            chunk = os.pread(fd, size - got, got)
            if not chunk:
                raise OSError(f"snapshot blob: {got} of {size} bytes")
            rest.append(chunk)
        data = b"".join(rest)
    return data


# -- the node's side -------------------------------------------------------------------------------

@dataclass
class _Request:
    durable: Future[int]
    pending: list[Any]
    check: list[Any]


@dataclass
class _Worker:
    """One worker process and what the node knows of it."""

    proc: subprocess.Popen
    base: int
    started: float
    stdin: int
    stdout: int
    reader: threading.Thread | None = None
    fault: str | None = None
    ready: bool = False
    applied: int = -2
    sent_upto: int = -1          # the last record seq written to it
    sent_request: int = -1       # the newest snapshot request written to it
    last_msg: float = 0.0
    last_progress: float = 0.0
    encoding: int = -1
    encode_start: float = 0.0


class WorkerSnapshotter:
    """Snapshots from a worker process's replica (module docstring). The node calls `feed`
    with every logged record's bytes (in log order, from `start_seq`) and `take` right after a
    seal record's `feed`; `wait`, `close`, `busy`, `written` as `Snapshotter`."""

    def __init__(self, files: SnapshotFiles, db: plyvel.DB, log_: InputLog, cfg: NodeConfig, *,
                 keep: int,
                 base: tuple[int, bytes] | None, start_seq: int, fallback: Snapshotter,
                 metrics: SnapshotMetrics, tmp_dir: Path, nice: int = 10,  # of encoding
                 stall_seconds: float = 30.0, encode_seconds: float = 600.0,
                 start_seconds: float = 300.0,
                 max_failures: int = 3, max_lag: int | None = None,
                 argv: list[str] | None = None) -> None:
        self.files, self.db, self._log, self.cfg, self.keep = files, db, log_, cfg, keep
        self.fallback, self.metrics, self.tmp_dir, self.nice = fallback, metrics, Path(tmp_dir), nice
        self.stall_seconds, self.encode_seconds = stall_seconds, encode_seconds
        self.start_seconds = start_seconds  # to load its base and say READY
        self.max_failures = max_failures
        self.max_lag = max_lag if max_lag is not None else max(200_000, 4 * cfg.snapshot_every_records)
        self.argv = argv or [sys.executable, "-c", ("import sys; from sequencer.node.snapshotworker "
                                                    "import main; sys.exit(main())")]
        self._q: deque[bytes | int] = deque()
        self.feed = self._q.append  # the node's per-record cost: one deque append
        self._next = start_seq      # seq of the next record in the deque (feeder thread)
        self._good = base[0] if base is not None else -1  # the newest snapshot known to decode
        self._boot = base           # the bytes recovery decoded, until put in a base blob
        # the newest stored snapshot, kept readable for a worker to start from: (seq, fd, path)
        self._base: tuple[int, int, str] | None = None
        self._cond = threading.Condition()
        self._requests: dict[int, _Request] = {}
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._worker: _Worker | None = None
        self._readers: list[threading.Thread] = []
        self._failures = 0
        self.gave_up: str | None = None
        self.requested: list[int] = []
        self.written: list[int] = []
        self.store_times: list[tuple[int, float, float]] = []  # (seq, perf_counter of the put)
        self.restarts: list[str] = []  # reasons, in order (tests, logs)
        self._thread = threading.Thread(target=self._run, name="snapshot-feeder", daemon=True)
        self._thread.start()

    # -- the loop thread's calls ------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.gave_up is not None and self.fallback.busy

    def take(self, seq: int, encode: Any, durable: Future[int], core: Core | None = None) -> bool:
        """Ask for snapshot `seq` (the seal record just fed). Never blocks; queued requests are
        served in order, a worker that is behind takes only the newest."""
        if self.gave_up is not None:
            return self.fallback.take(seq, encode, durable)
        assert core is not None
        req = _Request(durable, [(d, list(w)) for d, w in core.pending_withdrawals.items()],
                       core_check(core))
        with self._cond:
            self._requests[seq] = req
        self.requested.append(seq)
        self._q.append(seq)  # after the seal record's bytes: the worker is at `seq` when it reads it
        self._wake.set()
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Block until every requested snapshot is written or abandoned (or `timeout`)."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._requests and not self._closing.is_set():
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(0.05 if left is None else min(left, 0.05))
        self.fallback.wait(timeout)

    def close(self) -> None:
        """Stop the worker and the threads; after this nothing touches the database."""
        self._closing.set()
        self._wake.set()
        w = self._worker
        if w is not None:
            self._kill(w)
        self._thread.join(30)
        for t in list(self._readers):
            t.join(30)
        w = self._worker
        if w is not None:
            try:
                w.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.fallback.close()
        self._drop_base()
        with self._cond:
            self._cond.notify_all()

    @property
    def worker_pid(self) -> int | None:
        w = self._worker
        return None if w is None else w.proc.pid

    def worker_ready(self, timeout: float = 60.0) -> bool:
        """Wait until a worker has loaded its base and applied every record sent so far."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            w = self._worker
            if (w is not None and w.ready and w.fault is None and not self._q
                    and w.applied >= self._next - 1):
                return True
            time.sleep(0.01)
        return False

    # -- the feeder thread ------------------------------------------------------------------------

    def _run(self) -> None:
        backoff_until = 0.0
        while not self._closing.is_set():
            self._wake.wait(0.005)
            self._wake.clear()
            if self.gave_up is not None:
                self._q.clear()
                if self._worker is not None:
                    self._reap(self._worker)
                if self._requests:  # one that raced with giving up
                    with self._cond:
                        for s in list(self._requests):
                            self._resolve(s, "abandoned")
                continue
            w = self._worker
            if w is not None and (w.fault is not None or w.proc.poll() is not None):
                self._reap(w)
                if self.gave_up is not None:
                    continue
                backoff_until = time.monotonic() + min(30.0, 0.25 * 2 ** self._failures)
                w = None
            if w is None:
                self._skip()
                if self._boot is None and not self._requests and not self.written:
                    continue  # started on the first request (or at once after a snapshot load)
                if time.monotonic() < backoff_until:
                    continue
                try:
                    self._start()
                except Exception as exc:
                    if self._closing.is_set():
                        return
                    log.exception("snapshot worker could not start")
                    w = self._worker
                    if w is not None:  # counted when reaped
                        self._fault(w, "failed", repr(exc))
                    else:
                        self._failed_start(f"start: {exc!r}")
                        backoff_until = time.monotonic() + min(30.0, 0.25 * 2 ** self._failures)
                continue
            try:
                self._pump(w)
            except OSError as exc:  # EPIPE: it died; the reader sees EOF too
                self._fault(w, "crashed", f"write: {exc}")
            lag = w.sent_upto - w.applied if w.ready else 0
            self.metrics.worker_lag.set(max(0, lag))
            if lag + len(self._q) > self.max_lag:
                self._give_up(f"the worker is {lag + len(self._q)} records behind")
        w = self._worker
        if w is not None:
            self._kill(w)

    def _skip(self) -> None:
        """No worker running: let the deque go (a worker that starts reads these records back
        from the log), so nothing piles up in memory meanwhile."""
        q = self._q
        while q:
            if type(q.popleft()) is bytes:
                self._next += 1

    def _failed_start(self, reason: str) -> None:
        self._failures += 1
        self.restarts.append("failed")
        self.metrics.worker_restarts.labels("failed").inc()
        if self._failures >= self.max_failures:
            self._give_up(f"{self._failures} faults in a row, the last: {reason}")

    def _start(self) -> None:
        """Spawn a worker on the newest base, replay the log to where the deque starts, and ask
        again for the newest request outstanding in that range."""
        if not _MEMFD:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            for p in self.tmp_dir.glob("snap-*"):
                p.unlink(missing_ok=True)
        base, path = self._base_path()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                close_fds=True, env=env, bufsize=0)  # vfork: no page-table copy
        now = time.monotonic()
        w = _Worker(proc, base, now, proc.stdin.fileno(), proc.stdout.fileno(),  # type: ignore[union-attr]
                    last_msg=now, last_progress=now)
        try:
            import fcntl
            fcntl.fcntl(w.stdin, _F_SETPIPE_SZ, 1 << 20)
        except (ImportError, OSError):
            pass
        self._worker = w
        if self._closing.is_set():
            self._kill(w)
            return
        w.reader = threading.Thread(target=self._read, args=(w,), name="snapshot-worker-reader",
                                    daemon=True)
        self._readers = [t for t in self._readers if t.is_alive()] + [w.reader]
        w.reader.start()
        log.info("snapshot worker %d started from %s", proc.pid,
                 f"snapshot {base}" if base >= 0 else "genesis")
        _write_all(w.stdin, msgpack.packb(
            [INIT, os.getpid(), pickle.dumps(self.cfg), base, path, str(self.tmp_dir), self.nice],
            use_bin_type=True))
        self._catch_up(w, base)

    def _base_path(self) -> tuple[int, str | None]:
        """(seq, path) of the snapshot a new worker starts from; (-1, None) for genesis."""
        if self._boot is not None:  # what recovery loaded
            seq, data = self._boot
            self._boot = None
            fd, path, _ = _blob(data, f"base-{seq}", self.tmp_dir)
            self._set_base(seq, fd, path)
        if self._base is None and self._good >= 0:  # not expected: from the database
            try:
                data: bytes | None = self.files.read(self._good)
            except SnapshotUnusable:
                data = None
            if data is not None:
                fd, path, _ = _blob(data, f"base-{self._good}", self.tmp_dir)
                self._set_base(self._good, fd, path)
        if self._base is None:
            return -1, None
        return self._base[0], self._base[2]

    def _set_base(self, seq: int, fd: int, path: str) -> None:
        old, self._base = self._base, (seq, fd, path)
        if old is not None:
            os.close(old[1])
            if not old[2].startswith("/proc/"):
                Path(old[2]).unlink(missing_ok=True)

    def _drop_base(self) -> None:
        if self._base is not None:
            os.close(self._base[1])
            self._base = None

    def _catch_up(self, w: _Worker, base: int) -> None:
        end = self._next - 1  # the records before the deque's first
        with self._cond:
            for s in [s for s in self._requests if s <= base]:  # older than the base: superseded
                self._resolve(s, "superseded")
            again = max((s for s in self._requests if s <= end), default=None)
            for s in [s for s in self._requests if again is not None and s < again]:
                self._resolve(s, "superseded")  # the worker takes only the newest
        if end <= base:
            return
        deadline = time.monotonic() + 120
        while self._log.next_seq <= end:  # submitted before the deque started: durable soon
            if self._closing.is_set() or time.monotonic() > deadline:
                raise OSError(f"log record {end} did not become durable")
            time.sleep(0.005)
        batch: list[bytes] = []
        first = base + 1
        for seq, raw in self._log.read(base + 1):
            if seq > end or self._closing.is_set() or w.fault is not None:
                break
            batch.append(raw)
            if len(batch) >= BATCH or seq == again or seq == end:
                _write_all(w.stdin, msgpack.packb([RECORDS, first, batch], use_bin_type=True))
                w.sent_upto = seq
                first, batch = seq + 1, []
                if seq == again:
                    self._send_request(w, seq)
        if w.sent_upto < end and w.fault is None and not self._closing.is_set():
            raise OSError(f"log ends at {w.sent_upto}, expected {end}")

    def _send_request(self, w: _Worker, seq: int) -> None:
        with self._cond:
            req = self._requests.get(seq)
        if req is None or seq <= w.sent_request:
            return
        _write_all(w.stdin, msgpack.packb([SNAPSHOT, seq, req.pending, req.check], use_bin_type=True))
        w.sent_request = seq

    def _pump(self, w: _Worker) -> None:
        """Send what the node fed since the last call: records in batches, requests in place."""
        q = self._q
        batch: list[bytes] = []
        out: list[bytes | int] = []
        first = self._next
        while q and len(out) < 64:
            item = q.popleft()
            if type(item) is bytes:
                batch.append(item)
                self._next += 1
                if len(batch) >= BATCH:
                    out.append(msgpack.packb([RECORDS, first, batch], use_bin_type=True))
                    first, batch = self._next, []
                continue
            if batch:
                out.append(msgpack.packb([RECORDS, first, batch], use_bin_type=True))
                first, batch = self._next, []
            if item != self._next - 1:
                log.error("snapshot request %d out of place (after record %d): dropped",
                          item, self._next - 1)
                continue
            out.append(item)
        if batch:
            out.append(msgpack.packb([RECORDS, first, batch], use_bin_type=True))
        chunks: list[bytes] = []
        for m in out:
            if type(m) is int:
                with self._cond:
                    req = self._requests.get(m)
                if req is not None and m > w.sent_request:
                    chunks.append(msgpack.packb([SNAPSHOT, m, req.pending, req.check],
                                                use_bin_type=True))
                    w.sent_request = m
            else:
                chunks.append(m)
        if chunks:
            _write_all(w.stdin, b"".join(chunks))
        w.sent_upto = self._next - 1

    # -- faults -----------------------------------------------------------------------------------

    def _kill(self, w: _Worker) -> None:
        try:
            w.proc.kill()
        except OSError:
            pass

    def _fault(self, w: _Worker, reason: str, detail: str) -> None:
        if w.fault is None:
            w.fault = reason
            if not self._closing.is_set():
                log.error("snapshot worker %d: %s (%s); restarting it", w.proc.pid, reason, detail)
        self._kill(w)
        self._wake.set()

    def _reap(self, w: _Worker) -> None:
        """The feeder thread's clean-up of a dead worker; counts the fault."""
        self._kill(w)
        try:
            w.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        if w.reader is not None:
            w.reader.join(30)
        for f in (w.proc.stdin, w.proc.stdout):
            try:
                f.close()  # type: ignore[union-attr]
            except OSError:
                pass
        self._worker = None
        if self._closing.is_set() or self.gave_up is not None:
            return
        reason = w.fault or "crashed"
        if w.fault is None:
            log.error("snapshot worker %d exited (status %s); restarting it", w.proc.pid,
                      w.proc.returncode)
        self.restarts.append(reason)
        self.metrics.worker_restarts.labels(reason).inc()
        self._failures += 1
        if self._failures >= self.max_failures:
            self._give_up(f"{self._failures} faults in a row, the last: {reason}")

    def _give_up(self, why: str) -> None:
        """Fork (or encode inline) from now on; the requests in flight are abandoned."""
        if self.gave_up is not None:
            return
        self.gave_up = why
        log.error("giving up on the snapshot worker (%s); snapshots are %s from now on", why,
                  "encoded inline" if self.fallback.inline else "taken by forking")
        self.metrics.worker_fallback.set(1)
        self._q.clear()
        w = self._worker
        if w is not None:
            self._fault(w, "backlog", why)
        with self._cond:
            for s in list(self._requests):
                self._resolve(s, "abandoned")

    def _resolve(self, seq: int, outcome: str) -> None:
        """Caller holds `_cond`."""
        if self._requests.pop(seq, None) is not None:
            self.metrics.outcome("worker", outcome)
            self._cond.notify_all()

    # -- a reader thread per worker ---------------------------------------------------------------

    def _read(self, w: _Worker) -> None:
        unpacker = msgpack.Unpacker(raw=False)
        try:
            while True:
                r, _, _ = select.select([w.stdout], [], [], 0.25)
                if r:
                    chunk = os.read(w.stdout, 1 << 16)
                    if not chunk:
                        if w.fault is None and not self._closing.is_set():
                            self._fault(w, "crashed", f"exit status {w.proc.wait()}")
                        return
                    unpacker.feed(chunk)
                    for msg in unpacker:
                        self._on_message(w, msg)
                if self._closing.is_set():
                    return
                self._watch(w)
        except Exception as exc:
            log.exception("snapshot worker reader")
            self._fault(w, "failed", repr(exc))
        finally:
            self._wake.set()

    def _watch(self, w: _Worker) -> None:
        now = time.monotonic()
        if w.fault is not None:
            return
        if not w.ready:
            if now - w.started > self.start_seconds:
                self._fault(w, "stuck", f"not ready after {now - w.started:.1f} s")
        elif now - w.last_msg > self.stall_seconds:
            self._fault(w, "stuck", f"silent for {now - w.last_msg:.1f} s")
        elif w.encoding >= 0 and now - w.encode_start > self.encode_seconds:
            self._fault(w, "stuck", f"encoding snapshot {w.encoding} for {now - w.encode_start:.0f} s")
        elif (w.ready and w.encoding < 0 and w.sent_upto > w.applied
              and now - w.last_progress > self.stall_seconds):
            self._fault(w, "stuck", f"no progress past record {w.applied} for "
                        f"{now - w.last_progress:.1f} s")

    def _on_message(self, w: _Worker, msg: list[Any]) -> None:
        now = time.monotonic()
        w.last_msg = now
        kind = msg[0]
        if kind == READY:
            w.ready, w.applied, w.last_progress = True, msg[1], now
        elif kind == PROGRESS:
            applied, encoding = msg[1], msg[2]
            if applied != w.applied:
                w.applied, w.last_progress = applied, now
            if encoding != w.encoding:
                w.encoding, w.encode_start, w.last_progress = encoding, now, now
        elif kind == DONE:
            _, seq, path, size, ino = msg
            w.encoding, w.last_progress = -1, now
            self._store(seq, path, size, ino)
        elif kind == SKIPPED:
            with self._cond:
                self._resolve(msg[1], "superseded")
        elif kind == FAILED:
            reason = "diverged" if str(msg[2]).startswith("diverged") else "failed"
            log.error("snapshot worker %d: snapshot %d failed: %s", w.proc.pid, msg[1], msg[2])
            self._fault(w, reason, str(msg[2]))

    def _store(self, seq: int, path: str, size: int, ino: int) -> None:
        """Write snapshot `seq` from the worker's blob once record `seq` is durable; keep the
        blob open as the base a restarted worker loads."""
        with self._cond:
            req = self._requests.get(seq)
        outcome = "abandoned"
        fd = -1
        try:
            if req is None:
                return
            outcome = "failed"
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))  # ours now
            if os.fstat(fd).st_ino != ino:  # the worker's fd number went to another file
                raise OSError(f"{path} is not the blob of snapshot {seq}")
            outcome = "abandoned"
            while not req.durable.done():  # the seal record is not durable yet
                if self._closing.wait(0.01):
                    return
            if req.durable.exception() is not None or self._closing.is_set():
                return
            outcome = "failed"
            data = _pread_all(fd, size)
            t0, t1 = store_snapshot(self.files, self.db, seq, data, self.keep)
            self.store_times.append((seq, t0, t1))
            self.written.append(seq)
            outcome = "written"
            self._good, self._failures = seq, 0
            if _MEMFD:
                self._set_base(seq, fd, f"/proc/{os.getpid()}/fd/{fd}")
            else:
                kept = str(self.tmp_dir / f"base-{seq}")
                os.replace(path, kept)
                self._set_base(seq, fd, kept)
            fd = -1
        except Exception:
            log.exception("snapshot %d not written", seq)
        finally:
            if fd >= 0:
                os.close(fd)
            if outcome != "written" and not path.startswith("/proc/"):
                Path(path).unlink(missing_ok=True)
            with self._cond:
                if outcome == "written":
                    for s in [s for s in self._requests if s < seq]:
                        self._resolve(s, "superseded")
                self._resolve(seq, outcome)


# -- the worker process ----------------------------------------------------------------------------

class _Inbox:
    """What the worker's reader thread has read, in order; `newest_request` for coalescing."""

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.cond = threading.Condition()
        self.newest_request = -1
        self.eof = False

    def reader(self, fd: int, unpacker: msgpack.Unpacker) -> None:
        while True:
            chunk = os.read(fd, 1 << 20)
            with self.cond:
                if not chunk:
                    self.eof = True
                    self.cond.notify()
                    return
                unpacker.feed(chunk)
                for msg in unpacker:
                    if msg[0] == SNAPSHOT:
                        self.newest_request = max(self.newest_request, msg[1])
                    self.items.append(msg)
                self.cond.notify()

    def get(self) -> Any:
        with self.cond:
            while not self.items:
                if self.eof:
                    return None
                self.cond.wait()
            return self.items.popleft()


def main() -> int:
    out = os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the answers
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s snapshot-worker %(message)s")
    send_lock = threading.Lock()

    def send(*msg: Any) -> None:
        data = msgpack.packb(list(msg), use_bin_type=True)
        with send_lock:
            _write_all(out, data)

    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 31)
    while True:  # the INIT message
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return 0
        unpacker.feed(chunk)
        init = next(unpacker, None)
        if init is not None:
            break
    _, parent, cfg_blob, base, base_path, tmp_dir, nice = init
    arm_death_signal(parent, signal.SIGKILL)  # besides the EOF on stdin it also sees
    if os.getppid() != parent:  # the node is gone and this platform has no prctl
        os._exit(0)
    inbox = _Inbox()
    for msg in unpacker:  # anything read past INIT
        if msg[0] == SNAPSHOT:
            inbox.newest_request = max(inbox.newest_request, msg[1])
        inbox.items.append(msg)
    threading.Thread(target=inbox.reader, args=(0, unpacker), daemon=True).start()
    state = {"applied": -2, "encoding": -1}

    def heartbeat() -> None:
        while True:
            time.sleep(0.5)
            send(PROGRESS, state["applied"], state["encoding"])

    threading.Thread(target=heartbeat, daemon=True).start()

    import gc

    from sequencer.core.eip712 import Withdraw
    from sequencer.gctune import tune_gc
    from sequencer.node.node import CoreApplier, genesis_core
    from sequencer.node.records import decode_record
    from sequencer.node.snapshot import decode_core, encode_core

    cfg = pickle.loads(cfg_blob)
    gc.disable()
    try:
        if base_path is None:
            core = genesis_core(cfg)[0]
        else:
            fd = os.open(base_path, os.O_RDONLY)
            try:
                core = decode_core(_pread_all(fd, os.fstat(fd).st_size), cfg)
            finally:
                os.close(fd)
    except Exception as exc:  # noqa: BLE001 - tell the node, then stop
        send(FAILED, base, f"cannot load base snapshot {base}: {exc!r}")
        return 4
    tune_gc()
    replica = CoreApplier()
    replica.core, replica.domain = core, cfg.genesis.config.domain
    applied = base
    state["applied"] = applied
    send(READY, base)
    tmp = Path(tmp_dir)

    def lower_priority() -> None:  # Linux nice is per thread: only encoding yields to the node
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + nice)
        except (OSError, AttributeError):
            pass

    def encode(seq: int) -> tuple[int, str, int]:
        data = encode_core(core, cfg)
        fd, path, _ = _blob(data, f"snap-{seq}", tmp)
        return fd, path, len(data)

    from concurrent.futures import ThreadPoolExecutor
    encoder = ThreadPoolExecutor(1, initializer=lower_priority)
    kept: list[int] = []  # the newest blobs stay open until the node has opened them
    while True:
        msg = inbox.get()
        if msg is None:
            return 0  # the node closed the pipe
        kind = msg[0]
        if kind == RECORDS:
            first, raws = msg[1], msg[2]
            if first != applied + 1:
                send(FAILED, first, f"gap: got record {first} after {applied}")
                return 3
            try:
                for raw in raws:
                    replica._apply(decode_record(raw), replay=True)
                    applied += 1
            except Exception as exc:  # noqa: BLE001 - the node applied it: we diverged
                send(FAILED, applied + 1, f"diverged: record {applied + 1} raised {exc!r}")
                return 3
            state["applied"] = applied
        elif kind == SNAPSHOT:
            seq, pending, check = msg[1], msg[2], msg[3]
            if seq != applied:
                send(FAILED, seq, f"diverged: asked for snapshot {seq} at record {applied}")
                return 3
            if inbox.newest_request > seq:  # behind: only the newest is worth encoding
                send(SKIPPED, seq, inbox.newest_request)
                continue
            core.pending_withdrawals = {d: Withdraw(*w) for d, w in pending}
            mine = core_check(core)
            if mine != check:
                send(FAILED, seq, f"diverged at record {seq}: {mine} != {check}")
                return 3
            state["encoding"] = seq
            try:  # the apply loop waits: the core must not change meanwhile
                fd, path, size = encoder.submit(encode, seq).result()
            except Exception as exc:  # noqa: BLE001
                send(FAILED, seq, f"encoding snapshot {seq}: {exc!r}")
                return 3
            kept.append(fd)
            while len(kept) > 2:
                os.close(kept.pop(0))
            state["encoding"] = -1
            send(DONE, seq, path, size, os.fstat(fd).st_ino)


if __name__ == "__main__":
    sys.exit(main())
