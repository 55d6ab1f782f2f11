"""The channel service's signer over every kind of key: a raw key, an eth-account keystore key,
and a key that never leaves a SoftHSM token (signed in the token): each signature recovers to
the key's address, low s, and the raw and keystore paths agree byte for byte (RFC 6979)."""

from __future__ import annotations

import os

from eth_account import Account

from channels._sign import KeySigner, recover
from sequencer import keys
from tests.hsmkit import softhsm  # noqa: F401 - the session fixture

HALF_N = keys.SECP256K1_N // 2


def test_raw_and_keystore_keys_sign_alike() -> None:
    raw = os.urandom(32)
    a, b = KeySigner(raw), KeySigner(Account.from_key(raw))
    d = os.urandom(32)
    assert a.address == b.address and a.sign(d) == b.sign(d)
    assert recover(d, a.sign(d)) == a.address


def test_a_token_key_signs_in_the_token(softhsm) -> None:  # noqa: F811
    with keys.load_key(softhsm.uri("signer")) as k:
        s = KeySigner(k)
        assert "0x" + s.address.hex() == k.address.lower()
        for _ in range(20):
            d = os.urandom(32)
            sig = s.sign(d)
            assert recover(d, sig) == s.address and int.from_bytes(sig[32:64], "big") <= HALF_N
