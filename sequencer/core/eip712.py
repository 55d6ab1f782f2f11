"""EIP-712 types of design.md and generic struct hashing for every message but `Order`.

Order digests always go through `cext.order_digests`; the other messages (Cancel, CancelAll,
Withdraw, SessionKey, Feed, List, MmpConfig, MmpReset, Liquidate, SetMarginMode, and the
operator's Freeze, Unfreeze, DenyL1) are hashed here. Messages are
NamedTuples whose fields are the EIP-712 fields in type order; addresses are 20 raw bytes,
`orderHash` 32 bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from cext import ORDER_FIELDS, Order, keccak256, order_digests
from sequencer.errors import InvalidRequest

FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "Order": ORDER_FIELDS,
    "Cancel": (("account", "address"), ("orderHash", "bytes32")),
    "CancelAll": (("account", "address"), ("instrument", "string"), ("timestamp", "uint64")),
    "Withdraw": (("account", "address"), ("recipient", "address"), ("amount", "uint256"),
                 ("nonce", "uint64")),
    "SessionKey": (("account", "address"), ("key", "address"), ("expiry", "uint64")),
    "Feed": (("underlying", "string"), ("spot", "uint256"), ("timestamp", "uint64"),
             ("expiries", "uint64[]"), ("vols", "uint256[]")),
    "List": (("instrument", "string"), ("tickSize", "uint256"), ("amountStep", "uint256"),
             ("minAmount", "uint256")),
    "MmpConfig": (("account", "address"), ("underlying", "string"), ("intervalMs", "uint64"),
                  ("frozenMs", "uint64"), ("amountLimit", "uint256"), ("deltaLimit", "uint256"),
                  ("vegaLimit", "uint256"), ("nonce", "uint64")),
    "MmpReset": (("account", "address"), ("underlying", "string"), ("timestamp", "uint64")),
    "Liquidate": (("liquidator", "address"), ("account", "address"), ("fractionPpm", "uint32"),
                  ("maxPrice", "int256"), ("nonce", "uint64")),
    "SetMarginMode": (("account", "address"), ("mode", "uint8"), ("nonce", "uint64")),
    # compliance (sequencer.core.compliance; docs/compliance.md): operator-signed
    "Freeze": (("account", "address"), ("nonce", "uint64")),
    "Unfreeze": (("account", "address"), ("nonce", "uint64")),
    "DenyL1": (("l1Address", "address"), ("denied", "bool"), ("nonce", "uint64")),
}
DOMAIN_FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "string"), ("version", "string"), ("chainId", "uint256"),
    ("verifyingContract", "address"))


class Cancel(NamedTuple):
    """Cancel one open order of `account` by its EIP-712 digest."""

    account: bytes
    orderHash: bytes


class CancelAll(NamedTuple):
    """Cancel all open orders of `account` in `instrument` ("" = every instrument); `timestamp`
    unix s, within the cancel-all window of block time and newer than the account's last one."""

    account: bytes
    instrument: str
    timestamp: int


class Withdraw(NamedTuple):
    """Withdraw `amount` collateral base units to L1 `recipient`; `nonce` = account's next."""

    account: bytes
    recipient: bytes
    amount: int
    nonce: int


class SessionKey(NamedTuple):
    """Let `key` sign orders and cancels for `account` until `expiry` (unix s); an expiry at or
    before block time revokes it. Each digest is usable once."""

    account: bytes
    key: bytes
    expiry: int


class Feed(NamedTuple):
    """Oracle feed: `spot` collateral base units per underlying, `timestamp` unix s,
    `vols[i]` annualised implied vol x 10^6 for `expiries[i]` (unix s, strictly increasing)."""

    underlying: str
    spot: int
    timestamp: int
    expiries: tuple[int, ...]
    vols: tuple[int, ...]


class Listing(NamedTuple):
    """Operator-signed listing of an instrument (EIP-712 type `List`)."""

    instrument: str
    tickSize: int
    amountStep: int
    minAmount: int


class MmpConfig(NamedTuple):
    """Market-maker protection of `account` in `underlying` (sequencer.core.mmp): over the last
    `intervalMs` of block time, its maker fills may total at most `amountLimit` (contracts
    x 10^6), |Σ delta| `deltaLimit` (contracts x 10^6 of underlying) and |Σ vega| `vegaLimit`
    (base units per vol point); a limit of 0 is no limit. A breach freezes it there for
    `frozenMs` (0: until an MmpReset). `nonce` above the last config's of the pair."""

    account: bytes
    underlying: str
    intervalMs: int
    frozenMs: int
    amountLimit: int
    deltaLimit: int
    vegaLimit: int
    nonce: int


class MmpReset(NamedTuple):
    """Lift the MMP freeze of `account` in `underlying` and empty its window; `timestamp`
    unix s, within the cancel-all window of block time and newer than the pair's last reset."""

    account: bytes
    underlying: str
    timestamp: int


class Liquidate(NamedTuple):
    """A bid in the liquidation auction of `account` (sequencer.core.liquidation): `liquidator`
    takes `fractionPpm` / 10^6 of every position and of the collateral of `account` and pays
    it the auction price, at most `maxPrice` base units (a negative price: the liquidator is
    paid). `nonce` at least the liquidator's next Liquidate nonce (each one is used once)."""

    liquidator: bytes
    account: bytes
    fractionPpm: int
    maxPrice: int
    nonce: int


class SetMarginMode(NamedTuple):
    """Switch `account` to margin `mode` (0 standard, 1 portfolio; sequencer.core.portfolio);
    `nonce` = the account's next margin nonce. Signed by the account itself."""

    account: bytes
    mode: int
    nonce: int


def _typed_eq(self: tuple, other: object) -> bool:
    return type(other) is type(self) and tuple.__eq__(self, other)  # type: ignore[arg-type]


def _typed_ne(self: tuple, other: object) -> bool:
    return not _typed_eq(self, other)


def _typed_hash(self: tuple) -> int:
    return hash((type(self).__name__, tuple(self)))


class FreezeAccount(NamedTuple):
    """Operator-signed (EIP-712 type `Freeze`): freeze L2 `account` (sequencer.core.compliance).
    `nonce` = the state's next compliance nonce (one counter for Freeze, Unfreeze and DenyL1)."""

    account: bytes
    nonce: int

    # Freeze and Unfreeze have the same fields (and DenyL1 those of SetMarginMode, True == 1):
    # equal as plain tuples, they would share the digest and signer caches keyed by message
    # (BlockContext.digests); equality and hash that include the type tell them apart
    __eq__, __ne__, __hash__ = _typed_eq, _typed_ne, _typed_hash


class UnfreezeAccount(NamedTuple):
    """Operator-signed (EIP-712 type `Unfreeze`): lift the freeze of `account`; `nonce` as in
    FreezeAccount."""

    account: bytes
    nonce: int

    __eq__, __ne__, __hash__ = _typed_eq, _typed_ne, _typed_hash  # see FreezeAccount


class DenyL1(NamedTuple):
    """Operator-signed: put L1 address `l1Address` on the deny list (`denied` true) or take it
    off (false); `nonce` as in FreezeAccount."""

    l1Address: bytes
    denied: bool
    nonce: int

    __eq__, __ne__, __hash__ = _typed_eq, _typed_ne, _typed_hash  # see FreezeAccount


Message = (Cancel | CancelAll | Withdraw | SessionKey | Feed | Listing | MmpConfig | MmpReset
           | Liquidate | SetMarginMode | FreezeAccount | UnfreezeAccount | DenyL1)
PRIMARY: dict[type, str] = {Cancel: "Cancel", CancelAll: "CancelAll", Withdraw: "Withdraw",
                            SessionKey: "SessionKey", Feed: "Feed", Listing: "List",
                            MmpConfig: "MmpConfig", MmpReset: "MmpReset", Liquidate: "Liquidate",
                            SetMarginMode: "SetMarginMode", FreezeAccount: "Freeze",
                            UnfreezeAccount: "Unfreeze", DenyL1: "DenyL1"}
# Messages of one shape are equal as plain tuples (CancelAll and MmpReset: account, a string, a
# timestamp; Freeze and Unfreeze; DenyL1 and SetMarginMode, as True == 1), so caches keyed by
# message (BlockContext.digests) would hand one the other's digest: every message type compares
# and hashes with its type.
for _cls in PRIMARY:
    _cls.__eq__, _cls.__ne__, _cls.__hash__ = _typed_eq, _typed_ne, _typed_hash  # type: ignore[method-assign, assignment]


def type_string(primary: str) -> str:
    """`Name(type field,...)` as hashed into the typehash (no referenced struct types exist)."""
    return primary + "(" + ",".join(f"{t} {n}" for n, t in FIELDS[primary]) + ")"


TYPEHASH: dict[str, bytes] = {p: keccak256(type_string(p).encode()) for p in FIELDS}


def eip712_types() -> dict[str, list[dict[str, str]]]:
    """The `types` object of `GET /v1/info` (EIP712Domain plus every primary type)."""
    out = {"EIP712Domain": [{"name": n, "type": t} for n, t in DOMAIN_FIELDS]}
    out.update({p: [{"name": n, "type": t} for n, t in f] for p, f in FIELDS.items()})
    return out


def encode_word(typ: str, value: Any, field: str) -> bytes:
    """The 32-byte EIP-712 encoding of one field value of type `typ` (atomic, string, or an
    array of those); InvalidRequest naming `field` if the value does not fit."""
    if typ == "address":
        if type(value) is not bytes or len(value) != 20:
            raise InvalidRequest(f"{field} must be a 20-byte address", code="bad_address")
        return value.rjust(32, b"\0")
    if typ == "string":
        if not isinstance(value, str):
            raise InvalidRequest(f"{field} must be a string", code="bad_field")
        return keccak256(value.encode())
    if typ == "bytes32":
        if type(value) is not bytes or len(value) != 32:
            raise InvalidRequest(f"{field} must be 32 bytes", code="bad_field")
        return value
    if typ.endswith("[]"):
        if not isinstance(value, (tuple, list)):
            raise InvalidRequest(f"{field} must be an array", code="bad_field")
        inner = typ[:-2]
        return keccak256(b"".join(encode_word(inner, v, f"{field}[{i}]") for i, v in enumerate(value)))
    if typ == "bool":
        if type(value) is not bool:
            raise InvalidRequest(f"{field} must be a bool", code="bad_field")
        return int(value).to_bytes(32, "big")
    if typ.startswith("int"):  # signed: two's complement in the word
        bits = int(typ[3:])
        if type(value) is not int or not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            raise InvalidRequest(f"{field} must be an {typ}, got {value!r}", code="bad_field")
        return value.to_bytes(32, "big", signed=True)
    bits = int(typ[4:])
    if type(value) is not int or value < 0 or value >> bits:
        raise InvalidRequest(f"{field} must be a {typ}, got {value!r}", code="bad_field")
    return value.to_bytes(32, "big")


def hash_struct(msg: Message) -> bytes:
    """EIP-712 hashStruct of a non-Order message; InvalidRequest naming a bad field."""
    primary = PRIMARY[type(msg)]
    return keccak256(TYPEHASH[primary] + b"".join(
        encode_word(t, v, n) for (n, t), v in zip(FIELDS[primary], msg)))


def digest(domain: bytes, msg: Message) -> bytes:
    """keccak256(0x1901 ‖ domain ‖ hashStruct(msg)) of a non-Order message."""
    return keccak256(b"\x19\x01" + domain + hash_struct(msg))


def order_digest(domain: bytes, order: Order) -> bytes:
    """EIP-712 digest (the order hash) of one order, via cext."""
    return order_digests(domain, [order])[0]


def digests(domain: bytes, items: Sequence[Order | Message]) -> list[bytes]:
    """Digest of each item; all Orders are hashed in one cext batch."""
    out: list[bytes | None] = [None] * len(items)
    idx = [i for i, m in enumerate(items) if type(m) is Order]
    for i, d in zip(idx, order_digests(domain, [items[i] for i in idx]) if idx else ()):
        out[i] = d
    for i, m in enumerate(items):
        if out[i] is None:
            out[i] = digest(domain, m)  # type: ignore[arg-type]
    return out  # type: ignore[return-value]
