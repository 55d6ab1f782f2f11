"""`optrollup gateway`: an ingress worker. One uvicorn (httptools + uvloop) process that answers
the signed write routes of the node it is attached to (over DATA_DIR/ingress.sock) and nothing
else: it reads and parses the request, decodes it with the node's own wire functions, computes
the EIP-712 digests and recovers the signers (cext; batches of 4+ signatures without the GIL),
encodes the records, and sends one frame to the core, which charges the budgets, applies them
in order and answers with the rendered body (sequencer.ingress.core). The answers are the main
port's, byte for byte. Any other route: 404 pointing to the main API; `GET /health` says
whether the core is attached (200) or not (503), for load balancers.

If the core goes away, requests in flight and new ones are answered `503 store_unavailable`
at once (never a hang) while the worker reconnects every 0.2 s.

`serve --ingress-workers N --ingress-port P` (sequencer.serve) starts N workers with
`spawn_workers`: they share the port through SO_REUSEPORT (the kernel spreads connections over
them) and die with the serve process (PR_SET_PDEATHSIG, sequencer.procs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from cext import recover_addresses
from sequencer.api import wire
from sequencer.api.app import PRIMARY, SIGNED_WRITES
from sequencer.api.errors import error_body, error_parts
from sequencer.core import eip712
from sequencer.core.eip712 import FIELDS
from sequencer.errors import InvalidRequest, OptrollupError, PayloadTooLarge
from sequencer.ingress.protocol import FrameReader, pack, socket_path
from sequencer.node.records import Replace, Signed, encode_record

log = logging.getLogger("optrollup.gateway")

ORDER, BATCH, REPLACE, QUOTES = "/v1/orders", "/v1/orders/batch", "/v1/orders/replace", "/v1/quotes"
SINGLE = {path: (primary, FIELDS[PRIMARY[cls]], cls) for path, (primary, cls) in SIGNED_WRITES.items()}
ROUTES = frozenset({ORDER, BATCH, REPLACE, QUOTES, *SINGLE})
RECONNECT_S = 0.2


# -- decoding: what create_app's write handlers do before they call the node ----------------------

def decode(path: str, body: Any, max_batch: int) -> list[Any]:
    """The request's parts in order: a (msg, sig) pair, a ((cancel, sig), (order, sig)) amend,
    or (in a batch) the OptrollupError its item failed with. Raises the request's error."""
    if path == ORDER:
        msg, sig = wire.signed(body, "order")
        return [(wire.order(msg), sig)]
    if path == REPLACE:
        return [wire.replace_pair(body, "body")]
    if path == BATCH or path == QUOTES:
        out: list[Any] = []
        for i, item in enumerate(wire.batch_items(body, "orders" if path == BATCH else "quotes", max_batch)):
            try:
                if path == BATCH:
                    msg, sig = wire.signed(item, "order")
                    out.append((wire.order(msg, f"orders[{i}].order"), sig))
                else:
                    out.append(wire.replace_pair(item, f"quotes[{i}]"))
            except OptrollupError as exc:
                out.append(exc)
        return out
    primary, fields, cls = SINGLE[path]
    msg_json, sig = wire.signed(body, primary)
    return [(wire.message(msg_json, primary, fields, cls), sig)]


def _encode(rec: Signed | Replace) -> bytes | OptrollupError:
    try:
        return encode_record(rec)
    except (OverflowError, TypeError, ValueError) as exc:  # as Node._process answers it
        return InvalidRequest(f"request cannot be recorded: {exc}", code="unencodable")


def verify(domain: bytes, parts: list[Any]) -> list[Any]:
    """Each decoded part as its encoded, verified record (digests in one cext batch, signers
    recovered in one call: without the GIL from 4 signatures on), or the error it carries."""
    flat: list[tuple[Any, bytes]] = []
    for p in parts:
        if isinstance(p, OptrollupError):
            continue
        if not isinstance(p[1], bytes):  # an amend: cancel, order
            flat.extend(p)
        else:
            flat.append(p)
    if not flat:
        return parts
    digests = eip712.digests(domain, [m for m, _ in flat])
    signers = recover_addresses(digests, [s for _, s in flat])
    out, k = [], 0
    for p in parts:
        if isinstance(p, OptrollupError):
            out.append(p)
        elif not isinstance(p[1], bytes):
            (c, cs), (o, os_) = p
            out.append(_encode(Replace(Signed(c, cs, digests[k], signers[k]),
                                       Signed(o, os_, digests[k + 1], signers[k + 1]))))
            k += 2
        else:
            m, s = p
            out.append(_encode(Signed(m, s, digests[k], signers[k])))
            k += 1
    return out


def payload(path: str, body: bytes | None, declared: str | None, domain: bytes,
            max_batch: int, max_body: int) -> list[Any]:
    """The frame payload [error, items] of a request with the raw `body` (None: it exceeded
    `max_body` while being read) and Content-Length `declared`."""
    try:
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise PayloadTooLarge(f"body of {declared} bytes exceeds the {max_body}-byte limit")
        if body is None:
            raise PayloadTooLarge(f"body exceeds the {max_body}-byte limit")
        items = verify(domain, decode(path, wire.parse_json(body), max_batch))
        if path not in (BATCH, QUOTES) and isinstance(items[0], OptrollupError):
            raise items[0]
    except OptrollupError as exc:
        status, eb, hdrs = error_parts(exc)
        return [[status, eb, [[k, v] for k, v in hdrs.items()]], []]
    return [None, [x if isinstance(x, bytes) else {"error": {"code": x.code, "message": x.message}}
                   for x in items]]


# -- the link to the core ---------------------------------------------------------------------------

class CoreLink(asyncio.Protocol):
    """The connection to the core: frames out, answers matched back by request id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.hello: dict[str, Any] | None = None
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.lost: asyncio.Event | None = None
        self.error = "not connected yet"

    @property
    def ready(self) -> bool:
        return self.transport is not None and self.hello is not None

    async def run(self) -> None:
        """Connect, and reconnect whenever the core goes away, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            self.lost = asyncio.Event()
            self.reader = FrameReader()
            try:
                await loop.create_unix_connection(lambda: self, str(self.path))
            except OSError as exc:
                self.error = f"cannot reach the core at {self.path}: {exc.strerror or exc}"
                await asyncio.sleep(RECONNECT_S)
                continue
            await self.lost.wait()
            await asyncio.sleep(RECONNECT_S)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except ValueError as exc:
            log.error("bad frame from the core: %s", exc)
            self.transport.close()  # type: ignore[union-attr]
            return
        for f in frames:
            if self.hello is None:
                self.hello = f
                log.info("attached to the core at %s", self.path)
                continue
            fut = self.pending.pop(f[0], None)
            if fut is not None and not fut.done():
                fut.set_result(f)

    def connection_lost(self, exc: Exception | None) -> None:
        was = self.hello is not None
        self.transport, self.hello = None, None
        self.error = "the core closed the connection" + (f": {exc}" if exc else "")
        if was:
            log.warning("lost the core at %s; reconnecting", self.path)
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_result(None)
        if self.lost is not None:
            self.lost.set()

    async def call(self, path: str, ip: str, pl: list[Any]) -> Any:
        """The core's [req_id, status, body, headers], or None if it went away meanwhile."""
        if not self.ready:
            return None
        self.next_id += 1
        rid = self.next_id
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        self.transport.write(pack([rid, path, ip, pl]))  # type: ignore[union-attr]
        return await fut


# -- the ASGI app ---------------------------------------------------------------------------------

def _json(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


class Gateway:
    """ASGI app of one ingress worker."""

    def __init__(self, data_dir: str | Path, main_url: str | None = None) -> None:
        self.link = CoreLink(socket_path(data_dir))
        self.main_url = main_url
        self._task: asyncio.Task[None] | None = None

    def unavailable(self) -> tuple[int, dict[str, Any]]:
        return 503, error_body("store_unavailable",
                               f"the sequencer core is not reachable from this ingress worker "
                               f"({self.link.error}); retry later")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        typ = scope["type"]
        if typ == "lifespan":
            await self._lifespan(receive, send)
            return
        if typ != "http":
            if typ == "websocket":
                await send({"type": "websocket.close", "code": 1008,
                            "reason": "the stream is served on the main API port"})
            return
        path, method = scope["path"], scope["method"]
        headers: list[tuple[bytes, bytes]] = []
        if method == "POST" and path in ROUTES:
            try:
                status, body, headers = await self._write(scope, receive, path)
            except Exception:  # a bug: logged, answered as the app's last-resort handler does
                log.exception("unhandled error on POST %s", path)
                status, body = 500, error_body("internal_error",
                                               "internal error (a bug; it has been logged)")
        elif method == "GET" and path in ("/health", "/v1/health"):
            status, body = ((200, {"status": "ok", "core": "attached"}) if self.link.ready
                            else self.unavailable())
        else:
            where = f" at {self.main_url}" if self.main_url else ""
            status, body = 404, error_body(
                "not_found", f"no route {method} {path} on this order-entry port: it serves only "
                             f"the signed write routes (POST {', '.join(sorted(ROUTES))}); "
                             f"everything else is on the main API port{where}")
        raw = _json(body)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(raw)).encode()), *headers]})
        await send({"type": "http.response.body", "body": raw})

    async def _write(self, scope: dict[str, Any], receive: Any,
                     path: str) -> tuple[int, Any, list[tuple[bytes, bytes]]]:
        link = self.link
        if not link.ready:
            return (*self.unavailable(), [])
        hello = link.hello
        assert hello is not None
        max_body = hello["maxBodyBytes"]
        declared = None
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                declared = v.decode("latin-1")
                break
        body: bytes | None = None
        if not (declared is not None and declared.isdigit() and int(declared) > max_body):
            buf = bytearray()
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    break
                buf += msg.get("body", b"")
                if len(buf) > max_body:
                    break
                if not msg.get("more_body", False):
                    break
            body = bytes(buf) if len(buf) <= max_body else None
        pl = payload(path, body, declared, hello["domain"], hello["maxBatch"], max_body)
        client = scope.get("client")
        got = await link.call(path, client[0] if client else "?", pl)
        if got is None:
            return (*self.unavailable(), [])
        _, status, answer, hdrs = got
        return status, answer, [(k.lower().encode(), v.encode()) for k, v in hdrs]

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                self._task = asyncio.get_running_loop().create_task(self.link.run())
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                if self._task is not None:
                    self._task.cancel()
                if self.link.transport is not None:
                    self.link.transport.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


# -- processes ------------------------------------------------------------------------------------

def reuseport_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, port))
    if listen:
        s.listen(2048)
    s.setblocking(False)
    return s


def run_gateway(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - the command's own dependency

    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sock = reuseport_socket(args.host, args.port)
    app = Gateway(args.data_dir, args.main_url)
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on",
                            log_level=args.log_level, access_log=False,
                            timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def spawn_workers(n: int, data_dir: str | Path, host: str, port: int, *, main_url: str | None,
                  log_level: str = "warning") -> tuple[socket.socket, list[Any]]:
    """Start `n` gateway processes on (host, port), dying with this process. Returns the
    reservation socket (bound with SO_REUSEPORT, never listening: it fixes the port, also when
    `port` is 0, for as long as it is open) and the processes."""
    from sequencer import procs  # noqa: PLC0415

    reserve = reuseport_socket(host, port, listen=False)
    port = reserve.getsockname()[1]
    argv = [sys.executable, "-m", "sequencer.cli", "gateway", "--data-dir", str(data_dir),
            "--host", host, "--port", str(port), "--log-level", log_level]
    if main_url:
        argv += ["--main-url", main_url]
    children = [procs.popen(argv, env={**os.environ, "PYTHONUNBUFFERED": "1"}) for _ in range(n)]
    return reserve, children


def register(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001
    p = sub.add_parser("gateway", help="an ingress worker: the signed write routes of a running "
                                       "`optrollup serve` (same data dir), in its own process")
    p.add_argument("--data-dir", required=True, help="the serving node's data dir (its ingress.sock)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081, help="shared with other workers (SO_REUSEPORT)")
    p.add_argument("--main-url", default=None, help="the node's main API URL (named in 404 answers)")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=run_gateway)

