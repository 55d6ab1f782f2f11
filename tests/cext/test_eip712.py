"""Order digests against eth-account's encode_typed_data, plus input validation parity."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

import cext
from cext import ORDER_FIELDS, Order

CHAIN_ID = 412346
ROLLUP = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DOMAIN = {"name": "optrollup", "version": "1", "chainId": CHAIN_ID, "verifyingContract": ROLLUP}
TYPES = {"Order": [{"name": n, "type": t} for n, t in ORDER_FIELDS]}
SEP = cext.domain_separator(CHAIN_ID, ROLLUP)


def eth_account_digest(order: Order) -> bytes:
    msg = order._asdict()
    if isinstance(msg["account"], bytes):
        msg["account"] = cext.to_checksum(msg["account"])
    signable = encode_typed_data(domain_data=DOMAIN, message_types=TYPES, message_data=msg)
    return bytes(_hash_eip191_message(signable))


def sample(**kw) -> Order:
    base = dict(account=bytes.fromhex("11" * 20), instrument="ETH-27DEC26-3000-C", isBuy=True,
                price=1_500_000, amount=250_000, nonce=7, expiry=1_798_000_000, timeInForce=0,
                postOnly=False, reduceOnly=False)
    base.update(kw)
    return Order(**base)


def test_type_string_is_the_design_one() -> None:
    assert cext.ORDER_TYPE == (
        "Order(address account,string instrument,bool isBuy,uint256 price,uint256 amount,"
        "uint64 nonce,uint64 expiry,uint8 timeInForce,bool postOnly,bool reduceOnly)")


def test_domain_separator_matches_eth_account() -> None:
    from eth_account.messages import hash_domain
    assert SEP == bytes(hash_domain(DOMAIN))


def test_digest_matches_eth_account(twin) -> None:
    o = sample()
    assert twin.order_digests(SEP, [o]) == [eth_account_digest(o)]


orders = st.builds(
    Order,
    account=st.binary(min_size=20, max_size=20),
    instrument=st.text(max_size=40),
    isBuy=st.booleans(),
    price=st.integers(0, 2**256 - 1),
    amount=st.integers(0, 2**256 - 1),
    nonce=st.integers(0, 2**64 - 1),
    expiry=st.integers(0, 2**64 - 1),
    timeInForce=st.integers(0, 255),
    postOnly=st.booleans(),
    reduceOnly=st.booleans(),
)


@given(st.lists(orders, max_size=5))
@settings(max_examples=80, deadline=None)
def test_random_orders_match_eth_account(batch: list[Order]) -> None:
    want = [eth_account_digest(o) for o in batch]
    assert cext.order_digests(SEP, batch) == want
    assert cext._pure.order_digests(SEP, batch) == want


def test_large_batch_threads_keep_order(twin) -> None:
    batch = [sample(nonce=i, price=100_000 * (i % 50 + 1)) for i in range(5000)]
    out = twin.order_digests(SEP, batch)
    for i in (0, 2047, 2048, 4999):
        assert out[i] == eth_account_digest(batch[i])


def test_equivalent_input_forms(twin) -> None:
    o = sample()
    want = twin.order_digests(SEP, [o])[0]
    as_dict = o._asdict()
    lower = o._replace(account="0x" + "11" * 20)
    checksummed = o._replace(account=cext.to_checksum(bytes.fromhex("11" * 20)))
    int_bools = o._replace(isBuy=1, postOnly=0)
    assert twin.order_digests(SEP, [as_dict, lower, checksummed, int_bools, tuple(o)]) == [want] * 5


def test_signed_by_eth_account_recovers() -> None:
    acct = Account.from_key(b"\x01" * 32)
    o = sample(account=bytes.fromhex(acct.address[2:]))
    msg = dict(o._asdict(), account=acct.address)
    signed = acct.sign_message(encode_typed_data(domain_data=DOMAIN, message_types=TYPES, message_data=msg))
    digest = cext.order_digests(SEP, [o])[0]
    assert cext.recover_addresses([digest], [bytes(signed.signature)]) == [o.account]


BAD = [
    ("bad_checksum", dict(account="0x" + "aB" * 20), ValueError),
    ("short_hex", dict(account="0x1234"), ValueError),
    ("not_hex", dict(account="0x" + "zz" * 20), ValueError),
    ("account_19_bytes", dict(account=b"\1" * 19), ValueError),
    ("account_int", dict(account=5), TypeError),
    ("instrument_bytes", dict(instrument=b"ETH"), TypeError),
    ("price_negative", dict(price=-1), ValueError),
    ("price_2_256", dict(price=2**256), ValueError),
    ("price_str", dict(price="100"), TypeError),
    ("price_float", dict(price=1.0), TypeError),
    ("amount_bool", dict(amount=True), TypeError),
    ("nonce_2_64", dict(nonce=2**64), ValueError),
    ("expiry_negative", dict(expiry=-5), ValueError),
    ("tif_256", dict(timeInForce=256), ValueError),
    ("isbuy_2", dict(isBuy=2), TypeError),
    ("postonly_none", dict(postOnly=None), TypeError),
]


@pytest.mark.parametrize("name,kw,exc", BAD, ids=[b[0] for b in BAD])
def test_bad_orders_raise_the_same_error(twin, name: str, kw: dict, exc: type) -> None:
    with pytest.raises(exc):
        twin.order_digests(SEP, [sample(), sample(**kw)])


def test_bad_shapes(twin) -> None:
    with pytest.raises(ValueError):
        twin.order_digests(SEP, [{"account": b"\1" * 20}])
    with pytest.raises(TypeError):
        twin.order_digests(SEP, [tuple(sample())[:9]])
    with pytest.raises(TypeError):
        twin.order_digests(SEP, ["order"])
    with pytest.raises(ValueError):
        twin.order_digests(SEP[:31], [sample()])
    assert twin.order_digests(SEP, []) == []
