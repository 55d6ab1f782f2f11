"""Instrument names and listing rules."""

from __future__ import annotations

import calendar

import pytest

from sequencer.core import make_instrument, parse_name
from sequencer.errors import InvalidRequest


def test_parse_canonical_name() -> None:
    assert parse_name("ETH-27DEC26-3000-C") == (
        "ETH", calendar.timegm((2026, 12, 27, 8, 0, 0)), 3000 * 10**6, True)
    assert parse_name("BTC-5JAN27-100000-P")[1:] == (
        calendar.timegm((2027, 1, 5, 8, 0, 0)), 100000 * 10**6, False)


@pytest.mark.parametrize("name", ["ETH-27DEC26-3000-X", "ETH-27DEC26-03000-C", "ETH-05JAN27-3000-C",
                                  "eth-27DEC26-3000-C", "ETH-27DEX26-3000-C", "ETH-31FEB27-3000-C",
                                  "ETH-27DEC26-0-C", "ETH27DEC263000C", "", "ETH-27DEC26-3000-C "])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        parse_name(name)
    assert e.value.code == "bad_instrument_name"


def test_steps_must_make_premiums_exact() -> None:
    ins = make_instrument("ETH-27DEC26-3000-C")
    assert (ins.tick_size, ins.amount_step, ins.min_amount) == (100_000, 10_000, 10_000)
    with pytest.raises(InvalidRequest) as e:
        make_instrument("ETH-27DEC26-3000-C", tick_size=7, amount_step=10_000)
    assert e.value.code == "inexact_premium"
    with pytest.raises(InvalidRequest) as e:
        make_instrument("ETH-27DEC26-3000-C", min_amount=15_000)
    assert e.value.code == "bad_min_amount"
    with pytest.raises(InvalidRequest) as e:
        make_instrument("ETH-27DEC26-3000-C", tick_size=0)
    assert e.value.code == "bad_tick_size"
