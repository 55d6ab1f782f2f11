"""Typed results of the SDK, parsed from the JSON of design.md.

Money is in integers of base units: `price` collateral base units (USDC × 10^6) per contract,
`amount` contracts × 10^6, balances collateral base units. Times are unix seconds. Hashes are
0x hex strings, addresses EIP-55 strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

__all__ = [
    "Account", "Block", "BlockHeader", "Book", "CancelResult", "Fill", "Greeks", "Info",
    "Instrument", "Level", "NewOrder", "OpenOrder", "OrderAck", "OrderInfo", "OrderStatus",
    "Position", "StreamMessage", "TimeInForce", "Trade", "Withdrawal", "WithdrawalAck",
]


class TimeInForce(IntEnum):
    """`timeInForce` of an Order: good-till-cancelled, immediate-or-cancel, fill-or-kill."""

    GTC = 0
    IOC = 1
    FOK = 2

    @classmethod
    def parse(cls, value: "TimeInForce | int | str") -> "TimeInForce":
        """From an enum, 0/1/2 or a case-insensitive name ("gtc", "ioc", "fok")."""
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"time in force must be gtc, ioc or fok, got {value!r}") from None
        return cls(value)


def _int(v: Any) -> int:
    return int(v)


def _opt_int(v: Any) -> int | None:
    return None if v is None else int(v)


@dataclass(frozen=True)
class NewOrder:
    """An order to place: `price` base units per contract, `amount` contracts × 10^6.
    `expiry` unix s (None: now + the client's default TTL); `nonce` None: picked by the client."""

    instrument: str
    side: str                    # "buy" | "sell"
    price: int
    amount: int
    time_in_force: TimeInForce | int | str = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    expiry: int | None = None
    nonce: int | None = None


@dataclass(frozen=True)
class Info:
    """`GET /v1/info`: chain id, the EIP-712 domain and types to sign with, limits."""

    chain_id: int
    domain: dict[str, Any]
    types: dict[str, list[dict[str, str]]]
    collateral_symbol: str
    collateral_decimals: int
    limits: dict[str, Any]
    oracle_keys: list[str]
    l1: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Info":
        return cls(int(d["chainId"]), dict(d["eip712"]["domain"]), dict(d["eip712"]["types"]),
                   d["collateral"]["symbol"], int(d["collateral"]["decimals"]), dict(d.get("limits") or {}),
                   list(d.get("oracleKeys") or []), d.get("l1"), d)


class Fill(NamedTuple):
    """One fill of an order: `price` base units per contract, `amount` contracts × 10^6."""

    price: int
    amount: int
    maker_order: str
    taker_order: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Fill":
        return cls(int(d["price"]), int(d["amount"]), d["makerOrder"], d["takerOrder"])


@dataclass(frozen=True)
class OrderAck:
    """The answer to a placed order (durable once returned)."""

    order_hash: str
    status: str                  # open | filled | partially_filled | cancelled
    filled_amount: int
    fills: list[Fill]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "OrderAck":
        return cls(d["orderHash"], d["status"], int(d["filledAmount"]),
                   [Fill.from_json(f) for f in d.get("fills", [])])


@dataclass(frozen=True)
class OrderInfo:
    """An Order message as the server echoes it (integers, EIP-55 account)."""

    account: str
    instrument: str
    is_buy: bool
    price: int
    amount: int
    nonce: int
    expiry: int
    time_in_force: TimeInForce
    post_only: bool
    reduce_only: bool

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "OrderInfo":
        return cls(d["account"], d["instrument"], bool(d["isBuy"]), int(d["price"]), int(d["amount"]),
                   int(d["nonce"]), int(d["expiry"]), TimeInForce(int(d["timeInForce"])),
                   bool(d["postOnly"]), bool(d["reduceOnly"]))


@dataclass(frozen=True)
class OrderStatus:
    """`GET /v1/orders/{hash}`."""

    order_hash: str
    status: str
    filled_amount: int
    order: OrderInfo

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "OrderStatus":
        return cls(d["orderHash"], d["status"], int(d["filledAmount"]), OrderInfo.from_json(d["order"]))


@dataclass(frozen=True)
class OpenOrder:
    """A resting order of the account: `remaining` contracts × 10^6 still open."""

    order_hash: str
    remaining: int
    order: OrderInfo

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "OpenOrder":
        return cls(d["orderHash"], int(d["remaining"]), OrderInfo.from_json(d))


class Greeks(NamedTuple):
    """Greeks as the server reports them (integers; see design.md for scaling)."""

    delta: int
    gamma: int
    vega: int
    theta: int

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> "Greeks | None":
        return None if d is None else cls(int(d["delta"]), int(d["gamma"]), int(d["vega"]), int(d["theta"]))


@dataclass(frozen=True)
class Position:
    """A position: `amount` contracts × 10^6 (signed), `mark` base units per contract."""

    instrument: str
    amount: int
    spot: int | None
    iv: int | None
    mark: int | None
    greeks: Greeks | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Position":
        return cls(d["instrument"], int(d["amount"]), _opt_int(d.get("spot")), _opt_int(d.get("iv")),
                   _opt_int(d.get("mark")), Greeks.from_json(d.get("greeks")))


@dataclass(frozen=True)
class ScenarioRisk:
    """Portfolio margin of one underlying: the worst scenario loss, which scenario it is
    (spot and vol shocks, percent), and the underlying's IM and MM (base units)."""

    underlying: str
    worst_loss: int
    spot_shock_pct: int
    vol_shock_pct: int
    initial_margin: int
    maintenance_margin: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "ScenarioRisk":
        w = d["worstScenario"]
        return cls(d["underlying"], int(d["worstLoss"]), int(w["spotShockPct"]),
                   int(w["volShockPct"]), int(d["initialMargin"]), int(d["maintenanceMargin"]))


@dataclass(frozen=True)
class Account:
    """`GET /v1/accounts/{address}`; money in collateral base units; margin figures in the
    account's `margin_mode` ("standard" or "portfolio"; `portfolio` lists each underlying's
    worst scenario in portfolio mode)."""

    account: str
    collateral: int
    equity: int
    initial_margin: int
    maintenance_margin: int
    available: int
    withdrawal_nonce: int
    halted: list[str]
    positions: list[Position]
    open_orders: list[OpenOrder]
    liquidation_started_at: int | None = None  # block time its liquidation auction started
    liquidate_nonce: int = 0                   # its next Liquidate nonce (as a liquidator)
    margin_mode: str = "standard"
    margin_nonce: int = 0                      # its next SetMarginMode nonce
    portfolio: list[ScenarioRisk] = field(default_factory=list)
    frozen_at: int | None = None               # block time the operator froze it (docs/compliance.md)

    @property
    def frozen(self) -> bool:
        return self.frozen_at is not None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Account":
        started = d.get("liquidationStartedAt")
        return cls(d["account"], int(d["collateral"]), int(d["equity"]), int(d["initialMargin"]),
                   int(d["maintenanceMargin"]), int(d["available"]), int(d["withdrawalNonce"]),
                   list(d.get("halted", [])), [Position.from_json(p) for p in d.get("positions", [])],
                   [OpenOrder.from_json(o) for o in d.get("openOrders", [])],
                   None if started is None else int(started), int(d.get("liquidateNonce", 0)),
                   d.get("marginMode", "standard"), int(d.get("marginNonce", 0)),
                   [ScenarioRisk.from_json(x) for x in d.get("portfolio", [])],
                   None if d.get("frozenAt") is None else int(d["frozenAt"]))


class Level(NamedTuple):
    """An aggregated price level: `price` base units per contract, `amount` contracts × 10^6."""

    price: int
    amount: int


@dataclass(frozen=True)
class Book:
    """`GET /v1/book/{instrument}`: best first on each side; `sequence` increases on every change."""

    instrument: str
    sequence: int
    bids: list[Level]
    asks: list[Level]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Book":
        return cls(d["instrument"], int(d["sequence"]), [Level(int(p), int(a)) for p, a in d["bids"]],
                   [Level(int(p), int(a)) for p, a in d["asks"]])


@dataclass(frozen=True)
class Trade:
    """A trade: `price` base units per contract, `amount` contracts × 10^6, `timestamp` unix s."""

    instrument: str
    price: int
    amount: int
    taker_side: str
    timestamp: int
    maker_order: str
    taker_order: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Trade":
        return cls(d["instrument"], int(d["price"]), int(d["amount"]), d["takerSide"], int(d["timestamp"]),
                   d["makerOrder"], d["takerOrder"])


@dataclass(frozen=True)
class Instrument:
    """A listed option with its current mark (spot/mark base units, `iv` annualised × 10^6)."""

    name: str
    underlying: str
    expiry: int
    strike: int
    type: str                    # "call" | "put"
    tick_size: int
    amount_step: int
    min_amount: int
    spot: int | None = None
    iv: int | None = None
    mark: int | None = None
    mark_high: int | None = None
    greeks: Greeks | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Instrument":
        return cls(d["name"], d["underlying"], int(d["expiry"]), int(d["strike"]), d["type"],
                   int(d["tickSize"]), int(d["amountStep"]), int(d["minAmount"]), _opt_int(d.get("spot")),
                   _opt_int(d.get("iv")), _opt_int(d.get("mark")), _opt_int(d.get("markHigh")),
                   Greeks.from_json(d.get("greeks")))


@dataclass(frozen=True)
class BlockHeader:
    """A sealed block's header (design.md fields); `hash` is keccak256 of its ABI encoding."""

    number: int
    parent_hash: str
    timestamp: int
    tx_root: str
    state_root: str
    withdrawal_root: str
    l1_message_cursor: int
    hash: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "BlockHeader":
        return cls(int(d["number"]), d["parentHash"], int(d["timestamp"]), d["txRoot"], d["stateRoot"],
                   d["withdrawalRoot"], int(d["l1MessageCursor"]), d["hash"])


@dataclass(frozen=True)
class Block:
    """A sealed block: header and its encoded transactions (0x hex)."""

    header: BlockHeader
    txs: list[str]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Block":
        return cls(BlockHeader.from_json(d["header"]), list(d["txs"]))


@dataclass(frozen=True)
class CancelResult:
    """The answer to a cancel: `remaining` contracts × 10^6 that were still open."""

    order_hash: str
    status: str
    remaining: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "CancelResult":
        return cls(d["orderHash"], d["status"], int(d["remaining"]))


@dataclass(frozen=True)
class L1Message:
    """`GET /v1/l1-messages/{nonce}`: how the node processed an L1 message (a Bridge deposit or
    a forced withdrawal): `status` "credited" | "refunded" | ... and the L2 `block` that did it."""

    nonce: int
    kind: str                    # "deposit" | "forced_withdrawal"
    account: str
    amount: int
    status: str
    reason: str | None
    block: int | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "L1Message":
        return cls(int(d["nonce"]), d["kind"], d["account"], int(d["amount"]), d["status"], d.get("reason"),
                   d.get("block"), d)


@dataclass(frozen=True)
class WithdrawalAck:
    """The answer to `POST /v1/withdrawals`."""

    withdrawal_hash: str
    status: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "WithdrawalAck":
        return cls(d["withdrawalHash"], d["status"])


@dataclass(frozen=True)
class Withdrawal:
    """`GET /v1/withdrawals/{hash}`: status pending|batched|final|paid; `finalize` is the L1 call
    (`{"to", "data"}`) that pays it once final; `amount` collateral base units."""

    withdrawal_hash: str
    status: str
    block: int | None
    batch: int | None = None
    leaf: str | None = None
    proof: Any = None
    finalize: dict[str, str] | None = None
    account: str | None = None
    recipient: str | None = None
    amount: int | None = None
    nonce: int | None = None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Withdrawal":
        return cls(d["withdrawalHash"], d["status"], _opt_int(d.get("block")), _opt_int(d.get("batch")),
                   d.get("leaf"), d.get("proof"), d.get("finalize"), d.get("account"), d.get("recipient"),
                   _opt_int(d.get("amount")), _opt_int(d.get("nonce")))


class StreamMessage(NamedTuple):
    """One WebSocket message: `seq` increases by 1 per message of a channel (a gap = loss)."""

    channel: str
    seq: int
    data: Any
