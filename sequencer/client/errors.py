"""Typed client errors. Every error the SDK raises is a `sequencer.errors.OptrollupError`.

A 4xx/5xx answer becomes an `ApiError` subclass that is also the matching server-side class
(`NotFoundError` is a `NotFound`, `RateLimitedError` a `RateLimited`, ...), carrying the server's
`code`, `message` and HTTP `status`. Failures before an answer (connection, bad JSON from the
server, WebSocket closes) are `ClientError`s.
"""

from __future__ import annotations

from typing import Any

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

__all__ = [
    "ApiError", "BadRequestError", "ClientError", "ConflictError", "NotFoundError",
    "PayloadTooLargeError", "RateLimitedError", "RejectedError", "ServerError", "StreamClosed",
    "StreamGap",
    "TransportError", "UnauthorizedError", "UnavailableError", "error_from_answer",
]


class ClientError(OptrollupError):
    """Raised by the SDK itself: no answer, an unreadable answer, a bad argument."""

    code = "client_error"


class TransportError(ClientError):
    """The request never got an HTTP answer (connection refused, timeout, ...)."""

    code = "transport_error"


class StreamClosed(ClientError):
    """The WebSocket stream ended; `reason` is the server's close reason, `close_code` its code."""

    code = "stream_closed"

    def __init__(self, message: str, *, close_code: int | None = None, reason: str = "",
                 code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.close_code, self.reason = close_code, reason


class StreamGap(ClientError):
    """A stream message arrived out of sequence: `channel`, `expected` and `got` seq."""

    code = "stream_gap"

    def __init__(self, channel: str, expected: int, got: int) -> None:
        super().__init__(f"{channel}: expected seq {expected}, got {got}")
        self.channel, self.expected, self.got = channel, expected, got


class ApiError(OptrollupError):
    """The server answered with an error body: `code`, `message` (the server's), `status` (HTTP)."""

    def __init__(self, message: str, *, code: str, status: int) -> None:
        OptrollupError.__init__(self, message, code=code)
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class BadRequestError(ApiError, InvalidRequest):
    """HTTP 400: malformed input."""


class PayloadTooLargeError(BadRequestError, PayloadTooLarge):
    """HTTP 413: body over the server's limit."""


class UnauthorizedError(ApiError, InvalidSignature):
    """HTTP 401: bad or missing signature / auth headers."""


class NotFoundError(ApiError, NotFound):
    """HTTP 404: unknown instrument, order, block, account, withdrawal."""


class ConflictError(ApiError, Conflict):
    """HTTP 409: replay or duplicate (digest seen, nonce used)."""


class RejectedError(ApiError, Rejected):
    """HTTP 422: refused by trading rules (margin, post-only cross, FOK unfilled, ...)."""


class RateLimitedError(ApiError, RateLimited):
    """HTTP 429; `retry_after` is the server's Retry-After in seconds."""

    def __init__(self, message: str, *, code: str, status: int, retry_after: float = 1.0) -> None:
        ApiError.__init__(self, message, code=code, status=status)
        self.retry_after = retry_after


class UnavailableError(ApiError, Unavailable):
    """HTTP 503: the node cannot serve this now."""


class ServerError(ApiError):
    """HTTP 5xx other than 503: a server bug."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError, 401: UnauthorizedError, 404: NotFoundError, 409: ConflictError,
    413: PayloadTooLargeError, 422: RejectedError, 429: RateLimitedError, 503: UnavailableError,
}


def error_from_answer(status: int, body: Any, headers: Any = None) -> ApiError:
    """The typed error for an error answer (`body` the decoded JSON, or None if it was not JSON).
    `status` 0 marks a per-item error of a batch answer (plain ApiError unless rate_limited)."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and isinstance(err.get("code"), str):
        code, message = err["code"], str(err.get("message") or err["code"])
    else:
        code, message = f"http_{status}", f"HTTP {status} without an error body"
    if status == 0:      # a per-item error inside a 200 batch answer: no status of its own
        cls: type[ApiError] = RateLimitedError if code == "rate_limited" else ApiError
    else:
        cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else BadRequestError)
    if cls is RateLimitedError:
        retry = 1.0
        raw = headers.get("retry-after") if headers is not None else None
        try:
            retry = float(raw) if raw is not None else 1.0
        except ValueError:
            pass
        return RateLimitedError(message, code=code, status=status, retry_after=retry)
    return cls(message, code=code, status=status)
