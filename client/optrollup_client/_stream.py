"""Client side of the WebSocket `/v1/stream` (sync `Stream`, asyncio `AsyncStream`).

Protocol (see sequencer/api/stream.py): the client sends `{"op": ..., "id": n}` requests; the
server answers each on channel "control" echoing `id` (`{"op": "subscribed"|..., ...}` or
`{"op": "error", "status", "error": {"code", "message"}}`) and pushes `{"channel", "seq",
"data"}` where `seq` counts 1, 2, 3... per channel and connection, so a skipped number is a gap.
"""

from __future__ import annotations

import inspect
import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from optrollup_client._errors import ClientError, StreamClosed, StreamGap, TransportError, error_from_answer
from optrollup_client._types import StreamMessage

try:  # the `stream` extra: pip install optrollup-client[stream]
    from websockets.asyncio.client import ClientConnection as AsyncConnection
    from websockets.asyncio.client import connect as aconnect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake
    from websockets.sync.client import ClientConnection, connect
except ImportError:  # pragma: no cover - exercised by tests/client/test_light_install.py
    HAVE_WEBSOCKETS = False

    class ConnectionClosed(Exception):  # type: ignore[no-redef]  # never raised: no connection
        """Stand-in so the except clauses below stay valid without websockets."""

    InvalidHandshake = ConnectionClosed  # type: ignore[misc,assignment]
    ClientConnection = AsyncConnection = Any  # type: ignore[misc,assignment]
    connect = aconnect = None  # type: ignore[assignment]
else:
    HAVE_WEBSOCKETS = True

__all__ = ["HAVE_WEBSOCKETS", "AsyncStream", "Stream", "stream_url"]

AuthFn = Callable[[], "dict[str, str] | None"]
# websockets >= 17 warns unless a directly returned connection is asked for explicitly.
_LEGACY: dict[str, Any] = ({"legacy": True} if HAVE_WEBSOCKETS and "legacy" in inspect.signature(connect).parameters
                           else {})


def _require_websockets() -> None:
    if not HAVE_WEBSOCKETS:
        raise ClientError("the stream needs the websockets package: pip install 'optrollup-client[stream]'",
                          code="stream_unavailable")


def stream_url(http_url: str) -> str:
    """`http(s)://host[:port]` -> `ws(s)://host[:port]/v1/stream`."""
    base = http_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[8:]
    elif base.startswith("http://"):
        base = "ws://" + base[7:]
    return base + "/v1/stream"


class _Protocol:
    """Request ids, reply matching, seq checking: no I/O."""

    def __init__(self, auth: AuthFn, heartbeats: bool, check_gaps: bool) -> None:
        self.auth, self.heartbeats, self.check_gaps = auth, heartbeats, check_gaps
        self.next_id = 0
        self.seq: dict[str, int] = {}
        self.replies: dict[int, Any] = {}
        self.buffer: deque[StreamMessage] = deque()

    def request(self, op: str, **fields: Any) -> tuple[int, str]:
        self.next_id += 1
        msg = {"op": op, "id": self.next_id, **fields}
        if (op == "subscribe" and str(fields.get("channel", "")).startswith("orders.")) or op == "auth":
            a = self.auth()
            if a is None:
                raise ClientError("orders.<account> needs a client with a key", code="no_key")
            msg["auth"] = a
        return self.next_id, json.dumps(msg)

    def feed(self, raw: str | bytes) -> None:
        """Parse one server message into `replies` or `buffer` (raises StreamGap)."""
        try:
            m = json.loads(raw)
            channel, seq, data = m["channel"], int(m["seq"]), m["data"]
        except (ValueError, KeyError, TypeError):
            raise ClientError(f"unreadable stream message: {raw[:200]!r}", code="bad_answer") from None
        if channel == "control" and isinstance(data, dict) and "id" in data:
            self.replies[int(data["id"])] = data
            return
        last = self.seq.get(channel, 0)
        if self.check_gaps and seq != last + 1:
            raise StreamGap(channel, last + 1, seq)
        self.seq[channel] = seq
        if channel == "heartbeat" and not self.heartbeats:
            return
        self.buffer.append(StreamMessage(channel, seq, data))

    def reply(self, rid: int) -> Any | None:
        """The reply to request `rid` if it came (raises its typed error)."""
        data = self.replies.pop(rid, None)
        if data is not None and data.get("op") == "error":
            raise error_from_answer(int(data.get("status") or 400), data)
        return data


def _closed(exc: ConnectionClosed) -> StreamClosed:
    rcvd = exc.rcvd
    code, reason = (rcvd.code, rcvd.reason) if rcvd is not None else (None, "")
    return StreamClosed(f"stream closed (code {code}): {reason or 'no reason'}", close_code=code,
                        reason=reason)


class Stream:
    """A sync stream; `with client.stream("book.X") as s: for msg in s: ...`."""

    def __init__(self, url: str, channels: list[str], *, auth: AuthFn, cancel_on_disconnect: bool = False,
                 heartbeats: bool = False, check_gaps: bool = True, open_timeout: float = 10.0) -> None:
        self.url, self.channels = url, channels
        self.cancel_on_disconnect = cancel_on_disconnect
        self.open_timeout = open_timeout
        self._p = _Protocol(auth, heartbeats, check_gaps)
        self._ws: ClientConnection | None = None
        self._closing = False

    def __enter__(self) -> "Stream":
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect, subscribe to every channel, enable cancel-on-disconnect if asked."""
        try:
            _require_websockets()
            self._ws = connect(self.url, open_timeout=self.open_timeout, max_size=1 << 24, **_LEGACY)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise TransportError(f"cannot open {self.url}: {exc}") from exc
        for ch in self.channels:
            self.subscribe(ch)
        if self.cancel_on_disconnect:
            self.call("cancel_on_disconnect", enabled=True)

    def call(self, op: str, timeout: float | None = 10.0, **fields: Any) -> Any:
        """Send one request and wait for its reply (data that arrives meanwhile is kept)."""
        rid, text = self._p.request(op, **fields)
        ws = self._conn()
        try:
            ws.send(text)
            while (got := self._p.reply(rid)) is None:
                self._p.feed(ws.recv(timeout))
        except ConnectionClosed as exc:
            raise _closed(exc) from None
        return got

    def subscribe(self, channel: str) -> None:
        """Subscribe (orders.<account> sends the auth object); raises the server's typed error."""
        self.call("subscribe", channel=channel)

    def unsubscribe(self, channel: str) -> None:
        """Stop receiving `channel`."""
        self.call("unsubscribe", channel=channel)

    def ping(self) -> None:
        """Round-trip a ping through the server."""
        self.call("ping")

    def recv(self, timeout: float | None = None) -> StreamMessage:
        """The next message; TimeoutError after `timeout` s; StreamClosed if the server closed."""
        ws = self._conn()
        try:
            while not self._p.buffer:
                self._p.feed(ws.recv(timeout))
        except ConnectionClosed as exc:
            raise _closed(exc) from None
        return self._p.buffer.popleft()

    def __iter__(self) -> Iterator[StreamMessage]:
        while True:
            try:
                yield self.recv()
            except StreamClosed:
                if self._closing:
                    return
                raise

    def close(self) -> None:
        """Close the connection (the server then runs cancel-on-disconnect if enabled)."""
        self._closing = True
        if self._ws is not None:
            self._ws.close()

    def _conn(self) -> ClientConnection:
        if self._ws is None:
            raise ClientError("stream is not open", code="stream_not_open")
        return self._ws


class AsyncStream:
    """The asyncio twin of `Stream`: `async with client.stream(...) as s: async for m in s`."""

    def __init__(self, url: str, channels: list[str], *, auth: AuthFn, cancel_on_disconnect: bool = False,
                 heartbeats: bool = False, check_gaps: bool = True, open_timeout: float = 10.0) -> None:
        self.url, self.channels = url, channels
        self.cancel_on_disconnect = cancel_on_disconnect
        self.open_timeout = open_timeout
        self._p = _Protocol(auth, heartbeats, check_gaps)
        self._ws: AsyncConnection | None = None
        self._closing = False

    async def __aenter__(self) -> "AsyncStream":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect, subscribe to every channel, enable cancel-on-disconnect if asked."""
        try:
            _require_websockets()
            self._ws = await aconnect(self.url, open_timeout=self.open_timeout, max_size=1 << 24)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise TransportError(f"cannot open {self.url}: {exc}") from exc
        for ch in self.channels:
            await self.subscribe(ch)
        if self.cancel_on_disconnect:
            await self.call("cancel_on_disconnect", enabled=True)

    async def call(self, op: str, **fields: Any) -> Any:
        """Send one request and wait for its reply (data that arrives meanwhile is kept)."""
        rid, text = self._p.request(op, **fields)
        ws = self._conn()
        try:
            await ws.send(text)
            while (got := self._p.reply(rid)) is None:
                self._p.feed(await ws.recv())
        except ConnectionClosed as exc:
            raise _closed(exc) from None
        return got

    async def subscribe(self, channel: str) -> None:
        """See `Stream.subscribe`."""
        await self.call("subscribe", channel=channel)

    async def unsubscribe(self, channel: str) -> None:
        """See `Stream.unsubscribe`."""
        await self.call("unsubscribe", channel=channel)

    async def ping(self) -> None:
        """See `Stream.ping`."""
        await self.call("ping")

    async def recv(self) -> StreamMessage:
        """The next message (wrap in asyncio.wait_for for a timeout)."""
        ws = self._conn()
        try:
            while not self._p.buffer:
                self._p.feed(await ws.recv())
        except ConnectionClosed as exc:
            raise _closed(exc) from None
        return self._p.buffer.popleft()

    def __aiter__(self) -> AsyncIterator[StreamMessage]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[StreamMessage]:
        while True:
            try:
                yield await self.recv()
            except StreamClosed:
                if self._closing:
                    return
                raise

    async def close(self) -> None:
        """Close the connection."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()

    def _conn(self) -> AsyncConnection:
        if self._ws is None:
            raise ClientError("stream is not open", code="stream_not_open")
        return self._ws

