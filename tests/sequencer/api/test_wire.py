from __future__ import annotations

import pytest

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
