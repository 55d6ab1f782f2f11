"""Input log and group commit on a real LevelDB, including SIGKILL of a writing process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sequencer.store import DataDirLocked, GroupCommitter, InputLog, StoreError, open_db
from sequencer.store.log import GROUP_RECORDS, PREFIX, pack_group, unpack_group


def test_write_read_reopen(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    log = InputLog(db)
    assert log.next_seq == 0
    log.write(0, [b"a", b"b"])
    log.write(2, [b"c"])
    assert list(log.read()) == [(0, b"a"), (1, b"b"), (2, b"c")]
    assert list(log.read(2)) == [(2, b"c")]
    with pytest.raises(StoreError, match="gap"):
        log.write(5, [b"x"])
    db.close()
    db = open_db(tmp_path / "db")
    assert InputLog(db).next_seq == 3
    db.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(st.one_of(
           st.lists(st.binary(max_size=12), min_size=1, max_size=5),       # a small batch
           st.integers(1, 2 * GROUP_RECORDS + 3),                         # a big one: several groups
           st.just("legacy")),                                             # a record as old logs kept it
           min_size=1, max_size=8),
       starts=st.lists(st.integers(0, 3 * GROUP_RECORDS), max_size=6))
def test_groups_read_back_as_the_records_written(tmp_path_factory: pytest.TempPathFactory,
                                                 writes: list, starts: list[int]) -> None:
    """Whatever mix of batch sizes (within a group, across group boundaries) and legacy
    one-record values was written, `read(start)` yields exactly the records from `start` on, and
    a reopened log continues at the right seq."""
    path = tmp_path_factory.mktemp("groups") / "db"
    db = open_db(path)
    log, model = InputLog(db), []
    for w in writes:
        if w == "legacy":  # written as logs before groups did: the record itself under its seq
            rec = b"\x92legacy-%d" % len(model)
            db.put(PREFIX + len(model).to_bytes(8, "big"), rec, sync=True)
            log = InputLog(db)
            model.append(rec)
            continue
        recs = w if isinstance(w, list) else [b"r%d" % (len(model) + i) for i in range(w)]
        log.write(len(model), recs)
        model += recs
    assert list(log.read()) == list(enumerate(model))
    for s in starts:
        assert list(log.read(s)) == list(enumerate(model))[s:]
    db.close()
    db = open_db(path)
    assert InputLog(db).next_seq == len(model)
    assert list(InputLog(db).read(len(model) - 1)) == [(len(model) - 1, model[-1])]
    db.close()


def test_one_put_per_group_and_damaged_groups_are_refused(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    log = InputLog(db)
    log.write(0, [b"x"] * (GROUP_RECORDS + 1))
    assert [k for k in db.iterator(prefix=PREFIX, include_value=False)] == [
        PREFIX + (0).to_bytes(8, "big"), PREFIX + GROUP_RECORDS.to_bytes(8, "big")]
    assert unpack_group(pack_group([b"", b"ab", b"\xc1"])) == [b"", b"ab", b"\xc1"]
    with pytest.raises(StoreError, match="group of 2 records"):
        unpack_group(pack_group([b"a", b"bc"])[:-1])
    for cut in (b"\xc1", b"\xc1\0\0\0\3\0\0", pack_group([]), pack_group([b"a", b"b"])[:8]):
        with pytest.raises(StoreError, match="cut short or empty"):
            unpack_group(cut)
    db.close()


def test_second_opener_gets_clear_error(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    with pytest.raises(DataDirLocked, match="in use by another process") as info:
        open_db(tmp_path / "db")
    assert info.value.code == "data_dir_locked"
    db.close()


def test_second_process_gets_clear_error(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    code = f"from sequencer.store import open_db\nopen_db({str(tmp_path / 'db')!r})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "DataDirLocked" in out.stderr and "in use by another process" in out.stderr
    db.close()


def test_group_commit_shares_syncs_and_keeps_order(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    log = InputLog(db)
    syncs: list[int] = []
    durable: list[int] = []

    gc = GroupCommitter(log, on_sync=lambda dt, n: syncs.append(n), on_durable=durable.append)
    lock = threading.Lock()
    futures = []

    def producer(k: int) -> None:
        for i in range(500):
            with lock:  # callers serialise processing; seq order = submit order
                futures.append((f"{k}:{i}".encode(), gc.submit(f"{k}:{i}".encode())))

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [f.result(timeout=30) for _, f in futures]
    gc.close()
    assert seqs == list(range(4000))
    assert sum(syncs) == 4000
    assert gc.syncs == len(syncs) < 4000  # shared fsyncs
    # one on_durable per synced batch, with the batch's last seq
    assert len(durable) == len(syncs) and durable[-1] == 3999
    assert [b - a for a, b in zip([-1, *durable], durable)] == syncs
    stored = dict(log.read())
    assert all(stored[s] == rec for (rec, _), s in zip(futures, seqs))
    db.close()


def test_append_without_futures_and_when_durable(tmp_path: Path) -> None:
    """`append` gives the same seqs as `submit` without a future per record; `when_durable`
    makes one on demand: at once for a seq already synced, else when its batch syncs."""
    db = open_db(tmp_path / "db")
    log = InputLog(db)
    gate = threading.Event()
    real_write = log.write

    def held_write(first: int, records: list[bytes], **kw: object) -> None:
        gate.wait(10)  # the writer holds its batch until the test lets it go
        real_write(first, records, **kw)

    log.write = held_write  # type: ignore[method-assign]  # a slow disk, injected
    durable: list[int] = []
    gc = GroupCommitter(log, on_durable=durable.append)
    seqs = [gc.append(b"a"), gc.submit_seq(b"b")[0], gc.append(b"c", [(b"k", b"v")])]
    assert seqs == [0, 1, 2]
    late = gc.when_durable(2)
    assert not late.done()  # nothing synced yet
    gate.set()
    assert late.result(timeout=10) == 2
    assert durable[-1] == 2 and gc.when_durable(0).result(timeout=0) == 0  # already durable
    gc.close()
    assert dict(log.read()) == {0: b"a", 1: b"b", 2: b"c"} and db.get(b"k") == b"v"
    db.close()


def test_write_failure_fails_when_durable_waiters(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    log = InputLog(db)
    gate = threading.Event()

    def failing(first: int, records: list[bytes], **kw: object) -> None:
        gate.wait(10)
        raise OSError("disk full")  # injected fault

    log.write = failing  # type: ignore[method-assign]
    gc = GroupCommitter(log, on_error=lambda exc: None)
    seq = gc.append(b"x")
    waiting = gc.when_durable(seq)
    gate.set()
    with pytest.raises(StoreError, match="disk full"):
        waiting.result(timeout=10)
    with pytest.raises(StoreError, match="disk full"):  # asked after the failure
        gc.when_durable(seq).result(timeout=0)
    gc.close()
    db.close()


def test_write_failure_fails_every_waiter(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    log = InputLog(db)
    log.write = lambda first, records, **kw: (_ for _ in ()).throw(OSError("disk full"))  # injected fault
    errors: list[BaseException] = []
    gc = GroupCommitter(log, on_error=errors.append, on_durable=lambda last: pytest.fail("durable"))
    fut = gc.submit(b"x")
    with pytest.raises(StoreError, match="disk full"):
        fut.result(timeout=10)
    assert [str(e) for e in errors] == ["disk full"]
    with pytest.raises(StoreError, match="failed earlier"):
        gc.submit(b"y")
    gc.close()
    db.close()


WRITER = textwrap.dedent("""
    import sys
    from sequencer.store import GroupCommitter, InputLog, open_db
    db = open_db(sys.argv[1]); gc = GroupCommitter(InputLog(db))
    i = 0
    while True:
        futs = [gc.submit(b"rec-%d" % (i + k)) for k in range(50)]
        for f in futs:
            print(f.result(), flush=True)   # acknowledged only after it is durable
        i += 50
""")


def test_sigkill_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    path = str(tmp_path / "db")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True)
    acked = []
    deadline = time.monotonic() + 20
    while len(acked) < 3000 and time.monotonic() < deadline:
        acked.append(int(proc.stdout.readline()))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(acked) >= 3000
    db = open_db(path)
    stored = dict(InputLog(db).read())
    # every acknowledged record is there, with its content, and the log has no holes
    assert all(stored[s] == b"rec-%d" % s for s in acked)
    assert sorted(stored) == list(range(len(stored)))
    db.close()


def test_extra_puts_land_atomically_with_the_record(tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    log = InputLog(db)
    gc = GroupCommitter(log)
    assert gc.submit(b"seal", extra=[(b"blk/x", b"block")]).result(timeout=10) == 0
    gc.close()
    assert db.get(b"blk/x") == b"block"
    with pytest.raises(StoreError, match="into the log"):
        log.write(1, [b"r"], extra=[(b"log/evil", b"x")])
    assert log.next_seq == 1 and db.get(b"log/evil") is None
    db.close()


def test_on_queue_reports_how_long_a_batch_waited_behind_the_previous_write(tmp_path: Path) -> None:
    """The oldest record of a batch appended while a 100 ms write is in progress waits for
    that write: on_queue sees >= the rest of it; a batch appended to an idle writer waits ~0."""
    db = open_db(tmp_path / "db")
    log = InputLog(db)
    real_write, started = log.write, threading.Event()

    def slow_write(first_seq: int, records: list[bytes], **kw) -> None:  # noqa: ANN003
        started.set()
        if records[0] == b"slow":
            time.sleep(0.1)
        real_write(first_seq, records, **kw)

    log.write = slow_write  # type: ignore[method-assign]
    queued: list[float] = []
    syncs: list[int] = []
    gc = GroupCommitter(log, on_queue=queued.append, on_sync=lambda dt, n: syncs.append(n))
    try:
        gc.submit(b"idle").result(timeout=10)
        started.clear()
        f1 = gc.submit(b"slow")
        assert started.wait(5)
        t = time.perf_counter()
        f2 = gc.submit(b"behind")
        f1.result(timeout=10)
        f2.result(timeout=10)
        waited = time.perf_counter() - t
    finally:
        gc.close()
        db.close()
    assert len(queued) == len(syncs) == 3
    assert 0 <= queued[0] < 0.05 and 0 <= queued[1] < 0.05
    assert 0.05 <= queued[2] <= waited + 0.01, (queued, waited)
