"""Standing quotes: which counterparty trades they allow, what remains, and their JSON."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels import (InvalidQuote, OutsideQuote, QuoteLine, Trade, check_quote, quote_from_json,
                      quote_to_json, trade_from_json, trade_to_json, within_quote)
from sequencer.errors import InvalidRequest
from tests.channels.world import INSTRUMENTS, trades

U = 10**6
C, P = "ETH-27DEC26-3000-C", "ETH-27DEC26-3000-P"
QUOTE = (QuoteLine(C, 95 * U, 5 * U, 100 * U, 3 * U), QuoteLine(P, 40 * U, 2 * U, 45 * U, 0))


def test_counterparty_buys_at_or_above_ask_up_to_ask_amount() -> None:
    q = within_quote(QUOTE, Trade(C, True, 100 * U, 2 * U))
    assert q == (QUOTE[0]._replace(askAmount=U), QUOTE[1])
    q = within_quote(q, Trade(C, True, 120 * U, U))          # paying more is allowed
    assert q[0].askAmount == 0 and q[0].bidAmount == 5 * U
    with pytest.raises(OutsideQuote) as e:
        within_quote(q, Trade(C, True, 200 * U, 10_000))
    assert e.value.code == "not_quoted"                        # the ask is used up


def test_counterparty_sells_at_or_below_bid_up_to_bid_amount() -> None:
    q = within_quote(QUOTE, Trade(C, False, 95 * U, 5 * U))
    assert q[0] == QUOTE[0]._replace(bidAmount=0)
    assert within_quote(QUOTE, Trade(C, False, 90 * U, U))[0].bidAmount == 4 * U


@pytest.mark.parametrize("trade, code", [
    (Trade(C, True, 100 * U - 1, U), "price_outside_quote"),   # buys below the ask
    (Trade(C, False, 95 * U + 1, U), "price_outside_quote"),   # sells above the bid
    (Trade(C, True, 100 * U, 3 * U + 1), "amount_exceeds_quote"),
    (Trade(C, False, 95 * U, 5 * U + 1), "amount_exceeds_quote"),
    (Trade(P, True, 1_000 * U, 1), "not_quoted"),              # no ask on the put
    (Trade("ETH-5JAN27-2500-P", True, 1, 1), "not_quoted"),    # not quoted at all
])
def test_trades_outside_the_quote(trade, code) -> None:
    with pytest.raises(OutsideQuote) as e:
        within_quote(QUOTE, trade)
    assert e.value.code == code


@settings(max_examples=150, deadline=None)
@given(st.lists(trades, max_size=30))
def test_a_quote_never_gives_more_than_it_shows(seq) -> None:
    quote = tuple(QuoteLine(n, 200 * U, 20 * U, 300 * U, 20 * U) for n in INSTRUMENTS)
    bought: dict[str, int] = {}
    sold: dict[str, int] = {}
    q = quote
    for t in seq:
        line = next(x for x in q if x.instrument == t.instrument)
        ok = (t.price >= line.ask and t.amount <= line.askAmount and line.askAmount > 0) if t.isBuy \
            else (t.price <= line.bid and t.amount <= line.bidAmount and line.bidAmount > 0)
        if not ok:
            with pytest.raises(OutsideQuote):
                within_quote(q, t)
            continue
        q = within_quote(q, t)
        book = bought if t.isBuy else sold
        book[t.instrument] = book.get(t.instrument, 0) + t.amount
    for n in INSTRUMENTS:
        line = next(x for x in q if x.instrument == n)
        assert bought.get(n, 0) + line.askAmount == 20 * U
        assert sold.get(n, 0) + line.bidAmount == 20 * U


def test_check_quote() -> None:
    assert check_quote(list(QUOTE)) == QUOTE
    check_quote([QuoteLine(C, 100, 1, 100, 1)])          # locked is allowed
    check_quote([QuoteLine(C, 200, 0, 100, 1)])          # one side only: not crossed
    for lines, code in (
        ([QUOTE[0], QUOTE[0]], "duplicate_instrument"),
        ([QuoteLine(C, 101, 1, 100, 1)], "crossed_quote"),
        ([QuoteLine("ETH", 1, 1, 2, 1)], "bad_instrument_name"),
        ([QuoteLine(C, -1, 1, 2, 1)], "invalid_quote"),
    ):
        with pytest.raises(InvalidQuote) as e:
            check_quote(lines)
        assert e.value.code == code


def test_quote_json_round_trip_and_errors() -> None:
    js = quote_to_json(QUOTE)
    assert js[0] == {"instrument": C, "bid": str(95 * U), "bidAmount": str(5 * U),
                     "ask": str(100 * U), "askAmount": str(3 * U)}
    assert quote_from_json(js) == QUOTE
    assert quote_from_json([{"instrument": C, "bid": 1, "bidAmount": 2, "ask": 3,
                             "askAmount": "4"}]) == (QuoteLine(C, 1, 2, 3, 4),)
    for body, code, field in (
        ({}, "invalid_type", "quotes"),
        ([{"instrument": C}], "missing_field", "quotes[0].bid"),
        ([dict(js[0], bid="-1")], "invalid_number", "quotes[0].bid"),
        ([dict(js[0], extra=1)], "unknown_field", "quotes[0].extra"),
        ([js[0], js[0]], "duplicate_instrument", "quotes[1]"),
    ):
        with pytest.raises(InvalidRequest) as e:
            quote_from_json(body)
        assert e.value.code == code and field in e.value.message, (code, e.value.message)


def test_trade_json() -> None:
    t = Trade(C, True, 100 * U, 2 * U)
    assert trade_from_json(trade_to_json(t)) == t
    assert trade_from_json({"instrument": C, "isBuy": False, "price": 5, "amount": "7"}) == \
        Trade(C, False, 5, 7)
    for body, code in (({"instrument": C, "isBuy": 1, "price": 5, "amount": 7}, "invalid_type"),
                       ({"instrument": C, "isBuy": True, "price": -5, "amount": 7}, "invalid_number"),
                       ({"instrument": C, "isBuy": True, "price": 5}, "missing_field")):
        with pytest.raises(InvalidRequest) as e:
            trade_from_json(body)
        assert e.value.code == code
