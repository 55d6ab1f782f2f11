"""The exception tree every optrollup error belongs to, and the SDK's typed errors.

`OptrollupError` and one class per kind of refusal (`InvalidRequest` 400, `InvalidSignature` 401,
`Forbidden` 403, `NotFound` 404, `Conflict` 409, `Rejected` 422, `RateLimited` 429, `Unavailable`
503, `PayloadTooLarge` 413) are the wire's tree: the node raises them (its `sequencer.errors`
re-exports them) and the SDK's answers map onto them. A 4xx/5xx answer becomes an `ApiError`
subclass that is also the matching class (`NotFoundError` is a `NotFound`, ...), carrying the
server's `code`, `message` and HTTP `status`. Failures before an answer (connection, bad JSON
from the server, WebSocket closes) are `ClientError`s.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Conflict", "Forbidden", "InvalidRequest", "InvalidSignature", "NotFound", "OptrollupError",
    "PayloadTooLarge", "RateLimited", "Rejected", "Unavailable", "ForbiddenError",
    "ApiError", "BadRequestError", "ClientError", "ConflictError", "NotFoundError",
    "PayloadTooLargeError", "RateLimitedError", "RejectedError", "ServerError", "StreamClosed",
    "StreamGap",
    "TransportError", "UnauthorizedError", "UnavailableError", "error_from_answer",
]


class OptrollupError(Exception):
    """Base of every error we raise on purpose. `code` is stable and part of the API."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.code


class InvalidRequest(OptrollupError):
    """Malformed input: bad field type, value, hex, length (HTTP 400)."""

    code = "invalid_request"


class InvalidSignature(OptrollupError):
    """Signature malformed or from the wrong signer (HTTP 401)."""

    code = "invalid_signature"


class NotFound(OptrollupError):
    """Unknown instrument, order, block, account (HTTP 404)."""

    code = "not_found"


class Conflict(OptrollupError):
    """Replay or duplicate: digest seen, nonce used, instrument already listed (HTTP 409)."""

    code = "conflict"


class Rejected(OptrollupError):
    """Well-formed but refused by trading rules: margin, post-only cross, FOK unfilled,
    halted market (HTTP 422)."""

    code = "rejected"


class RateLimited(OptrollupError):
    """Too many requests (HTTP 429 with Retry-After)."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float = 1.0, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Forbidden(OptrollupError):
    """The client may not make this request now (HTTP 403), e.g. an IP blocked for a burst of
    bad signatures; `retry_after` seconds, when set, say when it may."""

    code = "forbidden"
    retry_after: float | None = None


class Unavailable(OptrollupError):
    """The node cannot serve this now (HTTP 503): shutting down, L1 unreachable."""

    code = "unavailable"


class PayloadTooLarge(InvalidRequest):
    """Request body over the size limit (HTTP 413)."""

    code = "body_too_large"


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


class ForbiddenError(ApiError, Forbidden):
    """HTTP 403: the client may not make this request now (e.g. its IP is blocked for a burst
    of bad signatures); `retry_after` is the server's Retry-After in seconds, when it sent one."""

    def __init__(self, message: str, *, code: str, status: int, retry_after: float | None = None) -> None:
        ApiError.__init__(self, message, code=code, status=status)
        self.retry_after = retry_after


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
    400: BadRequestError, 401: UnauthorizedError, 403: ForbiddenError, 404: NotFoundError, 409: ConflictError,
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
        return RateLimitedError(message, code=code, status=status,
                                retry_after=_retry_after(headers, 1.0) or 1.0)
    if cls is ForbiddenError:
        return ForbiddenError(message, code=code, status=status, retry_after=_retry_after(headers, None))
    return cls(message, code=code, status=status)


def _retry_after(headers: Any, default: float | None) -> float | None:
    """The Retry-After header in seconds, `default` when absent or not a number."""
    raw = headers.get("retry-after") if headers is not None else None
    try:
        return float(raw) if raw is not None else default
    except ValueError:
        return default
