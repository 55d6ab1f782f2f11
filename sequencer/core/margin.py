"""Standard margin in integers. Amounts are contracts x 10^6 (signed for positions), prices
and results collateral base units.

Equity E = collateral + Σ value(q); value(q) = floor(q·mark_lo/10^6) for longs and
-ceil(|q|·mark_hi/10^6) for shorts. Initial/maintenance margin: Σ over shorts of
ceil(|q|·per_contract/10^6). Everything rounds against the account.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from cext import margin_sums
from sequencer.core.config import UnderlyingParams
from sequencer.core.instruments import UNIT

PPM = 10**6


class RiskRow(NamedTuple):
    """What margin needs of one instrument at the current marks (base units per contract)."""

    mark_lo: int
    mark_hi: int
    im: int
    mm: int


class Margin(NamedTuple):
    """Account-level figures, base units. `im` includes open orders when computed with them."""

    equity: int
    im: int
    mm: int


def short_margin(spot: int, strike: int, is_call: bool, p: UnderlyingParams) -> tuple[int, int]:
    """(initial, maintenance) margin per short contract, rounded up:
    initial = max(im_rate·S − OTM, im_floor·S), maintenance = mm_rate·S, puts capped at K."""
    otm = max(strike - spot, 0) if is_call else max(spot - strike, 0)
    im = max(-((otm * PPM - p.im_rate * spot) // PPM), -(-p.im_floor * spot // PPM))
    mm = -(-p.mm_rate * spot // PPM)
    if not is_call:
        im, mm = min(im, strike), min(mm, strike)
    return im, mm


def value(q: int, row: RiskRow) -> int:
    """Mark value of a signed position q, rounded against the holder."""
    return q * row.mark_lo // UNIT if q >= 0 else q * row.mark_hi // UNIT


def im_of(q: int, row: RiskRow) -> int:
    """Initial margin of a signed position (shorts only), rounded up."""
    return -(q * row.im // UNIT) if q < 0 else 0


def position_delta(old: int, new: int, row: RiskRow) -> tuple[int, int]:
    """(Δ value, Δ initial margin) when a position goes from `old` to `new`: the same
    roundings as value() and im_of(), in one call (this runs for every fill and margin check)."""
    lo, hi, im = row.mark_lo, row.mark_hi, row.im
    dv = (new * lo // UNIT if new >= 0 else new * hi // UNIT) - (old * lo // UNIT if old >= 0 else old * hi // UNIT)
    dim = (-(new * im // UNIT) if new < 0 else 0) - (-(old * im // UNIT) if old < 0 else 0)
    return dv, dim


def mm_of(q: int, row: RiskRow) -> int:
    """Maintenance margin of a signed position (shorts only), rounded up."""
    return -(q * row.mm // UNIT) if q < 0 else 0


def positions_margin(collateral: int, positions: Iterable[tuple[int, RiskRow]]) -> Margin:
    """Margin of (q, row) positions with no open orders: the module docstring's sums, rounded
    against the account (`cext.margin_sums`: in C, 128-bit, where the values fit int64)."""
    pairs = list(positions)
    return Margin(*margin_sums(collateral, [q for q, _ in pairs], [r for _, r in pairs], UNIT))


def fee(premium: int, amount: int, spot: int, rate: int, cap: int) -> int:
    """min(rate·spot·amount, cap·premium) in base units, rounded up; rate and cap in ppm."""
    return min(-(-rate * spot * amount // (PPM * UNIT)), -(-cap * premium // PPM))


def reduces(q: int, delta: int) -> bool:
    """True iff moving a position from q by delta never increases |q| nor flips its sign."""
    n = q + delta
    return (q >= 0 and 0 <= n <= q) or (q <= 0 and q <= n <= 0)
