"""Liquidation throughput (issue 13): how many accounts one block puts into liquidation, what the
per-block detection costs, and how many liquidation bids the core applies per second.

    .venv/bin/python -m pytest benchmarks/test_liquidation.py --benchmark-only -q -s -p no:cacheprovider

An engine (rules version 2) with OPTROLLUP_BENCH_LIQ_ACCOUNTS (10,000) accounts, each short one
call with collateral that covers maintenance at spot 3,000 but not at 3,300, and one account
long all of them. Timed, in one process, with signatures recovered before the timed part (as the
node does off the core's thread):
- `scan_healthy_ms`: the detection at a block start while every account is healthy (paid by
  every block, which also seals whenever 90 KB of txs accumulate);
- `scan_shock_ms`, `started`: the block after a feed at 3,300: every account starts an auction in
  that one block (status txs, orders cancelled);
- `bids_per_s`: a well-funded liquidator takes each account whole with a signed Liquidate (a
  whole take closes the auction at once: `open_auctions_after`, `positions_left` are 0).
Figures are reported, never asserted.
"""

from __future__ import annotations

import os
import time

import pytest

from cext import keccak256
from sequencer.core import Liquidate, liquidation
from sequencer.core.state import Account, set_position
from tests.sequencer.core.core_world import CALL, T0, USERS, World

U = 10**6
N = int(os.environ.get("OPTROLLUP_BENCH_LIQ_ACCOUNTS", 10_000))
LONG, LIQUIDATOR = USERS[0], USERS[1]


def _collateral_for(w: World, t: int, spot_ok: int, spot_bad: int) -> int:
    """Collateral (base units) of a one-call short that is above maintenance at `spot_ok`
    and below it, but solvent, at `spot_bad` (probing the marks of blocks `t` and `t + 1`)."""
    probe = Account()  # not in the state: only priced
    probe.positions[CALL] = -U

    def needed(spot: int, at: int) -> int:  # collateral that puts equity exactly at MM
        w.engine.begin_block(at)
        w.feed_all(spot, at)
        m = liquidation.margin(w.engine.ctx.marks(w.state), probe)
        return m.mm - m.equity

    ok, bad = needed(spot_ok, t), needed(spot_bad, t + 1)
    assert bad > ok > 0, "the shock must raise the margin call"
    return (ok + bad) // 2  # healthy at spot_ok, under maintenance at spot_bad


@pytest.mark.benchmark(group="liquidation")
def test_liquidation_throughput(benchmark) -> None:
    w = World(funds=10**12 * U)
    collateral = _collateral_for(w, T0 + 1, 3000 * U, 3300 * U)
    t = T0 + 10
    w.engine.begin_block(t)
    w.feed_all(3000 * U, t)
    shorts = [keccak256(b"short %d" % i)[:20] for i in range(N)]
    long_acct = w.state.accounts[LONG.address]
    for i, a in enumerate(shorts):
        w.engine.deposit(a, collateral, w.deposits)
        w.deposits += 1
        set_position(w.state, a, w.state.accounts[a], CALL, -U)
    set_position(w.state, LONG.address, long_acct, CALL, long_acct.positions.get(CALL, 0) + N * U)
    w.engine.end_block()

    figures: dict[str, object] = {"accounts": N, "collateral_per_account": collateral}

    def run() -> None:
        nonlocal t
        t += 1
        t0 = time.perf_counter()
        started = w.engine.begin_block(t)  # healthy: the scan finds nothing
        figures["scan_healthy_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
        assert not [x for x in started if type(x).__name__ == "AuctionStartTx"]
        w.feed_all(3300 * U, t)
        w.engine.end_block()
        t += 1
        t0 = time.perf_counter()
        started = w.engine.begin_block(t)
        figures["scan_shock_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
        figures["started"] = sum(type(x).__name__ == "AuctionStartTx" for x in started)
        figures["takeovers"] = sum(type(x).__name__ == "TakeoverTx" for x in started)
        msgs = [Liquidate(LIQUIDATOR.address, a, 1_000_000, 10**18, 1 + i) for i, a in enumerate(shorts)]
        sigs = [w.sign(LIQUIDATOR, m) for m in msgs]
        w.engine.recover(list(zip(msgs, sigs)))  # signers recovered before the timed part
        t0 = time.perf_counter()
        took = 0
        for m, s in zip(msgs, sigs):
            w.engine.liquidate(m, s)
            took += 1
        dt = time.perf_counter() - t0
        figures["bids"] = took
        figures["bids_per_s"] = round(took / dt)
        t0 = time.perf_counter()
        w.engine.end_block()
        t += 1
        w.engine.begin_block(t)
        figures["scan_after_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
        figures["open_auctions_after"] = len(w.state.auctions)
        figures["positions_left"] = sum(bool(w.state.accounts[a].positions) for a in shorts)

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(figures)
    print("\n[liquidation] " + ", ".join(f"{k}={v}" for k, v in figures.items()))
