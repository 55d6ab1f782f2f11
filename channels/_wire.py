"""JSON of the channel service's own bodies (trades and quotes); the signed messages are
sequencer.core.channelmsg's. Same conventions: integers as JSON integers or decimal strings,
exact key sets, InvalidRequest naming the field."""

from __future__ import annotations

from typing import Any

from sequencer.core.channelmsg import (json_bool, json_string, json_uint, require_object)
from sequencer.errors import InvalidRequest

from channels.rules import Quote, QuoteLine, Trade, check_quote

MAX_QUOTE_LINES = 500


def trade_from_json(value: Any, field: str = "trade") -> Trade:
    """`{instrument, isBuy, price, amount}` (the proposer's side)."""
    o = require_object(value, field, Trade._fields)
    return Trade(json_string(o["instrument"], f"{field}.instrument"),
                 json_bool(o["isBuy"], f"{field}.isBuy"),
                 json_uint(o["price"], f"{field}.price"),
                 json_uint(o["amount"], f"{field}.amount"))


def trade_to_json(trade: Trade) -> dict[str, Any]:
    """Response form: price and amount as decimal strings."""
    return {"instrument": trade.instrument, "isBuy": trade.isBuy, "price": str(trade.price),
            "amount": str(trade.amount)}


def quote_from_json(value: Any, field: str = "quotes") -> Quote:
    """A list of `{instrument, bid, bidAmount, ask, askAmount}`, checked by rules.check_quote."""
    if not isinstance(value, list):
        raise InvalidRequest(f"{field} must be a list", code="invalid_type")
    if len(value) > MAX_QUOTE_LINES:
        raise InvalidRequest(f"{field} has more than {MAX_QUOTE_LINES} lines",
                             code="batch_too_large")
    lines = []
    for i, item in enumerate(value):
        f = f"{field}[{i}]"
        o = require_object(item, f, QuoteLine._fields)
        lines.append(QuoteLine(json_string(o["instrument"], f"{f}.instrument"),
                               *(json_uint(o[k], f"{f}.{k}") for k in QuoteLine._fields[1:])))
    return check_quote(lines)


def quote_to_json(quote: Quote) -> list[dict[str, Any]]:
    """Response form: numbers as decimal strings."""
    return [{"instrument": q.instrument, **{k: str(v) for k, v in zip(QuoteLine._fields[1:], q[1:])}}
            for q in quote]
