"""Input-log records: every accepted request, with what replay needs to redo it exactly.

A signed request carries its EIP-712 digest and the recovered signer so that replay skips
signature recovery (the log is the node's own, written after verification). A `Seal` closes
the open block and opens the next one at `next_timestamp`; replaying it re-seals the block
and checks the header against the stored one. msgpack: `[kind, ...fields]`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

from cext import Order
from sequencer.core.eip712 import (Cancel, CancelAll, DenyL1, Feed, FreezeAccount, Liquidate,
                                   Listing, MmpConfig, MmpReset, SessionKey, SetMarginMode,
                                   UnfreezeAccount, Withdraw)
from sequencer.errors import InvalidRequest

Message = (Order | Cancel | CancelAll | SessionKey | Withdraw | Feed | Listing | MmpConfig
           | MmpReset | Liquidate | SetMarginMode | FreezeAccount | UnfreezeAccount | DenyL1)

KINDS: dict[type, int] = {Order: 1, Cancel: 2, CancelAll: 3, SessionKey: 4, Withdraw: 5,
                          Feed: 6, Listing: 7, MmpConfig: 13, MmpReset: 14, Liquidate: 15,
                          SetMarginMode: 16, FreezeAccount: 18, UnfreezeAccount: 19, DenyL1: 20}
_BY_KIND = {v: k for k, v in KINDS.items()}
DEPOSIT, SEAL, OPERATOR_CANCEL, FORCED_WITHDRAWAL, REPLACE = 8, 9, 10, 11, 12
CHANNEL = 17


class Signed(NamedTuple):
    """An accepted signed request: the message, its signature, digest and recovered signer."""

    msg: Message
    signature: bytes
    digest: bytes
    signer: bytes


class Deposit(NamedTuple):
    """An L1 deposit processed (credited or refunded): Bridge message nonce `l1_nonce`, seen in
    L1 block `l1_block`, from L1 address `depositor` to L2 `account`, `amount` base units."""

    account: bytes
    amount: int
    l1_nonce: int
    l1_block: int
    depositor: bytes


class ForcedWithdrawal(NamedTuple):
    """An L1 forced withdrawal processed (paid or refused): Bridge message nonce `l1_nonce`,
    seen in L1 block `l1_block`, `amount` base units from L2 `account` to L1 `recipient`."""

    account: bytes
    recipient: bytes
    amount: int
    l1_nonce: int
    l1_block: int


class Seal(NamedTuple):
    """Close the open block; the next block starts at `next_timestamp` (unix s)."""

    next_timestamp: int


class OperatorCancel(NamedTuple):
    """Operator action: cancel every open order of `account` (no user signature; `reason` says
    why, e.g. cancel_on_disconnect). Logged so that replay repeats it."""

    account: bytes
    reason: str


class Replace(NamedTuple):
    """An amend (design.md, "Amend and mass quote"): the signed Cancel and the signed Order,
    applied together or not at all (`Engine.replace_order`)."""

    cancel: Signed
    order: Signed


class ChannelRecord(NamedTuple):
    """A state-channel transaction (ChannelOpen, ChannelClose, ChannelConclude), as its
    canonical block-tx bytes (it carries its own signatures, recovered again on replay)."""

    tx: bytes


Record = Signed | Deposit | ForcedWithdrawal | Seal | OperatorCancel | Replace | ChannelRecord


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _signed_body(rec: Signed) -> list[Any]:
    return [KINDS[type(rec.msg)], [_plain(v) for v in rec.msg], rec.signature, rec.digest, rec.signer]


def _signed_from(raw: tuple[Any, ...]) -> Signed:
    kind, fields, sig, digest, signer = raw  # arrays arrive as tuples (use_list=False)
    return Signed(_BY_KIND[kind](*fields), sig, digest, signer)


def encode_record(rec: Record) -> bytes:
    if isinstance(rec, Signed):
        body = _signed_body(rec)
    elif isinstance(rec, Replace):
        body = [REPLACE, _signed_body(rec.cancel), _signed_body(rec.order)]
    elif isinstance(rec, Deposit):
        body = [DEPOSIT, *rec]
    elif isinstance(rec, ForcedWithdrawal):
        body = [FORCED_WITHDRAWAL, *rec]
    elif isinstance(rec, OperatorCancel):
        body = [OPERATOR_CANCEL, rec.account, rec.reason]
    elif isinstance(rec, ChannelRecord):
        body = [CHANNEL, rec.tx]
    else:
        body = [SEAL, rec.next_timestamp]
    return msgpack.packb(body, use_bin_type=True)


def decode_record(data: bytes) -> Record:
    try:
        raw = msgpack.unpackb(data, raw=False, use_list=False)
        kind = raw[0]
        if kind == SEAL:
            return Seal(raw[1])
        if kind == DEPOSIT:
            return Deposit(*raw[1:])
        if kind == FORCED_WITHDRAWAL:
            return ForcedWithdrawal(*raw[1:])
        if kind == OPERATOR_CANCEL:
            return OperatorCancel(raw[1], raw[2])
        if kind == CHANNEL:
            return ChannelRecord(raw[1])
        if kind == REPLACE:
            cancel, order = _signed_from(raw[1]), _signed_from(raw[2])
            if not (isinstance(cancel.msg, Cancel) and isinstance(order.msg, Order)):
                raise ValueError("a replace record holds a Cancel and an Order")
            return Replace(cancel, order)
        return _signed_from(raw)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise InvalidRequest(f"corrupt input-log record: {exc}", code="corrupt_log") from None
