"""WebSocket `/v1/stream`: book, trades, blocks and an account's own orders, pushed live.

Protocol (JSON text messages). Client requests, each with an optional `id` echoed in the reply:
  {"op": "subscribe", "channel": "book.<instrument>" | "trades.<instrument>" | "blocks"
                                 | "marks" | "liquidations" | "orders.<account>", "auth": {...}}
                                 (auth only for orders)
  {"op": "unsubscribe", "channel": ...}
  {"op": "auth", "auth": {"account", "timestamp", "signature"}}   (the three auth-header values)
  {"op": "cancel_on_disconnect", "enabled": true}   (authenticated sessions only)
  {"op": "ping"}
Server messages are all `{"channel", "seq", "data"}`; `seq` is 1, 2, 3... per channel and
connection, so a skipped number means a lost message (the server never skips: a consumer too
slow for its bounded queue is disconnected with close code 1008 and reason "slow_consumer ...").
  control    replies: {"op": "subscribed"|"unsubscribed"|"authenticated"|"pong"|..., "id"} or
             {"op": "error", "id", "status": <HTTP-equivalent>, "error": {"code", "message"}}
  heartbeat  every `heartbeat_seconds`: {"time": <node clock, unix s>, "head": <block number>}
  book.X     first {"type": "snapshot", "instrument", "sequence", "bids", "asks"} (top `book_depth`
             levels, [price, amount] decimal strings, best first), then {"type": "delta", ...}
             with only the changed levels of that top view (amount "0" = level left the view),
             or a fresh snapshot when that is smaller. `sequence` is the node's book sequence
             number (as in GET /v1/book); deltas coalesce changes within one event-loop turn, so it
             can jump by more than one.
  trades.X   each trade as in GET /v1/trades.
  blocks     each sealed block's header as in GET /v1/blocks/{n}, once that block is durable.
  marks      first, and after each durable block that changed any of them, every listed
             instrument with its mark, IV and greeks as GET /v1/instruments answers:
             {"type": "marks", "block": N, "instruments": [...]}.
  liquidations  every liquidation step (docs/liquidation.md): {"type": "start"|"takeover"|"end",
             "account", "timestamp"} from a block's detection, {"type": "taken", ...} for each
             Liquidate (as POST /v1/liquidations answers it), and {"type": "shortfall",
             "shortfall", "added"} when the insurance fund could not absorb a loss.
  orders.A   first {"type": "snapshot", "openOrders": [...]}, then {"type": "update", "orderHash",
             "instrument", "status", "filledAmount", "remaining", ...} whenever one of A's orders
             rests, fills or leaves the book, and {"type": "mmp", "event": "triggered"|"reset"|
             "expired", ...} when A's market-maker protection freezes or unfreezes an underlying
             (sequencer.api.mmp.mmp_event_json), and {"type": "liquidation", "event": "start"|
             "takeover"|"end"|"taken", ...} when A is liquidated (or, "taken", A liquidates).

Events come from `node.listeners` on the loop thread; callbacks only enqueue (or mark dirty and
schedule one flush per loop turn), never block.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from cext import to_checksum
from sequencer.api import views, wire
from sequencer.api.auth import authenticate
from sequencer.api.errors import status_of
from sequencer.api.liquidation import take_json
from sequencer.api.mmp import mmp_event_json
from sequencer.core.header import Header
from sequencer.errors import InvalidRequest, InvalidSignature, NotFound, OptrollupError
from sequencer.monitor import IpBlocked

log = logging.getLogger("optrollup.stream")

SLOW_CONSUMER = 1008          # close code (policy violation) for an overflowing queue
MAX_MESSAGE_BYTES = 64 * 1024
MAX_SUBSCRIPTIONS = 100


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def trade_json(t: dict[str, Any]) -> dict[str, Any]:
    """A node trade record rendered as in GET /v1/trades."""
    return {**t, "price": views.money(t["price"]), "amount": views.money(t["amount"]),
            "makerOrder": views.h(t["makerOrder"]), "takerOrder": views.h(t["takerOrder"])}


class Conn:
    """One WebSocket: a bounded queue of serialized messages, drained by a writer task."""

    def __init__(self, ws: WebSocket, queue_size: int) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.seq: dict[str, int] = {}
        self.channels: set[str] = set()
        self.account: bytes | None = None
        self.cancel_on_disconnect = False
        self.dead = False
        self.tasks: list[asyncio.Task[None]] = []
        self.closer: asyncio.Task[None] | None = None

    def push_raw(self, channel: str, data_json: str) -> None:
        """Enqueue one message whose `data` is already JSON; overflow drops the connection."""
        if self.dead:
            return
        n = self.seq.get(channel, 0) + 1
        self.seq[channel] = n
        try:
            self.queue.put_nowait(f'{{"channel":{_dumps(channel)},"seq":{n},"data":{data_json}}}')
        except asyncio.QueueFull:
            self.drop(SLOW_CONSUMER, f"slow_consumer: more than {self.queue.maxsize} messages queued")

    def push(self, channel: str, data: Any) -> None:
        self.push_raw(channel, _dumps(data))

    def drop(self, code: int, reason: str) -> None:
        """Stop sending and close with `code`/`reason` (from the loop thread, without blocking)."""
        if self.dead:
            return
        self.dead = True
        log.info("stream: closing a connection (%d %s)", code, reason)
        for t in self.tasks:
            t.cancel()
        self.closer = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code=code, reason=reason[:120]), 5)
        except Exception:  # noqa: BLE001 - the peer may already be gone
            pass

    async def writer(self) -> None:
        while True:
            text = await self.queue.get()
            await self.ws.send_text(text)


class StreamHub:
    """Subscriptions and fan-out. Everything but `on_event` runs on the event-loop thread."""

    def __init__(self, api: Any, *, heartbeat_seconds: float = 10.0, queue_size: int = 1000,
                 book_depth: int = 50) -> None:
        self.api, self.node = api, api.node
        self.heartbeat_seconds, self.queue_size, self.book_depth = heartbeat_seconds, queue_size, book_depth
        self.conns: set[Conn] = set()
        self.books: dict[str, set[Conn]] = {}
        self.trades: dict[str, set[Conn]] = {}
        self.blocks: set[Conn] = set()
        self.marks: set[Conn] = set()
        self.last_marks = ""       # the `instruments` part last pushed on `marks` (JSON text)
        self.liquidations: set[Conn] = set()
        self.orders: dict[bytes, set[Conn]] = {}
        self.views: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
        self.open_sets: dict[tuple[bytes, str], dict[bytes, int]] = {}
        self.dirty_books: set[str] = set()
        self.dirty_order_books: set[str] = set()
        self.dirty_orders: set[bytes] = set()
        self.flush_pending = False
        self.pending_blocks: deque[Header] = deque()
        self.block_task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = 0
        self.node.listeners.append(self.on_event)

    # -- node events ----------------------------------------------------------------------------

    def on_event(self, kind: str, payload: Any) -> None:
        """The node listener: O(1) unless someone subscribed to what happened."""
        if not self.conns or self.loop is None:
            return
        if threading.get_ident() != self.loop_thread:
            self.loop.call_soon_threadsafe(self._event, kind, payload)
        else:
            self._event(kind, payload)

    def _event(self, kind: str, payload: Any) -> None:
        if kind == "book":
            if payload in self.books:
                self.dirty_books.add(payload)
                self._schedule()
            if self.orders:
                self.dirty_order_books.add(payload)
                self._schedule()
        elif kind == "trade":
            subs = self.trades.get(payload["instrument"])
            if subs:
                data = _dumps(trade_json(payload))
                for c in list(subs):
                    c.push_raw("trades." + payload["instrument"], data)
            if self.orders:
                for d in (payload["makerOrder"], payload["takerOrder"]):
                    o = self.node.order(d)
                    if o is not None and o.account in self.orders:
                        self.dirty_orders.add(d)
                        self._schedule()
        elif kind == "mmp":
            subs = self.orders.get(payload.account)
            if subs:
                data = _dumps(mmp_event_json(payload))
                for c in list(subs):
                    c.push_raw("orders." + to_checksum(payload.account), data)
        elif kind in ("auction", "liquidation", "shortfall"):
            self._liquidation_event(kind, payload)
        elif kind == "block" and (self.blocks or self.marks):
            self.pending_blocks.append(payload)
            if self.block_task is None or self.block_task.done():
                self.block_task = asyncio.get_running_loop().create_task(self._push_blocks())

    def _liquidation_event(self, kind: str, payload: Any) -> None:
        accounts: tuple[bytes, ...] = ()
        if kind == "auction":
            step, account, ts = payload
            data = {"type": step, "account": to_checksum(account), "timestamp": ts}
            accounts = (account,)
        elif kind == "liquidation":
            data = {**take_json(payload), "type": "taken"}
            accounts = (payload.account, payload.liquidator)
        else:
            total, added = payload
            data = {"type": "shortfall", "shortfall": views.money(total), "added": views.money(added)}
        if self.liquidations:
            raw = _dumps(data)
            for c in list(self.liquidations):
                c.push_raw("liquidations", raw)
        for a in accounts:
            subs = self.orders.get(a)
            if subs:
                raw = _dumps({**data, "type": "liquidation", "event": data["type"]})
                for c in list(subs):
                    c.push_raw("orders." + to_checksum(a), raw)

    async def _push_blocks(self) -> None:
        """Announce sealed blocks in order, each once it is durable and readable (GET /v1/blocks/n):
        the node calls listeners while sealing, before the block's write batch is synced."""
        while self.pending_blocks:
            h: Header = self.pending_blocks[0]
            for _ in range(5000):                 # 10 s at most; a sync normally takes ~ms
                if self.node.block(h.number) is not None:
                    break
                await asyncio.sleep(0.002)
            self.pending_blocks.popleft()
            data = _dumps({"header": h.to_json()})
            for c in list(self.blocks):
                c.push_raw("blocks", data)
            if self.marks:
                self._push_marks(h.number)

    def _marks_json(self) -> str:
        return _dumps(views.instruments_json(self.node))

    def _push_marks(self, block: int) -> None:
        """Every mark after block `block`, to `marks` subscribers, if any changed."""
        now = self._marks_json()
        if now != self.last_marks:
            self.last_marks = now
            data = f'{{"type":"marks","block":{block},"instruments":{now}}}'
            for c in list(self.marks):
                c.push_raw("marks", data)

    def _schedule(self) -> None:
        if not self.flush_pending and self.loop is not None:
            self.flush_pending = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_pending = False
        for name in list(self.dirty_books):
            self._flush_book(name)
        for name in self.dirty_order_books:
            for acct in self.orders:
                cur = self.node.open_remaining(acct, name)
                prev = self.open_sets.pop((acct, name), {})
                self.dirty_orders.update(d for d in cur.keys() | prev.keys() if cur.get(d) != prev.get(d))
                if cur:
                    self.open_sets[(acct, name)] = cur
        self.dirty_order_books.clear()
        dirty, self.dirty_orders = self.dirty_orders, set()
        for d in dirty:
            got = self._order_update(d)
            if got is not None:
                acct, data = got
                for c in list(self.orders.get(acct, ())):
                    c.push_raw("orders." + to_checksum(acct), data)

    # -- books ----------------------------------------------------------------------------------

    def _view(self, name: str) -> tuple[dict[int, int], dict[int, int]]:
        b = self.node.book(name, self.book_depth)
        return dict(b.bids), dict(b.asks)

    def _snapshot(self, name: str) -> dict[str, Any]:
        bids, asks = self.views[name]
        return {"type": "snapshot", "instrument": name, "sequence": self.node.book_sequence(name),
                "bids": [[views.money(p), views.money(a)] for p, a in sorted(bids.items(), reverse=True)],
                "asks": [[views.money(p), views.money(a)] for p, a in sorted(asks.items())]}

    def _flush_book(self, name: str) -> None:
        self.dirty_books.discard(name)
        subs = self.books.get(name)
        if not subs:
            return
        old_bids, old_asks = self.views[name]
        bids, asks = self.views[name] = self._view(name)

        def diff(old: dict[int, int], new: dict[int, int], best_high: bool) -> list[list[str]]:
            ps = sorted((p for p in old.keys() | new.keys() if old.get(p) != new.get(p)), reverse=best_high)
            return [[views.money(p), views.money(new.get(p, 0))] for p in ps]

        db, da = diff(old_bids, bids, True), diff(old_asks, asks, False)
        if not db and not da:
            return
        if len(db) + len(da) > len(bids) + len(asks):
            data = _dumps(self._snapshot(name))
        else:
            data = _dumps({"type": "delta", "instrument": name,
                           "sequence": self.node.book_sequence(name), "bids": db, "asks": da})
        for c in list(subs):
            c.push_raw("book." + name, data)

    # -- orders ---------------------------------------------------------------------------------

    def _order_update(self, d: bytes) -> tuple[bytes, str] | None:
        got = self.node.order_status(d)
        if got is None:
            return None
        order, status, filled = got
        remaining = self.node.remaining(d)
        return order.account, _dumps({
            "type": "update", "orderHash": views.h(d), "instrument": order.instrument, "status": status,
            "filledAmount": views.money(filled), "remaining": views.money(remaining),
            "isBuy": order.isBuy, "price": views.money(order.price), "amount": views.money(order.amount)})

    def _open_orders(self, acct: bytes) -> list[dict[str, Any]]:
        out = []
        for name, per in self.node.open_orders(acct).items():
            if per:
                self.open_sets[(acct, name)] = {d: rem for d, _, rem in per}
            out += [{"orderHash": views.h(d), "remaining": views.money(rem), **views.order_json(o)}
                    for d, o, rem in per]
        return out

    # -- requests -------------------------------------------------------------------------------

    def _authenticate(self, auth: Any) -> bytes:
        """The account an auth object (the three auth-header values) proves; raises if it doesn't."""
        a = wire.require_object(auth, "auth", ("account", "timestamp", "signature"))
        headers = {"x-optrollup-account": a["account"], "x-optrollup-timestamp": str(a["timestamp"]),
                   "x-optrollup-signature": a["signature"]}
        return authenticate(headers, int(self.node.clock()), self.api.may_sign_for)

    def subscribe(self, conn: Conn, msg: Any) -> dict[str, Any]:
        channel = wire.string(msg.get("channel"), "channel", 80)
        if channel in conn.channels:
            return {"op": "subscribed", "channel": channel}
        if len(conn.channels) >= MAX_SUBSCRIPTIONS:
            raise InvalidRequest(f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection",
                                 code="too_many_subscriptions")
        kind, _, arg = channel.partition(".")
        if kind in ("book", "trades"):
            if not self.node.is_listed(arg):
                raise NotFound(f"instrument {arg!r} is not listed", code="unknown_instrument")
            if kind == "trades":
                self.trades.setdefault(arg, set()).add(conn)
            else:
                if arg in self.views and arg in self.dirty_books:
                    self._flush_book(arg)          # bring the shared view up to date first
                elif arg not in self.views:
                    self.views[arg] = self._view(arg)
                self.books.setdefault(arg, set()).add(conn)
                conn.push(channel, self._snapshot(arg))
        elif channel == "blocks":
            self.blocks.add(conn)
        elif channel == "liquidations":
            self.liquidations.add(conn)
        elif channel == "marks":
            self.marks.add(conn)
            conn.push_raw(channel, f'{{"type":"marks","block":{self.node.durable_head()},'
                                   f'"instruments":{self._marks_json()}}}')
        elif kind == "orders":
            acct = wire.address(arg, "channel account")
            who = self._authenticate(msg["auth"]) if msg.get("auth") is not None else conn.account
            if who is None:
                raise InvalidSignature("orders.<account> needs an auth object (account, timestamp, "
                                       "signature as in the auth headers)", code="auth_required")
            if who != acct:
                raise InvalidRequest(f"authenticated as {to_checksum(who)}, not "
                                     f"{to_checksum(acct)}", code="auth_account_mismatch")
            conn.account = who
            channel = "orders." + to_checksum(acct)
            self.orders.setdefault(acct, set()).add(conn)
            conn.push(channel, {"type": "snapshot", "openOrders": self._open_orders(acct)})
        else:
            raise InvalidRequest(f"unknown channel {channel!r}; expected book.<instrument>, "
                                 "trades.<instrument>, blocks, marks, liquidations or orders.<account>",
                                 code="unknown_channel")
        conn.channels.add(channel)
        return {"op": "subscribed", "channel": channel}

    def unsubscribe(self, conn: Conn, channel: str) -> None:
        conn.channels.discard(channel)
        kind, _, arg = channel.partition(".")
        table: dict[Any, set[Conn]] | None = {"book": self.books, "trades": self.trades}.get(kind)
        key: Any = arg
        if kind == "orders":
            try:
                key, table = wire.address(arg, "channel"), self.orders
            except OptrollupError:
                return
        if channel == "blocks":
            self.blocks.discard(conn)
        elif channel == "liquidations":
            self.liquidations.discard(conn)
        elif channel == "marks":
            self.marks.discard(conn)
        elif table is not None and key in table:
            table[key].discard(conn)
            if not table[key]:
                del table[key]
                if kind == "book":
                    self.views.pop(arg, None)
                if kind == "orders":
                    for k in [k for k in self.open_sets if k[0] == key]:
                        del self.open_sets[k]

    def handle(self, conn: Conn, raw: str | bytes, host: str = "?") -> None:
        """One client message, charged to the client's IP budget; answers on the control channel."""
        rid: Any = None
        try:
            self.api.charge_ip(host)
            if len(raw) > MAX_MESSAGE_BYTES:
                raise InvalidRequest(f"message exceeds {MAX_MESSAGE_BYTES} bytes", code="body_too_large")
            try:
                msg = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidRequest(f"message is not valid JSON: {exc}", code="malformed_json") from None
            if not isinstance(msg, dict):
                raise InvalidRequest("message must be a JSON object", code="invalid_type")
            rid = msg.get("id")
            op = msg.get("op")
            if op == "subscribe":
                reply = self.subscribe(conn, msg)
            elif op == "unsubscribe":
                channel = wire.string(msg.get("channel"), "channel", 80)
                self.unsubscribe(conn, channel)
                reply = {"op": "unsubscribed", "channel": channel}
            elif op == "auth":
                conn.account = self._authenticate(msg.get("auth"))
                reply = {"op": "authenticated", "account": to_checksum(conn.account)}
            elif op == "ping":
                reply = {"op": "pong", "time": int(self.node.clock())}
            elif op == "cancel_on_disconnect":
                enabled = wire.boolean(msg.get("enabled"), "enabled")
                if enabled and conn.account is None:
                    raise InvalidSignature("cancel_on_disconnect needs an authenticated session "
                                           "(send op auth or subscribe to orders.<account> first)",
                                           code="auth_required")
                if enabled and not callable(getattr(self.node, "operator_cancel_all", None)):
                    raise InvalidRequest("this node cannot cancel orders on disconnect",
                                         code="cancel_on_disconnect_unsupported")
                conn.cancel_on_disconnect = enabled
                reply = {"op": "cancel_on_disconnect", "enabled": enabled}
            else:
                raise InvalidRequest(f"unknown op {op!r}; expected subscribe, unsubscribe, auth, "
                                     "ping or cancel_on_disconnect", code="unknown_op")
        except IpBlocked as exc:  # blocked for bad signatures (sequencer.monitor): drop it
            conn.drop(1008, f"ip_blocked: {exc.message}")
            return
        except OptrollupError as exc:
            reply = {"op": "error", "status": status_of(exc), "error": {"code": exc.code, "message": exc.message}}
        if rid is not None:
            reply["id"] = rid
        conn.push("control", reply)

    def remove(self, conn: Conn) -> None:
        for ch in list(conn.channels):
            self.unsubscribe(conn, ch)
        self.conns.discard(conn)
        conn.dead = True
        for t in conn.tasks:
            t.cancel()
        if conn.cancel_on_disconnect and conn.account is not None:
            self._cancel_on_disconnect(conn.account)

    def _cancel_on_disconnect(self, account: bytes) -> None:
        """Operator action (logged by the node): cancel every open order of `account`."""
        fn: Callable[..., Any] | None = getattr(self.node, "operator_cancel_all", None)
        if fn is None:
            return
        try:
            got = fn(account, "cancel_on_disconnect")
        except OptrollupError as exc:
            log.warning("cancel-on-disconnect for %s failed: %s", to_checksum(account), exc)
            return
        log.info("cancel-on-disconnect for %s submitted", to_checksum(account))
        if isinstance(got, Future):
            got.add_done_callback(lambda f: f.exception() and log.error(
                "cancel-on-disconnect for %s not durable: %s", to_checksum(account), f.exception()))

    async def heartbeat(self, conn: Conn) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            conn.push("heartbeat", {"time": int(self.node.clock()), "head": self.node.head.number})

    async def serve(self, ws: WebSocket) -> None:
        """The endpoint: accept, run writer and heartbeat tasks, handle requests until disconnect."""
        await ws.accept()
        if self.loop is None:
            self.loop, self.loop_thread = asyncio.get_running_loop(), threading.get_ident()
        host = ws.client.host if ws.client else "?"  # the connection itself was charged by _IpLimit
        conn = Conn(ws, self.queue_size)
        self.conns.add(conn)
        conn.tasks += [asyncio.create_task(conn.writer()), asyncio.create_task(self.heartbeat(conn))]
        try:
            while True:
                m = await ws.receive()
                if m["type"] == "websocket.disconnect":
                    break
                raw = m.get("text") if m.get("text") is not None else m.get("bytes") or b""
                if not conn.dead:
                    self.handle(conn, raw, host)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.remove(conn)


def add_stream(app: FastAPI, api: Any, *, heartbeat_seconds: float = 10.0, queue_size: int = 1000,
               book_depth: int = 50) -> StreamHub:
    """Mount WebSocket `/v1/stream` on `app` (the hub is also `app.state.stream`; its
    `heartbeat_seconds`, `queue_size` and `book_depth` may be changed before clients connect)."""
    hub = StreamHub(api, heartbeat_seconds=heartbeat_seconds, queue_size=queue_size, book_depth=book_depth)
    app.state.stream = hub

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        await hub.serve(ws)

    return hub
