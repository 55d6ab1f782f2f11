"""The load generator of benchmarks/test_mm_flow.py: its own process, pre-encoded bodies, a minimal
HTTP/1.1 client on asyncio.Protocol (or aiohttp: OPTROLLUP_MM_CLIENT=aiohttp).

`LoadGen` starts a spawn child that loads the pickled flows once and then runs commands sent
over a pipe, so requote chains continue across runs (one maker's quotes must stay in order):

- `setup`: every maker sends its ladder (POST /v1/orders/batch, 500 per request), makers in
  parallel, each from its own loopback address;
- `flow`: closed loop, each maker one mass quote (POST /v1/quotes) in flight at a time, from its
  own address (127.0.0.X: a real venue sees market makers on distinct IPs, each with its own
  per-IP budget); every mass quote sent credits 1/4 taker order per pair, which `taker_conns`
  connections send as single POST /v1/orders (so takers are 20 % of the orders offered; a
  maker waits while more than `taker_conns` taker orders are owed); optionally paced
  (`maker_rate`: mass quotes/s per maker);
- `open_loop`: request i due at t0 + i/rate whatever happened before (latency from the due
  time, so queueing counts), over `conns` keep-alive connections spread over `ips`.

Positions in each flow are kept per target (node, bare app), so a target always continues
where it stopped. The parent never shares an event loop with it.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import pickle
import resource
import time
from pathlib import Path
from typing import Any, Self

from benchmarks.loadgen import http_request, pct
from sequencer.ingress.protocol import FrameReader, pack

H = {"Content-Type": "application/json"}


def lat_summary(xs: list[float]) -> dict[str, Any]:
    """Latencies in seconds -> count and p50/p90/p99/p99.9/max in ms ({} when empty)."""
    xs = sorted(xs)
    if not xs:
        return {}
    return {"n": len(xs), "p50_ms": round(pct(xs, 50) * 1e3, 2), "p90_ms": round(pct(xs, 90) * 1e3, 2),
            "p99_ms": round(pct(xs, 99) * 1e3, 2), "p999_ms": round(pct(xs, 99.9) * 1e3, 2),
            "max_ms": round(xs[-1] * 1e3, 2)}


def maker_ip(i: int) -> str:
    """Maker i's own loopback source address (its own per-IP budget on the node)."""
    return f"127.0.{1 + i // 200}.{10 + i % 200}"


def taker_ip(i: int) -> str:
    """Taker connection i's loopback source address (i < 200)."""
    return f"127.0.100.{10 + i}"


def _tally(codes: dict[str, int], raw: bytes) -> None:
    """Count the error codes in a response body (one answer or {"results": [...]}) into `codes`."""
    try:
        doc = json.loads(raw)
    except ValueError:
        codes["unparsable"] = codes.get("unparsable", 0) + 1
        return
    items = doc.get("results") if isinstance(doc, dict) and "results" in doc else [doc]
    for r in items:
        if isinstance(r, dict) and "error" in r:
            c = r["error"].get("code", "?")
            codes[c] = codes.get(c, 0) + 1


class Conn:
    """One keep-alive HTTP/1.1 connection to host:port from local address `ip`, one request at
    a time: `await post(path, body)` -> (status, body bytes). `async with` opens and closes."""

    def __init__(self, host: str, port: int, ip: str) -> None:
        self.host, self.port, self.ip = host, port, ip

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        raise NotImplementedError

    async def get(self, path: str) -> tuple[int, bytes]:
        raise NotImplementedError


class _Http11(asyncio.Protocol):
    """Reads responses with a Content-Length (what uvicorn sends) off one connection."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.transport: asyncio.Transport | None = None
        self.need = -1  # bytes of the response in flight, once its head is read
        self.head = 0
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            self.status = int(head[9:12])
            i = head.find(b"content-length:")
            if i < 0:
                raise RuntimeError(f"response without content-length: {head[:200]!r}")
            j = head.find(b"\r\n", i)
            self.head = end + 4
            self.need = self.head + int(head[i + 15:j if j > 0 else len(head)])
        if len(self.buf) >= self.need:
            body = bytes(self.buf[self.head:self.need])
            del self.buf[:self.need]
            self.need = -1
            w, self.waiter = self.waiter, None
            if w is not None and not w.done():
                w.set_result((self.status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))


class RawConn(Conn):
    """A minimal client on asyncio.Protocol: request heads formatted per request, bodies sent as
    they are, responses cut by Content-Length. 41-43 µs of CPU per request here against 139 µs
    for aiohttp (same flow, bare app), which matters when the client shares two cores with the
    server."""

    proto: _Http11 | None = None

    async def __aenter__(self) -> Self:
        await self._connect()
        return self

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.proto = await loop.create_connection(_Http11, self.host, self.port, local_addr=(self.ip, 0))

    async def __aexit__(self, *exc: object) -> None:
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()

    async def _send(self, request: bytes) -> tuple[int, bytes]:
        t = self.proto.transport if self.proto is not None else None
        if t is None or t.is_closing():  # the server closed it (uvicorn: 5 s keep-alive idle)
            await self._connect()
            t = self.proto.transport
        fut = asyncio.get_running_loop().create_future()
        self.proto.waiter = fut
        t.write(request)
        return await fut

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        return await self._send(http_request(path, body))

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self._send(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())


class AioConn(Conn):
    """The same over aiohttp (OPTROLLUP_MM_CLIENT=aiohttp)."""

    async def __aenter__(self) -> Self:
        import aiohttp
        conn = aiohttp.TCPConnector(limit=1, local_addr=(self.ip, 0), use_dns_cache=False)
        self.s = aiohttp.ClientSession(f"http://{self.host}:{self.port}", connector=conn,
                                       skip_auto_headers=("User-Agent",),
                                       timeout=aiohttp.ClientTimeout(total=120))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.s.close()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        async with self.s.post(path, data=body, headers=H) as r:
            return r.status, await r.read()

    async def get(self, path: str) -> tuple[int, bytes]:
        async with self.s.get(path) as r:
            return r.status, await r.read()


class CoreConn(Conn):
    """A client of the core's ingress socket (sequencer.ingress.protocol), as a gateway is: each
    request goes as one frame [req_id, path, ip, payload] over DATA_DIR/ingress.sock, its payload
    made before the clock (`frames`, by the gateway's own `payload`: JSON, wire decoding, EIP-712
    digests, signer recovery), one request in flight; answers come back as the JSON body the
    gateway would send. What the core does with HTTP and recovery off its machine."""

    def __init__(self, path: str, ip: str, frames: dict[bytes, Any]) -> None:
        super().__init__(path, 0, ip)
        self.frames, self.rid = frames, 0
        self.frames_in = FrameReader()

    made_late = 0  # payloads made during a run (prepare_core fell short)
    _connecting: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @classmethod
    def _connect_lock(cls) -> asyncio.Lock:
        """One lock per event loop (each load-generator command runs its own loop)."""
        loop = asyncio.get_running_loop()
        if cls._connecting is None or cls._connecting[0] is not loop:
            cls._connecting = (loop, asyncio.Lock())
        return cls._connecting[1]

    async def __aenter__(self) -> Self:
        # one connect at a time: past the core's listen backlog (100) a non-blocking Unix connect
        # "succeeds" unconnected and the first read fails with EINVAL
        async with self._connect_lock():
            self.reader, self.writer = await asyncio.open_unix_connection(self.host)
            self.hello = await self._frame()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def _frame(self) -> Any:
        head = await self.reader.readexactly(4)
        rest = await self.reader.readexactly(int.from_bytes(head, "big"))
        return self.frames_in.feed(head + rest)[0]

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        pl = self.frames.get(body)
        if pl is None:  # past what prepare_core made: made now, on the clock (counted)
            from sequencer.ingress.gateway import payload
            h = self.hello
            pl = payload(path, body, None, h["domain"], h["maxBatch"], h["maxBodyBytes"])
            CoreConn.made_late += 1
        self.rid += 1
        self.writer.write(pack([self.rid, path, self.ip, pl]))
        rid, status, answer, _ = await self._frame()
        if rid != self.rid:
            raise RuntimeError(f"core answered request {rid}, expected {self.rid}")
        return status, json.dumps(answer, separators=(",", ":")).encode()


class _Worker:
    """The load generator process's state: the flows, and per (target, flow) how far it got."""

    def __init__(self, flows_path: str, client: str) -> None:
        self.client = client
        self.host, self.port = "127.0.0.1", 0
        self.core_path: str | None = None  # target "core": the node's ingress socket
        self.frames: dict[bytes, Any] = {}  # body -> ingress frame payload (target "core")
        with open(flows_path, "rb") as f:
            self.flows: dict[str, Any] = pickle.load(f)
        self.pos: dict[tuple[str, str], dict[str, Any]] = {}

    def positions(self, target: str, flow: str) -> dict[str, Any]:
        key = (target, flow)
        if key not in self.pos:
            fl = self.flows[flow]
            self.pos[key] = {"quotes": [0] * len(getattr(fl, "quotes", ())), "taker": 0, "single": 0}
        return self.pos[key]

    def session(self, ip: str) -> Conn:
        if self.core_path is not None:
            return CoreConn(self.core_path, ip, self.frames)
        return (AioConn if self.client == "aiohttp" else RawConn)(self.host, self.port, ip)

    # -- setup: ladders ------------------------------------------------------------------------

    async def setup(self, url: str, flow: str) -> dict[str, Any]:
        fl = self.flows[flow]
        acked, codes, statuses = [0], {}, {}

        async def maker(i: int) -> None:
            async with self.session(maker_ip(i)) as s:
                for body in fl.setup[i]:
                    status, raw = await s.post("/v1/orders/batch", body)
                    statuses[status] = statuses.get(status, 0) + 1
                    n_err = raw.count(b'"error"')
                    acked[0] += raw.count(b'"orderHash"')
                    if n_err or status != 200:
                        _tally(codes, raw)

        t0 = time.perf_counter()
        await asyncio.gather(*(maker(i) for i in range(len(fl.setup))))
        return {"acked": acked[0], "errors": codes, "statuses": statuses,
                "seconds": round(time.perf_counter() - t0, 2)}

    # -- the flow ------------------------------------------------------------------------------

    async def flow(self, url: str, target: str, flow: str, seconds: float, taker_conns: int = 16,
                   taker_share: float = 0.2, maker_rate: float | None = None,
                   maker_inflight: int = 1) -> dict[str, Any]:
        fl = self.flows[flow]
        core = target == "core"  # requests as prepared by `prepare_core` (the rest made late)
        # a maker's quotes in flight at once, each on its own connection: never more than its
        # chain allows (quotes that close apart touch distinct groups of its ladder)
        lanes = max(1, min(maker_inflight, fl.reorder_gap // 2))
        pos = self.positions("node" if core else target, flow)  # the core is the node's
        n_makers = len(fl.quotes)
        tokens: asyncio.Queue = asyncio.Queue()
        per_pair = taker_share / (1 - taker_share)
        st = {"pairs_acked": 0, "pairs_failed": 0, "quotes_sent": 0, "takers_acked": 0,
              "takers_failed": 0, "takers_unfilled": 0, "taker_tokens": 0, "taker_tokens_dropped": 0,
              "chains_exhausted": 0, "maker_waits": 0}
        codes: dict[str, int] = {}
        statuses: dict[int, int] = {}
        lat_q: list[float] = []
        lat_t: list[float] = []
        last_done = [0.0]
        t0 = time.perf_counter()
        stop_at = t0 + seconds

        async def maker(i: int) -> None:
            bodies = fl.quotes[i]
            m = {"k": pos["quotes"][i], "credit": 0.0,
                 "nxt": t0 + (i / n_makers) / maker_rate if maker_rate else t0}

            async def lane() -> None:
                async with self.session(maker_ip(i)) as s:
                    while True:
                        now = time.perf_counter()
                        if now >= stop_at:
                            break
                        if m["k"] >= len(bodies):
                            st["chains_exhausted"] += 1
                            break
                        if maker_rate:
                            if m["nxt"] > now:
                                await asyncio.sleep(m["nxt"] - now)
                                if time.perf_counter() >= stop_at:
                                    break
                            m["nxt"] += 1 / maker_rate
                        while tokens.qsize() > taker_conns:  # takers behind: keep the 20 % mix
                            st["maker_waits"] += 1
                            await asyncio.sleep(0.002)
                        if m["k"] >= len(bodies):
                            continue
                        body = bodies[m["k"]]
                        m["k"] += 1
                        st["quotes_sent"] += 1
                        m["credit"] += fl.pairs_per_quote * per_pair
                        while m["credit"] >= 1:
                            m["credit"] -= 1
                            st["taker_tokens"] += 1
                            tokens.put_nowait(1)
                        t = time.perf_counter()
                        status, raw = await s.post("/v1/quotes", body)
                        done = time.perf_counter()
                        last_done[0] = max(last_done[0], done)
                        lat_q.append(done - t)
                        statuses[status] = statuses.get(status, 0) + 1
                        ok = raw.count(b'"orderHash"') if status == 200 else 0
                        st["pairs_acked"] += ok
                        if ok != fl.pairs_per_quote:
                            st["pairs_failed"] += fl.pairs_per_quote - ok
                            _tally(codes, raw)

            await asyncio.gather(*(lane() for _ in range(lanes)))
            pos["quotes"][i] = m["k"]

        async def taker(c: int) -> None:
            async with self.session(taker_ip(c % 64)) as s:
                while True:
                    tok = await tokens.get()
                    if tok is None:
                        return
                    if time.perf_counter() >= stop_at:
                        st["taker_tokens_dropped"] += 1
                        continue
                    j = pos["taker"]
                    if j >= len(fl.takers):
                        st["taker_tokens_dropped"] += 1
                        continue
                    pos["taker"] = j + 1
                    t = time.perf_counter()
                    status, raw = await s.post("/v1/orders", fl.takers[j])
                    done = time.perf_counter()
                    last_done[0] = max(last_done[0], done)
                    lat_t.append(done - t)
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 200:
                        st["takers_acked"] += 1
                        if b'"fills":[]' in raw:
                            st["takers_unfilled"] += 1
                    else:
                        st["takers_failed"] += 1
                        _tally(codes, raw)

        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        takers = [asyncio.create_task(taker(c)) for c in range(taker_conns)]
        await asyncio.gather(*(maker(i) for i in range(n_makers)))
        for _ in takers:
            tokens.put_nowait(None)
        await asyncio.gather(*takers)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = max(last_done[0], t0 + 1e-9) - t0
        orders = st["pairs_acked"] + st["takers_acked"]
        return {**st, "errors": codes, "statuses": statuses, "seconds": round(wall, 3),
                "orders_acked": orders, "orders_per_s": round(orders / wall),
                "pairs_per_s": round(st["pairs_acked"] / wall),
                "taker_share": round(st["takers_acked"] / orders, 3) if orders else None,
                **({"payloads_made_late": CoreConn.made_late} if core else {}),
                "quote_latency": lat_summary(lat_q), "taker_latency": lat_summary(lat_t),
                "client_cpu_s": round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 2),
                "maker_inflight": lanes}

    # -- open loop single orders ---------------------------------------------------------------

    async def open_loop(self, url: str, target: str, key: str, rate: float, seconds: float,
                        ips: list[str], conns: int) -> dict[str, Any]:
        bodies: list[bytes] = self.flows[key]
        pos = self.positions(target, key)
        start = pos["single"]
        n = min(int(rate * seconds), len(bodies) - start)
        pos["single"] = start + n
        queue: asyncio.Queue = asyncio.Queue()
        lat_sched: list[float] = []
        lat_send: list[float] = []
        statuses: dict[int, int] = {}
        codes: dict[str, int] = {}
        # requests over 10 ms by the tenth of the wall-clock second they were due in (the node
        # seals a block right after each whole second, so a seal's stall piles up in the first
        # tenths) and by the second of a 10 s cycle (what recurs every 5 s, the devnet's oracle
        # feed, or 10 s, its poster's cron run, piles up in one or two of them)
        wall = time.time() - time.perf_counter()
        slow_tenths = [0] * 10
        slow_seconds = [0] * 10

        async def conn(c: int) -> None:
            async with self.session(ips[c % len(ips)]) as s:
                # open the connection before the clock starts
                await s.get("/health")
                while True:
                    item = await queue.get()
                    if item is None:
                        return
                    due, body = item
                    sent = time.perf_counter()
                    status, raw = await s.post("/v1/orders", body)
                    done = time.perf_counter()
                    statuses[status] = statuses.get(status, 0) + 1
                    if status != 200:
                        _tally(codes, raw)
                    lat_sched.append(done - due)
                    lat_send.append(done - sent)
                    if done - due > 0.010:
                        slow_tenths[int((due + wall) % 1.0 * 10)] += 1
                        slow_seconds[int((due + wall) % 10.0)] += 1

        workers = [asyncio.create_task(conn(c)) for c in range(conns)]
        await asyncio.sleep(0.3)
        t0 = time.perf_counter() + 0.05
        late = 0
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.002:
                late += 1
            queue.put_nowait((due, bodies[start + i]))
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
        took = time.perf_counter() - t0
        return {"offered_per_s": rate, "requests": n, "seconds": round(took, 2), "late_sends": late,
                "statuses": statuses, "errors": codes, "latency": lat_summary(lat_sched),
                "latency_from_send": lat_summary(lat_send), "ips": len(ips), "conns": conns,
                "over_10ms_by_tenth_of_second": slow_tenths,
                "over_10ms_by_second_of_ten": slow_seconds}

    async def prepare_core(self, url: str, flow: str, seconds: float, rate: int = 20_000) -> float:
        """Ingress payloads of the requests a `core` run of `seconds` at up to `rate` orders/s
        can send from where the node's positions stand (the gateway's own `payload`, with the
        domain and limits from the core's hello); the seconds it took (before the clock)."""
        from sequencer.ingress.gateway import ORDER, QUOTES, payload
        fl = self.flows[flow]
        t = time.perf_counter()
        async with CoreConn(self.core_path, "127.0.0.1", self.frames) as c:  # type: ignore[arg-type]
            hello = c.hello
        args = (None, hello["domain"], hello["maxBatch"], hello["maxBodyBytes"])
        pos = self.positions("node", flow)
        self.frames.clear()
        CoreConn.made_late = 0
        n_quotes = int(rate * 0.8 * seconds / fl.pairs_per_quote / max(1, len(fl.quotes))) + 2
        for i, bodies in enumerate(fl.quotes):
            for b in bodies[pos["quotes"][i]:pos["quotes"][i] + n_quotes]:
                self.frames[b] = payload(QUOTES, b, *args)
        for b in fl.takers[pos["taker"]:pos["taker"] + int(rate * 0.2 * seconds) + 64]:
            self.frames[b] = payload(ORDER, b, *args)
        return round(time.perf_counter() - t, 2)

    def handle(self, cmd: dict[str, Any]) -> Any:
        op = cmd.pop("op")
        if "url" in cmd and cmd["url"].startswith("unix:"):
            self.core_path = cmd["url"].removeprefix("unix:")
        elif "url" in cmd:
            self.core_path = None
            host, port = cmd["url"].removeprefix("http://").rsplit(":", 1)
            self.host, self.port = host, int(port)
        if op == "setup":
            return asyncio.run(self.setup(**cmd))
        if op == "flow":
            return asyncio.run(self.flow(**cmd))
        if op == "open_loop":
            return asyncio.run(self.open_loop(**cmd))
        if op == "prepare_core":
            return asyncio.run(self.prepare_core(**cmd))
        if op == "positions":
            return {f"{t}/{f}": p for (t, f), p in self.pos.items()}
        raise ValueError(op)


def _main(flows_path: str, client: str, pipe: Any) -> None:
    w = _Worker(flows_path, client)
    pipe.send({"ready": True, "pid": os.getpid()})
    while True:
        cmd = pipe.recv()
        if cmd is None:
            return
        try:
            pipe.send({"ok": w.handle(dict(cmd))})
        except Exception as exc:  # noqa: BLE001 (reported to the parent, which raises)
            import traceback
            pipe.send({"error": f"{exc!r}\n{traceback.format_exc()}"})


class LoadGen:
    """The load generator process (spawn; it shares nothing with the parent but the pickle)."""

    def __init__(self, flows_path: Path, client: str = "raw", timeout: float = 300) -> None:
        ctx = mp.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=_main, args=(str(flows_path), client, child), daemon=True)
        self.proc.start()
        if not self.pipe.poll(timeout):
            raise RuntimeError("load generator did not start")
        self.pid = self.pipe.recv()["pid"]

    def __call__(self, op: str, timeout: float = 900, **kw: Any) -> Any:
        self.pipe.send({"op": op, **kw})
        if not self.pipe.poll(timeout):
            raise RuntimeError(f"load generator: {op} did not finish in {timeout} s")
        out = self.pipe.recv()
        if "error" in out:
            raise RuntimeError(f"load generator: {op} failed: {out['error']}")
        return out["ok"]

    def close(self) -> None:
        try:
            self.pipe.send(None)
        except OSError:
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
