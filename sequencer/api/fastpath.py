"""The signed write routes served in front of the framework.

A market maker's flow is mostly small POSTs (single taker orders, mass quotes, cancels): under
load the node's event loop spent more on FastAPI/Starlette per request (routing, dependency
solving, the Request object, seven middleware layers, response serialisation) than on the
order itself. `FastWrites` is the outermost ASGI layer of the app: a POST to a write route
is answered here, doing exactly what the layers it skips did for it (the per-IP budget of
`_IpLimit` and its 403 for an IP blocked by sequencer.monitor, the 503 of `_FailSafe`, the
latency histogram of `_Timing`, the body limit and JSON parsing of `Api.body`, the error
table of `sequencer.api.errors`), by the same handler
the FastAPI route calls (registered with `write_route` in `create_app`, which also declares
the route to FastAPI for the OpenAPI schema). Everything else goes to FastAPI unchanged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sequencer.api.errors import error_body, error_parts
from sequencer.errors import OptrollupError
from sequencer.monitor import REQUEST, IpBlocked, RequestInfo
from sequencer.node import requesttrace

if TYPE_CHECKING:
    from sequencer.api.app import Api

log = logging.getLogger("optrollup.api")

WriteHandler = Callable[[Any], Awaitable[Any]]  # the parsed JSON body -> the JSON answer


async def _chunks(receive: Callable[[], Awaitable[dict[str, Any]]]) -> AsyncIterator[bytes]:
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return
        yield msg.get("body", b"")
        if not msg.get("more_body", False):
            return


def _content_length(scope: dict[str, Any]) -> str | None:
    for k, v in scope.get("headers", ()):
        if k == b"content-length":
            return v.decode("latin-1")
    return None


Answer = tuple[int, Any, dict[str, str]]  # (status, JSON body, extra headers)


async def answer_write(api: Api, ip: str, path: str,
                       work: Callable[[], Awaitable[Answer]]) -> Answer:
    """What the write routes do around `work`, wherever the request came in (this front, or an
    ingress worker's frame, sequencer/ingress/core.py): charge `ip`'s budget, refuse while the
    node has failed, then the answer of `work`; errors through the one table (a bug: a logged
    500)."""
    node = api.node
    token = REQUEST.set(RequestInfo(ip))  # the IP a bad signature counts against (Api.admit)
    try:
        api.charge_ip(ip)
        if node.failed is not None:
            node.check_alive()  # raises store_unavailable
        return await work()
    except IpBlocked as exc:  # 403 while the IP is blocked for bad signatures
        node.metrics.rejected.labels("http", exc.code).inc()
        return exc.parts()
    except OptrollupError as exc:
        node.metrics.rejected.labels("http", exc.code).inc()
        return error_parts(exc)
    except Exception:  # a bug: logged, answered as the app's last-resort handler does
        log.exception("unhandled error on POST %s", path)
        return 500, error_body("internal_error", "internal error (a bug; it has been logged)"), {}
    finally:
        REQUEST.reset(token)


class FastWrites:
    """ASGI: POST to a path in `writes` is handled here; anything else goes to `app`."""

    def __init__(self, app: Any, api: Api, writes: dict[str, WriteHandler]) -> None:
        self.app, self.api, self.writes = app, api, writes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        handler = (self.writes.get(scope["path"])
                   if scope["type"] == "http" and scope["method"] == "POST" else None)
        if handler is None:
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        api = self.api
        trace = requesttrace.begin() if api.node.stages is not None else None

        async def work() -> Answer:
            body = await api.read_body(_content_length(scope), _chunks(receive))
            requesttrace.mark("read")
            return 200, await handler(body), {}

        client = scope.get("client")
        status, payload, extra = await answer_write(api, client[0] if client else "?",
                                                    scope["path"], work)
        raw = json.dumps(payload, ensure_ascii=False, allow_nan=False,
                         separators=(",", ":")).encode()
        headers = [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(raw)).encode()), *headers]})
        await send({"type": "http.response.body", "body": raw})
        t1 = time.perf_counter()
        node = api.node
        node.metrics.latency.labels(scope["path"]).observe(t1 - t0)
        if trace is not None:
            node.stages.observe(scope["path"], t0, requesttrace.end(trace), t1)
