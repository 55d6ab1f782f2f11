"""Load generator for the node benchmarks: many pre-signed accounts, pre-encoded request bodies,
a real `optrollup serve` process over loopback (tests/e2e/serverkit.py starts it).

The order flow keeps the book bounded, so that the figures do not drift with its size: orders
come in pairs, a resting GTC sell from one account then an IOC buy from another at the same
price and amount, which fills it completely. Half the orders rest (briefly), half trade.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cext import Order
from sequencer.node import NodeConfig
from tests.e2e.serverkit import (U, Server, feed_body, fund, instrument_names, node_config,
                                 open_limits, sign_orders, write_config)
from tests.sequencer.core.core_world import Key

N_INSTRUMENTS = 4


@dataclass
class World:
    cfg: NodeConfig
    keys: list[Key]
    names: list[str]
    expiry: int
    last_feed: int = 0
    by_addr: dict[bytes, Key] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_addr = {k.address: k for k in self.keys}


def make_world(n_accounts: int, **cfg_kw) -> World:
    now = time.time()
    cfg = node_config(now, n_instruments=N_INSTRUMENTS, limits=open_limits(), **cfg_kw)
    names, expiry = instrument_names(now, N_INSTRUMENTS)
    return World(cfg, [Key(1000 + i) for i in range(n_accounts)], names, expiry)


def pair_orders(w: World, n: int, nonce0: int = 0) -> list[Order]:
    """`n` orders (n even): maker GTC sell then taker IOC buy at the same price and amount."""
    out = []
    nk = len(w.keys)
    for j in range(n // 2):
        maker, taker = w.keys[(2 * j) % nk], w.keys[(2 * j + 1) % nk]
        ins = w.names[j % len(w.names)]
        price = 100 * U + (j % 7) * 100_000
        amount = 10_000 * (1 + j % 3)
        nonce = nonce0 + j
        out.append(Order(maker.address, ins, False, price, amount, nonce, w.expiry - 86400, 0, False, False))
        out.append(Order(taker.address, ins, True, price, amount, nonce, w.expiry - 86400, 1, False, False))
    return out


def start_server(tmp: Path, w: World, *, funds: int = 10**9 * U) -> Server:
    data = tmp / "data"
    fund(data, w.cfg, w.keys, funds)
    w.last_feed = int(time.time())
    conf = write_config(tmp / "node.json", w.cfg)
    return Server(data, conf).start(timeout=60)


def refresh_feed(srv: Server, w: World) -> None:
    w.last_feed = max(int(time.time()), w.last_feed + 1)  # a key's feeds must be strictly newer
    r = httpx.post(srv.url + "/v1/oracle/feeds", json=feed_body(w.cfg, w.last_feed), timeout=10)
    assert r.status_code == 200, r.text


class FeedKeeper(threading.Thread):
    """Posts an oracle feed every `every` s so that marks stay fresh (max age 60 s) in long runs."""

    def __init__(self, srv: Server, w: World, every: float = 15.0) -> None:
        super().__init__(daemon=True)
        self.srv, self.w, self.every = srv, w, every
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every):
            refresh_feed(self.srv, self.w)


# -- (a) batches, closed loop -----------------------------------------------------------------

def batch_bodies(w: World, n_orders: int, nonce0: int = 0, batch: int = 500) -> list[bytes]:
    signed = sign_orders(w.cfg, w.by_addr, pair_orders(w, n_orders, nonce0))
    return [json.dumps({"orders": [b for _, b in signed[i:i + batch]]}).encode()
            for i in range(0, len(signed), batch)]


def run_batches(url: str, bodies: list[bytes], clients: int) -> dict:
    """`clients` threads, each posting its share of the pre-encoded batches back to back.
    Returns acknowledged orders, errors by code, wall seconds and per-request latencies."""
    acked, errors, lat = [0] * clients, [dict() for _ in range(clients)], [[] for _ in range(clients)]

    def worker(c: int) -> None:
        with httpx.Client(base_url=url, timeout=60, headers={"content-type": "application/json"}) as cl:
            for body in bodies[c::clients]:
                t = time.perf_counter()
                r = cl.post("/v1/orders/batch", content=body)
                lat[c].append(time.perf_counter() - t)
                assert r.status_code == 200, r.text[:500]
                for res in r.json()["results"]:
                    if "error" in res:
                        code = res["error"]["code"]
                        errors[c][code] = errors[c].get(code, 0) + 1
                    else:
                        acked[c] += 1

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    errs: dict[str, int] = {}
    for e in errors:
        for k, v in e.items():
            errs[k] = errs.get(k, 0) + v
    return {"acked": sum(acked), "errors": errs, "seconds": wall, "latencies": sorted(x for l in lat for x in l)}


# -- (b) single orders, open loop -------------------------------------------------------------

def single_bodies(w: World, n_orders: int, nonce0: int) -> list[bytes]:
    return [json.dumps(b).encode() for _, b in sign_orders(w.cfg, w.by_addr, pair_orders(w, n_orders, nonce0))]


def http_request(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status = int((await reader.readline()).split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def _open_loop(host: str, port: int, requests: list[bytes], rate: float, connections: int) -> dict:
    """Open loop: request i is due at t0 + i/rate whatever happened to earlier ones; a pool of
    keep-alive connections (a minimal HTTP/1.1 client on asyncio streams: httpx's async pool
    was itself the bottleneck at a few hundred requests/s) sends due requests as they free up.
    Latency is measured from the due time, so queueing behind a slow answer counts."""
    queue: asyncio.Queue = asyncio.Queue()
    lat_sched: list[float] = []
    lat_send: list[float] = []
    codes: dict[int, int] = {}

    async def conn() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                due, req = item
                sent = time.perf_counter()
                writer.write(req)
                status, _ = await _read_response(reader)
                done = time.perf_counter()
                codes[status] = codes.get(status, 0) + 1
                lat_sched.append(done - due)
                lat_send.append(done - sent)
        finally:
            writer.close()

    workers = [asyncio.create_task(conn()) for _ in range(connections)]
    await asyncio.sleep(0.1)  # connections established
    t0 = time.perf_counter() + 0.05
    late = 0
    for i, req in enumerate(requests):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.002:
            late += 1
        queue.put_nowait((due, req))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    wall = time.perf_counter() - t0
    return {"codes": codes, "seconds": wall, "late_sends": late,
            "lat_sched": sorted(lat_sched), "lat_send": sorted(lat_send)}


def run_open_loop(url: str, bodies: list[bytes], rate: float, connections: int = 16) -> dict:
    host, port = url.removeprefix("http://").split(":")
    reqs = [http_request("/v1/orders", b) for b in bodies]
    return asyncio.run(_open_loop(host, int(port), reqs, rate, connections))


def pct(sorted_xs: list[float], p: float) -> float:
    if not sorted_xs:
        return float("nan")
    return sorted_xs[min(len(sorted_xs) - 1, int(p / 100 * len(sorted_xs)))]
