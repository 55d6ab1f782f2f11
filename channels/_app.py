"""The channel service over HTTP (Starlette): routes, bodies, authentication, errors.

Public:  GET /health, GET /v1/identity
Owner (signed X-Optrollup-* headers of the owner's account, by the account key or the service key):
         GET  /v1/channels                      POST /v1/channels {peer, depositA, depositB,
                                                     challengePeriod, nonce?}
         GET  /v1/channels/{id}                 POST /v1/channels/{id}/quotes [{instrument, bid,
         GET  /v1/channels/{id}/quotes               bidAmount, ask, askAmount}]
         POST /v1/channels/{id}/trade {instrument, isBuy, price, amount}
         POST /v1/channels/{id}/close           POST /v1/channels/{id}/peer {url}
Owner or the channel's peer (its signed headers):
         GET  /v1/channels/{id}/state
Peer (proven by its signature on what it proposes):
         POST /v1/channels/proposals {channelOpen, signature, initialStateSignature?, serviceUrl?}
         POST /v1/channels/{id}/states {channelState, signature, trade | null}

Errors: `{"error": {"code", "message"}}` with the status of the error's class, one table as in
sequencer/api/errors.py (400, 401, 404, 409, 413, 422, 429, 503); anything else is a bug: 500
`internal_error`, logged with its traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cext import to_checksum
from channels._auth import AuthVerifier, request_binding
from channels._proto import cosigned_to_json, fields, optional_uint
from channels._wire import quote_from_json, trade_from_json, trade_to_json
from channels.service import ChannelService
from sequencer.core.channelmsg import json_bytes, json_uint
from sequencer.errors import (
    HTTP_STATUS,
    InvalidRequest,
    InvalidSignature,
    OptrollupError,
    PayloadTooLarge,
    http_status,
)
from sequencer.l1.errors import L1Error

logger = logging.getLogger("optrollup.channels.app")

__all__ = ["MAX_BODY", "STATUS", "create_app", "status_of"]

MAX_BODY = 256 * 1024

STATUS: tuple[tuple[type[OptrollupError], int], ...] = (*HTTP_STATUS, (L1Error, 503))
"""The error tree's table (sequencer.errors.HTTP_STATUS) and L1's errors; an OptrollupError not
here is a bug (500)."""


def status_of(exc: OptrollupError) -> int:
    return http_status(exc, STATUS)


def _json(obj: Any, status: int = 200) -> Response:
    return Response(json.dumps(obj, separators=(",", ":")).encode(), status_code=status,
                    media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json({"error": {"code": code, "message": message}}, status)


Handler = Callable[[Request], Awaitable[Any]]


def _endpoint(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            return _json(await fn(request))
        except OptrollupError as exc:
            status = status_of(exc)
            if status == 500:
                logger.error("unmapped error on %s %s: %r", request.method, request.url.path, exc)
                return _error(500, "internal_error", f"{exc.code}: {exc.message}")
            return _error(status, exc.code, exc.message)
        except Exception as exc:  # a bug: say so, keep serving
            logger.exception("%s %s failed", request.method, request.url.path)
            return _error(500, "internal_error", f"internal error: {type(exc).__name__}")
    run.__name__ = fn.__name__
    return run


async def _raw(request: Request) -> bytes:
    cl = request.headers.get("content-length")
    if cl is not None and cl.isdigit() and int(cl) > MAX_BODY:
        raise PayloadTooLarge(f"request body of {cl} bytes is over the limit of {MAX_BODY}")
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > MAX_BODY:
            raise PayloadTooLarge(f"request body is over the limit of {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> Any:
    if not raw:
        raise InvalidRequest("the request needs a JSON body", code="invalid_json")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}", code="invalid_json") from None


async def _body(request: Request) -> Any:
    return _parse(await _raw(request))


def _cid(request: Request) -> bytes:
    return json_bytes(request.path_params["channel_id"], "channelId", 32)


def create_app(service: ChannelService) -> Starlette:
    """The HTTP app of `service`; its lifespan starts and stops the service."""
    verifier = AuthVerifier(service.clock)

    def owner(request: Request) -> None:
        service.authorize_owner(verifier.verify(request.headers))

    async def owner_write(request: Request, needs_body: bool = True) -> Any:
        """An owner's POST: the signed headers must cover this request (_auth.request_binding);
        its JSON body (None when `needs_body` is false and it has none)."""
        raw = await _raw(request)
        binding = request_binding(request.method, request.url.path, raw)
        service.authorize_owner(verifier.verify(request.headers, binding))
        return _parse(raw) if raw or needs_body else None

    async def health(request: Request) -> Any:
        return {"status": "ok" if service.started else "starting"}

    async def identity(request: Request) -> Any:
        return service.identity()

    async def list_channels(request: Request) -> Any:
        owner(request)
        return service.list_channels()

    async def open_channel(request: Request) -> Any:
        o = fields(await owner_write(request), "body", ("peer", "depositA", "depositB", "challengePeriod"),
                   ("nonce",))
        peer = o["peer"]
        if not isinstance(peer, str) or not peer.startswith(("http://", "https://")):
            raise InvalidRequest("body.peer must be the peer service's http(s) URL",
                                 code="invalid_value")
        return await service.open_channel(
            peer, json_uint(o["depositA"], "body.depositA"), json_uint(o["depositB"], "body.depositB"),
            json_uint(o["challengePeriod"], "body.challengePeriod", 32),
            optional_uint(o, "nonce", "body", 64))

    async def read_channel(request: Request) -> Any:
        owner(request)
        return service.summary(service.chan(_cid(request)))

    async def read_state(request: Request) -> Any:
        who = verifier.verify(request.headers)
        cid = _cid(request)
        if who.account == service.account:
            service.authorize_owner(who)
            return service.latest_json(service.chan(cid))
        c = service.chans.get(cid)
        if c is None:  # a stranger learns nothing about which channels exist
            raise InvalidSignature(f"{to_checksum(who.account)} is not a party of channel "
                                   f"0x{cid.hex()} here", code="not_a_party")
        service.authorize_reader(c, who)
        return service.latest_json(c)

    async def read_quotes(request: Request) -> Any:
        owner(request)
        return service.quotes_json(service.chan(_cid(request)))

    async def post_quotes(request: Request) -> Any:
        body = await owner_write(request)
        c = service.chan(_cid(request))
        return service.set_quotes(c, quote_from_json(body))

    async def post_trade(request: Request) -> Any:
        body = await owner_write(request)
        cid = _cid(request)
        service.chan(cid)
        trade = trade_from_json(body, "body")
        co = await service.trade(cid, trade)
        return {**cosigned_to_json(co), "trade": trade_to_json(trade)}

    async def post_close(request: Request) -> Any:
        await owner_write(request, needs_body=False)
        return await service.close(_cid(request))

    async def post_peer(request: Request) -> Any:
        body = await owner_write(request)
        c = service.chan(_cid(request))
        o = fields(body, "body", ("url",))
        url = o["url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 512:
            raise InvalidRequest("body.url must be an http(s) URL", code="invalid_value")
        return service.set_peer(c, url.rstrip("/"))

    async def proposals(request: Request) -> Any:
        return await service.on_open(await _body(request))

    async def states(request: Request) -> Any:
        cid = _cid(request)
        return await service.on_state(cid, await _body(request))

    routes = [
        Route("/health", _endpoint(health), methods=["GET"]),
        Route("/v1/health", _endpoint(health), methods=["GET"]),
        Route("/v1/identity", _endpoint(identity), methods=["GET"]),
        Route("/v1/channels", _endpoint(list_channels), methods=["GET"]),
        Route("/v1/channels", _endpoint(open_channel), methods=["POST"]),
        Route("/v1/channels/proposals", _endpoint(proposals), methods=["POST"]),
        Route("/v1/channels/{channel_id}", _endpoint(read_channel), methods=["GET"]),
        Route("/v1/channels/{channel_id}/state", _endpoint(read_state), methods=["GET"]),
        Route("/v1/channels/{channel_id}/quotes", _endpoint(read_quotes), methods=["GET"]),
        Route("/v1/channels/{channel_id}/quotes", _endpoint(post_quotes), methods=["POST"]),
        Route("/v1/channels/{channel_id}/trade", _endpoint(post_trade), methods=["POST"]),
        Route("/v1/channels/{channel_id}/close", _endpoint(post_close), methods=["POST"]),
        Route("/v1/channels/{channel_id}/peer", _endpoint(post_peer), methods=["POST"]),
        Route("/v1/channels/{channel_id}/states", _endpoint(states), methods=["POST"]),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await service.start()
        except BaseException as exc:
            app.state.startup_error = exc
            logger.error("the channel service did not start: %s",
                         exc.message if isinstance(exc, OptrollupError) else repr(exc))
            raise
        try:
            yield
        finally:
            await service.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    app.state.startup_error = None

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error(404, "not_found", f"no route {request.method} {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _error(405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}")

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_allowed)
    return app
