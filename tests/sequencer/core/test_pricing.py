"""Black-76 marks and greeks against an independent reference; vol interpolation."""

from __future__ import annotations

import math

import pytest

from sequencer.core import black76, interpolate_vol, mark, to_units
from sequencer.core.pricing import YEAR


def ref_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def ref_price(f: float, k: float, t: float, v: float, call: bool) -> float:
    """Textbook Black-Scholes with r = q = 0 (equal to Black-76 with F = S)."""
    d1 = (math.log(f / k) + v * v * t / 2) / (v * math.sqrt(t))
    d2 = d1 - v * math.sqrt(t)
    c = f * ref_cdf(d1) - k * ref_cdf(d2)
    return c if call else c - f + k  # put-call parity


def integrated_price(f: float, k: float, t: float, v: float, call: bool, n: int = 4000) -> float:
    """E[payoff] under the lognormal by Simpson's rule over z in [-10, 10]: no closed form."""
    a, b = -10.0, 10.0
    h = (b - a) / n
    acc = 0.0
    for i in range(n + 1):
        z = a + i * h
        s = f * math.exp(-0.5 * v * v * t + v * math.sqrt(t) * z)
        pay = max(s - k, 0.0) if call else max(k - s, 0.0)
        w = 1 if i in (0, n) else (4 if i % 2 else 2)
        acc += w * pay * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return acc * h / 3


POINTS = [(f, k, t, v, c)
          for f in (100.0, 3000.0, 60000.0)
          for k in (0.3, 0.8, 1.0, 1.25, 3.0)
          for t in (1 / 365 / 24, 7 / 365, 0.25, 2.0)
          for v in (0.05, 0.8, 3.0)
          for c in (True, False)]


@pytest.mark.parametrize("f,k,t,v,c", POINTS)
def test_price_and_greeks_match_reference(f: float, k: float, t: float, v: float, c: bool) -> None:
    k = f * k
    g = black76(f, k, t, v, c)
    tol = 1e-9 * f
    assert g.price == pytest.approx(ref_price(f, k, t, v, c), abs=tol)
    sd = v * math.sqrt(t)
    hf, hv, ht = f * sd * 1e-3, v * 1e-4, t * 1e-4
    delta = (ref_price(f + hf, k, t, v, c) - ref_price(f - hf, k, t, v, c)) / (2 * hf)
    gamma = (ref_price(f + hf, k, t, v, c) - 2 * ref_price(f, k, t, v, c)
             + ref_price(f - hf, k, t, v, c)) / hf**2
    vega = (ref_price(f, k, t, v + hv, c) - ref_price(f, k, t, v - hv, c)) / (2 * hv)
    theta = -(ref_price(f, k, t + ht, v, c) - ref_price(f, k, t - ht, v, c)) / (2 * ht)
    noise = 1e-12 * f  # float noise of a price, amplified by finite differences below
    assert g.delta == pytest.approx(delta, rel=1e-5, abs=1e-6 + noise / hf)
    assert g.gamma == pytest.approx(gamma, rel=1e-4, abs=noise / hf**2)
    assert g.vega == pytest.approx(vega, rel=1e-5, abs=noise / hv)
    assert g.theta == pytest.approx(theta, rel=1e-4, abs=noise / ht)


@pytest.mark.parametrize("k,t,v,c", [(0.8, 0.25, 0.8, True), (1.2, 0.25, 0.8, False),
                                     (1.0, 7 / 365, 1.5, True), (3.0, 1.0, 0.5, True),
                                     (0.3, 2.0, 0.4, False)])
def test_price_matches_numerical_integration(k: float, t: float, v: float, c: bool) -> None:
    f = 3000.0
    assert black76(f, f * k, t, v, c).price == pytest.approx(
        integrated_price(f, f * k, t, v, c), abs=1e-6 * f)


def test_expired_and_zero_vol_are_intrinsic() -> None:
    assert black76(3100.0, 3000.0, 0.0, 0.8, True).price == 100.0
    assert black76(3100.0, 3000.0, -1.0, 0.8, False).price == 0.0
    assert black76(2900.0, 3000.0, 0.5, 0.0, False)[:2] == (100.0, -1.0)


def test_total_variance_interpolation() -> None:
    now = 0
    e = (30 * 86400, 90 * 86400)
    v = (500_000.0, 700_000.0)
    assert interpolate_vol(e, v, 10 * 86400, now) == 500_000.0  # flat before
    assert interpolate_vol(e, v, 200 * 86400, now) == 700_000.0  # flat after
    mid = interpolate_vol(e, v, 60 * 86400, now)
    w = (0.25 * 30 + 0.49 * 90) / 2  # linear in total variance σ²τ (τ in days here)
    assert mid == pytest.approx(math.sqrt(w / 60) * 1e6)
    assert interpolate_vol(e, v, 60 * 86400, 40 * 86400) == 700_000.0  # past points ignored


def test_mark_rounding_brackets_the_float_price() -> None:
    m = mark(3000 * 10**6, 3000 * 10**6, YEAR // 4, 0, 800_000.0, True)
    exact = black76(3000.0, 3000.0, 0.25, 0.8, True).price * 1e6
    assert m.mark_lo <= exact <= m.mark_hi and m.mark_hi - m.mark_lo <= 1
    assert m.iv == 800_000 and 0 < m.delta < 10**6 and m.vega > 0 and m.theta < 0
    assert to_units(1.5, "up") == 2 and to_units(1.5, "down") == 1 and to_units(2.5, "nearest") == 2
