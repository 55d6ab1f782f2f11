"""Header hashing and leaves against a hand-built ABI encoding (no eth-abi on the reference side)."""

from __future__ import annotations

import eth_abi
from eth_hash.auto import keccak as H
from hypothesis import given, settings
from hypothesis import strategies as st

from cext import merkle_root

from sequencer.core.header import (
    ACCOUNT_TAG,
    MARK_TAG,
    TX_TAG,
    WITHDRAWAL_TAG,
    Header,
    WithdrawalLeaf,
    mark_leaf,
    tx_leaf,
    tx_root,
    withdrawal_leaf,
)


def word(x: int | bytes) -> bytes:
    return x.to_bytes(32, "big") if isinstance(x, int) else x.rjust(32, b"\0")


def test_tags() -> None:
    assert WITHDRAWAL_TAG == H(b"optrollup.withdrawal.v1")
    assert ACCOUNT_TAG == H(b"optrollup.account.v1")
    assert TX_TAG == H(b"optrollup.tx.v1")
    assert MARK_TAG == H(b"optrollup.mark.v1")


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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=40))
def test_tx_leaves_and_root_equal_eth_abi(txs: list[bytes]) -> None:
    """tx_leaf / tx_root (abi.encode written by hand, leaves hashed in one cext call) against
    eth-abi's encoding and a plain Merkle root over its leaves; lengths 0, 31, 32, 33, ... all
    come up."""
    leaves = [H(eth_abi.encode(["bytes32", "bytes"], [TX_TAG, t])) for t in txs]
    assert [tx_leaf(t) for t in txs] == leaves
    assert tx_root(txs) == merkle_root(leaves) == tx_root(tuple(txs))


def test_mark_leaf_is_keccak_of_the_abi_words() -> None:
    """abi.encode(bytes32, string, uint256, uint256): the string's offset (4 words) in the head,
    then its length and its bytes padded to a multiple of 32 (none when already a multiple)."""
    for name in ("ETH-27DEC26-3000-C", "", "x" * 32, "y" * 33, "ÉTH-é"):
        raw = name.encode()
        want = H(MARK_TAG + word(128) + word(5) + word(2**255 + 1) + word(len(raw)) + raw
                 + b"\0" * (-len(raw) % 32))
        assert mark_leaf(name, 5, 2**255 + 1) == want


def test_withdrawal_leaf_record_hashes_its_fields() -> None:
    w = WithdrawalLeaf(b"\x01" * 20, b"\x02" * 20, 7, 2**63 + 4)
    assert w.leaf() == withdrawal_leaf(*w) == H(WITHDRAWAL_TAG + word(b"\x01" * 20)
                                                + word(b"\x02" * 20) + word(7) + word(2**63 + 4))
