from __future__ import annotations

import msgpack
import pytest

from cext import Order
from sequencer.core.eip712 import (Cancel, CancelAll, Feed, Listing, MmpConfig, MmpReset,
                                   SessionKey, Withdraw)
from sequencer.errors import InvalidRequest
from sequencer.node.records import (KINDS, REPLACE, Deposit, ForcedWithdrawal, Replace, Seal,
                                    Signed, decode_record, encode_record)

A = b"\x01" * 20
SIG, D = b"\x02" * 65, b"\x03" * 32


@pytest.mark.parametrize("msg", [
    Order(A, "ETH-27DEC26-3000-C", True, 100_000, 10_000, 1, 2, 0, False, True),
    Cancel(A, D),
    CancelAll(A, "", 5),
    SessionKey(A, b"\x04" * 20, 9),
    Withdraw(A, b"\x05" * 20, 7, 0),
    Feed("ETH", 3_000_000_000, 10, (100, 200), (800_000, 700_000)),
    Listing("ETH-27DEC26-3000-C", 100_000, 10_000, 10_000),
    MmpConfig(A, "ETH", 1000, 0, 2**64 - 1, 0, 5_000_000, 2**64 - 1),
    MmpReset(A, "ETH", 1_800_000_000),
])
def test_signed_round_trip(msg) -> None:
    rec = Signed(msg, SIG, D, A)
    out = decode_record(encode_record(rec))
    assert out == rec and type(out.msg) is type(msg)


def test_l1_messages_and_seal() -> None:
    for rec in (Deposit(A, 5, 0, 17, b"\x06" * 20), ForcedWithdrawal(A, b"\x07" * 20, 5, 1, 18),
                Seal(1_800_000_000)):
        out = decode_record(encode_record(rec))
        assert out == rec and type(out) is type(rec)


def test_corrupt() -> None:
    kind = KINDS[Order]
    shaped = [msgpack.packb(b, use_bin_type=True) for b in (
        [kind, 5, SIG, D, A],                                  # fields not an array
        [kind, [A, "x"], SIG, D, A],                           # too few fields
        [kind, {"account": A}, SIG, D, A],                     # a map, not an array
        [REPLACE, [kind, [A, D], SIG, D, A], [kind, [A, D], SIG, D, A]],  # not a Cancel + an Order
    )]
    for bad in (b"\x93\x63\x01\x02", b"\x91\x01", b"", *shaped):
        with pytest.raises(InvalidRequest, match="corrupt input-log record"):
            decode_record(bad)


def test_replace_round_trip() -> None:
    rec = Replace(Signed(Cancel(A, D), SIG, D, A),
                  Signed(Order(A, "ETH-27DEC26-3000-C", False, 100_000, 10_000, 3, 4, 0, True, False), SIG, D, None))
    out = decode_record(encode_record(rec))
    assert out == rec and type(out.order.msg) is Order and type(out.cancel.msg) is Cancel
