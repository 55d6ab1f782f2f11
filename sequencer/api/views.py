"""JSON views of node objects (design.md: EIP-55 addresses, 0x hashes, money as decimal strings)."""

from __future__ import annotations

from typing import Any

from cext import Order, to_checksum
from sequencer.core.engine import AccountView, OrderResult
from sequencer.core.config import UnderlyingParams
from sequencer.core.instruments import Instrument
from sequencer.core.margin import short_margin
from sequencer.core.portfolio import MODES
from sequencer.core.pricing import Mark
from sequencer.core.txs import FillTx, SignedOrder
from sequencer.node.l1follower import DEPOSIT
from sequencer.node.reads import L1MessageView


def h(b: bytes) -> str:
    return "0x" + b.hex()


def money(x: int) -> str:
    return str(x)


def order_json(o: Order) -> dict[str, Any]:
    return {"account": to_checksum(o.account), "instrument": o.instrument, "isBuy": o.isBuy,
            "price": money(o.price), "amount": money(o.amount), "nonce": str(o.nonce),
            "expiry": o.expiry, "timeInForce": o.timeInForce, "postOnly": o.postOnly,
            "reduceOnly": o.reduceOnly}


def fill_json(fill: FillTx, maker_hash: bytes, taker_hash: bytes) -> dict[str, Any]:
    return {"price": money(fill.price), "amount": money(fill.amount), "makerOrder": h(maker_hash),
            "takerOrder": h(taker_hash)}


def order_result_json(r: OrderResult, digest_of: Any) -> dict[str, Any]:
    """`digest_of(order)` gives the EIP-712 digest of a maker order carried in full."""
    fills = []
    for f in r.fills:
        maker = digest_of(f.maker.order) if isinstance(f.maker, SignedOrder) else f.maker
        fills.append(fill_json(f, maker, r.orderHash))
    return {"orderHash": h(r.orderHash), "status": r.status, "filledAmount": money(r.filledAmount),
            "fills": fills}


def mark_json(m: Mark | None) -> dict[str, Any]:
    if m is None:
        return {"spot": None, "iv": None, "mark": None, "greeks": None}
    return {"spot": money(m.spot), "iv": m.iv, "mark": money(m.mark_lo), "markHigh": money(m.mark_hi),
            "greeks": {"delta": m.delta, "gamma": m.gamma, "vega": m.vega, "theta": m.theta}}


def instrument_json(ins: Instrument, m: Mark | None = None, with_mark: bool = False,
                    params: UnderlyingParams | None = None) -> dict[str, Any]:
    """An instrument; `with_mark`: its mark and greeks, and (given its underlying's `params`)
    the standard initial and maintenance margin per short contract at the mark's spot
    (`shortInitialMargin`, `shortMaintenanceMargin`: what the margin rules of the rollup and of
    state channels charge, base units)."""
    out = {"name": ins.name, "underlying": ins.underlying, "expiry": ins.expiry,
           "strike": money(ins.strike), "type": "call" if ins.is_call else "put",
           "tickSize": money(ins.tick_size), "amountStep": money(ins.amount_step),
           "minAmount": money(ins.min_amount)}
    if with_mark:
        out.update(mark_json(m))
        if params is not None:
            im, mm = short_margin(m.spot, ins.strike, ins.is_call, params) if m else (None, None)
            out["shortInitialMargin"] = None if im is None else money(im)
            out["shortMaintenanceMargin"] = None if mm is None else money(mm)
    return out


def instruments_json(node: Any) -> list[dict[str, Any]]:
    """Every listed instrument with its mark, greeks and margins per short (GET /v1/instruments,
    the stream's `marks` channel)."""
    ps = node.cfg.genesis.config.underlyings
    return [instrument_json(i, m, True, ps.get(i.underlying)) for i, m in node.instruments()]


def account_json(address: bytes, v: AccountView) -> dict[str, Any]:
    return {
        "account": to_checksum(address),
        "collateral": money(v.collateral), "equity": money(v.equity),
        "initialMargin": money(v.initialMargin), "maintenanceMargin": money(v.maintenanceMargin),
        "available": money(v.available), "withdrawalNonce": str(v.withdrawalNonce),
        "halted": list(v.halted), "liquidationStartedAt": v.liquidationStart,
        "liquidateNonce": str(v.liquidateNonce),
        "marginMode": MODES[v.marginMode], "marginNonce": str(v.marginNonce),
        "frozen": v.frozenAt is not None, "frozenAt": v.frozenAt,
        "portfolio": [{"underlying": u.underlying, "worstLoss": money(u.loss),
                       "worstScenario": {"spotShockPct": u.spot_shock, "volShockPct": u.vol_shock},
                       "initialMargin": money(u.im), "maintenanceMargin": money(u.mm)}
                      for u in v.portfolio],
        "positions": [{"instrument": p.instrument, "amount": money(p.amount), **mark_json(p.mark)}
                      for p in v.positions],
        "openOrders": [{"orderHash": h(o.orderHash), "remaining": money(o.remaining),
                        **order_json(o.order)} for o in v.openOrders],
    }


def l1_message_json(m: L1MessageView) -> dict[str, Any]:
    """`GET /v1/l1-messages/{nonce}`: kind, parties, amount, status, L2 block, and the withdrawal
    leaf it emitted (a refund or a payout; fetch its proof at /v1/withdrawals/{account}/{nonce})."""
    deposit = m.kind == DEPOSIT
    w = m.withdrawal
    return {"nonce": str(m.nonce), "kind": "deposit" if deposit else "forced_withdrawal",
            "account": to_checksum(m.account),
            ("depositor" if deposit else "recipient"): to_checksum(m.counterparty),
            "amount": money(m.amount), "l1Block": m.l1_block, "status": m.status,
            "reason": m.reason, "block": m.block,
            "withdrawal": None if w is None else {
                "account": to_checksum(w.account), "recipient": to_checksum(w.recipient),
                "amount": money(w.amount), "nonce": str(w.nonce), "leafIndex": m.leaf_index}}
