"""Block headers and the leaf encodings of docs/encoding.md (withdrawal, tx and mark leaves,
tags)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from eth_abi import encode as abi_encode

from cext import keccak256, keccak256_many, merkle_root, parse_address

WITHDRAWAL_TAG = keccak256(b"optrollup.withdrawal.v1")
ACCOUNT_TAG = keccak256(b"optrollup.account.v1")
TX_TAG = keccak256(b"optrollup.tx.v1")
MARK_TAG = keccak256(b"optrollup.mark.v1")
ZERO32 = b"\0" * 32

HEADER_TYPES = ["uint64", "bytes32", "uint64", "bytes32", "bytes32", "bytes32", "uint64"]


@dataclass(frozen=True, slots=True)
class Header:
    """An L2 block header. `timestamp` is unix seconds; `l1_message_cursor` counts the L1
    messages (deposits and forced withdrawals, by Bridge nonce) processed up to and including
    this block."""

    number: int
    parent_hash: bytes
    timestamp: int
    tx_root: bytes
    state_root: bytes
    withdrawal_root: bytes
    l1_message_cursor: int

    def encode(self) -> bytes:
        """Standard ABI encoding, the preimage of `hash()` (same as Solidity's abi.encode)."""
        return abi_encode(HEADER_TYPES, [self.number, self.parent_hash, self.timestamp,
                                         self.tx_root, self.state_root, self.withdrawal_root,
                                         self.l1_message_cursor])

    def hash(self) -> bytes:
        return keccak256(self.encode())

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "parentHash": "0x" + self.parent_hash.hex(),
            "timestamp": self.timestamp,
            "txRoot": "0x" + self.tx_root.hex(),
            "stateRoot": "0x" + self.state_root.hex(),
            "withdrawalRoot": "0x" + self.withdrawal_root.hex(),
            "l1MessageCursor": self.l1_message_cursor,
            "hash": "0x" + self.hash().hex(),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Header":
        def b32(k: str) -> bytes:
            raw = bytes.fromhex(d[k][2:])
            if len(raw) != 32:
                raise ValueError(f"{k} must be 32 bytes")
            return raw

        return cls(int(d["number"]), b32("parentHash"), int(d["timestamp"]), b32("txRoot"),
                   b32("stateRoot"), b32("withdrawalRoot"), int(d["l1MessageCursor"]))


def withdrawal_leaf(account: bytes | str, recipient: bytes | str, amount: int, nonce: int) -> bytes:
    """H(abi.encode(WITHDRAWAL_TAG, account, recipient, uint256 amount, uint64 nonce))."""
    return keccak256(abi_encode(
        ["bytes32", "address", "address", "uint256", "uint64"],
        [WITHDRAWAL_TAG, parse_address(account, "account"), parse_address(recipient, "recipient"),
         amount, nonce]))


class WithdrawalLeaf(NamedTuple):
    """What a withdrawal leaf pays on L1: `amount` base units from L2 `account` to L1
    `recipient`, paid once per (account, nonce). `nonce` is the Withdraw nonce for a signed
    withdrawal, FORCED_NONCE_BASE + l1Nonce for a deposit refund or a forced withdrawal."""

    account: bytes
    recipient: bytes
    amount: int
    nonce: int

    def leaf(self) -> bytes:
        """The 32-byte leaf hash (`withdrawal_leaf`)."""
        return withdrawal_leaf(self.account, self.recipient, self.amount, self.nonce)


def mark_leaf(instrument: str, mark_lo: int, mark_hi: int) -> bytes:
    """H(abi.encode(MARK_TAG, string instrument, uint256 markLo, uint256 markHi)); marks in
    collateral base units per contract (0/0 when the instrument has no valid oracle price)."""
    # abi.encode of (bytes32, string, uint256, uint256) written out by hand (this runs for every
    # listed instrument at every seal; checked equal to eth_abi in tests): the string's head is
    # its offset (4 words), its tail after the static words.
    return keccak256(MARK_TAG + (128).to_bytes(32, "big") + mark_lo.to_bytes(32, "big")
                     + mark_hi.to_bytes(32, "big") + abi_tail(instrument.encode()))


def abi_tail(data: bytes) -> bytes:
    """The tail of a dynamic `bytes` / `string` in abi.encode: the length word, then the bytes
    zero-padded to a multiple of 32."""
    n = len(data)
    return n.to_bytes(32, "big") + data + b"\0" * (-n % 32)


_TX_HEAD = TX_TAG + (64).to_bytes(32, "big")  # abi.encode(bytes32, bytes): tag, the bytes' offset


def _tx_abi(tx_bytes: bytes) -> bytes:
    """abi.encode(TX_TAG, bytes txBytes) written out by hand (eth_abi took ~30 us a tx, and a
    block's leaves are hashed on the event loop at every seal; checked equal in tests): the
    head (tag, offset 64), then the bytes' tail."""
    return _TX_HEAD + abi_tail(tx_bytes)


def tx_leaf(tx_bytes: bytes) -> bytes:
    """H(abi.encode(TX_TAG, bytes txBytes))."""
    return keccak256(_tx_abi(tx_bytes))


@dataclass(frozen=True, slots=True)
class Block:
    """A sealed block: its header and its transactions as canonical tx bytes (txs.encode_tx)."""

    header: Header
    txs: tuple[bytes, ...]


def tx_leaves(txs: "tuple[bytes, ...] | list[bytes]") -> list[bytes]:
    """`tx_leaf` of each tx, in order (one cext call)."""
    return keccak256_many([_tx_abi(t) for t in txs])


def tx_root(txs: "tuple[bytes, ...] | list[bytes]") -> bytes:
    """Merkle root over the tx leaves of a block, in block order."""
    return merkle_root(tx_leaves(txs))
