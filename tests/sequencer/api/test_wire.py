from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cext
from sequencer.api import wire
from sequencer.errors import InvalidRequest

GOOD = {"account": "0x" + "11" * 20, "instrument": "ETH-27DEC26-3000-C", "isBuy": True,
        "price": "1500000", "amount": 10000, "nonce": 1, "expiry": "1800000000",
        "timeInForce": 0, "postOnly": False, "reduceOnly": False}


def test_order_decodes_strings_and_ints() -> None:
    o = wire.order(GOOD)
    assert o == cext.Order(b"\x11" * 20, "ETH-27DEC26-3000-C", True, 1_500_000, 10_000, 1,
                           1_800_000_000, 0, False, False)


@pytest.mark.parametrize("patch,code,field", [
    ({"price": -1}, "invalid_number", "order.price"),
    ({"price": "1e6"}, "invalid_number", "order.price"),
    ({"price": 1.5}, "invalid_number", "order.price"),
    ({"price": "١٢"}, "invalid_number", "order.price"),  # non-ASCII digits
    ({"price": str(2**256)}, "invalid_number", "order.price"),
    ({"nonce": 2**64}, "invalid_number", "order.nonce"),
    ({"isBuy": 1}, "invalid_type", "order.isBuy"),
    ({"account": "0x1234"}, "invalid_address", "account"),
    ({"account": "0x" + "aB" * 20}, "invalid_address", "checksum"),
    ({"timeInForce": 3}, "invalid_value", "order.timeInForce"),
    ({"instrument": 5}, "invalid_type", "order.instrument"),
    ({"extra": 1}, "unknown_field", "extra"),
])
def test_order_errors_name_the_field(patch: dict, code: str, field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        wire.order({**GOOD, **patch})
    assert info.value.code == code
    assert field in info.value.message


def test_missing_field() -> None:
    bad = dict(GOOD)
    del bad["expiry"]
    with pytest.raises(InvalidRequest, match="missing expiry") as info:
        wire.order(bad)
    assert info.value.code == "missing_field"


def test_signature_checks() -> None:
    sig = "0x" + "11" * 64 + "1b"
    assert wire.signature(sig)[64] == 27
    for bad, code in [("11" * 65, "invalid_hex"), ("0x" + "zz" * 65, "invalid_hex"),
                      ("0x" + "11" * 64, "invalid_length"), ("0x" + "11" * 64 + "23", "invalid_signature_v")]:
        with pytest.raises(InvalidRequest) as info:
            wire.signature(bad)
        assert info.value.code == code


def test_signed_envelope() -> None:
    msg, sig = wire.signed({"order": GOOD, "signature": "0x" + "22" * 64 + "1c"}, "order")
    assert msg is GOOD and len(sig) == 65
    with pytest.raises(InvalidRequest, match="unknown field"):
        wire.signed({"order": GOOD, "signature": "0x" + "22" * 64 + "1c", "x": 1}, "order")
    with pytest.raises(InvalidRequest, match="JSON object"):
        wire.signed([GOOD], "order")


# -- request bodies: orjson where it gives json.loads' value, json.loads otherwise -----------------

def _typed(v: object) -> object:
    """`v` with every scalar tagged by its type (1 == 1.0 == True in Python; not here)."""
    if isinstance(v, dict):
        return ("dict", [(k, _typed(x)) for k, x in v.items()])
    if isinstance(v, list):
        return ("list", [_typed(x) for x in v])
    if isinstance(v, float) and v != v:
        return ("float", "nan")
    return (type(v).__name__, v)


def _stdlib(body: bytes) -> object:
    try:
        return _typed(json.loads(body))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "error"


def _ours(body: bytes) -> object:
    try:
        return _typed(wire.parse_json(bytearray(body)))
    except InvalidRequest as exc:
        assert exc.code == "malformed_json" and exc.message.startswith("body is not valid JSON: ")
        return "error"


_scalars = (st.none() | st.booleans() | st.floats() | st.text()
            | st.integers(-2**70, 2**70) | st.sampled_from([2**63 - 1, -2**63, 2**63, -2**63 - 1,
                                                             2**64 - 1, 2**64, 10**18, -10**18, 10**19]))
_values = st.recursive(_scalars, lambda kids: st.lists(kids, max_size=4)
                       | st.dictionaries(st.text(max_size=5), kids, max_size=4), max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(_values, st.booleans(), st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", " :\t")]))
def test_parse_json_equals_json_loads(value: object, ascii_: bool, seps: tuple[str, str]) -> None:
    body = json.dumps(value, ensure_ascii=ascii_, separators=seps).encode("utf-8", "surrogatepass")
    assert _ours(body) == _stdlib(body)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=60) | st.text(alphabet='{}[]":,0123456789.eE-+ \\nultrfasNI\ud800é',
                                        max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_parse_json_agrees_on_arbitrary_bytes(body: bytes) -> None:
    assert _ours(body) == _stdlib(body)


@pytest.mark.parametrize("body", [
    b'{"a":1,"a":2}',                                    # duplicate keys: the last wins in both
    b'[18446744073709551616, -9223372036854775809]',     # beyond 64 bits: ints, never floats
    b'{"n": 1234567890123456789012345678901234567890}',
    b'["\\ud800", NaN, Infinity, 1E400]',                # only json.loads takes these
    b'\xef\xbb\xbf{}', b'{"a": 1} x', b'"\xff"', b'\x00\x00\x00[\x00\x00\x00]',
])
def test_parse_json_edge_cases(body: bytes) -> None:
    assert _ours(body) == _stdlib(body)
    if body.startswith(b"[1844"):
        assert wire.parse_json(body) == [2**64, -2**63 - 1]


def test_a_body_nested_too_deeply_is_a_4xx_not_a_crash() -> None:
    limit = sys.getrecursionlimit()  # hypothesis raises it while it runs; the default here
    sys.setrecursionlimit(1000)
    try:
        with pytest.raises(InvalidRequest) as info:
            wire.parse_json(b"[" * 40_000 + b"]" * 40_000)
    finally:
        sys.setrecursionlimit(limit)
    assert info.value.code == "malformed_json" and "nested too deeply" in info.value.message
