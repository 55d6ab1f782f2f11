"""What a snapshot costs the requests that arrive while it is taken (issue 10: no request may
wait more than 10 ms while a snapshot of a 1M-order node is taken).

A real Node on LevelDB holds a big Core (benchmarks/test_snapshot.py `big_core`: 300,000 open and
700,000 filled orders by default). One thread plays the event loop: it sends one small order at a
time (processed, logged, waited for until durable, as an HTTP request would be) and, 0.2 s into
the window, seals a block with a snapshot due. Every request's latency is measured from when it
could have started, so the seal's own time counts against the request that waited for it. Both
writers run in the same test: `fork` (Snapshotter default: a forked child encodes) and `inline`
(encode on the loop, as before this change).

    .venv/bin/python -m pytest benchmarks/test_snapshot_stall.py --benchmark-only -q -s -p no:cacheprovider

Sizes: OPTROLLUP_BENCH_SNAP_OPEN / _FILLED. Figures are reported, never asserted.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import pytest

from cext import Order, order_digests
from benchmarks.test_snapshot import big_core
from sequencer.node.node import Node

WINDOW = 3.0  # seconds of requests per mode


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):
    core, cfg = big_core(env_int("OPTROLLUP_BENCH_SNAP_OPEN", 300_000),
                         env_int("OPTROLLUP_BENCH_SNAP_FILLED", 700_000))
    n = Node(tmp_path_factory.mktemp("stall"), cfg, clock=lambda: float(core.engine.now))
    n.core = core  # the node's store holds only genesis: fine, sealing does not read it
    gc.freeze()  # as `optrollup serve` runs (sequencer.gctune): the big state is long-lived
    yield n
    n.close()


def requests(node: Node, n: int, nonce0: int) -> list[tuple[Order, bytes, bytes, bytes]]:
    """Small resting bids far from the touch, pre-digested; signers supplied pre-recovered."""
    eng = node.core.engine
    acct = next(iter(eng.by_account))
    name = next(iter(eng.books))
    orders = [Order(acct, name, True, 100_000, 10_000, nonce0 + i, eng.now + 3600, 0, False, False)
              for i in range(n)]
    ds = order_digests(node.domain, orders)
    return [(o, b"\x01" * 65, d, acct) for o, d in zip(orders, ds)]


def run_window(node: Node, inline: bool, nonce0: int) -> dict[str, float]:
    node.snapshotter.inline = inline
    node.snapshotter.wait()
    reqs = requests(node, 20_000, nonce0)
    lat: list[float] = []
    seal_ms = -1.0
    start = time.perf_counter()
    sealed = False
    i = 0
    while time.perf_counter() - start < WINDOW and i < len(reqs):
        t0 = time.perf_counter()
        if not sealed and t0 - start > 0.2:
            node._since_snapshot = node.cfg.snapshot_every_records  # a snapshot is due
            node.seal(node.core.engine.now + 1)
            seal_ms = (time.perf_counter() - t0) * 1e3
            sealed = True
        o, sig, d, signer = reqs[i]
        [(value, fut)] = node.process([(o, sig)], [d], [signer])
        assert fut is not None, value
        fut.result(timeout=60)
        lat.append((time.perf_counter() - t0) * 1e3)
        i += 1
    node.snapshotter.wait()
    lat.sort()
    return {"requests": len(lat), "seal_ms": round(seal_ms, 2), "max_ms": round(lat[-1], 2),
            "p99_ms": round(lat[int(len(lat) * 0.99)], 3), "p50_ms": round(lat[len(lat) // 2], 3),
            "over_10ms": sum(1 for x in lat if x > 10), "snapshots": len(node.snapshotter.written)}


@pytest.mark.benchmark(group="snapshot-stall")
def test_requests_during_a_snapshot(benchmark, node: Node) -> None:
    out: dict[str, dict[str, float]] = {}

    def both() -> None:
        out["fork"] = run_window(node, inline=False, nonce0=10**9)
        out["inline"] = run_window(node, inline=True, nonce0=2 * 10**9)

    benchmark.pedantic(both, rounds=1, iterations=1)
    eng = node.core.engine
    size = {"open": len(eng.open), "filled": len(eng.state.orders)}
    for mode, figs in out.items():
        benchmark.extra_info[mode] = figs
        print(f"\n[snapshot stall {mode}] {size} " + ", ".join(f"{k}={v}" for k, v in figs.items()))
