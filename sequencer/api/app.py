"""The HTTP API of design.md on FastAPI. Handlers are thin: decode (sequencer.api.wire), call
the node on the event-loop thread, render (sequencer.api.views). Errors are translated once,
by the exception handlers at the bottom, through sequencer.api.errors.STATUS."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from cext import Order, parse_address, to_checksum
from sequencer.api import schemas, views, wire
from sequencer.api.auth import authenticate
from sequencer.api.errors import error_response, plain_error
from sequencer.api.ratelimit import RateLimiter
from sequencer.api.stream import add_stream
from sequencer.core.eip712 import FIELDS, Cancel, CancelAll, Feed, Listing, SessionKey, Withdraw, eip712_types
from sequencer.core.engine import OrderResult
from sequencer.core.state import account_leaf, positions_hash
from sequencer.core.transition import authorized
from sequencer.errors import InvalidRequest, NotFound, OptrollupError, PayloadTooLarge
from sequencer.node.l1follower import L1Follower, withdrawal_proof
from sequencer.node.node import Node

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
}
PRIMARY = {Cancel: "Cancel", CancelAll: "CancelAll", Withdraw: "Withdraw", SessionKey: "SessionKey",
           Feed: "Feed", Listing: "List"}


class Api:
    """State the handlers share: the node, the L1 follower, rate limiters."""

    def __init__(self, node: Node, l1: L1Follower | None) -> None:
        self.node, self.l1 = node, l1
        lim = node.cfg.limits
        self.per_account = RateLimiter(lim.orders_per_second, lim.burst, what="requests")
        self.per_ip = RateLimiter(lim.ip_requests_per_second, lim.ip_burst, what="requests")

    # -- helpers ------------------------------------------------------------------------------

    def limit_ip(self, request: Request) -> None:
        host = request.client.host if request.client else "?"
        self.per_ip.take(f"ip {host}", time.monotonic())

    async def body(self, request: Request) -> Any:
        limit = self.node.cfg.limits.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"body of {declared} bytes exceeds the {limit}-byte limit")
        buf = bytearray()
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > limit:
                raise PayloadTooLarge(f"body exceeds the {limit}-byte limit")
        try:
            return json.loads(buf)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"body is not valid JSON: {exc}", code="malformed_json") from None

    def may_sign_for(self, account: bytes, signer: bytes) -> bool:
        """The core's rule: the account itself, or one of its session keys live at block time."""
        acct = self.node.core.engine.state.accounts.get(account)
        if acct is None:
            return signer == account
        return authorized(acct, account, signer, self.node.core.engine.now)

    def authed(self, request: Request) -> bytes:
        return authenticate(request.headers, int(self.node.clock()), self.may_sign_for)

    def digest_of(self, order: Order) -> bytes:
        return self.node.core.engine.ctx.digest(self.node.domain, order)

    def render(self, value: Any) -> Any:
        if isinstance(value, OptrollupError):
            return {"error": {"code": value.code, "message": value.message}}
        if isinstance(value, OrderResult):
            return views.order_result_json(value, self.digest_of)
        return value

    async def submit_one(self, msg: Any, sig: bytes, account: bytes | None) -> Any:
        if account is not None:
            self.per_account.take(checksum(account), time.monotonic())
        [result] = await self.node.submit([(msg, sig)])
        if isinstance(result, OptrollupError):
            raise result
        return result


def create_app(node: Node, *, l1: L1Follower | None = None, tick_seconds: float = 0.2) -> FastAPI:
    api = Api(node, l1)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        node.bind_loop(asyncio.get_running_loop())
        tasks = [asyncio.create_task(_ticker(node, tick_seconds))]
        if l1 is not None:
            tasks.append(asyncio.create_task(_follow_l1(node, l1)))
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            node.close()

    app = FastAPI(title="optrollup sequencer", version="0.1.0", lifespan=lifespan,
                  description="Signed option orders in, Merkle-committed rollup blocks out. "
                              "Errors: `{\"error\": {\"code\", \"message\"}}` with a 4xx status.")
    app.state.api = api
    app.add_middleware(_Timing, metrics=node.metrics)
    add_stream(app, api)  # WebSocket /v1/stream

    # -- public reads ---------------------------------------------------------------------------

    @app.get("/v1/info")
    async def info(request: Request) -> Any:
        api.limit_ip(request)
        g, cfg = node.cfg.genesis.config, node.cfg
        lim = cfg.limits
        return {
            "chainId": cfg.chain_id,
            "eip712": {"domain": {"name": "optrollup", "version": "1", "chainId": cfg.chain_id,
                                  "verifyingContract": to_checksum(parse_address(cfg.rollup))},
                       "types": eip712_types()},
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
                       "authMaxSkew": 30},
        }

    @app.get("/v1/instruments")
    async def instruments(request: Request) -> Any:
        api.limit_ip(request)
        st = node.core.engine.state
        marks = node.core.engine.ctx.marks(st)
        return {"instruments": [views.instrument_json(i, marks.mark(n), True)
                                for n, i in sorted(st.instruments.items())]}

    @app.get("/v1/instruments/{name}")
    async def instrument(name: str, request: Request) -> Any:
        api.limit_ip(request)
        st = node.core.engine.state
        ins = st.instruments.get(name)
        if ins is None:
            raise NotFound(f"instrument {name!r} is not listed", code="unknown_instrument")
        return views.instrument_json(ins, node.core.engine.ctx.marks(st).mark(name), True)

    @app.get("/v1/book/{name}")
    async def book(name: str, request: Request, depth: int = 20) -> Any:
        api.limit_ip(request)
        b = node.core.engine.books.get(name)
        if b is None:
            raise NotFound(f"instrument {name!r} is not listed", code="unknown_instrument")
        depth = max(1, min(depth, 500))
        return {"instrument": name, "sequence": node.core.book_seq.get(name, 0),
                "bids": [[views.money(p), views.money(a)] for p, a in b.depth(True, depth)],
                "asks": [[views.money(p), views.money(a)] for p, a in b.depth(False, depth)]}

    @app.get("/v1/trades")
    async def trades(request: Request, instrument: str | None = None, limit: int = 100) -> Any:
        api.limit_ip(request)
        rows = [t for t in reversed(node.core.trades) if instrument in (None, t["instrument"])]
        return {"trades": [{**t, "price": views.money(t["price"]), "amount": views.money(t["amount"]),
                            "makerOrder": views.h(t["makerOrder"]), "takerOrder": views.h(t["takerOrder"])}
                           for t in rows[:max(1, min(limit, 1000))]]}

    def block_json(n: int) -> Any:
        got = node.store.get(n)
        if got is None:
            raise NotFound(f"block {n} is not sealed (head is {node.core.head.number})",
                           code="block_not_found")
        block = got[0]
        return {"header": block.header.to_json(), "txs": [views.h(t) for t in block.txs]}

    @app.get("/v1/blocks/latest")
    async def latest_block(request: Request) -> Any:
        api.limit_ip(request)
        # the newest *durable* block: core.head moves at seal time, before the seal's write is
        # synced, so between the two a lookup of core.head.number would 404
        durable = node.store.head()
        return block_json(node.core.head.number if durable is None else durable)

    @app.get("/v1/blocks/{number}")
    async def get_block(number: int, request: Request) -> Any:
        api.limit_ip(request)
        if number < 0:
            raise InvalidRequest("block number must be >= 0", code="invalid_number")
        return block_json(number)

    @app.get("/v1/proofs/accounts/{address}")
    async def account_proof(address: str, request: Request) -> Any:
        api.limit_ip(request)
        a = wire.address(address, "address")
        st = node.core.engine.state
        idx = st.index.get(a)
        if idx is None:
            raise NotFound(f"account {to_checksum(a)} has no leaf", code="unknown_account")
        acct = st.accounts[a]
        leaf = node.core.tree.leaf(idx)
        return {"account": to_checksum(a), "index": idx, "block": node.core.head.number,
                "stateRoot": views.h(node.core.head.state_root), "leaf": views.h(leaf),
                "proof": [views.h(p) for p in node.core.tree.proof(idx)],
                "collateral": views.money(acct.collateral),
                "positionsHash": views.h(positions_hash(acct.positions)),
                "pendingChanges": account_leaf(a, acct) != leaf}

    @app.get("/v1/withdrawals/{digest}")
    async def get_withdrawal(digest: str, request: Request) -> Any:
        api.limit_ip(request)
        d = wire.hex_bytes(digest, "withdrawalHash", 32)
        return await withdrawal_status(api, d)

    @app.get("/health")
    @app.get("/v1/health")
    async def health() -> Any:
        l1v = l1.view if l1 is not None else None
        return {"status": "ok", "head": node.core.head.number, "blockTime": node.core.engine.now,
                "l1": None if l1v is None else {"head": l1v.head, "batches": len(l1v.batches),
                                                 "final": l1v.final_count, "error": l1v.error}}

    @app.get("/metrics")
    @app.get("/v1/metrics")
    async def metrics() -> Response:
        m = node.metrics
        for name, b in node.core.engine.books.items():
            m.book_depth.labels(name).set(sum(len(lvl) for side in (b.bids, b.asks) for lvl in side.values()))
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    # -- signed writes --------------------------------------------------------------------------

    @app.post("/v1/orders", openapi_extra=schemas.body("SignedOrder"))
    async def post_order(request: Request) -> Any:
        api.limit_ip(request)
        msg, sig = wire.signed(await api.body(request), "order")
        order = wire.order(msg)
        return api.render(await api.submit_one(order, sig, order.account))

    @app.post("/v1/orders/batch", openapi_extra=schemas.body("OrderBatch"))
    async def post_orders(request: Request) -> Any:
        api.limit_ip(request)
        body = wire.require_object(await api.body(request), "body", ("orders",))
        items = body["orders"]
        cap = node.cfg.limits.max_batch
        if not isinstance(items, list) or not items:
            raise InvalidRequest("orders must be a non-empty list", code="invalid_type")
        if len(items) > cap:
            raise InvalidRequest(f"{len(items)} orders exceed the batch limit of {cap}",
                                 code="batch_too_large")
        results: list[Any] = [None] * len(items)
        good: list[tuple[int, Order, bytes]] = []
        now = time.monotonic()
        for i, item in enumerate(items):
            try:
                msg, sig = wire.signed(item, "order")
                order = wire.order(msg, f"orders[{i}].order")
                api.per_account.take(checksum(order.account), now)
                good.append((i, order, sig))
            except OptrollupError as exc:
                results[i] = exc
        if good:
            out = await node.submit([(o, s) for _, o, s in good])
            for (i, _, _), r in zip(good, out):
                results[i] = r
        return {"results": [api.render(r) for r in results]}

    def signed_write(path: str, primary_json: str, cls: type) -> None:
        fields = FIELDS[PRIMARY[cls]]

        async def handler(request: Request) -> Any:
            api.limit_ip(request)
            msg_json, sig = wire.signed(await api.body(request), primary_json)
            msg = wire.message(msg_json, primary_json, fields, cls)
            account = getattr(msg, "account", None)
            result = await api.submit_one(msg, sig, account)
            return write_answer(api, msg, result)

        handler.__name__ = "post_" + primary_json
        app.post(path, openapi_extra=schemas.body(PRIMARY[cls]))(handler)

    for path, (primary_json, cls) in SIGNED_WRITES.items():
        signed_write(path, primary_json, cls)

    # -- private reads --------------------------------------------------------------------------

    @app.get("/v1/accounts/{address}")
    async def get_account(address: str, request: Request) -> Any:
        api.limit_ip(request)
        a = wire.address(address, "address")
        who = api.authed(request)
        if who != a:
            raise InvalidRequest(f"authenticated as {to_checksum(who)}, not {to_checksum(a)}",
                                 code="auth_account_mismatch")
        if a not in node.core.engine.state.accounts:
            raise NotFound(f"account {to_checksum(a)} does not exist (no deposit yet)",
                           code="unknown_account")
        return views.account_json(a, node.core.engine.account_view(a))

    @app.get("/v1/accounts/{address}/orders")
    async def open_orders(address: str, request: Request) -> Any:
        acct = await get_account(address, request)
        return {"openOrders": acct["openOrders"]}

    @app.get("/v1/orders/{digest}")
    async def get_order(digest: str, request: Request) -> Any:
        api.limit_ip(request)
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

    return app


def write_answer(api: Api, msg: Any, result: Any) -> Any:
    """The answer to a signed write other than an order."""
    node = api.node
    if isinstance(msg, Withdraw):
        d = node.core.engine.ctx.digest(node.domain, msg)
        return {"withdrawalHash": views.h(d), "status": "pending"}
    if isinstance(msg, Cancel):
        return {"orderHash": views.h(result.orderHash), "status": "cancelled",
                "remaining": views.money(result.remaining)}
    if isinstance(msg, CancelAll):
        return {"cancelled": result}
    return {"status": "accepted"}


async def withdrawal_status(api: Api, d: bytes) -> Any:
    node, l1 = api.node, api.l1
    got = node.withdrawal(d)
    if got is None:
        if d in node.core.pending_withdrawals:
            return {"withdrawalHash": views.h(d), "status": "pending", "block": None}
        raise NotFound(f"no withdrawal {views.h(d)}", code="unknown_withdrawal")
    number, leaf_index, account, recipient, amount, nonce = got
    out: dict[str, Any] = {"withdrawalHash": views.h(d), "status": "pending", "block": number,
                           "batch": None, "leaf": None, "proof": None, "finalize": None,
                           "account": to_checksum(account), "recipient": to_checksum(recipient),
                           "amount": views.money(amount), "nonce": str(nonce)}
    batch = l1.view.batch_of(number) if l1 is not None else None
    if batch is None:
        return out
    leaves = node.block_withdrawal_leaves(number)
    proof = withdrawal_proof(batch, number - batch.first_block, leaves, leaf_index)
    out.update(status="batched", batch=batch.index, leaf=views.h(leaves[leaf_index]),
               proof={k: (views.h(v) if isinstance(v, bytes) else
                          [views.h(x) for x in v] if isinstance(v, list) else v)
                      for k, v in proof.items()})
    if batch.index < l1.view.final_count:
        paid = await asyncio.get_running_loop().run_in_executor(None, l1.is_paid, account, nonce)
        w = {"account": to_checksum(account), "recipient": to_checksum(recipient),
             "amount": amount, "nonce": nonce}
        data = l1.bridge.encode("finalizeWithdrawal", w, proof)
        out.update(status="paid" if paid else "final",
                   finalize={"to": to_checksum(parse_address(l1.bridge.address)), "data": views.h(data)})
    return out


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


async def _ticker(node: Node, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            node.tick()
        except Exception:  # noqa: BLE001 - keep ticking; the error is logged
            log.exception("tick failed")


async def _follow_l1(node: Node, l1: L1Follower) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            _, deposits = await loop.run_in_executor(None, l1.poll, node.core.l1_block)
            futs = []
            for d in deposits:
                try:
                    f = node.credit_deposit(d.account, d.amount, d.nonce, d.l1_block)
                except OptrollupError as exc:
                    log.warning("deposit %d not credited: %s", d.nonce, exc)
                    break
                if f is not None:
                    futs.append(asyncio.wrap_future(f))
            if futs:
                await asyncio.gather(*futs)
        except Exception:  # noqa: BLE001 - one bad round must not end the follower
            log.exception("L1 follower round failed; retrying")
        await asyncio.sleep(l1.settings.poll_seconds)
