"""The HTTP API of design.md on FastAPI. Handlers are thin: decode (sequencer.api.wire), call
the node on the event-loop thread, render (sequencer.api.views). Errors are translated once,
through sequencer.api.errors.STATUS: by the exception handlers at the bottom, and by the front
that serves the signed write routes without the framework (sequencer.api.fastpath)."""

from __future__ import annotations

import functools
import json
import logging
import time
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from cext import Order, parse_address, to_checksum
from sequencer.api import schemas, views, wire
from sequencer.api.auth import authenticate
from sequencer.api.errors import error_response, plain_error, with_party
from sequencer.api.fastpath import FastWrites, WriteHandler
from sequencer.api.liquidation import add_liquidation_routes, auction_rules_json, insurance_json
from sequencer.api.mmp import add_mmp_routes
from sequencer.api.channels import add_channel_routes
from sequencer.api.compliance import add_compliance_routes
from sequencer.api.page import add_page_routes
from sequencer.core.channelmsg import channel_types
from sequencer.api.ratelimit import RateLimiter
from sequencer.api.stream import add_stream
from sequencer.api.telemetry import telemetry_options
from sequencer.api.withdrawals import withdrawal_proof_status, withdrawal_status
from sequencer.core.eip712 import (FIELDS, Cancel, CancelAll, Feed, Listing, SessionKey,
                                   SetMarginMode, Withdraw, eip712_types)
from sequencer.core.engine import OrderResult
from sequencer.core.mmp import MAX_FROZEN_MS, MAX_INTERVAL_MS
from sequencer.core.portfolio import MODES
from sequencer.core.transition import FORCED_NONCE_BASE
from sequencer.errors import InvalidRequest, NotFound, OptrollupError, PayloadTooLarge, RateLimited
from sequencer.monitor import REQUEST, IpBlocked, NodeMonitor, RequestInfo
from sequencer.node.l1follower import L1Follower
from sequencer.node.node import Node
from sequencer.node.runner import NodeRunner

log = logging.getLogger("optrollup.api")

# EIP-55 of an account, memoised: it keys the per-account rate limiter on every order and costs
# a keccak in Python (cext's to_checksum is pure); a market maker sends from a few accounts.
checksum = functools.lru_cache(maxsize=1 << 16)(to_checksum)

SIGNED_WRITES: dict[str, tuple[str, type]] = {
    "/v1/cancel": ("cancel", Cancel),
    "/v1/cancel_all": ("cancelAll", CancelAll),
    "/v1/withdrawals": ("withdraw", Withdraw),
    "/v1/session_keys": ("sessionKey", SessionKey),
    "/v1/oracle/feeds": ("feed", Feed),
    "/v1/admin/instruments": ("list", Listing),
    "/v1/margin_mode": ("setMarginMode", SetMarginMode),
}
PRIMARY = {Cancel: "Cancel", CancelAll: "CancelAll", Withdraw: "Withdraw", SessionKey: "SessionKey",
           Feed: "Feed", Listing: "List", SetMarginMode: "SetMarginMode"}


class Api:
    """State the handlers share: the node, the L1 follower, rate limiters, and the monotonic
    clock (seconds) the limiters run on (injected so tests do not depend on machine speed), and
    the monitor (sequencer.monitor: detectors, alerts, the IP block)."""

    def __init__(self, node: Node, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.node, self.monotonic = node, monotonic
        lim = node.cfg.limits
        self.per_account = RateLimiter(lim.orders_per_second, lim.burst, what="requests")
        self.per_ip = RateLimiter(lim.ip_requests_per_second, lim.ip_burst, what="requests")
        self.monitor = NodeMonitor(node)

    @property
    def l1(self) -> L1Follower | None:
        """The node's L1 follower (batch status, proofs, payouts), if it follows L1."""
        return self.node.l1

    # -- helpers ------------------------------------------------------------------------------

    def charge_ip(self, host: str) -> None:
        """Charge one request to the client's IP (every HTTP request and WebSocket message);
        IpBlocked (403) while the IP is blocked for bad signatures (sequencer.monitor)."""
        blocked = self.monitor.check_ip(host)
        if blocked is not None:
            raise blocked
        self.per_ip.take(f"ip {host}", self.monotonic())

    def admit(self, msg: Any, signer: bytes | None) -> OptrollupError | None:
        """Charge a signed request to its account's budget, but only if the signature really is
        the account's (or a live session key's): a stranger's forgeries spend only their IP's
        budget (charged by the middleware), never the account they claim."""
        account = getattr(msg, "account", None)
        if account is None or signer is None or not self.may_sign_for(account, signer):
            self.monitor.unverified(msg, signer)  # a bad signature counts against the IP
            return None  # the engine rejects it with the precise signature error
        try:
            self.per_account.take(checksum(account), self.monotonic())
        except RateLimited as exc:
            return exc
        return None

    async def body(self, request: Request) -> Any:
        return await self.read_body(request.headers.get("content-length"), request.stream())

    async def read_body(self, declared: str | None, chunks: AsyncIterator[bytes]) -> Any:
        """The JSON body of a request (its Content-Length header, its body's chunks): at most
        max_body_bytes (PayloadTooLarge), parsed (InvalidRequest malformed_json)."""
        limit = self.node.cfg.limits.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit}-byte limit")
        buf = bytearray()
        async for chunk in chunks:
            buf += chunk
            if len(buf) > limit:
                raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
        return wire.parse_json(buf)

    def may_sign_for(self, account: bytes, signer: bytes) -> bool:
        return self.node.may_sign_for(account, signer)

    def authed(self, request: Request) -> bytes:
        return authenticate(request.headers, int(self.node.clock()), self.may_sign_for)

    def authed_as(self, request: Request, address: str) -> bytes:
        """The account of path parameter `address`, if the request's auth headers are that
        account's (or a live session key's); InvalidRequest auth_account_mismatch if not."""
        a = wire.address(address, "address")
        who = self.authed(request)
        if who != a:
            raise InvalidRequest(f"authenticated as {to_checksum(who)}, not {to_checksum(a)}",
                                 code="auth_account_mismatch")
        return a

    def digest_of(self, order: Order) -> bytes:
        return self.node.digest(order)

    def render(self, value: Any) -> Any:
        if isinstance(value, OptrollupError):
            return {"error": {"code": value.code, "message": value.message}}
        if isinstance(value, OrderResult):
            return views.order_result_json(value, self.digest_of)
        return value

    async def submit_one(self, msg: Any, sig: bytes) -> Any:
        [result] = await self.node.submit([(msg, sig)], self.admit)
        if isinstance(result, OptrollupError):
            raise result
        return result


def create_app(node: Node, *, tick_seconds: float = 0.2, watch_loop: bool = False,
               monotonic: Callable[[], float] = time.monotonic) -> FastAPI:
    """The HTTP API over `node`; the app's lifespan runs the node's background work
    (`NodeRunner`: ticks, the node's L1 follower if it has one, the loop watch if
    `watch_loop`) and closes the node at shutdown."""
    api = Api(node, monotonic)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        try:
            async with NodeRunner(node, tick_seconds, watch_loop=watch_loop):
                yield
        finally:
            node.close()

    app = FastAPI(title="optrollup sequencer", version="0.1.0", lifespan=lifespan,
                  description="Signed option orders in, Merkle-committed rollup blocks out. "
                              "Errors: `{\"error\": {\"code\", \"message\"}}` with a 4xx status.",
                  **telemetry_options())
    app.state.api = api
    app.add_middleware(_IpLimit, api=api)
    app.add_middleware(_FailSafe, node=node)
    app.add_middleware(_Timing, metrics=node.metrics)
    add_stream(app, api)  # WebSocket /v1/stream

    # -- public reads ---------------------------------------------------------------------------

    @app.get("/v1/info")
    async def info(request: Request) -> Any:
        g, cfg = node.cfg.genesis.config, node.cfg
        lim = cfg.limits
        return {
            "chainId": cfg.chain_id,
            "eip712": {"domain": {"name": "optrollup", "version": "1", "chainId": cfg.chain_id,
                                  "verifyingContract": to_checksum(parse_address(cfg.rollup))},
                       "types": {**eip712_types(), **channel_types()}},
            "l1": None if cfg.l1 is None else {
                "chainId": cfg.l1.chain_id, "rollup": to_checksum(parse_address(cfg.rollup)),
                "bridge": to_checksum(parse_address(cfg.l1.bridge)),
                "collateralToken": to_checksum(parse_address(cfg.l1.collateral_token))},
            "collateral": {"symbol": "USDC", "decimals": 6},
            "oracleKeys": [to_checksum(k) for k in g.oracle.keys],
            "operator": to_checksum(g.operator), "feeAccount": to_checksum(g.fee_account),
            "limits": {"maxBatch": lim.max_batch, "maxBodyBytes": lim.max_body_bytes,
                       "ordersPerSecond": lim.orders_per_second, "burst": lim.burst,
                       "maxOrderTtl": g.max_order_ttl, "cancelAllWindow": g.cancel_all_window,
                       "authMaxSkew": 30, "mmpMaxIntervalMs": MAX_INTERVAL_MS,
                       "mmpMaxFrozenMs": MAX_FROZEN_MS},
            "insuranceFund": insurance_json(node.insurance()),
            "liquidation": auction_rules_json(),
        }

    @app.get("/v1/instruments")
    async def instruments(request: Request) -> Any:
        return {"instruments": views.instruments_json(node)}

    @app.get("/v1/instruments/{name}")
    async def instrument(name: str, request: Request) -> Any:
        ins, m = node.instrument(name)
        return views.instrument_json(ins, m, True, node.cfg.genesis.config.underlyings.get(ins.underlying))

    @app.get("/v1/book/{name}")
    async def book(name: str, request: Request, depth: int = 20) -> Any:
        b = node.book(name, max(1, min(depth, 500)))
        return {"instrument": name, "sequence": b.sequence,
                "bids": [[views.money(p), views.money(a)] for p, a in b.bids],
                "asks": [[views.money(p), views.money(a)] for p, a in b.asks]}

    @app.get("/v1/trades")
    async def trades(request: Request, instrument: str | None = None, limit: int = 100) -> Any:
        rows = node.recent_trades(instrument, max(1, min(limit, 1000)))
        return {"trades": [{**t, "price": views.money(t["price"]), "amount": views.money(t["amount"]),
                            "makerOrder": views.h(t["makerOrder"]), "takerOrder": views.h(t["takerOrder"])}
                           for t in rows]}

    def sealed_block(n: int) -> Any:
        block = node.block(n)
        if block is None:
            raise NotFound(f"block {n} is not sealed (head is {node.head.number})",
                           code="block_not_found")
        return block

    def block_json(n: int) -> Any:
        block = sealed_block(n)
        mroot = node.block_marks_root(n)
        return {"header": block.header.to_json(), "txs": [views.h(t) for t in block.txs],
                "marksRoot": None if mroot is None else views.h(mroot)}

    @app.get("/v1/blocks/latest")
    async def latest_block(request: Request) -> Any:
        # the newest *durable* block: the head moves at seal time, before the seal's write is
        # synced, so between the two a lookup of head.number would 404
        return block_json(node.durable_head())

    @app.get("/v1/blocks/latest/header")
    async def latest_header(request: Request) -> Any:
        """The newest durable block's header alone (with its hash): what a poster or a follower
        polls for the head, without the block's transactions (up to maxBlockBytes of them)."""
        return {"header": sealed_block(node.durable_head()).header.to_json()}

    @app.get("/v1/blocks/{number}")
    async def get_block(number: int, request: Request) -> Any:
        if not 0 <= number < 2**64:
            raise InvalidRequest(f"block number must be in [0, 2^64), got {number}",
                                 code="invalid_number")
        return block_json(number)

    @app.get("/v1/proofs/accounts/{address}")
    async def account_proof(address: str, request: Request) -> Any:
        a = wire.address(address, "address")
        p = node.account_proof(a)
        return {"account": to_checksum(a), "index": p.index, "block": p.block,
                "stateRoot": views.h(p.state_root), "leaf": views.h(p.leaf),
                "proof": [views.h(x) for x in p.proof], "collateral": views.money(p.collateral),
                "positionsHash": views.h(p.positions_hash), "pendingChanges": p.pending}

    @app.get("/v1/withdrawals/{digest}")
    async def get_withdrawal(digest: str, request: Request) -> Any:
        d = wire.hex_bytes(digest, "withdrawalHash", 32)
        return await withdrawal_status(api, d)

    @app.get("/v1/withdrawals/{address}/{nonce}")
    async def get_withdrawal_by_nonce(address: str, nonce: int, request: Request) -> Any:
        """Any sealed withdrawal leaf by (account, nonce): a signed withdrawal, or one without
        a signature (a deposit refund or a forced withdrawal: nonce = 2^63 + L1 message nonce)."""
        a = wire.address(address, "address")
        if not 0 <= nonce < 2**64:
            raise InvalidRequest(f"withdrawal nonce must be in [0, 2^64), got {nonce}",
                                 code="invalid_number")
        got = node.withdrawal_by_nonce(a, nonce)
        if got is None:
            raise NotFound(f"no sealed withdrawal of {to_checksum(a)} with nonce {nonce}",
                           code="unknown_withdrawal")
        # a signed Withdraw (the leaf's fields are its message's) is also known by its digest
        d = node.digest(Withdraw(*got[2:])) if nonce < FORCED_NONCE_BASE else None
        return await withdrawal_proof_status(api, got, d)

    @app.get("/v1/l1-messages/{nonce}")
    async def get_l1_message(nonce: int, request: Request) -> Any:
        """How the node processed L1 message `nonce` (a deposit or a forced withdrawal)."""
        if not 0 <= nonce < 2**64:
            raise InvalidRequest(f"L1 message nonce must be in [0, 2^64), got {nonce}",
                                 code="invalid_number")
        m = node.l1_message(nonce)
        if m is None:
            raise NotFound(f"L1 message {nonce} has not been processed by this node (its message "
                           f"cursor is {node.l1_message_cursor})", code="unknown_l1_message")
        return views.l1_message_json(m)

    @app.get("/health")
    @app.get("/v1/health")
    async def health() -> Any:
        l1v = node.l1.view if node.l1 is not None else None
        return {"status": "ok", "head": node.head.number, "blockTime": node.block_time,
                "l1": None if l1v is None else {"head": l1v.head, "batches": len(l1v.batches),
                                                 "final": l1v.final_count, "error": l1v.error}}

    @app.get("/metrics")
    @app.get("/v1/metrics")
    async def metrics() -> Response:
        m = node.metrics
        for name, n in node.book_sizes().items():
            m.book_depth.labels(name).set(n)
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    # -- signed writes (served by FastWrites, sequencer/api/fastpath.py) -------------------------

    writes: dict[str, WriteHandler] = {}

    def write_route(path: str, schema: str) -> Callable[[WriteHandler], WriteHandler]:
        """Register `handler(parsed JSON body) -> answer` for POST `path`: answered by the
        FastWrites front, and declared to FastAPI (the OpenAPI schema, and the route if the app
        is ever called without its front)."""
        def register(handler: WriteHandler) -> WriteHandler:
            writes[path] = handler

            async def route(request: Request) -> Any:
                return await handler(await api.body(request))
            route.__name__, route.__doc__ = handler.__name__, handler.__doc__
            app.post(path, openapi_extra=schemas.body(schema))(route)
            return handler
        return register

    @write_route("/v1/orders", "SignedOrder")
    async def post_order(body: Any) -> Any:
        msg, sig = wire.signed(body, "order")
        order = wire.order(msg)
        return api.render(await api.submit_one(order, sig))

    @write_route("/v1/orders/batch", "OrderBatch")
    async def post_orders(body: Any) -> Any:
        items = wire.batch_items(body, "orders", node.cfg.limits.max_batch)
        results: list[Any] = [None] * len(items)
        good: list[tuple[int, Order, bytes]] = []
        for i, item in enumerate(items):
            try:
                msg, sig = wire.signed(item, "order")
                good.append((i, wire.order(msg, f"orders[{i}].order"), sig))
            except OptrollupError as exc:
                results[i] = exc
        if good:
            out = await node.submit([(o, s) for _, o, s in good], api.admit)
            for (i, _, _), r in zip(good, out):
                results[i] = r
        return {"results": [api.render(r) for r in results]}

    @write_route("/v1/orders/replace", "Replace")
    async def post_replace(body: Any) -> Any:
        """Amend: cancel one open order and place another, both or neither (the new order has
        no time priority of the old)."""
        pair = wire.replace_pair(body, "body")
        [result] = await node.submit_replaces([pair], api.admit)
        if isinstance(result, OptrollupError):
            raise with_party(result)
        return api.render(result)

    @write_route("/v1/quotes", "Quotes")
    async def post_quotes(body: Any) -> Any:
        """Mass quote: up to maxBatch independent amends, one answer per pair."""
        items = wire.batch_items(body, "quotes", node.cfg.limits.max_batch)
        results: list[Any] = [None] * len(items)
        good: list[tuple[int, tuple[tuple[Cancel, bytes], tuple[Order, bytes]]]] = []
        for i, item in enumerate(items):
            try:
                good.append((i, wire.replace_pair(item, f"quotes[{i}]")))
            except OptrollupError as exc:
                results[i] = exc
        if good:
            out = await node.submit_replaces([p for _, p in good], api.admit)
            for (i, _), r in zip(good, out):
                results[i] = with_party(r)
        return {"results": [api.render(r) for r in results]}

    def signed_write(path: str, primary_json: str, cls: type) -> None:
        fields = FIELDS[PRIMARY[cls]]

        async def handler(body: Any) -> Any:
            msg_json, sig = wire.signed(body, primary_json)
            msg = wire.message(msg_json, primary_json, fields, cls)
            result = await api.submit_one(msg, sig)
            return write_answer(api, msg, result)

        handler.__name__ = "post_" + primary_json
        write_route(path, PRIMARY[cls])(handler)

    for path, (primary_json, cls) in SIGNED_WRITES.items():
        signed_write(path, primary_json, cls)
    add_mmp_routes(app, api)  # market-maker protection: /v1/mmp/config, /v1/mmp/reset, reads
    add_liquidation_routes(app, api)  # GET/POST /v1/liquidations (docs/liquidation.md)
    add_channel_routes(app, api)  # POST /v1/channels, .../close, GET (docs/channels.md)
    add_compliance_routes(app, api)  # /v1/admin/freeze|unfreeze|deny, statements (docs/compliance.md)
    add_page_routes(app, api)  # the page at / and /page/..., GET /v1/blocks/{n}/status (sequencer/api/page.py)

    # -- operator reads ------------------------------------------------------------------------

    @app.get("/v1/admin/alerts")
    async def admin_alerts(request: Request, kind: str | None = None, since: float | None = None,
                           limit: int = 100) -> Any:
        """The monitor's alerts, most recently seen first (docs/monitoring.md); auth headers
        signed by the operator's key."""
        api.monitor.require_operator(request.headers)
        return api.monitor.alerts_json(kind, since, max(1, min(limit, 1000)))

    # -- private reads --------------------------------------------------------------------------

    @app.get("/v1/accounts/{address}")
    async def get_account(address: str, request: Request) -> Any:
        a = api.authed_as(request, address)
        return views.account_json(a, node.account(a))

    @app.get("/v1/accounts/{address}/orders")
    async def open_orders(address: str, request: Request) -> Any:
        acct = await get_account(address, request)
        return {"openOrders": acct["openOrders"]}

    @app.get("/v1/orders/{digest}")
    async def get_order(digest: str, request: Request) -> Any:
        d = wire.hex_bytes(digest, "orderHash", 32)
        who = api.authed(request)
        got = node.order_status(d)
        if got is None or got[0].account != who:
            raise NotFound(f"no order {digest} of {to_checksum(who)}", code="unknown_order")
        order, status, filled = got
        return {"orderHash": views.h(d), "status": status, "filledAmount": views.money(filled),
                "order": views.order_json(order)}

    # -- errors: the one translation point ------------------------------------------------------

    @app.exception_handler(OptrollupError)
    async def on_ours(request: Request, exc: OptrollupError) -> JSONResponse:
        node.metrics.rejected.labels("http", exc.code).inc()
        api.monitor.auth_rejected(request.client.host if request.client else "?",
                                  request.headers.get("x-optrollup-account"), exc)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return plain_error(400, "invalid_request", where or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        msg = (f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405)
               else str(exc.detail))
        return plain_error(exc.status_code, code, msg)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return plain_error(500, "internal_error", "internal error (a bug; it has been logged)")

    app.add_middleware(FastWrites, api=api, writes=writes)  # outermost: the write routes
    return app


def write_answer(api: Api, msg: Any, result: Any) -> Any:
    """The answer to a signed write other than an order."""
    node = api.node
    if isinstance(msg, Withdraw):
        d = node.digest(msg)
        return {"withdrawalHash": views.h(d), "status": "pending"}
    if isinstance(msg, Cancel):
        return {"orderHash": views.h(result.orderHash), "status": "cancelled",
                "remaining": views.money(result.remaining)}
    if isinstance(msg, CancelAll):
        return {"cancelled": result}
    if isinstance(msg, SetMarginMode):
        return {"status": "accepted", "account": to_checksum(msg.account),
                "marginMode": MODES[msg.mode], "marginNonce": str(msg.nonce + 1)}
    return {"status": "accepted"}


class _IpLimit:
    """ASGI middleware: one per-IP budget over every HTTP request and WebSocket connection
    (the stream charges each message too), before routing, signature checks or body reads."""

    def __init__(self, app: Any, api: Api) -> None:
        self.app, self.api = app, api

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            ip = client[0] if client else "?"
            try:
                self.api.charge_ip(ip)
            except IpBlocked as exc:
                self.api.node.metrics.rejected.labels(scope["type"], exc.code).inc()
                await _refuse_blocked(exc, scope, receive, send)
                return
            except RateLimited as exc:
                self.api.node.metrics.rejected.labels(scope["type"], exc.code).inc()
                if scope["type"] == "http":
                    await error_response(exc)(scope, receive, send)
                else:  # refused before accept: the handshake fails
                    await send({"type": "websocket.close", "code": 1013,
                                "reason": f"rate_limited: retry in {exc.retry_after:.1f} s"})
                return
            token = REQUEST.set(RequestInfo(ip))  # for the signature check (Api.admit)
            try:
                await self.app(scope, receive, send)
            finally:
                REQUEST.reset(token)
            return
        await self.app(scope, receive, send)


async def _refuse_blocked(exc: IpBlocked, scope: Any, receive: Any, send: Any) -> None:
    """403 ip_blocked: an HTTP answer, or the WebSocket handshake refused with it (as an HTTP
    403 where the server can send one, else a close before accept, which servers answer 403)."""
    status, body, headers = exc.parts()
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
    if scope["type"] == "http":
        await JSONResponse(body, status_code=status, headers=headers)(scope, receive, send)
    elif "websocket.http.response" in scope.get("extensions", {}):
        raw = json.dumps(body).encode()
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(raw)).encode()),
                                *((k.lower().encode(), v.encode()) for k, v in headers.items())]})
        await send({"type": "websocket.http.response.body", "body": raw})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": f"ip_blocked: {exc.message}"[:120]})


class _FailSafe:
    """ASGI middleware: once the node has failed (a log write failed, or applying a request
    broke), every route but /metrics answers 503 store_unavailable, /health included, and
    WebSockets are refused: the node never serves state that is not durable."""

    OPEN = frozenset({"/metrics", "/v1/metrics"})

    def __init__(self, app: Any, node: Node) -> None:
        self.app, self.node = app, node

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.node.failed is not None and scope["type"] in ("http", "websocket"):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1011, "reason": "store_unavailable"})
                return
            if scope.get("path") not in self.OPEN:
                try:
                    self.node.check_alive()
                except OptrollupError as exc:
                    await error_response(exc)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class _Timing:
    """ASGI middleware: request latency per route template into the node's histogram."""

    def __init__(self, app: Any, metrics: Any) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.latency.labels(path).observe(time.perf_counter() - t0)
