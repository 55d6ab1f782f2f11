"""The snapshot worker (sequencer.node.snapshotworker): a separate process with its own replica
of the node's core, fed every logged record. Its snapshots must be byte for byte what the node
would encode of its own core at the seal record; a worker that crashes, stops or never answers
must neither stall nor kill the node; requests queue and coalesce; restart loads the newest
snapshot that decodes."""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest

from sequencer.core import MAX_COLLATERAL
from sequencer.core.eip712 import Cancel, CancelAll, Withdraw
from sequencer.node.l1follower import DEPOSIT, FORCED_WITHDRAWAL, SeenMessage
from sequencer.node.node import CoreApplier, Node, genesis_core
from sequencer.node.records import decode_record
from sequencer.node.snapshot import encode_core
from sequencer.node.snapshotter import Snapshotter, snapshot_mode
from sequencer.node.snapshotworker import WorkerSnapshotter
from tests.sequencer.node.kit import CALL, PUT, USERS, Kit, node_config
from tests.sequencer.node.snapshot_compare import assert_cores_equal

U = 10**6
TRADERS = USERS[:5]


@pytest.fixture(autouse=True)
def worker_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTROLLUP_SNAPSHOT_MODE", "worker")


def kit(path: Path) -> Kit:
    """Snapshots only when a test asks (`snap`); blocks sealed by `seal` or by the 1 s tick."""
    return Kit(path, snapshot_every_records=10**9)


def metric(node: Node, name: str, **labels: str) -> float:
    v = node.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if v is None else v


def stored(node: Node, seq: int) -> bytes | None:
    files = node.snapshot_files
    return files.read(seq) if seq in files.seqs() else None


def snap(k: Kit) -> tuple[int, bytes]:
    """Seal with a snapshot due; (seal record, the node's own encoding of its core right then)."""
    node = k.node
    node._since_snapshot = node.cfg.snapshot_every_records
    k.clock.t += 1
    fut = node.seal()
    want = encode_core(node.core, k.cfg)  # nothing else ran since the seal record
    seq = fut.result(timeout=10)
    if isinstance(node.snapshotter, WorkerSnapshotter) and node.snapshotter.gave_up is None:
        assert node.snapshotter.requested[-1] == seq
    return seq, want


class Flow:
    """A varied, seeded flow on a Kit: deposits (credited and refunded), feeds, resting and
    crossing orders (fills), cancels, cancel-alls, signed and forced withdrawals, seals."""

    def __init__(self, k: Kit, seed: int) -> None:
        self.k, self.rng, self.nonce = k, random.Random(seed), 1000 * seed
        self.wnonce = {u.address: 0 for u in TRADERS}
        for u in TRADERS:
            k.fund(u, 200_000 * U)
        k.feeds()

    def l1(self, kind: int, account: bytes, other: bytes, amount: int) -> None:
        k = self.k
        n = k.node.core.engine.state.message_cursor
        f = k.node.process_l1_message(SeenMessage(n, kind, account, other, amount, 3))
        assert f is not None
        f.result(timeout=10)
        k.deposits = n + 1

    def step(self) -> None:
        k, rng = self.k, self.rng
        eng = k.node.core.engine
        u = rng.choice(TRADERS)
        r = rng.random()
        self.nonce += 1
        if r < 0.40:  # resting or crossing orders around 100
            buy = rng.random() < 0.5
            price = (rng.randint(95, 105)) * U
            k.place(u, instrument=rng.choice([CALL, CALL, PUT]), is_buy=buy, price=price,
                    amount=rng.randint(1, 4) * 10_000, nonce=self.nonce,
                    expiry=int(k.clock()) + rng.randint(30, 3600), tif=rng.choice([0, 0, 1]))
        elif r < 0.52:
            mine = [d for d, o in eng.open.items() if o.order.account == u.address]
            if mine:
                c = Cancel(u.address, rng.choice(mine))
                k.run([(c, k.sign(u, c))])
        elif r < 0.56:
            c = CancelAll(u.address, rng.choice(["", CALL]), int(k.clock()))
            k.run([(c, k.sign(u, c))])
        elif r < 0.64:
            w = Withdraw(u.address, USERS[20].address, rng.randint(1, 50) * U, self.wnonce[u.address])
            got = k.run([(w, k.sign(u, w))])[0]
            if not isinstance(got, Exception):
                self.wnonce[u.address] += 1
        elif r < 0.70:
            self.l1(DEPOSIT, u.address, USERS[21].address, rng.randint(1, 1000) * U)
        elif r < 0.72:  # would overflow the account: refunded
            self.l1(DEPOSIT, USERS[22].address, USERS[21].address, MAX_COLLATERAL)
        elif r < 0.78:
            self.l1(FORCED_WITHDRAWAL, u.address, USERS[23].address, rng.randint(1, 30) * U)
        elif r < 0.90:
            k.clock.t += 1
            k.node.seal().result(timeout=10)
            if rng.random() < 0.3:
                k.feeds()
        else:
            k.clock.t += 1  # the next request's tick seals


def expect_snapshot(k: Kit, seq: int, want: bytes, timeout: float = 60) -> None:
    k.node.snapshotter.wait(timeout)
    got = stored(k.node, seq)
    assert got is not None, f"snapshot {seq} not written (written: {k.node.snapshotter.written})"
    assert got == want, f"snapshot {seq}: {len(got)} bytes differ from the node's own {len(want)}"


def test_snapshots_equal_the_nodes_own_encoding_and_restart_from_them(tmp_path: Path) -> None:
    k = kit(tmp_path)
    f = Flow(k, 1)
    for _ in range(60):
        f.step()
    ws = k.node.snapshotter
    time.sleep(0.05)
    # no worker until the first request, and nothing held for it meanwhile (read back from the log)
    assert ws.worker_pid is None and len(ws._q) == 0 and ws._next == k.node.log.next_seq
    seqs = []
    for round_ in range(4):
        for _ in range(60):
            f.step()
        # a withdrawal sealed by the snapshot's own seal: still pending in the node's index
        u = TRADERS[round_]
        w = Withdraw(u.address, u.address, U, f.wnonce[u.address])
        assert not isinstance(k.run([(w, k.sign(u, w))])[0], Exception)
        f.wnonce[u.address] += 1
        seq, want = snap(k)
        assert k.node.core.pending_withdrawals  # part of what is compared
        expect_snapshot(k, seq, want)
        seqs.append(seq)
    assert ws.written == seqs and ws.restarts == [] and ws.gave_up is None
    assert metric(k.node, "optrollup_snapshots_total", writer="worker", outcome="written") == 4
    assert ws._base is not None and ws._base[0] == seqs[-1]
    # restart: the newest snapshot and the log after it give the live core; the new worker
    # starts from that snapshot and keeps producing exact snapshots
    for _ in range(30):
        f.step()
    live = k.node.core
    want_seal = k.node.store.head()
    node = k.reopen()
    assert_cores_equal(live, node.core, ignore=("pending_withdrawals",))
    assert node.store.head() == want_seal
    assert node.snapshotter.worker_ready(60)
    for _ in range(40):
        f.step()
    seq, want = snap(k)
    expect_snapshot(k, seq, want)
    k.node.close()


def test_snapshots_passed_as_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where there is no memfd: blobs are files in DATA_DIR/snapshot-worker."""
    import sequencer.node.snapshotworker as sw
    monkeypatch.setenv("OPTROLLUP_SNAPSHOT_BLOBS", "files")  # the worker process
    monkeypatch.setattr(sw, "_MEMFD", False)                  # this one
    k = kit(tmp_path)
    f = Flow(k, 9)
    for _ in range(2):
        for _ in range(40):
            f.step()
        seq, want = snap(k)
        expect_snapshot(k, seq, want)
    os.kill(k.node.snapshotter.worker_pid, signal.SIGKILL)  # restarts from the base file
    for _ in range(30):
        f.step()
    seq, want = snap(k)
    expect_snapshot(k, seq, want)
    assert k.node.snapshotter.restarts == ["crashed"]
    assert sorted(p.name for p in (tmp_path / "snapshot-worker").iterdir()) == [f"base-{seq}"]
    k.node.close()


def test_replica_applies_the_log_to_the_nodes_core(tmp_path: Path) -> None:
    """The DB-free apply path alone: the log replayed into a bare CoreApplier from genesis is
    the node's core (pending withdrawals aside: they follow durability, not the log)."""
    k = kit(tmp_path)
    f = Flow(k, 2)
    for _ in range(150):
        f.step()
    replica = CoreApplier()
    replica.core, replica.domain = genesis_core(k.cfg)[0], k.node.domain
    for _, raw in k.node.log.read(0):
        replica._apply(decode_record(raw), replay=True)
    assert_cores_equal(k.node.core, replica.core, ignore=("pending_withdrawals",))
    k.node.close()


def test_worker_killed_mid_stream_is_restarted_and_snapshots_stay_exact(tmp_path: Path) -> None:
    k = kit(tmp_path)
    f = Flow(k, 3)
    for _ in range(40):
        f.step()
    seq, want = snap(k)
    expect_snapshot(k, seq, want)
    ws = k.node.snapshotter
    pid = ws.worker_pid
    os.kill(pid, signal.SIGKILL)  # mid-stream: records keep coming
    for _ in range(80):
        t = time.perf_counter()
        f.step()
        assert time.perf_counter() - t < 1.0  # the node never waits for its worker
    seq, want = snap(k)
    expect_snapshot(k, seq, want)
    assert ws.restarts == ["crashed"] and ws.worker_pid not in (None, pid)
    assert metric(k.node, "optrollup_snapshot_worker_restarts_total", reason="crashed") == 1
    # killed while a request is outstanding: the new worker is asked again at its place
    os.kill(ws.worker_pid, signal.SIGSTOP)
    for _ in range(20):
        f.step()
    seq, want = snap(k)
    for _ in range(20):
        f.step()
    os.kill(ws.worker_pid, signal.SIGKILL)
    expect_snapshot(k, seq, want)
    assert ws.restarts == ["crashed", "crashed"] and ws.gave_up is None
    k.node.close()


def test_stuck_worker_is_killed_and_replaced(tmp_path: Path) -> None:
    k = kit(tmp_path)
    f = Flow(k, 4)
    for _ in range(30):
        f.step()
    seq, want = snap(k)
    expect_snapshot(k, seq, want)
    ws = k.node.snapshotter
    ws.stall_seconds = 1.0
    os.kill(ws.worker_pid, signal.SIGSTOP)  # alive, silent: no heartbeat, no progress
    seq, want = snap(k)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.5:  # the node serves on meanwhile
        t = time.perf_counter()
        f.step()
        assert time.perf_counter() - t < 1.0
    expect_snapshot(k, seq, want)
    assert ws.restarts == ["stuck"]
    assert metric(k.node, "optrollup_snapshot_worker_restarts_total", reason="stuck") == 1
    k.node.close()


def test_a_worker_that_never_answers_falls_back_to_forking(tmp_path: Path) -> None:
    k = kit(tmp_path)
    f = Flow(k, 5)
    ws = k.node.snapshotter
    assert isinstance(ws, WorkerSnapshotter) and ws.worker_pid is None  # started on the first request
    ws.argv = [sys.executable, "-c", "import sys; sys.stdin.buffer.read()"]  # reads, never answers
    ws.start_seconds, ws.max_failures = 0.5, 2
    for _ in range(20):
        f.step()
    seq, _ = snap(k)
    t0 = time.monotonic()
    while ws.gave_up is None and time.monotonic() - t0 < 30:
        t = time.perf_counter()
        f.step()
        assert time.perf_counter() - t < 1.0
    assert ws.gave_up is not None and ws.restarts == ["stuck", "stuck"]
    ws.wait(10)
    assert stored(k.node, seq) is None and ws.written == []  # abandoned
    assert metric(k.node, "optrollup_snapshot_worker_fallback") == 1
    assert metric(k.node, "optrollup_snapshots_total", writer="worker", outcome="abandoned") == 1
    # from now on the forked writer takes them, exactly as before
    for _ in range(10):
        f.step()
    seq, want = snap(k)
    expect_snapshot(k, seq, want)
    assert ws.fallback.written == [seq]
    assert metric(k.node, "optrollup_snapshots_total", writer="fork", outcome="written") == 1
    k.node.close()


def test_requests_queue_and_a_worker_behind_takes_the_newest(tmp_path: Path) -> None:
    k = kit(tmp_path)
    f = Flow(k, 6)
    for _ in range(30):
        f.step()
    seq, want = snap(k)
    expect_snapshot(k, seq, want)
    ws = k.node.snapshotter
    os.kill(ws.worker_pid, signal.SIGSTOP)
    asked = []
    for _ in range(3):  # none skipped by the node: all three are queued
        for _ in range(15):
            f.step()
        asked.append(snap(k))
    os.kill(ws.worker_pid, signal.SIGCONT)
    (s3, want3) = asked[-1]
    expect_snapshot(k, s3, want3)
    assert ws.requested[-3:] == [s for s, _ in asked]
    assert ws.written == [seq, s3] and ws.restarts == []
    assert metric(k.node, "optrollup_snapshots_total", writer="worker", outcome="superseded") == 2
    k.node.close()


def test_close_stops_the_worker(tmp_path: Path) -> None:
    k = kit(tmp_path)
    f = Flow(k, 7)
    for _ in range(10):
        f.step()
    seq, want = snap(k)
    expect_snapshot(k, seq, want)
    pid = k.node.snapshotter.worker_pid
    k.node.close()
    with pytest.raises(ProcessLookupError):  # gone and reaped
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)


def test_restart_loads_the_newest_snapshot_that_decodes(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import sequencer.node.node as node_mod
    k = kit(tmp_path)
    f = Flow(k, 8)
    older = []
    for _ in range(2):
        for _ in range(30):
            f.step()
        older.append(snap(k)[0])
        k.node.snapshotter.wait(60)
    for _ in range(20):
        f.step()
    files = k.node.snapshot_files
    assert files.seqs() == older
    files.write(older[1], b"\x92\x01\x02")  # the newest: a sound file that does not decode
    live = k.node.core
    calls: list[int] = []
    real = node_mod.decode_core
    monkeypatch.setattr(node_mod, "decode_core", lambda data, cfg: calls.append(len(data)) or real(data, cfg))
    node = k.reopen()
    assert len(calls) == 2 and node._base is None
    assert_cores_equal(live, node.core, ignore=("pending_withdrawals",))
    node.close()


def test_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert snapshot_mode() == "worker"
    monkeypatch.setenv("OPTROLLUP_SNAPSHOT_MODE", "fork")
    assert snapshot_mode() == "fork" and snapshot_mode("inline") == "inline"
    monkeypatch.delenv("OPTROLLUP_SNAPSHOT_MODE")
    monkeypatch.setenv("OPTROLLUP_SNAPSHOT_INLINE", "1")
    assert snapshot_mode() == "inline"
    with pytest.raises(ValueError):
        snapshot_mode("thread")
    for mode, kind, inline in (("fork", Snapshotter, False), ("inline", Snapshotter, True)):
        node = Node(tmp_path / mode, node_config(snapshot_every_records=10**9), snapshots=mode)
        assert type(node.snapshotter) is kind and node.snapshotter.inline is inline
        assert node._stream is None
        node.close()
