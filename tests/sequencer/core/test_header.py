"""Header hashing and leaves against a hand-built ABI encoding (no eth-abi on the reference side)."""

from __future__ import annotations

from eth_hash.auto import keccak as H

from sequencer.core.header import (
    ACCOUNT_TAG,
    TX_TAG,
    WITHDRAWAL_TAG,
    Header,
    tx_leaf,
    withdrawal_leaf,
)


def word(x: int | bytes) -> bytes:
    return x.to_bytes(32, "big") if isinstance(x, int) else x.rjust(32, b"\0")


def test_tags() -> None:
    assert WITHDRAWAL_TAG == H(b"optrollup.withdrawal.v1")
    assert ACCOUNT_TAG == H(b"optrollup.account.v1")
    assert TX_TAG == H(b"optrollup.tx.v1")


def test_header_hash_is_keccak_of_static_abi_words() -> None:
    h = Header(7, b"\x11" * 32, 1_790_000_000, b"\x22" * 32, b"\x33" * 32, b"\x44" * 32, 3)
    want = H(b"".join(word(x) for x in (7, b"\x11" * 32, 1_790_000_000, b"\x22" * 32,
                                          b"\x33" * 32, b"\x44" * 32, 3)))
    assert h.hash() == want
    assert Header.from_json(h.to_json()) == h
    assert h.to_json()["hash"] == "0x" + want.hex()


def test_withdrawal_leaf() -> None:
    acct, rcpt = bytes.fromhex("aa" * 20), bytes.fromhex("bb" * 20)
    want = H(WITHDRAWAL_TAG + word(acct) + word(rcpt) + word(5_000_000) + word(2))
    assert withdrawal_leaf(acct, rcpt, 5_000_000, 2) == want
    assert withdrawal_leaf("0x" + "aa" * 20, "0x" + "bb" * 20, 5_000_000, 2) == want


def test_tx_leaf_dynamic_bytes() -> None:
    data = b"\x01\x02\x03"
    # head: tag, offset 0x40; tail: length, data padded to 32
    want = H(TX_TAG + word(64) + word(3) + data.ljust(32, b"\0"))
    assert tx_leaf(data) == want
