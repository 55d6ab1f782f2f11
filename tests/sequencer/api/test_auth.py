from __future__ import annotations

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from sequencer.api.auth import auth_message, authenticate, eip191_digest
from sequencer.errors import InvalidRequest, InvalidSignature

OWNER = Account.from_key(b"\x07" * 32)
SESSION = Account.from_key(b"\x08" * 32)
OTHER = Account.from_key(b"\x09" * 32)
NOW = 1_800_000_000


def raw(a) -> bytes:
    return bytes.fromhex(a.address[2:])


def headers(signer, account=OWNER, ts=NOW) -> dict[str, str]:
    msg = auth_message(raw(account), ts)
    sig = signer.sign_message(encode_defunct(msg)).signature
    return {"X-Optrollup-Account": account.address, "X-Optrollup-Timestamp": str(ts),
            "X-Optrollup-Signature": "0x" + bytes(sig).hex()}


def may(account: bytes, signer: bytes) -> bool:
    return signer == account or (account == raw(OWNER) and signer == raw(SESSION))


def test_digest_matches_eth_account() -> None:
    from eth_account.messages import _hash_eip191_message
    m = auth_message(raw(OWNER), NOW)
    assert eip191_digest(m) == bytes(_hash_eip191_message(encode_defunct(m)))


def test_owner_and_session_key_accepted() -> None:
    assert authenticate(headers(OWNER), NOW, may) == raw(OWNER)
    assert authenticate(headers(SESSION), NOW + 30, may) == raw(OWNER)


def test_wrong_signer_names_both_addresses() -> None:
    with pytest.raises(InvalidSignature) as info:
        authenticate(headers(OTHER), NOW, may)
    assert info.value.code == "signer_mismatch"
    assert OTHER.address in info.value.message and OWNER.address in info.value.message


def test_stale_and_future_timestamps() -> None:
    for ts in (NOW - 31, NOW + 31):
        with pytest.raises(InvalidSignature) as info:
            authenticate(headers(OWNER, ts=ts), NOW, may)
        assert info.value.code == "auth_expired"


def test_missing_and_malformed_headers() -> None:
    h = headers(OWNER)
    del h["X-Optrollup-Signature"]
    with pytest.raises(InvalidSignature) as info:
        authenticate(h, NOW, may)
    assert info.value.code == "auth_required"
    h = headers(OWNER)
    h["X-Optrollup-Signature"] = "0x1234"
    with pytest.raises(InvalidRequest):
        authenticate(h, NOW, may)
    # a signature for another timestamp does not verify for this one
    h = headers(OWNER)
    h["X-Optrollup-Timestamp"] = str(NOW + 1)
    with pytest.raises(InvalidSignature):
        authenticate(h, NOW, may)
