"""The one table from error class to HTTP status, and the design.md error body."""

from __future__ import annotations

from starlette.responses import JSONResponse

from sequencer.errors import (
    Conflict,
    InvalidRequest,
    InvalidSignature,
    NotFound,
    OptrollupError,
    PayloadTooLarge,
    RateLimited,
    Rejected,
    Unavailable,
)

STATUS: list[tuple[type[OptrollupError], int]] = [
    (PayloadTooLarge, 413),
    (InvalidRequest, 400),
    (InvalidSignature, 401),
    (NotFound, 404),
    (Conflict, 409),
    (Rejected, 422),
    (RateLimited, 429),
    (Unavailable, 503),
    (OptrollupError, 400),
]


def status_of(exc: OptrollupError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def error_response(exc: OptrollupError) -> JSONResponse:
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    return JSONResponse(error_body(exc.code, exc.message), status_code=status_of(exc), headers=headers)


def plain_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status)
