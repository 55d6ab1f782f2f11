"""Black-76 marks and greeks (forward = spot, zero rate) and total-variance vol interpolation.

Floats live only in this module. `to_units` is the one place where a float becomes an integer:
marks are rounded down for the value of long positions (`mark_lo`) and up for shorts
(`mark_hi`); greeks, which move no money, are rounded to nearest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

YEAR = 365 * 86_400
"""Seconds per year used for time to expiry."""
_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


class Greeks(NamedTuple):
    """Per-contract float results: `price` and `vega` (per 1.00 of vol) and `theta` (per year)
    in the units of the forward; `delta` dimensionless; `gamma` per unit of forward."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


class Mark(NamedTuple):
    """Integer mark of one instrument: `mark_lo`/`mark_hi` base units per contract (floor/ceil of
    the Black-76 price), `spot` base units, `iv` vol x 10^6, `delta` x 10^6, `gamma` delta x 10^6
    per 1 USDC of spot, `vega` base units per vol point (0.01), `theta` base units per day."""

    mark_lo: int
    mark_hi: int
    spot: int
    iv: int
    delta: int
    gamma: int
    vega: int
    theta: int


def norm_cdf(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * math.erfc(-x / _SQRT2)


def black76(forward: float, strike: float, t: float, sigma: float, is_call: bool) -> Greeks:
    """Black-76 with zero rate; `t` in years. At t <= 0 or sigma <= 0 the option is worth its
    intrinsic value with a step delta and zero gamma, vega, theta."""
    if t <= 0.0 or sigma <= 0.0:
        itm = forward > strike if is_call else forward < strike
        price = max(forward - strike, 0.0) if is_call else max(strike - forward, 0.0)
        return Greeks(price, (1.0 if is_call else -1.0) if itm else 0.0, 0.0, 0.0, 0.0)
    sq = math.sqrt(t)
    sd = sigma * sq
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    pdf = math.exp(-0.5 * d1 * d1) * _INV_SQRT2PI
    if is_call:
        price = forward * norm_cdf(d1) - strike * norm_cdf(d2)
        delta = norm_cdf(d1)
    else:
        price = strike * norm_cdf(-d2) - forward * norm_cdf(-d1)
        delta = norm_cdf(d1) - 1.0
    return Greeks(max(price, 0.0), delta, pdf / (forward * sd), forward * pdf * sq,
                  -forward * pdf * sigma / (2.0 * sq))


def interpolate_vol(expiries: Sequence[int], vols: Sequence[float], target: int, now: int) -> float:
    """Vol for expiry `target` from a term structure (`expiries` unix s increasing, `vols`
    annualised): linear in total variance σ²τ between points, flat outside; points at or before
    `now` are ignored. Raises ValueError on an empty curve."""
    pts = [(e - now, v) for e, v in zip(expiries, vols) if e > now]
    if not pts:
        if not vols:
            raise ValueError("empty vol curve")
        return float(vols[-1])
    tau = target - now
    if tau <= pts[0][0]:
        return float(pts[0][1])
    if tau >= pts[-1][0]:
        return float(pts[-1][1])
    for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
        if tau <= t1:
            w0, w1 = v0 * v0 * t0, v1 * v1 * t1
            w = w0 + (w1 - w0) * (tau - t0) / (t1 - t0)
            return math.sqrt(max(w, 0.0) / tau)
    raise AssertionError("unreachable")


def to_units(x: float, rounding: Literal["up", "down", "nearest"]) -> int:
    """The one float -> integer conversion of the core (see module doc for which rounding)."""
    if rounding == "down":
        return math.floor(x)
    if rounding == "up":
        return math.ceil(x)
    return round(x)


def mark(spot: int, strike: int, expiry: int, now: int, vol_ppm: float, is_call: bool) -> Mark:
    """Integer Mark of an option from integer spot/strike (base units), expiry/now (unix s) and
    vol x 10^6 (float, as interpolated)."""
    f, k, sigma = spot / 1e6, strike / 1e6, vol_ppm / 1e6
    g = black76(f, k, (expiry - now) / YEAR, sigma, is_call)
    px = g.price * 1e6
    return Mark(to_units(px, "down"), to_units(px, "up"), spot, to_units(vol_ppm, "nearest"),
                to_units(g.delta * 1e6, "nearest"), to_units(g.gamma * 1e6, "nearest"),
                to_units(g.vega * 1e4, "nearest"), to_units(g.theta * 1e6 / 365, "nearest"))
