"""A small asyncio HTTP/1.1 client with keep-alive connections, for the service-to-service
calls of the peer protocol (and the benchmark's load generator).

Why not httpx: a proposal is one small JSON request per trade and httpx's async stack costs
~0.3-0.5 ms of CPU per request, more than everything else a co-signature needs (measured in
benchmarks/test_channels.py). This client writes one request, reads one `Content-Length` or
chunked answer, and keeps the connection for the next request. Plain `http://` and `https://`
(the default SSL context) are supported; nothing else of HTTP is (no proxies, no redirects).

A request that fails on a reused connection before any byte of the answer arrives (the server
closed an idle connection) is sent once more on a new connection: callers only send requests
that are safe to repeat (the peer protocol is idempotent: the same signed state gets the same
answer). Failures raise `optrollup_client._errors.TransportError`.
"""

from __future__ import annotations

import asyncio
import json
import ssl as _ssl
from typing import Any
from urllib.parse import urlsplit

from optrollup_client._errors import TransportError

__all__ = ["HttpPool", "Response"]

_MAX_HEADER = 64 * 1024
_MAX_BODY = 16 * 1024 * 1024


class Response:
    __slots__ = ("content", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.status, self.headers, self.content = status, headers, content

    def json(self) -> Any:
        return json.loads(self.content) if self.content else None


class _Conn:
    __slots__ = ("reader", "used", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.used = reader, writer, False

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - closing a broken transport
            pass


class _Fresh(Exception):
    """A reused connection failed before the answer started: retry on a new one."""


def _origin(url: str) -> tuple[str, str, int, str]:
    u = urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise TransportError(f"not an http(s) URL: {url!r}", code="bad_url")
    port = u.port or (443 if u.scheme == "https" else 80)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    return u.scheme, u.hostname, port, path


class HttpPool:
    """Keep-alive connections per origin. One instance per event loop."""

    def __init__(self, timeout: float = 10.0, max_idle: int = 16) -> None:
        self.timeout, self.max_idle = timeout, max_idle
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._ssl: _ssl.SSLContext | None = None

    async def close(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()

    async def _connect(self, scheme: str, host: str, port: int) -> _Conn:
        ctx = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = _ssl.create_default_context()
            ctx = self._ssl
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx, limit=_MAX_HEADER)
        return _Conn(reader, writer)

    async def request(self, method: str, url: str, body: bytes | None = None,
                      headers: dict[str, str] | None = None, *,
                      timeout: float | None = None) -> Response:
        scheme, host, port, path = _origin(url)
        key = (scheme, host, port)
        head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: application/json"]
        if body is not None:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        for k, v in (headers or {}).items():
            head.append(f"{k}: {v}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                for _ in range(2):
                    idle = self._idle.get(key)
                    conn = idle.pop() if idle else await self._connect(scheme, host, port)
                    try:
                        resp, keep = await self._exchange(conn, raw, method)
                    except _Fresh:
                        conn.close()
                        continue
                    except BaseException:
                        conn.close()
                        raise
                    if keep and len(self._idle.setdefault(key, [])) < self.max_idle:
                        self._idle[key].append(conn)
                    else:
                        conn.close()
                    return resp
                raise TransportError(f"{method} {url}: the connection was closed twice before an answer")
        except TimeoutError:
            raise TransportError(f"{method} {url}: no answer within "
                                 f"{self.timeout if timeout is None else timeout} s",
                                 code="timeout") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise TransportError(f"{method} {url}: {type(exc).__name__}: {exc}") from None

    async def _exchange(self, conn: _Conn, raw: bytes, method: str) -> tuple[Response, bool]:
        reused, conn.used = conn.used, True
        try:
            conn.writer.write(raw)
            await conn.writer.drain()
            line = await conn.reader.readline()
        except (ConnectionError, asyncio.IncompleteReadError):
            if reused:
                raise _Fresh() from None
            raise
        if not line:
            if reused:
                raise _Fresh()
            raise ConnectionError("the server closed the connection without an answer")
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ValueError(f"not an HTTP/1.x status line: {line[:80]!r}")
        status = int(parts[1])
        block = await conn.reader.readuntil(b"\r\n\r\n")
        headers: dict[str, str] = {}
        for h in block.decode("latin-1").split("\r\n"):
            if h:
                k, _, v = h.partition(":")
                headers[k.strip().lower()] = v.strip()
        keep = headers.get("connection", "").lower() != "close" and parts[0] == "HTTP/1.1"
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return Response(status, headers, b""), keep
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size_line = await conn.reader.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await conn.reader.readuntil(b"\r\n")  # (no trailers expected)
                    break
                total += size
                if total > _MAX_BODY:
                    raise ValueError("answer body too large")
                chunks.append(await conn.reader.readexactly(size))
                await conn.reader.readexactly(2)
            return Response(status, headers, b"".join(chunks)), keep
        if "content-length" in headers:
            n = int(headers["content-length"])
            if n > _MAX_BODY:
                raise ValueError("answer body too large")
            return Response(status, headers, await conn.reader.readexactly(n) if n else b""), keep
        return Response(status, headers, await conn.reader.read(_MAX_BODY)), False

    async def json(self, method: str, url: str, obj: Any = None,
                   headers: dict[str, str] | None = None, *,
                   timeout: float | None = None) -> Response:
        body = None if obj is None else json.dumps(obj, separators=(",", ":")).encode()
        return await self.request(method, url, body, headers, timeout=timeout)
