"""EIP-712 digests of every message type against eth-account's encode_typed_data."""

from __future__ import annotations

from eth_account.messages import encode_typed_data
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from cext import Order, domain_separator
from sequencer.core import (Cancel, CancelAll, Feed, Listing, MmpConfig, MmpReset, SessionKey,
                            Withdraw, digest, digests, eip712_types, order_digest)

CHAIN, CONTRACT = 31337, b"\x42" * 20
DOMAIN = domain_separator(CHAIN, CONTRACT)
DOMAIN_JSON = {"name": "optrollup", "version": "1", "chainId": CHAIN,
               "verifyingContract": "0x" + CONTRACT.hex()}


def reference(primary: str, msg: tuple) -> bytes:
    types = eip712_types()
    data = {}
    for f, v in zip(types[primary], msg):
        if f["type"] == "address":
            v = "0x" + v.hex()
        elif isinstance(v, tuple):
            v = list(v)
        data[f["name"]] = v
    sm = encode_typed_data(full_message={"types": {"EIP712Domain": types["EIP712Domain"],
                                                   primary: types[primary]},
                                         "primaryType": primary, "domain": DOMAIN_JSON,
                                         "message": data})
    return keccak(b"\x19" + sm.version + sm.header + sm.body)


addr = st.binary(min_size=20, max_size=20)
u64 = st.integers(0, 2**64 - 1)
u256 = st.integers(0, 2**256 - 1)
text = st.text(max_size=30)


@settings(max_examples=30, deadline=None)
@given(addr, st.binary(min_size=32, max_size=32), addr, u256, u64, text)
def test_messages_match_eth_account(a, h, b, amount, n, s) -> None:
    for primary, msg in (("Cancel", Cancel(a, h)), ("CancelAll", CancelAll(a, s, n)),
                         ("Withdraw", Withdraw(a, b, amount, n)), ("SessionKey", SessionKey(a, b, n)),
                         ("List", Listing(s, amount, amount // 3, n)),
                         ("MmpConfig", MmpConfig(a, s, n, n // 2, amount, amount // 5, amount // 7, n)),
                         ("MmpReset", MmpReset(a, s, n))):
        assert digest(DOMAIN, msg) == reference(primary, msg), primary


@settings(max_examples=30, deadline=None)
@given(text, u256, u64, st.lists(st.tuples(u64, u256), max_size=5))
def test_feed_matches_eth_account(u, spot, ts, curve) -> None:
    f = Feed(u, spot, ts, tuple(e for e, _ in curve), tuple(v for _, v in curve))
    assert digest(DOMAIN, f) == reference("Feed", f)


@settings(max_examples=30, deadline=None)
@given(st.tuples(addr, text, st.booleans(), u256, u256, u64, u64, st.integers(0, 255),
                 st.booleans(), st.booleans()))
def test_order_digest_matches_eth_account(fields) -> None:
    o = Order(*fields)
    assert order_digest(DOMAIN, o) == reference("Order", o)
    assert digests(DOMAIN, [o, Cancel(fields[0], b"\1" * 32), o]) == [
        reference("Order", o), reference("Cancel", Cancel(fields[0], b"\1" * 32)),
        reference("Order", o)]


def test_types_object_lists_every_primary_type() -> None:
    assert set(eip712_types()) == {"EIP712Domain", "Order", "Cancel", "CancelAll", "Withdraw",
                                   "SessionKey", "Feed", "List", "MmpConfig", "MmpReset",
                                   "Liquidate", "SetMarginMode", "Freeze", "Unfreeze", "DenyL1"}


@settings(max_examples=30, deadline=None)
@given(addr, st.integers(0, 255), u64)
def test_set_margin_mode_matches_eth_account(account, mode, nonce) -> None:
    from sequencer.core.eip712 import SetMarginMode, type_string
    assert type_string("SetMarginMode") == "SetMarginMode(address account,uint8 mode,uint64 nonce)"
    m = SetMarginMode(account, mode, nonce)
    assert digest(DOMAIN, m) == reference("SetMarginMode", m)


def test_mmp_type_strings_are_the_designs() -> None:
    from sequencer.core.eip712 import type_string
    assert type_string("MmpConfig") == (
        "MmpConfig(address account,string underlying,uint64 intervalMs,uint64 frozenMs,"
        "uint256 amountLimit,uint256 deltaLimit,uint256 vegaLimit,uint64 nonce)")
    assert type_string("MmpReset") == "MmpReset(address account,string underlying,uint64 timestamp)"


def test_messages_of_one_shape_never_share_a_cached_digest() -> None:
    """CancelAll and MmpReset have the same fields: equal as plain tuples, the block context's
    digest cache handed a CancelAll the digest an MmpReset had been signed over (found when
    Freeze/Unfreeze collided the same way)."""
    from sequencer.core.eip712 import CancelAll, MmpReset
    from sequencer.core.transition import BlockContext
    a = b"\x01" * 20
    reset, cancel_all = MmpReset(a, "ETH", 5), CancelAll(a, "ETH", 5)
    assert reset != cancel_all and len({reset, cancel_all}) == 2
    ctx = BlockContext(0)
    d1, d2 = ctx.digest(DOMAIN, reset), ctx.digest(DOMAIN, cancel_all)
    assert d1 == reference("MmpReset", reset) and d2 == reference("CancelAll", cancel_all) and d1 != d2
