"""The core's end of the ingress socket: runs on the node's event loop (started with the app's
lifespan, `attach`), one connection per gateway process.

A frame (sequencer.ingress.protocol) is handled exactly as the HTTP front (`FastWrites`)
handles the same request, minus what the gateway already did: the per-IP budget is charged to
the forwarded client IP, then the fail-safe check, then (for a request that failed to decode in
the gateway) the same error answer, else the verified records are applied in order through
`Node.submit_verified` with the same per-account `admit`, awaited until durable, and the
answer rendered by the same code (`Api.render`, `write_answer`, the error table). Frames of
one connection start in arrival order (tasks start FIFO and apply before their first await),
so the order of requests on one HTTP connection is kept.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sequencer.api.app import Api, write_answer
from sequencer.api.errors import error_body, with_party
from sequencer.api.fastpath import Answer, answer_write
from sequencer.errors import OptrollupError
from sequencer.ingress.protocol import FrameReader, pack, socket_path

log = logging.getLogger("optrollup.ingress")

ORDER, BATCH, REPLACE, QUOTES = "/v1/orders", "/v1/orders/batch", "/v1/orders/replace", "/v1/quotes"


def render(api: Api, path: str, items: list[Any], records: list[Any], results: list[Any]) -> Any:
    """The answer body of `path` (as create_app's handler renders it); raises an
    OptrollupError for a single-record route whose record was refused."""
    if path == BATCH or path == QUOTES:
        out, it = [], iter(results)
        for item in items:
            if isinstance(item, bytes):
                r = next(it)
                out.append(api.render(with_party(r) if path == QUOTES else r))
            else:
                out.append(item)  # decoding it failed in the gateway: already rendered
        return {"results": out}
    [r] = results
    if path == REPLACE:
        r = with_party(r)
    if isinstance(r, OptrollupError):
        raise r
    if path == ORDER or path == REPLACE:
        return api.render(r)
    return write_answer(api, records[0].msg, r)


class _Conn(asyncio.Protocol):
    def __init__(self, server: IngressServer) -> None:
        self.server, self.reader = server, FrameReader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.server.conns.add(self)
        transport.write(pack(self.server.hello()))

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.conns.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except Exception as exc:  # noqa: BLE001 - a broken peer: drop it
            log.error("ingress: bad frame from a gateway, closing it: %s", exc)
            if self.transport is not None:
                self.transport.close()
            return
        for f in frames:
            self.server.start(self, f)

    def answer(self, req_id: int, status: int, body: Any, headers: list[list[str]]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(pack([req_id, status, body, headers]))


class IngressServer:
    """Listens on `path` (mode 0600) on the running loop and answers gateway frames."""

    def __init__(self, api: Api, path: str | Path) -> None:
        self.api, self.path = api, Path(path)
        self.conns: set[_Conn] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None

    def hello(self) -> dict[str, Any]:
        node = self.api.node
        lim = node.cfg.limits
        return {"domain": node.domain, "maxBatch": lim.max_batch, "maxBodyBytes": lim.max_body_bytes}

    async def start_serving(self) -> None:
        p = str(self.path)
        if len(os.fsencode(p)) > 107:
            raise OSError(f"ingress socket path {p} is longer than a Unix socket allows (107 bytes)")
        try:
            self.path.unlink()  # a stale socket: the node holds the data dir's LevelDB lock
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(p)
        os.chmod(p, 0o600)  # before listen: nobody can connect yet
        self._server = await asyncio.get_running_loop().create_unix_server(
            lambda: _Conn(self), sock=sock)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in list(self.conns):
            if c.transport is not None:
                c.transport.close()
        for t in list(self.tasks):
            t.cancel()
        try:
            self.path.unlink()
        except OSError:
            pass

    def start(self, conn: _Conn, frame: Any) -> None:
        t = asyncio.get_running_loop().create_task(self.handle(conn, frame))
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def handle(self, conn: _Conn, frame: Any) -> None:
        t0 = time.perf_counter()
        api = self.api
        node = api.node
        try:
            req_id, path, ip, (error, items) = frame
        except (TypeError, ValueError):  # not a frame a gateway sends: a bug
            log.error("malformed ingress frame %.200r", frame)
            req_id = frame[0] if isinstance(frame, list) and frame else 0
            conn.answer(req_id, 500, error_body("internal_error",
                                                "internal error (a bug; it has been logged)"), [])
            node.metrics.latency.labels("?").observe(time.perf_counter() - t0)
            return

        async def work() -> Answer:
            if error is not None:  # the gateway could not decode it: its answer, in order
                status, body, hdrs = error
                node.metrics.rejected.labels("http", body["error"]["code"]).inc()
                return status, body, dict(hdrs)
            raws = [x for x in items if isinstance(x, bytes)]
            records, results = await node.submit_verified(raws, api.admit) if raws else ([], [])
            return 200, render(api, path, items, records, results), {}

        status, body, headers = await answer_write(api, ip, path, work)
        conn.answer(req_id, status, body, [[k, v] for k, v in headers.items()])
        node.metrics.latency.labels(path).observe(time.perf_counter() - t0)


@asynccontextmanager
async def serving(api: Api, data_dir: str | Path) -> AsyncIterator[IngressServer]:
    server = IngressServer(api, socket_path(data_dir))
    await server.start_serving()
    try:
        yield server
    finally:
        await server.close()


def attach(app: Any, data_dir: str | Path) -> None:
    """Run the ingress socket for the lifetime of `app` (a create_app FastAPI app), inside
    its lifespan, i.e. on the node's loop while the node runs."""
    inner = app.router.lifespan_context
    api = app.state.api

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            async with serving(api, data_dir):
                yield state

    app.router.lifespan_context = lifespan
