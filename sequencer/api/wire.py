"""Decoding JSON request bodies into typed values, with errors that name the field.

design.md: numbers that can exceed 2^53 are accepted as a decimal string or a JSON integer;
addresses are 0x hex (mixed case must be valid EIP-55); signatures are 0x + 65 bytes r‖s‖v.
Unknown fields are rejected so a typo never silently changes an order.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

try:
    import orjson
except ImportError:  # optional: the standard library parses alone, the same way
    orjson = None

from cext import Order, parse_address
from sequencer.core.eip712 import FIELDS, Cancel
from sequencer.core.jsonvalues import json_bool as boolean
from sequencer.core.jsonvalues import json_int as sint
from sequencer.core.jsonvalues import json_uint as uint
from sequencer.errors import InvalidRequest

ORDER_KEYS = ("account", "instrument", "isBuy", "price", "amount", "nonce", "expiry",
              "timeInForce", "postOnly", "reduceOnly")


# digits to b"0", every other byte unchanged: a run of 19 zeros in the result is a run of 19 digits
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_NUMBER = b"0" * 19


def parse_json(body: bytes | bytearray) -> Any:
    """The JSON value of a request body, exactly as `json.loads` gives it, else InvalidRequest
    (malformed_json). orjson parses when it can give the same value: a body with a run of 19 or
    more digits may hold an integer outside 64 bits, which orjson would turn into a float, so
    such a body (and any orjson refuses: NaN, lone surrogates, other encodings, errors) is
    parsed by `json.loads`, whose answer or error it then is."""
    if orjson is not None and _LONG_NUMBER not in body.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}", code="malformed_json") from None
    except RecursionError:
        raise InvalidRequest("body is not valid JSON: nested too deeply",
                             code="malformed_json") from None


@functools.lru_cache(maxsize=256)
def _keyset(keys: tuple[str, ...]) -> frozenset[str]:
    return frozenset(keys)


def require_object(value: Any, field: str, keys: Sequence[str], optional: Sequence[str] = ()) -> Mapping[str, Any]:
    """`value` must be a JSON object with exactly `keys` (plus any of `optional`)."""
    if not isinstance(value, dict):
        raise InvalidRequest(f"{field} must be a JSON object", code="invalid_type")
    if value.keys() == (_keyset(keys) if type(keys) is tuple else frozenset(keys)):
        return value  # the common case, compared in C; else say what is wrong
    missing = [k for k in keys if k not in value]
    if missing:
        raise InvalidRequest(f"{field} is missing {', '.join(missing)}", code="missing_field")
    unknown = [k for k in value if k not in keys and k not in optional]
    if unknown:
        raise InvalidRequest(f"{field} has unknown field(s) {', '.join(sorted(unknown))}",
                             code="unknown_field")
    return value


def string(value: Any, field: str, max_len: int = 64) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string, got {value!r}", code="invalid_type")
    if len(value) > max_len:
        raise InvalidRequest(f"{field} is longer than {max_len} characters", code="invalid_value")
    return value


# Valid address strings already parsed (EIP-55 checking costs a keccak in Python, per order on
# the batch path; clients send the same few addresses over and over). Bounded: cleared when full.
_ADDRESSES: dict[str, bytes] = {}
_ADDRESSES_MAX = 1 << 16


def address(value: Any, field: str) -> bytes:
    """20 raw bytes from 0x hex; mixed case must be a valid EIP-55 checksum."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a 0x-hex address string, got {value!r}",
                             code="invalid_address")
    raw = _ADDRESSES.get(value)
    if raw is not None:
        return raw
    try:
        raw = parse_address(value, field)
    except ValueError as exc:
        raise InvalidRequest(str(exc), code="invalid_address") from None
    if len(_ADDRESSES) >= _ADDRESSES_MAX:
        _ADDRESSES.clear()
    _ADDRESSES[value] = raw
    return raw


def hex_bytes(value: Any, field: str, length: int) -> bytes:
    if not isinstance(value, str) or value[:2] not in ("0x", "0X"):
        raise InvalidRequest(f"{field} must be 0x-prefixed hex", code="invalid_hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidRequest(f"{field} is not valid hex", code="invalid_hex") from None
    if len(raw) != length:
        raise InvalidRequest(f"{field} must be {length} bytes, got {len(raw)}", code="invalid_length")
    return raw


def signature(value: Any, field: str = "signature") -> bytes:
    """65 bytes r‖s‖v; v must be 0, 1, 27 or 28 (range and low-s are checked at recovery)."""
    sig = hex_bytes(value, field, 65)
    if sig[64] not in (0, 1, 27, 28):
        raise InvalidRequest(f"{field} has v = {sig[64]}; expected 27 or 28 (or 0/1)",
                             code="invalid_signature_v")
    return sig


def order(value: Any, field: str = "order") -> Order:
    """An Order message (EIP-712 field names) from JSON."""
    o = require_object(value, field, ORDER_KEYS)
    tif = uint(o["timeInForce"], f"{field}.timeInForce", 8)
    if tif > 2:
        raise InvalidRequest(f"{field}.timeInForce must be 0 (GTC), 1 (IOC) or 2 (FOK), got {tif}",
                             code="invalid_value")
    return Order(
        address(o["account"], f"{field}.account"),
        string(o["instrument"], f"{field}.instrument"),
        boolean(o["isBuy"], f"{field}.isBuy"),
        uint(o["price"], f"{field}.price"),
        uint(o["amount"], f"{field}.amount"),
        uint(o["nonce"], f"{field}.nonce", 64),
        uint(o["expiry"], f"{field}.expiry", 64),
        tif,
        boolean(o["postOnly"], f"{field}.postOnly"),
        boolean(o["reduceOnly"], f"{field}.reduceOnly"),
    )


def signed(body: Any, primary: str) -> tuple[Mapping[str, Any], bytes]:
    """Split a signed write `{"<primary>": {...}, "signature": "0x.."}`."""
    obj = require_object(body, "body", (primary, "signature"))
    return obj[primary], signature(obj["signature"])


def _field(typ: str, value: Any, name: str) -> Any:
    if typ == "address":
        return address(value, name)
    if typ == "string":
        return string(value, name)
    if typ == "bool":
        return boolean(value, name)
    if typ == "bytes32":
        return hex_bytes(value, name, 32)
    if typ.endswith("[]"):
        if not isinstance(value, list) or len(value) > 64:
            raise InvalidRequest(f"{name} must be a list of at most 64 items", code="invalid_type")
        return tuple(_field(typ[:-2], v, f"{name}[{i}]") for i, v in enumerate(value))
    if typ.startswith("int"):
        return sint(value, name, int(typ[3:]))
    return uint(value, name, int(typ[4:]))


def message(value: Any, field: str, fields: Sequence[tuple[str, str]], cls: type) -> Any:
    """An EIP-712 message of `cls` with the given (name, type) `fields`, from JSON."""
    o = require_object(value, field, [n for n, _ in fields])
    return cls(*[_field(t, o[n], f"{field}.{n}") for n, t in fields])


def batch_items(body: Any, key: str, cap: int) -> list[Any]:
    """The non-empty list `body[key]` of a batch request, at most `cap` long."""
    items = require_object(body, "body", (key,))[key]
    if not isinstance(items, list) or not items:
        raise InvalidRequest(f"{key} must be a non-empty list", code="invalid_type")
    if len(items) > cap:
        raise InvalidRequest(f"{len(items)} {key} exceed the batch limit of {cap}",
                             code="batch_too_large")
    return items


def replace_pair(item: Any, field: str) -> tuple[tuple[Any, bytes], tuple[Order, bytes]]:
    """An amend {"cancel": signed Cancel, "order": signed Order}: ((cancel, sig), (order, sig))."""
    obj = require_object(item, field, ("cancel", "order"))
    cmsg, csig = signed(obj["cancel"], "cancel")
    omsg, osig = signed(obj["order"], "order")
    return ((message(cmsg, f"{field}.cancel.cancel", FIELDS["Cancel"], Cancel), csig),
            (order(omsg, f"{field}.order.order"), osig))
