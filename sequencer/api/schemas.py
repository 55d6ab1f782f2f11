"""JSON Schemas of request bodies for the OpenAPI document (/docs, /openapi.json), built from
the EIP-712 types so they cannot drift from what the handlers accept."""

from __future__ import annotations

from typing import Any

from sequencer.core.eip712 import FIELDS

_UINT = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]{1,78}$"}]}
_INT = {"oneOf": [{"type": "integer"}, {"type": "string", "pattern": "^-?[0-9]{1,78}$"}]}
_TYPES: dict[str, dict[str, Any]] = {
    "address": {"type": "string", "pattern": "^0[xX][0-9a-fA-F]{40}$"},
    "string": {"type": "string", "maxLength": 64},
    "bool": {"type": "boolean"},
    "bytes32": {"type": "string", "pattern": "^0[xX][0-9a-fA-F]{64}$"},
}
_SIG = {"type": "string", "pattern": "^0[xX][0-9a-fA-F]{130}$"}
_JSON_NAME = {"Order": "order", "Cancel": "cancel", "CancelAll": "cancelAll", "Withdraw": "withdraw",
              "SessionKey": "sessionKey", "Feed": "feed", "List": "list", "MmpConfig": "mmpConfig",
              "MmpReset": "mmpReset", "Liquidate": "liquidate", "SetMarginMode": "setMarginMode"}


def _field(typ: str) -> dict[str, Any]:
    if typ.endswith("[]"):
        return {"type": "array", "maxItems": 64, "items": _field(typ[:-2])}
    if typ.startswith("int"):
        return _INT
    return _TYPES.get(typ, _UINT)


def message(primary: str) -> dict[str, Any]:
    fields = FIELDS[primary]
    props = {n: _field(t) for n, t in fields}
    if primary == "Order":
        props["timeInForce"] = {"type": "integer", "enum": [0, 1, 2]}
    return {"type": "object", "properties": props, "required": [n for n, _ in fields],
            "additionalProperties": False}


def signed(primary: str) -> dict[str, Any]:
    key = _JSON_NAME[primary]
    return {"type": "object", "properties": {key: message(primary), "signature": _SIG},
            "required": [key, "signature"], "additionalProperties": False}


_REPLACE = {"type": "object", "required": ["cancel", "order"], "additionalProperties": False,
            "properties": {"cancel": signed("Cancel"), "order": signed("Order")}}


def body(name: str) -> dict[str, Any]:
    """`openapi_extra` for a route taking the body `name` (a primary type, SignedOrder,
    OrderBatch, Replace, Quotes)."""
    if name == "SignedOrder":
        schema = signed("Order")
    elif name == "OrderBatch":
        schema = {"type": "object", "required": ["orders"], "additionalProperties": False,
                  "properties": {"orders": {"type": "array", "minItems": 1, "maxItems": 500,
                                            "items": signed("Order")}}}
    elif name == "Replace":
        schema = _REPLACE
    elif name == "Quotes":
        schema = {"type": "object", "required": ["quotes"], "additionalProperties": False,
                  "properties": {"quotes": {"type": "array", "minItems": 1, "maxItems": 500,
                                            "items": _REPLACE}}}
    else:
        schema = signed(name)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
