"""What a snapshot costs the requests that arrive while it is taken (issue 10: no request may
wait more than 10 ms while a snapshot of a 1M-order node is taken).

A real Node on LevelDB restarted from a snapshot of a big Core (benchmarks/test_snapshot.py
`big_core`: 300,000 open and 700,000 filled orders by default), as a node runs after a restart:
the snapshot is decoded by the node (and by its snapshot worker), then `tune_gc` as `optrollup
serve` runs. One thread plays the event loop: it sends one small order at a time (processed,
logged, waited for until durable, as an HTTP request would be) and, 0.2 s into the window, seals
a block with a snapshot due; the window lasts 3 s and at least until that snapshot is stored.
Every request's latency is measured from when it could have started, so the seal's own time
counts against the request that waited for it. The three writers run in the same test, one
after the other on the same node: `worker` (the default: a worker process with its own replica,
streamed every record, encodes), then `fork` (a forked child encodes) and `inline` (encode on
the loop). The worker is stopped before the fork window.

    .venv/bin/python -m pytest benchmarks/test_snapshot_stall.py --benchmark-only -q -s -p no:cacheprovider
    # as `optrollup serve` runs (glibc malloc on transparent huge pages):
    PYTHONMALLOC=malloc GLIBC_TUNABLES=glibc.malloc.hugetlb=1 .venv/bin/python -m pytest ...

`none` runs first: the same window and seal with no snapshot due (worker streamed), the noise
floor of this machine (fsync, GC). `during_*` are the requests that started between the seal and
the snapshot being stored; `store_ms` is the time to write the snapshot file (every writer does
it: fdatasynced 1 MiB chunks, `sequencer.store.snapshots`), `overlapping_store_max_ms` the worst
request that overlapped it (its log fsync shares the disk with it) and `during_but_store_*` the
others. `during_loop_*`: the loop's part of those
requests (the seal or `process` call, i.e. what the writer costs the loop itself); the rest of a
request's time is its wait for the log's fsync. Sizes: OPTROLLUP_BENCH_SNAP_OPEN / _FILLED; modes:
OPTROLLUP_BENCH_STALL_MODES (default "none,worker,worker,fork,fork,inline": two windows of
each writer; the worker's first, as the worker is stopped before forking). `cpu_pressure` (PSI,
avg10) flags a machine busy with other work. Figures are reported, never asserted.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from benchmarks.test_snapshot import big_core
from cext import Order, order_digests
from sequencer.gctune import tune_gc
from sequencer.node.node import Node
from sequencer.node.snapshot import encode_core
from sequencer.node.snapshotter import Snapshotter
from sequencer.node.snapshotworker import WorkerSnapshotter
from sequencer.store import SnapshotFiles

WINDOW = 3.0  # seconds of requests per mode, at least


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):
    core, cfg = big_core(env_int("OPTROLLUP_BENCH_SNAP_OPEN", 300_000),
                         env_int("OPTROLLUP_BENCH_SNAP_FILLED", 700_000))
    path = tmp_path_factory.mktemp("stall")
    now = core.engine.now
    first = Node(path, cfg, clock=lambda: float(now), snapshots="inline")  # one record: seal 0
    first.seal(now).result()
    first.close()
    SnapshotFiles(path / "snapshots").write(0, encode_core(core, cfg))  # as if taken at record 0
    del core
    n = Node(path, cfg, clock=lambda: float(n.core.engine.now))  # loads it; the worker too
    tune_gc()  # as `optrollup serve` runs: the recovered state is long-lived
    assert isinstance(n.snapshotter, WorkerSnapshotter), "set OPTROLLUP_SNAPSHOT_MODE=worker (or unset)"
    assert n.snapshotter.worker_ready(300), "the snapshot worker did not load the snapshot"
    yield n
    n.close()


def cpu_pressure() -> float | None:
    """Linux PSI: % of the last 10 s some runnable task waited for a CPU (None: no PSI). This
    benchmark alone keeps ~2 threads busy on 2 cores; well above ~30 means other work ran."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return float(line.split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def requests(node: Node, n: int, nonce0: int) -> list[tuple[Order, bytes, bytes, bytes]]:
    """Small resting bids far from the touch, pre-digested; signers supplied pre-recovered."""
    eng = node.core.engine
    acct = next(iter(eng.by_account))
    name = next(iter(eng.books))
    orders = [Order(acct, name, True, 100_000, 10_000, nonce0 + i, eng.now + 3600, 0, False, False)
              for i in range(n)]
    ds = order_digests(node.domain, orders)
    return [(o, b"\x01" * 65, d, acct) for o, d in zip(orders, ds)]


def run_window(node: Node, nonce0: int, due: bool = True) -> dict[str, float]:
    """One window; `due=False`: the same seal with no snapshot (the noise floor: fsyncs, GC)."""
    snap = node.snapshotter
    snap.wait()
    time.sleep(0.5)
    before = len(snap.written)
    reqs = requests(node, 60_000, nonce0)
    lat: list[float] = []
    during: list[tuple[float, float, float]] = []  # (start, processed, durable) of the requests
    # started between the seal and the store
    seal_ms = stored_s = -1.0
    start = time.perf_counter()
    sealed = False
    i = 0
    while i < len(reqs):
        t0 = time.perf_counter()
        if sealed and stored_s < 0 and (not due or len(snap.written) > before):
            stored_s = t0 - start - 0.2
        if t0 - start > 60 or (t0 - start > WINDOW and stored_s >= 0):
            break
        if not sealed and t0 - start > 0.2:
            if due:
                node._since_snapshot = node.cfg.snapshot_every_records
            node.seal(node.core.engine.now + 1)
            seal_ms = (time.perf_counter() - t0) * 1e3
            sealed = True
        o, sig, d, signer = reqs[i]
        [(value, fut)] = node.process([(o, sig)], [d], [signer])
        tp = time.perf_counter()
        assert fut is not None, value
        fut.result(timeout=60)
        t1 = time.perf_counter()
        lat.append((t1 - t0) * 1e3)
        if sealed and stored_s < 0:
            during.append((t0, tp, t1))
        i += 1
    elapsed = time.perf_counter() - start
    snap.wait()
    lat.sort()
    # the snapshot file's write: requests overlapping it share the disk with it
    _, p0, p1 = snap.store_times[-1] if due and snap.store_times else (0, 0.0, 0.0)
    put = sorted((b - a) * 1e3 for a, _, b in during if b >= p0 and a <= p1)
    rest = sorted((b - a) * 1e3 for a, _, b in during if not (b >= p0 and a <= p1))
    during_ms = sorted((b - a) * 1e3 for a, _, b in during)
    loop_ms = sorted((p - a) * 1e3 for a, p, _ in during)  # the loop's part: seal/process
    return {"requests": len(lat), "req_per_s": round(len(lat) / elapsed),
            "seal_ms": round(seal_ms, 2), "max_ms": round(lat[-1], 2),
            "p99_ms": round(lat[int(len(lat) * 0.99)], 3), "p999_ms": round(lat[int(len(lat) * 0.999)], 3),
            "p50_ms": round(lat[len(lat) // 2], 3), "over_10ms": sum(1 for x in lat if x > 10),
            "snapshot_stored_s": round(stored_s, 2) if due else None,
            "during_n": len(during_ms), "during_max_ms": round(during_ms[-1], 2) if during_ms else None,
            "during_p99_ms": round(during_ms[int(len(during_ms) * 0.99)], 3) if during_ms else None,
            "store_ms": round((p1 - p0) * 1e3, 1) if due else None,
            "during_but_store_max_ms": round(rest[-1], 2) if rest else None,
            "during_but_store_over_10ms": sum(1 for x in rest if x > 10),
            "overlapping_store_max_ms": round(put[-1], 2) if put else None,
            "during_loop_max_ms": round(loop_ms[-1], 2) if loop_ms else None,
            "during_loop_over_10ms": sum(1 for x in loop_ms if x > 10),
            "snapshots": len(snap.written) - before}


@pytest.mark.benchmark(group="snapshot-stall")
def test_requests_during_a_snapshot(benchmark, node: Node) -> None:
    modes = os.environ.get("OPTROLLUP_BENCH_STALL_MODES",
                           "none,worker,worker,fork,fork,inline").split(",")
    out: dict[str, dict[str, float]] = {}
    worker = node.snapshotter

    def run() -> None:
        for k, mode in enumerate(modes):
            if mode in ("worker", "none"):  # none: the worker streamed, no snapshot taken
                node.snapshotter, node._stream = worker, worker.feed
                assert worker.worker_ready(300)
            else:
                if worker.worker_pid is not None:  # no replica beside the forked writer
                    worker.close()
                node.snapshotter = Snapshotter(node.snapshot_files, node.db, keep=2,
                                               inline=mode == "inline")
                node._stream = None
            key = mode if mode not in out else f"{mode}#{sum(m.startswith(mode) for m in out) + 1}"
            out[key] = run_window(node, nonce0=(k + 1) * 10**9, due=mode != "none")
            out[key]["cpu_pressure"] = cpu_pressure()  # other work on this machine
            if mode not in ("worker", "none"):
                node.snapshotter.close()

    benchmark.pedantic(run, rounds=1, iterations=1)
    node.snapshotter = worker  # the fixture closes it
    eng = node.core.engine
    size = {"open": len(eng.open), "filled": len(eng.state.orders)}
    malloc = os.environ.get("PYTHONMALLOC", "pymalloc") + (
        "+thp" if "hugetlb=1" in os.environ.get("GLIBC_TUNABLES", "") else "")
    for mode, figs in out.items():
        benchmark.extra_info[mode] = figs
        print(f"\n[snapshot stall {mode}, {malloc}] {size} "
              + ", ".join(f"{k}={v}" for k, v in figs.items()))
    if "worker" in out:
        print(f"[snapshot worker] restarts={worker.restarts} gave_up={worker.gave_up}")


# -- what streaming every record to the worker costs the loop ------------------------------------

@pytest.mark.benchmark(group="snapshot-stream")
def test_streaming_cost(benchmark, tmp_path: Path) -> None:
    """Two in-process nodes on the same flow (benchmarks/loadgen.py pairs: a resting sell and the
    IOC buy that fills it, 1,000 funded accounts, signers pre-recovered): `worker` streams every
    record to its worker process, `fork` does not. They take turns, 10,000 orders per `process`
    call, 12 turns each (120,000 orders, a snapshot due every 50,000 records); the figure is the
    loop's orders/s in `process` (apply + log submit + the deque append), median of the turns,
    each turn ended by waiting for its last record to be durable. OPTROLLUP_BENCH_STREAM_SINK=1:
    the worker is a process that only reads what it is sent (the node's own streaming cost,
    without a replica competing for the CPU)."""
    import sys

    from benchmarks.loadgen import make_world, pair_orders
    from sequencer.core import digest
    from tests.e2e.serverkit import ORACLE, U, feed, instrument_names

    chunk, turns = 10_000, env_int("OPTROLLUP_BENCH_STREAM_TURNS", 12)
    w = make_world(1000)
    dom = w.cfg.genesis.config.domain
    sig = b"\x01" * 65
    t_start = w.cfg.genesis.timestamp + 10
    _, expiry = instrument_names(t_start)
    nodes = {}
    for mode in ("worker", "fork"):
        clock = [float(t_start)]
        n = Node(tmp_path / mode, w.cfg, clock=lambda c=clock: c[0], snapshots=mode)
        if mode == "worker" and os.environ.get("OPTROLLUP_BENCH_STREAM_SINK") == "1":
            n.snapshotter.argv = [sys.executable, "-c", "import sys\nwhile sys.stdin.buffer.read(1 << 20): pass"]
            n.snapshotter._requests[-1] = None
            n._since_snapshot = -10**9
        for i, k in enumerate(w.keys):
            n.credit_deposit(k.address, 10**12 * U, i, 1)
        f = feed(clock[0], expiry)
        [(_, fut)] = n.process([(f, sig)], [digest(dom, f)], [ORACLE.address])
        fut.result()
        nodes[mode] = (n, clock)
    orders = pair_orders(w, chunk * turns)
    ds = order_digests(dom, orders)
    rates: dict[str, list[float]] = {"worker": [], "fork": []}

    def run() -> None:
        for t in range(turns):
            part = slice(t * chunk, (t + 1) * chunk)
            for mode in (("worker", "fork") if t % 2 == 0 else ("fork", "worker")):
                n, clock = nodes[mode]
                clock[0] += 1
                items = [(o, sig) for o in orders[part]]
                t0 = time.perf_counter()
                done = n.process(items, ds[part], [o.account for o in orders[part]])
                dt = time.perf_counter() - t0
                assert all(fut is not None for _, fut in done), done[0]
                done[-1][1].result()
                rates[mode].append(chunk / dt)

    try:
        benchmark.pedantic(run, rounds=1, iterations=1)
        ws = nodes["worker"][0].snapshotter
        ws.wait(120)
        figs = {m: round(sorted(r)[len(r) // 2]) for m, r in rates.items()}
        figs["worker_cost_pct"] = round(100 * (1 - figs["worker"] / figs["fork"]), 1)
        figs["worker_snapshots"] = ws.written
        figs["fork_snapshots"] = nodes["fork"][0].snapshotter.written
        benchmark.extra_info.update(figs)
        print("\n[snapshot streaming cost] " + ", ".join(f"{k}={v}" for k, v in figs.items())
              + f"; turns worker={[round(x) for x in rates['worker']]} fork={[round(x) for x in rates['fork']]}")
    finally:
        for n, _ in nodes.values():
            n.close()
