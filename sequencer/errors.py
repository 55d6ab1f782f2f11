"""The one exception tree of optrollup. Every error a user can cause has a stable snake_case
`code` and a message that says what was wrong; HTTP fronts map classes to status codes with
one table (HTTP_STATUS, below), never by matching messages.

The wire-level classes (OptrollupError and one class per HTTP status) are defined in the light
SDK, `optrollup_client`, so that a client error such as `NotFoundError` is also this tree's
`NotFound` without the SDK depending on the node; the node's own layers add theirs here."""

from __future__ import annotations

from optrollup_client import (Conflict, Forbidden, InvalidRequest, InvalidSignature, NotFound,
                              OptrollupError, PayloadTooLarge, RateLimited, Rejected, Unavailable)

__all__ = ["Conflict", "Forbidden", "HTTP_STATUS", "InvalidRequest", "InvalidSignature", "NotFound",
           "OptrollupError", "PayloadTooLarge", "RateLimited", "Rejected", "StoreUnavailable",
           "Unavailable", "http_status"]


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
