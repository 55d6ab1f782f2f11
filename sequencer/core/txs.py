"""Block transactions and their canonical bytes.

Encoding: msgpack (`use_bin_type=True`) of `[tag, field...]`, fields in the order below;
addresses/digests/signatures as bin (20/32/65 bytes), strings as str, integers as msgpack ints
(so every integer is < 2^64), bools as bools. An order reference in a Fill is either
`[order fields..., signature]` (first time the order fills) or its 32-byte digest. `decode_tx`
accepts only canonical bytes: decode(b) re-encodes to exactly b.

| tag | type | fields |
|---|---|---|
| 1 | DepositTx | account, amount, l1Nonce, depositor |
| 2 | FillTx | maker, taker, amount, price |
| 3 | WithdrawTx | account, recipient, amount, nonce, signature |
| 4 | OracleTx | underlying, spot, timestamp, expiries[], vols[], signature |
| 5 | SettleTx | instrument |
| 6 | SessionKeyTx | account, key, expiry, signature |
| 7 | ListTx | instrument, tickSize, amountStep, minAmount, signature |
| 8 | ForcedWithdrawTx | account, recipient, amount, l1Nonce |
| 9 | AuctionStartTx | account |
| 10 | LiquidateTx | liquidator, account, fractionPpm, maxPrice, nonce, signature |
| 11 | TakeoverTx | account |
| 12 | AuctionEndTx | account |
| 13 | MarginModeTx | account, mode, nonce, signature |
| 14 | ChannelOpenTx | a, b, signerA, signerB, depositA, depositB, nonce, challengePeriod, sigA, sigB |
| 15 | ChannelCloseTx | channelId, turnNum, balanceA, balanceB, [[instrument, amount]..], isFinal, sigA, sigB |
| 16 | ChannelConcludeTx | channelId, turnNum, balanceA, balanceB, [[instrument, amount]..], isFinal |
| 17 | FreezeTx | account, nonce, signature |
| 18 | UnfreezeTx | account, nonce, signature |
| 19 | DenyL1Tx | l1Address, denied, nonce, signature |

Tags 1 and 8 are the two kinds of L1 message (docs/encoding.md), one nonce space. Tags 9-12
are liquidation (docs/liquidation.md); tags 17-19 are the operator's compliance actions
(docs/compliance.md); `maxPrice` is the one signed integer (int256 in
EIP-712, here a msgpack int, so within [-2^63, 2^64)).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

from cext import ORDER_FIELDS, Order
from sequencer.core.channelmsg import CHANNEL_FIELDS, ChannelOpen, ChannelPosition, ChannelState
from sequencer.core.eip712 import (FIELDS, DenyL1, Feed, FreezeAccount, Liquidate, Listing,
                                   SessionKey, SetMarginMode, UnfreezeAccount, Withdraw)
from sequencer.errors import InvalidRequest


class SignedOrder(NamedTuple):
    """An order with its 65-byte r‖s‖v signature."""

    order: Order
    signature: bytes


OrderRef = SignedOrder | bytes
"""A Fill side: the signed order the first time it fills, afterwards its 32-byte digest."""


class DepositTx(NamedTuple):
    """L1 message `l1Nonce` (= the message cursor): credit `amount` base units to `account`, or
    refund them to the L1 `depositor` if the account's collateral would exceed MAX_COLLATERAL."""

    account: bytes
    amount: int
    l1Nonce: int
    depositor: bytes


class FillTx(NamedTuple):
    """Trade `amount` (contracts x 10^6) at `price` (the maker's limit) between a resting maker
    order and a taker order; the taker's side decides who buys."""

    maker: OrderRef
    taker: OrderRef
    amount: int
    price: int


class WithdrawTx(NamedTuple):
    """A signed Withdraw."""

    withdraw: Withdraw
    signature: bytes


class OracleTx(NamedTuple):
    """A signed Feed."""

    feed: Feed
    signature: bytes


class SettleTx(NamedTuple):
    """Cash-settle and delist an expired instrument."""

    instrument: str


class SessionKeyTx(NamedTuple):
    """A signed SessionKey registration or revocation."""

    sessionKey: SessionKey
    signature: bytes


class ListTx(NamedTuple):
    """An operator-signed listing."""

    listing: Listing
    signature: bytes


class ForcedWithdrawTx(NamedTuple):
    """L1 message `l1Nonce` (= the message cursor): `account` asked the Bridge to withdraw
    `amount` base units to L1 `recipient`; paid if the account can afford it, else refused."""

    account: bytes
    recipient: bytes
    amount: int
    l1Nonce: int


class AuctionStartTx(NamedTuple):
    """Start the liquidation auction of `account`: its equity is below its maintenance margin
    at the block's marks (only at the start of a block: the block's detection)."""

    account: bytes


class LiquidateTx(NamedTuple):
    """A signed Liquidate: a liquidator's take of part of an account in liquidation."""

    liquidate: Liquidate
    signature: bytes


class TakeoverTx(NamedTuple):
    """The insurance fund takes over `account` whole: it is in liquidation and its equity at
    the block's marks is <= 0 (only at the start of a block)."""

    account: bytes


class AuctionEndTx(NamedTuple):
    """End the auction of `account`: it has no positions or its equity is back at or above its
    initial margin at the block's marks (only at the start of a block)."""

    account: bytes


class MarginModeTx(NamedTuple):
    """A signed SetMarginMode (rules version >= 3)."""

    setMarginMode: SetMarginMode
    signature: bytes


class ChannelOpenTx(NamedTuple):
    """A ChannelOpen signed by both accounts (or their live session keys)."""

    channelOpen: ChannelOpen
    sigA: bytes
    sigB: bytes


class ChannelCloseTx(NamedTuple):
    """A cooperative close: a final ChannelState signed by the channel's two signers."""

    channelState: ChannelState
    sigA: bytes
    sigB: bytes


class ChannelConcludeTx(NamedTuple):
    """The state the L1 Adjudicator concluded a channel with (its `Concluded` event's
    stateHash is this state's digest: checked by the verifier against L1)."""

    channelState: ChannelState


class FreezeTx(NamedTuple):
    """An operator-signed Freeze (sequencer.core.compliance)."""

    freeze: FreezeAccount
    signature: bytes


class UnfreezeTx(NamedTuple):
    """An operator-signed Unfreeze (sequencer.core.compliance)."""

    unfreeze: UnfreezeAccount
    signature: bytes


class DenyL1Tx(NamedTuple):
    """An operator-signed DenyL1: a deny-list update (sequencer.core.compliance)."""

    denyL1: DenyL1
    signature: bytes


COMPLIANCE_TXS = (FreezeTx, UnfreezeTx, DenyL1Tx)

Tx = (DepositTx | FillTx | WithdrawTx | OracleTx | SettleTx | SessionKeyTx | ListTx
      | ForcedWithdrawTx | AuctionStartTx | LiquidateTx | TakeoverTx | AuctionEndTx
      | MarginModeTx | ChannelOpenTx | ChannelCloseTx | ChannelConcludeTx | FreezeTx
      | UnfreezeTx | DenyL1Tx)
TAGS: dict[type, int] = {DepositTx: 1, FillTx: 2, WithdrawTx: 3, OracleTx: 4, SettleTx: 5,
                         SessionKeyTx: 6, ListTx: 7, ForcedWithdrawTx: 8, AuctionStartTx: 9,
                         LiquidateTx: 10, TakeoverTx: 11, AuctionEndTx: 12, MarginModeTx: 13,
                         ChannelOpenTx: 14, ChannelCloseTx: 15, ChannelConcludeTx: 16,
                         FreezeTx: 17, UnfreezeTx: 18, DenyL1Tx: 19}
STATUS_TXS = (AuctionStartTx, TakeoverTx, AuctionEndTx)
"""The liquidation status txs: only in a block's detection, right after its Settle txs."""
_SIGNED_MSG = {3: (Withdraw, "Withdraw"), 4: (Feed, "Feed"), 6: (SessionKey, "SessionKey"),
               7: (Listing, "List"), 10: (Liquidate, "Liquidate"),
               13: (SetMarginMode, "SetMarginMode"), 17: (FreezeAccount, "Freeze"),
               18: (UnfreezeAccount, "Unfreeze"), 19: (DenyL1, "DenyL1")}
_ACCOUNT_ONLY = {9: AuctionStartTx, 11: TakeoverTx, 12: AuctionEndTx}


def _ref(ref: OrderRef) -> Any:
    if isinstance(ref, SignedOrder):
        return [*ref.order, ref.signature]
    return ref


def _state_body(s: ChannelState) -> list[Any]:
    return [s.channelId, s.turnNum, s.balanceA, s.balanceB,
            [[p.instrument, p.amount] for p in s.positions], s.isFinal]


def _decode_state(body: list[Any], where: str) -> ChannelState:
    if len(body) != 6 or type(body[4]) is not list:
        raise InvalidRequest(f"{where} must have 6 fields, positions a list", code="bad_tx")
    cid, turn, ba, bb, pos, final = body
    f = _fields([cid, turn, ba, bb, final], (("channelId", "bytes32"), ("turnNum", "uint64"),
                                            ("balanceA", "uint256"), ("balanceB", "uint256"),
                                            ("isFinal", "bool")), where)
    positions = tuple(ChannelPosition(*_fields(p, (("instrument", "string"), ("amount", "int256")),
                                               f"{where}.positions[{i}]"))
                      for i, p in enumerate(pos))
    return ChannelState(f[0], f[1], f[2], f[3], positions, f[4])


def encode_tx(tx: Tx) -> bytes:
    """Canonical bytes of a block transaction (InvalidRequest if a value does not fit)."""
    tag = TAGS[type(tx)]
    if tag == 14:
        body = [*tx.channelOpen, tx.sigA, tx.sigB]
    elif tag == 15:
        body = [*_state_body(tx.channelState), tx.sigA, tx.sigB]
    elif tag == 16:
        body = _state_body(tx.channelState)
    elif tag == 2:
        body = [_ref(tx.maker), _ref(tx.taker), tx.amount, tx.price]
    elif tag in _SIGNED_MSG:
        msg, sig = tx
        body = [list(v) if isinstance(v, tuple) else v for v in msg] + [sig]
    else:
        body = list(tx)
    try:
        return msgpack.packb([tag, *body], use_bin_type=True)
    except (OverflowError, TypeError, ValueError) as exc:
        raise InvalidRequest(f"transaction does not encode: {exc}", code="bad_tx") from None


def _check(value: Any, typ: str, name: str) -> Any:
    ok = True
    if typ == "address":
        ok = type(value) is bytes and len(value) == 20
    elif typ in ("bytes32", "sig"):
        ok = type(value) is bytes and len(value) == (32 if typ == "bytes32" else 65)
    elif typ == "string":
        ok = type(value) is str
    elif typ == "bool":
        ok = type(value) is bool
    elif typ.startswith("int"):
        ok = type(value) is int and -(1 << 255) <= value < 1 << 255
    elif typ.endswith("[]"):
        if type(value) is not list:
            ok = False
        else:
            return tuple(_check(v, typ[:-2], f"{name}[{i}]") for i, v in enumerate(value))
    else:
        ok = type(value) is int and value >= 0 and not value >> int(typ[4:])
    if not ok:
        raise InvalidRequest(f"tx field {name} is not a valid {typ}", code="bad_tx")
    return value


def _fields(values: Any, fields: tuple[tuple[str, str], ...], where: str) -> list[Any]:
    if type(values) is not list or len(values) != len(fields):
        raise InvalidRequest(f"{where} must have {len(fields)} fields", code="bad_tx")
    return [_check(v, t, f"{where}.{n}") for v, (n, t) in zip(values, fields)]


def _decode_ref(value: Any, name: str) -> OrderRef:
    if type(value) is bytes:
        return _check(value, "bytes32", name)
    f = _fields(value, ORDER_FIELDS + (("signature", "sig"),), name)
    return SignedOrder(Order(*f[:-1]), f[-1])


def decode_tx(data: bytes) -> Tx:
    """Parse canonical tx bytes; InvalidRequest(code="bad_tx") on anything else."""
    try:
        raw = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise InvalidRequest(f"transaction is not msgpack: {exc}", code="bad_tx") from None
    if type(raw) is not list or not raw or type(raw[0]) is not int:
        raise InvalidRequest("transaction must be [tag, fields...]", code="bad_tx")
    tag, body = raw[0], raw[1:]
    tx: Tx
    if tag == 1:
        tx = DepositTx(*_fields(body, (("account", "address"), ("amount", "uint64"),
                                       ("l1Nonce", "uint64"), ("depositor", "address")), "deposit"))
    elif tag == 2:
        if len(body) != 4:
            raise InvalidRequest("fill must have 4 fields", code="bad_tx")
        amount, price = _fields(body[2:], (("amount", "uint64"), ("price", "uint64")), "fill")
        tx = FillTx(_decode_ref(body[0], "maker"), _decode_ref(body[1], "taker"), amount, price)
    elif tag == 8:
        tx = ForcedWithdrawTx(*_fields(body, (("account", "address"), ("recipient", "address"),
                                              ("amount", "uint64"), ("l1Nonce", "uint64")),
                                       "forcedWithdraw"))
    elif tag == 5:
        tx = SettleTx(*_fields(body, (("instrument", "string"),), "settle"))
    elif tag == 14:
        f = _fields(body, CHANNEL_FIELDS["ChannelOpen"] + (("sigA", "sig"), ("sigB", "sig")),
                    "channelOpen")
        tx = ChannelOpenTx(ChannelOpen(*f[:-2]), f[-2], f[-1])
    elif tag == 15:
        if len(body) != 8:
            raise InvalidRequest("channelClose must have 8 fields", code="bad_tx")
        sigs = _fields(body[6:], (("sigA", "sig"), ("sigB", "sig")), "channelClose")
        tx = ChannelCloseTx(_decode_state(body[:6], "channelClose"), *sigs)
    elif tag == 16:
        tx = ChannelConcludeTx(_decode_state(body, "channelConclude"))
    elif tag in _ACCOUNT_ONLY:
        cls_ = _ACCOUNT_ONLY[tag]
        tx = cls_(*_fields(body, (("account", "address"),), cls_.__name__))
    elif tag in _SIGNED_MSG:
        cls, primary = _SIGNED_MSG[tag]
        f = _fields(body, FIELDS[primary] + (("signature", "sig"),), primary)
        tx = {3: WithdrawTx, 4: OracleTx, 6: SessionKeyTx, 7: ListTx,
              10: LiquidateTx, 13: MarginModeTx, 17: FreezeTx, 18: UnfreezeTx,
              19: DenyL1Tx}[tag](cls(*f[:-1]), f[-1])
    else:
        raise InvalidRequest(f"unknown transaction tag {tag}", code="bad_tx")
    if encode_tx(tx) != data:
        raise InvalidRequest("transaction bytes are not canonical", code="bad_tx")
    return tx
