"""The one table from error class to HTTP status, and the design.md error body."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from sequencer.errors import (
    HTTP_STATUS,
    Forbidden,
    OptrollupError,
    RateLimited,
    Unavailable,
    http_status,
)
from sequencer.l1.errors import L1Error
from sequencer.store import StoreError

STATUS: tuple[tuple[type[OptrollupError], int], ...] = (
    *HTTP_STATUS,
    (StoreError, 503),
    (L1Error, 503),  # the L1 node cannot be reached or answered badly: retry later
)
"""Every OptrollupError a request can meet maps here; an unmapped one is a bug (500), and
tests/sequencer/api/test_errors.py checks that every subclass in the codebase is mapped."""


def status_of(exc: OptrollupError) -> int:
    return http_status(exc, STATUS)


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_parts(exc: OptrollupError) -> tuple[int, dict, dict[str, str]]:
    """(status, body, headers) of the answer to `exc`."""
    if isinstance(exc, StoreError) and not isinstance(exc, Unavailable):
        # a storage fault is the node's, never the client's: one stable code for all of them
        return 503, error_body("store_unavailable", exc.message), {}
    headers = {}
    retry = getattr(exc, "retry_after", None)
    if isinstance(exc, (RateLimited, Forbidden)) and retry is not None:
        headers["Retry-After"] = str(max(1, int(retry + 0.999)))
    return status_of(exc), error_body(exc.code, exc.message), headers


def error_response(exc: OptrollupError) -> JSONResponse:
    status, body, headers = error_parts(exc)
    return JSONResponse(body, status_code=status, headers=headers)


def plain_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)


def with_party(r: Any) -> Any:
    """An amend's error names the part that failed: "cancel: ..." or "order: ..."."""
    if isinstance(r, OptrollupError) and getattr(r, "party", None) in ("cancel", "order"):
        if not r.message.startswith(r.party + ": "):
            r.args = (f"{r.party}: {r.message}", *r.args[1:])
    return r
