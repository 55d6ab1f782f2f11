"""The one exception tree of optrollup. Every error a user can cause has a stable snake_case
`code` and a message that says what was wrong; HTTP fronts map classes to status codes with
one table (HTTP_STATUS, below), never by matching messages."""

from __future__ import annotations


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


class StoreUnavailable(Unavailable):
    """The node stopped serving after a storage fault or an internal error, so that it never
    serves state its log does not hold (HTTP 503 until an operator restarts it)."""

    code = "store_unavailable"


HTTP_STATUS: tuple[tuple[type[OptrollupError], int], ...] = (
    (PayloadTooLarge, 413),
    (InvalidRequest, 400),
    (InvalidSignature, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Rejected, 422),
    (RateLimited, 429),
    (Unavailable, 503),
)
"""The HTTP status of each class of this tree (first match). Every HTTP front (the node's API,
the channel service) extends it with the errors of its own layers (storage, L1) and answers
anything unmapped as a bug (500)."""


def http_status(exc: OptrollupError,
                table: tuple[tuple[type[OptrollupError], int], ...] = HTTP_STATUS) -> int:
    """The status of `exc` in `table` (first match), 500 when none matches."""
    for cls, status in table:
        if isinstance(exc, cls):
            return status
    return 500
