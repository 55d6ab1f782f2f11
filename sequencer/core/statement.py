"""Per-account statements from sealed blocks (docs/compliance.md, "Statements"). Pure.

A statement is built by replaying blocks from genesis with `apply` (the verifier's state
transition) and diffing the account's collateral and positions around every transaction, so
every collateral change of the account is a row and the running balance is exactly the state's
collateral after each row; each re-sealed header is checked against the stored one.

Row kinds (`Row.kind`): trade (side buy/sell, role maker/taker; `fee` = what the account paid),
fee_income (the fee account or insurance fund credited by a trade), deposit,
deposit_refunded (not credited: `detail` says why), withdrawal, forced_withdrawal,
forced_withdrawal_refused, settlement (expiry cash settlement of `amount` at `price`),
auction_start, auction_end, liquidated (a liquidator took part of the account), liquidation_take
(the account, as liquidator, took part of another), takeover (the insurance fund took the
account whole), takeover_absorbed (the fund's side of one), channel_open, channel_close,
channel_conclude, frozen, unfrozen, and any other transaction that moved the account's
collateral or positions under its snake_case type name.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import NamedTuple

from cext import to_checksum
from sequencer.core.accounttree import AccountTree
from sequencer.core.chain import seal_header
from sequencer.core.header import Block, Header
from sequencer.core.instruments import UNIT
from sequencer.core.state import State
from sequencer.core.transition import apply, deposit_refund, forced_withdrawal_refusal, prepare_block
from sequencer.core.txs import (AuctionEndTx, AuctionStartTx, ChannelCloseTx, ChannelConcludeTx,
                                ChannelOpenTx, DepositTx, FillTx, ForcedWithdrawTx, FreezeTx,
                                LiquidateTx, SettleTx, SignedOrder, TakeoverTx, Tx, UnfreezeTx,
                                WithdrawTx, decode_tx)
from sequencer.errors import OptrollupError, Rejected, Unavailable

COLUMNS = ("block", "timestamp", "tx", "type", "instrument", "side", "role", "amount", "price",
           "premium", "fee", "change", "balance", "position", "counterparty", "reference", "detail")
"""The CSV header. Money (premium, fee, change, balance, and amount/price of money rows) in
collateral base units; trade amounts and positions in contracts x 10^6; `change` is the
account's collateral change, `balance` its collateral after the row, `position` its position
in `instrument` after the row."""


class Row(NamedTuple):
    block: int
    timestamp: int
    tx: int | None
    kind: str
    change: int
    balance: int
    instrument: str = ""
    side: str = ""
    role: str = ""
    amount: int | None = None
    price: int | None = None
    premium: int | None = None
    fee: int | None = None
    position: int | None = None
    counterparty: bytes | None = None
    reference: str = ""
    detail: str = ""


class Statement(NamedTuple):
    """The rows of `account` for blocks `first`..`last`: an opening_balance row (collateral
    after block first-1), one row per transaction that concerns it, a closing_balance row."""

    account: bytes
    first: int
    last: int
    rows: list[Row]

    @property
    def closing(self) -> int:
        return self.rows[-1].balance


class StatementError(Unavailable):
    """The stored blocks do not replay (a corrupt store or changed code): HTTP 503."""

    code = "statement_unavailable"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Tx")).lower()


def _snap(state: State, account: bytes) -> tuple[int, dict[str, int]]:
    a = state.accounts.get(account)
    return (0, {}) if a is None else (a.collateral, dict(a.positions))


def _order_of(state: State, ref: object):  # noqa: ANN202 - an Order
    return ref.order if isinstance(ref, SignedOrder) else state.orders[ref].order  # type: ignore[index]


def _classify(state: State, tx: Tx, account: bytes, before: tuple[int, dict[str, int]],
              after: tuple[int, dict[str, int]], why: str | None) -> dict | None:
    """The row fields (but block, time, index, change, balance) of `tx` for `account`, or None
    when it does not concern the account."""
    change = after[0] - before[0]
    moved = before[1] != after[1]
    if isinstance(tx, FillTx):
        mo, to = _order_of(state, tx.maker), _order_of(state, tx.taker)
        for role, o, other in (("maker", mo, to), ("taker", to, mo)):
            if o.account == account:
                premium = tx.price * tx.amount // UNIT
                side = "buy" if o.isBuy else "sell"
                return {"kind": "trade", "instrument": o.instrument, "side": side, "role": role,
                        "amount": tx.amount, "price": tx.price, "premium": premium,
                        "fee": (premium if side == "sell" else -premium) - change,
                        "position": after[1].get(o.instrument, 0),
                        "counterparty": other.account}
        return {"kind": "fee_income", "instrument": mo.instrument} if change else None
    if isinstance(tx, DepositTx):
        if tx.account != account:
            return None
        return {"kind": "deposit_refunded" if why else "deposit", "amount": tx.amount,
                "counterparty": tx.depositor, "reference": f"l1Nonce {tx.l1Nonce}",
                "detail": why or ""}
    if isinstance(tx, WithdrawTx):
        w = tx.withdraw
        if w.account != account:
            return None
        return {"kind": "withdrawal", "amount": w.amount, "counterparty": w.recipient,
                "reference": f"nonce {w.nonce}"}
    if isinstance(tx, ForcedWithdrawTx):
        if tx.account != account:
            return None
        return {"kind": "forced_withdrawal_refused" if why else "forced_withdrawal",
                "amount": tx.amount, "counterparty": tx.recipient,
                "reference": f"l1Nonce {tx.l1Nonce}", "detail": why or ""}
    if isinstance(tx, SettleTx):
        q = before[1].get(tx.instrument, 0)
        if q:
            return {"kind": "settlement", "instrument": tx.instrument, "amount": q,
                    "price": state.settled.get(tx.instrument), "position": 0}
        return {"kind": "settlement", "instrument": tx.instrument,
                "detail": "insurance fund"} if change or moved else None
    if isinstance(tx, LiquidateTx):
        m = tx.liquidate
        if account not in (m.liquidator, m.account) and not (change or moved):
            return None
        kind = ("liquidation_take" if m.liquidator == account else "liquidated"
                if m.account == account else "liquidation")
        other = m.account if m.liquidator == account else m.liquidator
        return {"kind": kind, "counterparty": other, "reference": f"nonce {m.nonce}",
                "detail": f"fractionPpm {m.fractionPpm}" + _moves(before[1], after[1])}
    if isinstance(tx, TakeoverTx):
        if tx.account == account:
            return {"kind": "takeover", "detail": _moves(before[1], after[1]).lstrip("; ")}
        if change or moved:
            return {"kind": "takeover_absorbed", "counterparty": tx.account,
                    "detail": _moves(before[1], after[1]).lstrip("; ")}
        return None
    if isinstance(tx, (AuctionStartTx, AuctionEndTx)):
        if tx.account != account:
            return None
        return {"kind": "auction_start" if isinstance(tx, AuctionStartTx) else "auction_end"}
    if isinstance(tx, ChannelOpenTx):
        o = tx.channelOpen
        if account not in (o.a, o.b):
            return None
        a_side = o.a == account
        return {"kind": "channel_open", "amount": o.depositA if a_side else o.depositB,
                "counterparty": o.b if a_side else o.a}
    if isinstance(tx, (ChannelCloseTx, ChannelConcludeTx)):
        s = tx.channelState
        ch = state.channels[s.channelId]
        if account not in (ch.open.a, ch.open.b):
            return None
        a_side = ch.open.a == account
        return {"kind": "channel_close" if isinstance(tx, ChannelCloseTx) else "channel_conclude",
                "amount": s.balanceA if a_side else s.balanceB,
                "counterparty": ch.open.b if a_side else ch.open.a,
                "reference": f"0x{s.channelId.hex()} turn {s.turnNum}",
                "detail": _moves(before[1], after[1]).lstrip("; ")}
    if isinstance(tx, (FreezeTx, UnfreezeTx)):
        msg = tx[0]
        if msg.account != account:
            return None
        return {"kind": "frozen" if isinstance(tx, FreezeTx) else "unfrozen",
                "reference": f"nonce {msg.nonce}"}
    if change or moved:
        return {"kind": _snake(type(tx).__name__), "detail": _moves(before[1], after[1]).lstrip("; ")}
    return None


def _moves(before: dict[str, int], after: dict[str, int]) -> str:
    out = [f"{n} {before.get(n, 0)}->{after.get(n, 0)}" for n in sorted({*before, *after})
           if before.get(n, 0) != after.get(n, 0)]
    return ("; positions " + ", ".join(out)) if out else ""


def _reason(state: State, tx: Tx, ctx: object) -> str | None:
    if isinstance(tx, DepositTx):
        return deposit_refund(state, tx)
    if isinstance(tx, ForcedWithdrawTx):
        return forced_withdrawal_refusal(state, tx, ctx)  # type: ignore[arg-type]
    return None


def build(state: State, tree: AccountTree, head: Header, blocks: Iterable[Block],
          account: bytes, first: int, last: int) -> Statement:
    """Replay `blocks` (block head.number+1 onwards, in order, up to at least `last`) on
    `state`/`tree` (the state after `head`, e.g. genesis) and collect `account`'s rows for blocks
    `first`..`last`. StatementError if a block does not replay to its stored header."""
    if not 1 <= first <= last + 1:
        raise Rejected(f"statement range {first}..{last} is empty or starts before block 1",
                       code="bad_range")
    acct = account
    rows: list[Row] = []
    opened = False
    for block in blocks:
        h = block.header
        if h.number != head.number + 1:
            raise StatementError(f"block {h.number} follows block {head.number}")
        if h.number > last:
            break
        if h.number == first:
            rows.append(Row(first, h.timestamp, None, "opening_balance", 0, _snap(state, acct)[0]))
            opened = True
        txs = [decode_tx(raw) for raw in block.txs]
        ctx = prepare_block(state.config.domain, h.timestamp, txs)
        for i, tx in enumerate(txs):
            before = _snap(state, acct) if h.number >= first else None
            why = _reason(state, tx, ctx) if before is not None else None
            try:
                apply(state, tx, ctx)
            except OptrollupError as exc:
                raise StatementError(f"stored block {h.number} tx {i} does not apply: "
                                     f"[{exc.code}] {exc.message}") from None
            if before is None:
                continue
            after = _snap(state, acct)
            f = _classify(state, tx, acct, before, after, why)
            if f is not None:
                rows.append(Row(h.number, h.timestamp, i, change=after[0] - before[0],
                                balance=after[0], **f))
        got = seal_header(state, tree, head, h.timestamp, txs, list(block.txs))
        if got != h:
            raise StatementError(f"stored block {h.number} does not re-seal to its header")
        head = got
    if head.number < last:
        raise StatementError(f"blocks end at {head.number}, before {last}")
    if not opened:  # an empty range (first = last + 1)
        rows.append(Row(first, head.timestamp, None, "opening_balance", 0, _snap(state, acct)[0]))
    rows.append(Row(last, head.timestamp, None, "closing_balance", 0, _snap(state, acct)[0]))
    return Statement(account, first, last, rows)


def to_csv(st: Statement) -> str:
    """The statement as CSV (COLUMNS), addresses in EIP-55 form, integers in decimal."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in st.rows:
        w.writerow([r.block, r.timestamp, "" if r.tx is None else r.tx, r.kind, r.instrument,
                    r.side, r.role, _opt(r.amount), _opt(r.price), _opt(r.premium), _opt(r.fee),
                    r.change, r.balance, _opt(r.position),
                    "" if r.counterparty is None else to_checksum(r.counterparty),
                    r.reference, r.detail])
    return buf.getvalue()


def _opt(x: int | None) -> str:
    return "" if x is None else str(x)
