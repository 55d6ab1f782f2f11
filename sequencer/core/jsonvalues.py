"""Integers and booleans in JSON request bodies, one rule for the HTTP API (sequencer.api.wire)
and the channel messages (sequencer.core.channelmsg): numbers that can exceed 2^53 come as JSON
integers or decimal strings; errors name the field (code invalid_number / invalid_type)."""

from __future__ import annotations

import re
from typing import Any

from sequencer.errors import InvalidRequest

_SINT = re.compile(r"-?[0-9]{1,78}")


def json_uint(value: Any, field: str, bits: int = 256) -> int:
    """A JSON integer or decimal string in [0, 2**bits)."""
    if type(value) is int:
        n = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 78:
        n = int(value)
    else:
        raise InvalidRequest(f"{field} must be a non-negative integer or decimal string, "
                             f"got {value!r}", code="invalid_number")
    if n < 0 or n >> bits:
        raise InvalidRequest(f"{field} does not fit in uint{bits}: {value}", code="invalid_number")
    return n


def json_int(value: Any, field: str, bits: int = 256) -> int:
    """A JSON integer or decimal string (optionally negative) in [-2**(bits-1), 2**(bits-1))."""
    if type(value) is int:
        n = value
    elif isinstance(value, str) and _SINT.fullmatch(value):
        n = int(value)
    else:
        raise InvalidRequest(f"{field} must be an integer or decimal string, got {value!r}",
                             code="invalid_number")
    if not -(1 << (bits - 1)) <= n < 1 << (bits - 1):
        raise InvalidRequest(f"{field} does not fit in int{bits}: {value}", code="invalid_number")
    return n


def json_bool(value: Any, field: str) -> bool:
    """JSON true or false (not 0/1)."""
    if type(value) is not bool:
        raise InvalidRequest(f"{field} must be true or false, got {value!r}", code="invalid_type")
    return value
