"""Black-76 marks and greeks (forward = spot, zero rate) and total-variance vol interpolation.

Everything that feeds committed state is integer: `interpolate_vol` and `mark` take integer
inputs (base units, unix seconds, vol x 10^6) and compute in the binary fixed point of
`sequencer.core.fixedpoint` (2^96), so every platform gets the same bits. `mark` is the one
place where the fixed-point price becomes base units: `mark_lo` is its floor (the value of a
long), `mark_hi` its ceiling (the value of a short); greeks, which move no money, are rounded
to nearest (ties up).

`black76`/`norm_cdf` are float and for display and tests only: nothing in the state
transition calls them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from math import isqrt
from typing import NamedTuple

from sequencer.core import fixedpoint as fx

YEAR = 365 * 86_400
"""Seconds per year used for time to expiry."""
_SQRT2 = math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_PPM = 10**6


class Greeks(NamedTuple):
    """Float results of `black76` (display and tests only): per contract, `price` and `vega`
    (per 1.00 of vol) and `theta` (per year) in the units of the forward; `delta`
    dimensionless; `gamma` per unit of forward."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


class Mark(NamedTuple):
    """Integer mark of one instrument: `mark_lo`/`mark_hi` base units per contract (floor/ceil of
    the fixed-point Black-76 price), `spot` base units, `iv` vol x 10^6, `delta` x 10^6, `gamma` delta x 10^6
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
    """Standard normal CDF, float (display and tests only)."""
    return 0.5 * math.erfc(-x / _SQRT2)


def black76(forward: float, strike: float, t: float, sigma: float, is_call: bool) -> Greeks:
    """Float Black-76 with zero rate (display and tests only); `t` in years. At t <= 0 or
    sigma <= 0 the option is worth its intrinsic value with a step delta and zero gamma, vega,
    theta."""
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


def interpolate_vol(expiries: Sequence[int], vols: Sequence[int], target: int, now: int) -> int:
    """Vol x 10^6 for expiry `target` (unix s) from a term structure (`expiries` unix s
    increasing, `vols` x 10^6): linear in total variance σ²τ between points, flat outside;
    points at or before `now` are ignored. Between points the result is
    sqrt((w0·(t1 − τ) + w1·(τ − t0)) / ((t1 − t0)·τ)) with w = vol²·t, computed exactly and
    rounded to the nearest integer (ties up). Raises ValueError on an empty curve."""
    pts = [(e - now, v) for e, v in zip(expiries, vols) if e > now]
    if not pts:
        if not vols:
            raise ValueError("empty vol curve")
        return vols[-1]
    tau = target - now
    if tau <= pts[0][0]:
        return pts[0][1]
    if tau >= pts[-1][0]:
        return pts[-1][1]
    for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
        if tau <= t1:
            num = v0 * v0 * t0 * (t1 - tau) + v1 * v1 * t1 * (tau - t0)
            den = (t1 - t0) * tau
            # floor(2·sqrt(num/den)) exactly, then (that + 1) // 2 = round half up
            return (isqrt(4 * num // den) + 1) // 2
    raise AssertionError("unreachable")


class FixedBlack76(NamedTuple):
    """Black-76 in fixed point (each field x fixedpoint.ONE): `price` base units per contract,
    `delta` per contract, `pdf_d1` = φ(d1), `sd` = σ·sqrt(τ), `sqrt_tau` = sqrt(τ) (τ years).
    At expiry or zero vol: intrinsic price, step delta, the other fields 0."""

    price: int
    delta: int
    pdf_d1: int
    sd: int
    sqrt_tau: int


def black76_fixed(spot: int, strike: int, tau: int, vol_ppm: int, is_call: bool) -> FixedBlack76:
    """Black-76 (forward = spot, zero rate) of integer `spot`, `strike` (base units, > 0),
    `tau` (seconds to expiry) and `vol_ppm` (vol x 10^6). Roundings, all floors:
    σ²τ and σ·sqrt(τ) from the exact rationals, ln(spot/strike) (fixedpoint.ln_ratio), d1;
    d2 = d1 − σ·sqrt(τ); Φ(d1), Φ(d2), φ(d1) (fixedpoint.cdf_pdf, ≤ 3·2^-96 each).
    Price error: |P − P*| ≤ max(1e-6·P*, (spot + strike)·2^-90) base units (test_pricing.py;
    measured ≤ 3e-16 relative wherever P* ≥ 1 base unit). The out-of-the-money side is
    max(0, ·) of its formula and the in-the-money side follows by put-call parity, so
    call − put == (spot − strike)·ONE exactly and no price is below intrinsic."""
    if type(vol_ppm) is not int:
        raise TypeError(f"vol must be an integer (x 10^6), got {type(vol_ppm).__name__}")
    if spot <= 0 or strike <= 0:
        raise ValueError("spot and strike must be positive")
    one = fx.ONE
    intrinsic = spot - strike if is_call else strike - spot
    den = _PPM * _PPM * YEAR
    var = vol_ppm * vol_ppm * tau if tau > 0 and vol_ppm > 0 else 0   # σ²τ · 10^12 · YEAR
    sd = isqrt((var << (2 * fx.PREC)) // den)
    if sd == 0:
        step = (one if is_call else -one) if intrinsic > 0 else 0
        return FixedBlack76(max(intrinsic, 0) * one, step, 0, 0, 0)
    w = (var << fx.PREC) // den
    d1 = ((fx.ln_ratio(spot, strike) + (w >> 1)) << fx.PREC) // sd
    n1, phi1 = fx.cdf_pdf(d1)
    n2 = fx.cdf_pdf(d1 - sd)[0]
    call = spot * n1 - strike * n2          # exact given n1, n2; put = call − (spot − strike)·ONE
    if spot >= strike:
        put = max(call - (spot - strike) * one, 0)
        call = put + (spot - strike) * one
    else:
        call = max(call, 0)
        put = call + (strike - spot) * one
    sqrt_tau = isqrt((tau << (2 * fx.PREC)) // YEAR)
    return FixedBlack76(call if is_call else put, n1 if is_call else n1 - one, phi1, sd, sqrt_tau)


def _round_div(num: int, den: int) -> int:
    """num/den (den > 0) rounded to nearest, ties up."""
    return (2 * num + den) // (2 * den)


def mark(spot: int, strike: int, expiry: int, now: int, vol_ppm: int, is_call: bool) -> Mark:
    """Integer Mark of an option from integer spot/strike (base units), expiry/now (unix s) and
    vol x 10^6 (integer, as interpolated): `black76_fixed` at τ = expiry − now seconds, price
    floored/ceiled to base units, greeks rounded to nearest in the units of `Mark`."""
    g = black76_fixed(spot, strike, expiry - now, vol_ppm, is_call)
    p = fx.PREC
    lo, hi = g.price >> p, -(-g.price >> p)
    delta = (g.delta * _PPM + fx.HALF) >> p
    if g.sd == 0:
        return Mark(lo, hi, spot, vol_ppm, delta, 0, 0, 0)
    phi = g.pdf_d1
    gamma = _round_div(phi * _PPM * _PPM, spot * g.sd)
    vega = _round_div(spot * phi * g.sqrt_tau, 100 << (2 * p))
    theta = _round_div(-spot * phi * vol_ppm, 730 * _PPM * g.sqrt_tau)
    return Mark(lo, hi, spot, vol_ppm, delta, gamma, vega, theta)
