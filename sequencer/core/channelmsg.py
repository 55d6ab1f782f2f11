"""EIP-712 messages of state channels (design.md "State channels"), in the order domain.

    ChannelOpen(address a,address b,address signerA,address signerB,uint256 depositA,
                uint256 depositB,uint64 nonce,uint32 challengePeriod)
    ChannelPosition(string instrument,int256 amount)
    ChannelState(bytes32 channelId,uint64 turnNum,uint256 balanceA,uint256 balanceB,
                 ChannelPosition[] positions,bool isFinal)

Messages are NamedTuples whose fields are the EIP-712 fields in type order: addresses 20 raw
bytes, `channelId` 32 bytes, balances and deposits collateral base units, position amounts
contracts x 10^6 (A's signed amount; B holds the negative). The `ChannelPosition[]` array
hashes as keccak256 of the concatenated hashStructs of its items, and the ChannelState type
string has the ChannelPosition type appended (EIP-712 `encodeType`), as in the L1 Adjudicator.

This module only encodes, hashes and parses; whether a state is valid for its channel
(conservation, ordering, turns) is `channels.rules`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from cext import keccak256, parse_address, to_checksum
from sequencer.core.eip712 import DOMAIN_FIELDS
from sequencer.core.eip712 import encode_word as _eip712_word
from sequencer.core.jsonvalues import json_bool, json_int, json_uint
from sequencer.errors import InvalidRequest

MAX_POSITIONS = 256
"""Most positions a channel state may hold (the Adjudicator loops over them on L1)."""
MAX_INSTRUMENT_LEN = 64

CHANNEL_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "ChannelOpen": (("a", "address"), ("b", "address"), ("signerA", "address"),
                    ("signerB", "address"), ("depositA", "uint256"), ("depositB", "uint256"),
                    ("nonce", "uint64"), ("challengePeriod", "uint32")),
    "ChannelPosition": (("instrument", "string"), ("amount", "int256")),
    "ChannelState": (("channelId", "bytes32"), ("turnNum", "uint64"), ("balanceA", "uint256"),
                     ("balanceB", "uint256"), ("positions", "ChannelPosition[]"),
                     ("isFinal", "bool")),
}
FIXED_FIELDS: tuple[tuple[str, str], ...] = (
    ("a", "address"), ("b", "address"), ("signerA", "address"), ("signerB", "address"),
    ("nonce", "uint64"), ("challengePeriod", "uint32"))
"""The Adjudicator's `Fixed` struct: what the channel id commits to besides chain and rollup."""


class ChannelOpen(NamedTuple):
    """Open a channel between accounts `a` and `b`, moving `depositA`/`depositB` (base units)
    out of their rollup accounts. `signerA`/`signerB` sign its states; `challengePeriod` is
    seconds. Signed by both accounts (or their live session keys)."""

    a: bytes
    b: bytes
    signerA: bytes
    signerB: bytes
    depositA: int
    depositB: int
    nonce: int
    challengePeriod: int


class ChannelFixed(NamedTuple):
    """The Adjudicator's `Fixed{a, b, signerA, signerB, nonce, challengePeriod}` of a channel."""

    a: bytes
    b: bytes
    signerA: bytes
    signerB: bytes
    nonce: int
    challengePeriod: int


class ChannelPosition(NamedTuple):
    """A's signed `amount` (contracts x 10^6) of `instrument`; B holds -amount."""

    instrument: str
    amount: int


class ChannelState(NamedTuple):
    """State `turnNum` of channel `channelId`: balances in base units, A's positions sorted
    by instrument (UTF-8 bytewise, strictly) with no zero amount, `isFinal` for a close."""

    channelId: bytes
    turnNum: int
    balanceA: int
    balanceB: int
    positions: tuple[ChannelPosition, ...]
    isFinal: bool


def fixed_of(msg: ChannelOpen) -> ChannelFixed:
    """The `Fixed` part of an open (what L1 needs to recompute the channel id)."""
    return ChannelFixed(msg.a, msg.b, msg.signerA, msg.signerB, msg.nonce, msg.challengePeriod)


def type_string(primary: str) -> str:
    """EIP-712 encodeType: `Name(type field,...)` followed by referenced struct types."""
    def one(name: str) -> str:
        return name + "(" + ",".join(f"{t} {n}" for n, t in CHANNEL_FIELDS[name]) + ")"
    used = {t.removesuffix("[]") for _, t in CHANNEL_FIELDS[primary]}
    refs = sorted((used & set(CHANNEL_FIELDS)) - {primary})
    return one(primary) + "".join(one(r) for r in refs)


TYPEHASH: dict[str, bytes] = {p: keccak256(type_string(p).encode()) for p in CHANNEL_FIELDS}


def channel_types() -> dict[str, list[dict[str, str]]]:
    """The channel entries of the `types` object of `GET /v1/info` (merge them with
    `sequencer.core.eip712.eip712_types()`, which holds `EIP712Domain`)."""
    return {p: [{"name": n, "type": t} for n, t in f] for p, f in CHANNEL_FIELDS.items()}


def domain_types() -> list[dict[str, str]]:
    """`EIP712Domain` entries, for building a complete typed-data object with channel_types()."""
    return [{"name": n, "type": t} for n, t in DOMAIN_FIELDS]


def _word(typ: str, value: Any, field: str) -> bytes:
    if typ == "ChannelPosition[]":
        if not isinstance(value, (tuple, list)):
            raise InvalidRequest(f"{field} must be an array", code="bad_field")
        return keccak256(b"".join(hash_position(p, f"{field}[{i}]") for i, p in enumerate(value)))
    return _eip712_word(typ, value, field)


def _hash(primary: str, msg: Sequence[Any], field: str) -> bytes:
    fields = CHANNEL_FIELDS[primary]
    if len(msg) != len(fields):
        raise InvalidRequest(f"{field} must have the {len(fields)} fields of {primary}",
                             code="bad_field")
    return keccak256(TYPEHASH[primary] + b"".join(
        _word(t, v, f"{field}.{n}") for (n, t), v in zip(fields, msg)))


def hash_position(p: ChannelPosition, field: str = "position") -> bytes:
    """hashStruct(ChannelPosition)."""
    if not isinstance(p, tuple):
        raise InvalidRequest(f"{field} must be a ChannelPosition", code="bad_field")
    return _hash("ChannelPosition", p, field)


def hash_open(msg: ChannelOpen) -> bytes:
    """hashStruct(ChannelOpen); InvalidRequest naming a bad field."""
    return _hash("ChannelOpen", msg, "channelOpen")


def hash_state(state: ChannelState) -> bytes:
    """hashStruct(ChannelState); InvalidRequest naming a bad field."""
    return _hash("ChannelState", state, "channelState")


def open_digest(domain: bytes, msg: ChannelOpen) -> bytes:
    """keccak256(0x1901 ‖ domain ‖ hashStruct(ChannelOpen)): what both accounts sign."""
    return keccak256(b"\x19\x01" + domain + hash_open(msg))


def state_digest(domain: bytes, state: ChannelState) -> bytes:
    """keccak256(0x1901 ‖ domain ‖ hashStruct(ChannelState)): what both signers sign, and the
    Adjudicator's `stateHash`."""
    return keccak256(b"\x19\x01" + domain + hash_state(state))


def channel_id(l2_chain_id: int, rollup: bytes,
               f: ChannelOpen | ChannelFixed) -> bytes:
    """keccak256(abi.encode(uint256 l2ChainId, address rollup, address a, address b,
    address signerA, address signerB, uint64 nonce, uint32 challengePeriod)). `f` is an open
    or its Fixed part (same field names)."""
    words = [_eip712_word("uint256", l2_chain_id, "l2ChainId"),
             _eip712_word("address", rollup, "rollup")]
    words += [_eip712_word(t, getattr(f, n), n) for n, t in FIXED_FIELDS]
    return keccak256(b"".join(words))


# --- JSON ---------------------------------------------------------------------------------
# Requests: integers as JSON integers or decimal strings, addresses 0x hex (mixed case must be
# EIP-55), exact key sets. Responses: integers wider than 53 bits as decimal strings, addresses
# EIP-55. Error codes follow sequencer/api/wire.py: invalid_type, missing_field, unknown_field,
# invalid_number, invalid_address, invalid_hex, invalid_length, invalid_value.

def require_object(value: Any, field: str, keys: Sequence[str]) -> Mapping[str, Any]:
    """`value` must be a JSON object with exactly `keys`."""
    if not isinstance(value, dict):
        raise InvalidRequest(f"{field} must be a JSON object", code="invalid_type")
    missing = [k for k in keys if k not in value]
    if missing:
        raise InvalidRequest(f"missing {', '.join(f'{field}.{k}' for k in missing)}",
                             code="missing_field")
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        raise InvalidRequest(f"unknown field(s) {', '.join(f'{field}.{k}' for k in unknown)}",
                             code="unknown_field")
    return value


def json_string(value: Any, field: str, max_len: int = MAX_INSTRUMENT_LEN) -> str:
    """A JSON string of at most `max_len` characters."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string, got {value!r}", code="invalid_type")
    if len(value) > max_len:
        raise InvalidRequest(f"{field} is longer than {max_len} characters", code="invalid_value")
    return value


def json_address(value: Any, field: str) -> bytes:
    """20 raw bytes from 0x hex; mixed case must be a valid EIP-55 checksum."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a 0x-hex address string, got {value!r}",
                             code="invalid_address")
    try:
        return parse_address(value, field)
    except ValueError as exc:
        raise InvalidRequest(str(exc), code="invalid_address") from None


def json_bytes(value: Any, field: str, length: int) -> bytes:
    """Exactly `length` bytes from 0x hex."""
    if not isinstance(value, str) or value[:2] not in ("0x", "0X"):
        raise InvalidRequest(f"{field} must be 0x-prefixed hex", code="invalid_hex")
    try:
        raw = bytes.fromhex(value[2:])
    except ValueError:
        raise InvalidRequest(f"{field} is not valid hex", code="invalid_hex") from None
    if len(raw) != length:
        raise InvalidRequest(f"{field} must be {length} bytes, got {len(raw)}",
                             code="invalid_length")
    return raw


def _from_json(typ: str, value: Any, field: str) -> Any:
    if typ == "address":
        return json_address(value, field)
    if typ == "bytes32":
        return json_bytes(value, field, 32)
    if typ == "string":
        return json_string(value, field)
    if typ == "bool":
        return json_bool(value, field)
    if typ == "ChannelPosition[]":
        if not isinstance(value, list):
            raise InvalidRequest(f"{field} must be a list", code="invalid_type")
        if len(value) > MAX_POSITIONS:
            raise InvalidRequest(f"{field} has {len(value)} items, more than {MAX_POSITIONS}",
                                 code="too_many_positions")
        return tuple(position_from_json(p, f"{field}[{i}]") for i, p in enumerate(value))
    if typ.startswith("int"):
        return json_int(value, field, int(typ[3:]))
    return json_uint(value, field, int(typ[4:]))


def _to_json(typ: str, value: Any) -> Any:
    if typ == "address":
        return to_checksum(value)
    if typ == "bytes32":
        return "0x" + value.hex()
    if typ in ("string", "bool"):
        return value
    if typ == "ChannelPosition[]":
        return [position_to_json(p) for p in value]
    bits = int(typ[3:] if typ.startswith("int") else typ[4:])
    return value if bits <= 32 else str(value)


def _message(primary: str, cls: type, value: Any, field: str) -> Any:
    fields = CHANNEL_FIELDS[primary]
    o = require_object(value, field, [n for n, _ in fields])
    return cls(*[_from_json(t, o[n], f"{field}.{n}") for n, t in fields])


def _json(primary: str, msg: Sequence[Any]) -> dict[str, Any]:
    return {n: _to_json(t, v) for (n, t), v in zip(CHANNEL_FIELDS[primary], msg)}


def open_from_json(value: Any, field: str = "channelOpen") -> ChannelOpen:
    """A ChannelOpen from JSON; InvalidRequest naming the bad field."""
    return _message("ChannelOpen", ChannelOpen, value, field)  # type: ignore[no-any-return]


def position_from_json(value: Any, field: str = "position") -> ChannelPosition:
    """A ChannelPosition from JSON `{instrument, amount}`."""
    return _message("ChannelPosition", ChannelPosition, value, field)  # type: ignore[no-any-return]


def state_from_json(value: Any, field: str = "channelState") -> ChannelState:
    """A ChannelState from JSON (positions as a list of `{instrument, amount}`); only the
    encoding is checked here, validity for the channel is channels.rules."""
    return _message("ChannelState", ChannelState, value, field)  # type: ignore[no-any-return]


def open_to_json(msg: ChannelOpen) -> dict[str, Any]:
    """Response form: EIP-55 addresses, uint256/uint64 as decimal strings."""
    return _json("ChannelOpen", msg)


def position_to_json(p: ChannelPosition) -> dict[str, Any]:
    """Response form: `amount` as a decimal string."""
    return _json("ChannelPosition", p)


def state_to_json(state: ChannelState) -> dict[str, Any]:
    """Response form: `channelId` 0x hex, numbers as decimal strings."""
    return _json("ChannelState", state)
