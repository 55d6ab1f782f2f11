"""Option instruments: names, listing rules and per-instrument steps.

A name is `UNDERLYING-DMMMYY-STRIKE-C|P` (e.g. `ETH-27DEC26-3000-C`, `ETH-5JAN27-2500-P`): the
day has no leading zero, the strike is whole USD without leading zeros, expiry is 08:00 UTC of
that day. Prices are collateral base units per contract; amounts are contracts x 10^6.
"""

from __future__ import annotations

import calendar
import re
from typing import NamedTuple

from sequencer.errors import InvalidRequest

UNIT = 10**6
"""Collateral base units per USDC, and amount units per contract."""

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_NAME_RE = re.compile(r"^([A-Z][A-Z0-9]{0,9})-([1-9][0-9]?)([A-Z]{3})([0-9]{2})-([1-9][0-9]{0,8})-([CP])$")

DEFAULT_TICK_SIZE = 100_000
DEFAULT_AMOUNT_STEP = 10_000


class Instrument(NamedTuple):
    """A listed European option. `expiry` is unix seconds (08:00 UTC); `strike` is collateral
    base units (whole USD x 10^6); `tick_size`, `amount_step`, `min_amount` make every accepted
    premium price·amount/10^6 an exact integer."""

    name: str
    underlying: str
    expiry: int
    strike: int
    is_call: bool
    tick_size: int = DEFAULT_TICK_SIZE
    amount_step: int = DEFAULT_AMOUNT_STEP
    min_amount: int = DEFAULT_AMOUNT_STEP


def parse_name(name: str) -> tuple[str, int, int, bool]:
    """(underlying, expiry unix s, strike base units, is_call) of a canonical name; raises
    InvalidRequest(code="bad_instrument_name") naming what is wrong."""
    m = _NAME_RE.match(name) if isinstance(name, str) else None
    if m is None:
        raise InvalidRequest(
            f"instrument {name!r} is not UNDERLYING-DMMMYY-STRIKE-C|P", code="bad_instrument_name")
    underlying, day, mon, yy, strike, cp = m.groups()
    if mon not in MONTHS:
        raise InvalidRequest(f"instrument {name!r}: unknown month {mon!r}", code="bad_instrument_name")
    month = MONTHS.index(mon) + 1
    year = 2000 + int(yy)
    if int(day) > calendar.monthrange(year, month)[1]:
        raise InvalidRequest(f"instrument {name!r}: no day {day} in {mon} {year}",
                             code="bad_instrument_name")
    expiry = calendar.timegm((year, month, int(day), 8, 0, 0))
    return underlying, expiry, int(strike) * UNIT, cp == "C"


def make_instrument(name: str, tick_size: int = DEFAULT_TICK_SIZE,
                    amount_step: int = DEFAULT_AMOUNT_STEP, min_amount: int | None = None) -> Instrument:
    """Build and check an Instrument from its name and steps (errors: bad_instrument_name,
    bad_tick_size, bad_amount_step, bad_min_amount, inexact_premium)."""
    underlying, expiry, strike, is_call = parse_name(name)
    min_amount = amount_step if min_amount is None else min_amount
    for field, value in (("tickSize", tick_size), ("amountStep", amount_step), ("minAmount", min_amount)):
        if type(value) is not int or not 0 < value < 2**64:
            raise InvalidRequest(f"{field} must be a positive uint64, got {value!r}",
                                 code=f"bad_{_snake(field)}")
    if min_amount % amount_step:
        raise InvalidRequest(f"minAmount {min_amount} is not a multiple of amountStep {amount_step}",
                             code="bad_min_amount")
    if tick_size * amount_step % UNIT:
        raise InvalidRequest(
            f"tickSize {tick_size} x amountStep {amount_step} is not a multiple of 10^6: premiums "
            "would not be whole base units", code="inexact_premium")
    return Instrument(name, underlying, expiry, strike, is_call, tick_size, amount_step, min_amount)


def _snake(field: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), field)
