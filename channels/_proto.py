"""JSON bodies of the channel service's HTTP API (owner and peer endpoints) that are not the
signed messages themselves (those are sequencer.core.channelmsg's) nor trades and quotes
(channels._wire). Same conventions: integers as JSON integers or decimal strings in requests,
decimal strings in answers, addresses EIP-55, signatures 0x + 65 bytes r ‖ s ‖ v, exact key sets
(optional keys named), InvalidRequest naming the field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from channels.store import Cosigned
from sequencer.core.channelmsg import (
    ChannelState,
    json_bytes,
    json_uint,
    state_from_json,
    state_to_json,
)
from sequencer.errors import InvalidRequest

__all__ = ["cosigned_from_json", "cosigned_to_json", "fields", "hexb", "optional_uint",
           "signature", "signatures"]


def hexb(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def fields(value: Any, field: str, required: Sequence[str],
           optional: Sequence[str] = ()) -> Mapping[str, Any]:
    """`value` must be a JSON object with every `required` key and no key outside
    `required` + `optional`."""
    if not isinstance(value, dict):
        raise InvalidRequest(f"{field} must be a JSON object", code="invalid_type")
    missing = [k for k in required if k not in value]
    if missing:
        raise InvalidRequest(f"missing {', '.join(f'{field}.{k}' for k in missing)}",
                             code="missing_field")
    unknown = sorted(str(k) for k in value if k not in required and k not in optional)
    if unknown:
        raise InvalidRequest(f"unknown field(s) {', '.join(f'{field}.{k}' for k in unknown)}",
                             code="unknown_field")
    return value


def signature(value: Any, field: str) -> bytes:
    """0x + 65 bytes."""
    return json_bytes(value, field, 65)


def signatures(value: Any, field: str = "signatures") -> tuple[bytes, bytes]:
    """[sigA, sigB]."""
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidRequest(f"{field} must be a list [sigA, sigB]", code="invalid_type")
    return signature(value[0], f"{field}[0]"), signature(value[1], f"{field}[1]")


def optional_uint(o: Mapping[str, Any], key: str, field: str, bits: int = 256) -> int | None:
    v = o.get(key)
    return None if v is None else json_uint(v, f"{field}.{key}", bits)


def cosigned_to_json(co: Cosigned) -> dict[str, Any]:
    """`{"channelId", "channelState", "signatures": [sigA, sigB], "digest"}`."""
    return {"channelId": hexb(co.state.channelId), "channelState": state_to_json(co.state),
            "signatures": [hexb(co.sigA), hexb(co.sigB)], "digest": hexb(co.digest)}


def cosigned_from_json(value: Any, field: str = "body") -> tuple[ChannelState, bytes, bytes]:
    """(state, sigA, sigB) of a co-signed state answer (`digest` and `channelId`, when present,
    are not trusted: the caller recomputes and verifies)."""
    o = fields(value, field, ("channelState", "signatures"), ("channelId", "digest"))
    state = state_from_json(o["channelState"], f"{field}.channelState")
    sa, sb = signatures(o["signatures"], f"{field}.signatures")
    return state, sa, sb
