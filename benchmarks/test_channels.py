"""State channels: co-signed trades per second between two channel services over loopback, the
trade round trip, and where the time of one co-signed state goes.

    .venv/bin/python -m pytest benchmarks/test_channels.py --benchmark-only -q -s -p no:cacheprovider

Setup: a live sequencer node (in this process, only asked for marks once a second and for the
open), and the two parties' services, each its own process (`optrollup channels serve`), with
one channel between them. The driver is an asyncio loop with keep-alive connections
(channels._http) sending A's owner trades (`POST /v1/channels/{id}/trade`, signed headers) that
B's standing quote takes; every answer is a state both services recorded (synced) and signed.

- `test_trades_per_second[batched]`: the default service (`--max-batch 64`): trades that queue up
  while a state is with the peer go together in the next state. `[one_state_per_trade]`:
  `--max-batch 1`, every trade its own state: bounded by one state's round trip, because a
  channel's states are strictly sequential (each is built on the co-signed one before it).
- `test_round_trip`: one trade at a time (p50/p99 of the owner's round trip).
- `test_cost[...]`: the pieces of one state, in this process: EIP-712 digest, signing, recovery,
  the rules (follows, quote, margin), JSON, one synced LevelDB write (the store writes 2 per
  side per state), and an HTTP round trip over loopback to a service.

CPU seconds per trade of each process come from /proc. Sizes: OPTROLLUP_BENCH_CHANNEL_TRADES,
OPTROLLUP_BENCH_CHANNEL_CONCURRENCY. The target (>= 2,000 trades/s per channel pair) is
reported, never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cext
from channels import (
    ChannelStore,
    QuoteLine,
    Trade,
    apply_trade,
    check_margin,
    follows,
    initial_state,
    within_quote,
)
from channels._auth import AuthHeaders
from channels._http import HttpPool
from channels._sign import KeySigner, recover
from channels.client import ChannelClient
from sequencer.core.channelmsg import state_digest, state_from_json, state_to_json
from sequencer.core.margin import RiskRow
from tests.channels.service_kit import free_port, service_proc, write_keystore
from tests.sequencer.client.live import U, live_node
from tests.sequencer.node.kit import CALL, USERS

pytestmark = pytest.mark.skipif(not cext.ACCELERATED, reason="channel benchmarks use the accelerated cext")

A, B = USERS[0], USERS[1]
STEP = 10_000
TARGET = 2_000


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def report(benchmark: Any, title: str, **figures: Any) -> None:
    benchmark.extra_info.update(figures)
    print(f"\n[{title}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class Pair:
    def __init__(self, lv: Any, pa: Any, pb: Any, cid: str) -> None:
        self.lv, self.pa, self.pb, self.cid = lv, pa, pb, cid
        self.auth = AuthHeaders(KeySigner(A.priv.secret))


@pytest.fixture(scope="module", params=["batched", "one_state_per_trade"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    tmp = Path(tempfile.mkdtemp(prefix="optrollup-bench-channels-"))
    extra = ["--max-batch", "64" if request.param == "batched" else "1"]
    with live_node(tmp / "node") as lv:
        ka = write_keystore(tmp / "a.json", A.priv.secret)
        kb = write_keystore(tmp / "b.json", B.priv.secret)
        pa = service_proc(tmp / "a", ka, lv.url, free_port(), tmp / "a.log", *extra).start()
        pb = service_proc(tmp / "b", kb, lv.url, free_port(), tmp / "b.log", *extra).start()
        try:
            with ChannelClient(pa.url, key=A.priv.secret) as ca, ChannelClient(pb.url, key=B.priv.secret) as cb:
                cid = ca.open(pb.url, 20_000 * U, 20_000 * U, 600).channel_id
                cb.set_quotes(cid, [QuoteLine(CALL, 90 * U, 10**15, 110 * U, 10**15)])
            yield Pair(lv, pa, pb, cid)
        finally:
            pa.stop()
            pb.stop()


async def drive(p: Pair, n: int, concurrency: int) -> tuple[float, list[float], int]:
    """`n` trades from A's owner with `concurrency` in flight: (seconds, latencies, states)."""
    pool = HttpPool(timeout=60, max_idle=concurrency + 4)
    url = f"{p.pa.url}/v1/channels/{p.cid}/trade"
    lat: list[float] = []
    turns: set[int] = set()
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            buy = i % 2 == 0  # net flat: margin never binds
            body = {"instrument": CALL, "isBuy": buy, "price": str(110 * U if buy else 90 * U),
                    "amount": str(STEP)}
            t = time.perf_counter()
            r = await pool.json("POST", url, body, p.auth())
            lat.append(time.perf_counter() - t)
            if r.status != 200:
                raise AssertionError(r.content)
            turns.add(int(r.json()["channelState"]["turnNum"]))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    dt = time.perf_counter() - t0
    await pool.close()
    return dt, lat, len(turns)


@pytest.mark.benchmark(group="channels-throughput")
def test_trades_per_second(benchmark: Any, pair: Pair) -> None:
    n = env_int("OPTROLLUP_BENCH_CHANNEL_TRADES", 6_000)
    conc = env_int("OPTROLLUP_BENCH_CHANNEL_CONCURRENCY", 32)
    asyncio.run(drive(pair, 300, conc))  # warm up: connections, caches
    cpu0 = {"a": cpu_seconds(pair.pa.p.pid), "b": cpu_seconds(pair.pb.p.pid), "driver": time.process_time()}
    out: dict[str, Any] = {}

    def run() -> None:
        out["dt"], out["lat"], out["states"] = asyncio.run(drive(pair, n, conc))

    benchmark.pedantic(run, rounds=1, iterations=1)
    cpu = {"a": cpu_seconds(pair.pa.p.pid) - cpu0["a"], "b": cpu_seconds(pair.pb.p.pid) - cpu0["b"],
           "driver": time.process_time() - cpu0["driver"]}
    rate = n / out["dt"]
    report(benchmark, f"channels {pair.pa.args[-1] == '1' and 'one state per trade' or 'batched'}",
           trades=n, concurrency=conc, trades_per_s=round(rate), states=out["states"],
           trades_per_state=round(n / out["states"], 1),
           p50_ms=round(pct(out["lat"], 0.5) * 1e3, 2), p99_ms=round(pct(out["lat"], 0.99) * 1e3, 2),
           cpu_us_per_trade_a=round(cpu["a"] / n * 1e6), cpu_us_per_trade_b=round(cpu["b"] / n * 1e6),
           cpu_us_per_trade_driver_and_node=round(cpu["driver"] / n * 1e6),
           target=f">= {TARGET}/s: {'met' if rate >= TARGET else 'MISSED'}")


@pytest.mark.benchmark(group="channels-latency")
def test_round_trip(benchmark: Any, pair: Pair) -> None:
    n = 1_000
    asyncio.run(drive(pair, 100, 1))
    out: dict[str, Any] = {}

    def run() -> None:
        out["dt"], out["lat"], _ = asyncio.run(drive(pair, n, 1))

    benchmark.pedantic(run, rounds=1, iterations=1)
    report(benchmark, "channels round trip, one trade at a time", trades=n,
           trades_per_s=round(n / out["dt"]), p50_ms=round(pct(out["lat"], 0.5) * 1e3, 3),
           p90_ms=round(pct(out["lat"], 0.9) * 1e3, 3), p99_ms=round(pct(out["lat"], 0.99) * 1e3, 3))


# -- where the time of one state goes ---------------------------------------------------------

def _pieces(tmp: Path) -> dict[str, Any]:
    from tests.channels.world import channel

    ch = channel()
    s = initial_state(ch)
    for t in (Trade(CALL, True, 110 * U, STEP), Trade("ETH-27DEC26-3000-P", True, 60 * U, STEP)):
        s = apply_trade(s, t, True)  # two positions, as a channel usually holds some
    trade = Trade(CALL, False, 90 * U, STEP)
    nxt = apply_trade(s, trade, True)
    d = state_digest(ch.domain, nxt)
    signer = KeySigner(A.priv.secret)
    sig = signer.sign(d)
    rows = {CALL: RiskRow(270 * U, 275 * U, 450 * U, 225 * U),
            "ETH-27DEC26-3000-P": RiskRow(260 * U, 265 * U, 450 * U, 225 * U)}
    quote = (QuoteLine(CALL, 90 * U, 10**15, 110 * U, 10**15),)
    body = json.dumps({"channelState": state_to_json(nxt), "signature": "0x" + sig.hex(),
                       "trade": {"instrument": CALL, "isBuy": False, "price": "90000000", "amount": "10000"}})
    store = ChannelStore(tmp / "db")
    counter = iter(range(10**9))

    def fsync_write() -> None:
        k = next(counter)
        store.record_signed(nxt._replace(turnNum=k), d, sig)

    def rules() -> None:
        follows(s, nxt, trade, True)
        within_quote(quote, trade)
        check_margin(nxt, rows)

    return {"digest": lambda: state_digest(ch.domain, nxt), "sign": lambda: signer.sign(d),
            "recover": lambda: recover(d, sig), "rules": rules,
            "json_decode": lambda: state_from_json(json.loads(body)["channelState"]),
            "json_encode": lambda: json.dumps(state_to_json(nxt)),
            "synced_write": fsync_write, "_store": store}


@pytest.mark.benchmark(group="channels-cost")
@pytest.mark.parametrize("piece", ["digest", "sign", "recover", "rules", "json_decode", "json_encode",
                                   "synced_write"])
def test_cost(benchmark: Any, piece: str, tmp_path: Path) -> None:
    pieces = _pieces(tmp_path)
    try:
        benchmark(pieces[piece])
        report(benchmark, f"cost {piece}", median_us=round(benchmark.stats.stats.median * 1e6, 1))
    finally:
        pieces["_store"].close()


@pytest.mark.benchmark(group="channels-cost")
def test_cost_http_round_trip(benchmark: Any, pair: Pair) -> None:
    """GET /v1/identity on a service over a kept-alive loopback connection (the floor of one
    hop: the owner's request to A and A's proposal to B are one each)."""
    loop = asyncio.new_event_loop()
    pool = HttpPool()
    url = f"{pair.pb.url}/v1/identity"
    try:
        loop.run_until_complete(pool.request("GET", url))
        benchmark(lambda: loop.run_until_complete(pool.request("GET", url)))
        report(benchmark, "cost http_round_trip", median_us=round(benchmark.stats.stats.median * 1e6, 1))
    finally:
        loop.run_until_complete(pool.close())
        loop.close()
