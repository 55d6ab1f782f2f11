"""Black-76 marks and greeks.

The consensus marks (`black76_fixed`, `mark`, `interpolate_vol`; integer inputs, 2^96 fixed
point) are checked against mpmath at 50 digits evaluated at the exact rational inputs
(τ = seconds/YEAR, σ = vol/10^6), against committed golden vectors (bit-exact), and for
put-call parity, bounds and monotonicity. The float `black76` (display only) is checked against
a textbook formula and numerical integration.

Accuracy criterion of the fixed-point price P (base units per contract, before rounding), with
P* the exact price, S spot and K strike in base units:
    |P − P*| ≤ max(1e-6 · P*, (S + K) · 2^-90).
The absolute term is the resolution of Φ at the 2^-96 scale (≤ 3 ulps each, x (S + K)) with
margin; it is below 1e-15 base units for S + K < 10^12 (a million USDC), so it is the bound
only for prices far below one base unit: the relative bound holds wherever the integer mark
can be non-zero. The integer mark then brackets P*: mark_lo ≤ P* + ε and mark_hi ≥ P* − ε with
ε = the same absolute bound. Greeks (integers in the units of `Mark`) are the reference
rounded to nearest: |g − g*| ≤ 0.5 + 1e-9·max(1, |g*|).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer.core import black76, interpolate_vol, mark
from sequencer.core import fixedpoint as fx
from sequencer.core.pricing import YEAR, Mark, black76_fixed
from sequencer.core.rules import RULES

mpmath.mp.dps = 50
U = 10**6
GOLDEN = Path(__file__).parent / "data" / "marks_golden.json"


# --- the float display model -----------------------------------------------------------------

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


FLOAT_POINTS = [(f, k, t, v, c)
                for f in (100.0, 3000.0, 60000.0)
                for k in (0.3, 1.0, 3.0)
                for t in (1 / 365 / 24, 0.25, 2.0)
                for v in (0.05, 0.8, 3.0)
                for c in (True, False)]


@pytest.mark.parametrize("f,k,t,v,c", FLOAT_POINTS)
def test_float_display_model_matches_reference(f: float, k: float, t: float, v: float,
                                               c: bool) -> None:
    k = f * k
    g = black76(f, k, t, v, c)
    assert g.price == pytest.approx(ref_price(f, k, t, v, c), abs=1e-9 * f)
    sd = v * math.sqrt(t)
    hf = f * sd * 1e-3
    delta = (ref_price(f + hf, k, t, v, c) - ref_price(f - hf, k, t, v, c)) / (2 * hf)
    assert g.delta == pytest.approx(delta, rel=1e-5, abs=1e-6 + 1e-12 * f / hf)


@pytest.mark.parametrize("k,t,v,c", [(0.8, 0.25, 0.8, True), (1.2, 0.25, 0.8, False),
                                     (3.0, 1.0, 0.5, True), (0.3, 2.0, 0.4, False)])
def test_float_display_model_matches_numerical_integration(k: float, t: float, v: float,
                                                           c: bool) -> None:
    f = 3000.0
    assert black76(f, f * k, t, v, c).price == pytest.approx(
        integrated_price(f, f * k, t, v, c), abs=1e-6 * f)


# --- the integer consensus marks against mpmath ------------------------------------------------

def exact(spot: int, strike: int, tau: int, vol: int, call: bool) -> dict[str, mpmath.mpf]:
    """Black-76 at the exact rational inputs: price (base units) and greeks in Mark units."""
    s, k = mpmath.mpf(spot), mpmath.mpf(strike)
    t = mpmath.mpf(tau) / YEAR
    sigma = mpmath.mpf(vol) / U
    sd = sigma * mpmath.sqrt(t)
    d1 = (mpmath.log(s / k) + sd * sd / 2) / sd
    d2 = d1 - sd
    phi = mpmath.npdf(d1)
    if call:
        price, delta = s * mpmath.ncdf(d1) - k * mpmath.ncdf(d2), mpmath.ncdf(d1)
    else:
        price, delta = k * mpmath.ncdf(-d2) - s * mpmath.ncdf(-d1), mpmath.ncdf(d1) - 1
    return {"price": price, "delta": delta * U, "gamma": phi * U * U / (s * sd),
            "vega": s * phi * mpmath.sqrt(t) / 100,
            "theta": -s * phi * sigma / (2 * mpmath.sqrt(t)) / 365}


SPOTS = (1_500_000, 3000 * U, 60_000 * U, 10**14)
MONEYNESS = (0.2, 0.3, 0.5, 0.7, 0.9, 0.97, 1.0, 1.03, 1.1, 1.3, 1.6, 2.0, 3.0, 5.0)
TAUS = (60, 3600, 86_400, 7 * 86_400, 30 * 86_400, 91 * 86_400, YEAR)
VOLS = (50_000, 100_000, 300_000, 800_000, 1_500_000, 3_000_000)
GRID = [(spot, int(spot * m), tau, vol, call) for spot in SPOTS for m in MONEYNESS
        for tau in TAUS for vol in VOLS for call in (True, False)]


def abs_bound(spot: int, strike: int) -> mpmath.mpf:
    return (spot + strike) * mpmath.mpf(2) ** -90


@pytest.mark.parametrize("spot", SPOTS)
def test_fixed_price_and_greeks_against_mpmath(spot: int) -> None:
    """Strike/spot 0.2..5, 1 minute..1 year, vol 5%..300%, calls and puts (1176 per spot)."""
    worst_rel = mpmath.mpf(0)
    for s, strike, tau, vol, call in (g for g in GRID if g[0] == spot):
        ref = exact(s, strike, tau, vol, call)
        fixed = black76_fixed(s, strike, tau, vol, call)
        err = abs(mpmath.mpf(fixed.price) / fx.ONE - ref["price"])
        eps = abs_bound(s, strike)
        assert err <= max(mpmath.mpf("1e-6") * ref["price"], eps), (s, strike, tau, vol, call)
        if ref["price"] >= 1e-3:
            worst_rel = max(worst_rel, err / ref["price"])
        m = mark(s, strike, tau, 0, vol, call)
        assert m.mark_lo <= ref["price"] + eps and m.mark_hi >= ref["price"] - eps
        assert m.mark_hi - m.mark_lo <= 1 and m.spot == s and m.iv == vol
        for name in ("delta", "gamma", "vega", "theta"):
            g, want = getattr(m, name), ref[name]
            assert abs(g - want) <= 0.5 + 1e-9 * max(1, abs(want)), (name, s, strike, tau, vol)
        assert abs(mpmath.mpf(fixed.delta) / fx.ONE - ref["delta"] / U) <= 1e-24
    assert worst_rel < 1e-12  # far inside 1e-6 wherever the price is ≥ 0.001 base unit


def test_expired_and_zero_vol_are_intrinsic() -> None:
    for tau, vol in ((0, 800_000), (-3600, 800_000), (YEAR, 0)):
        assert mark(3100 * U, 3000 * U, tau, 0, vol, True) == Mark(
            100 * U, 100 * U, 3100 * U, vol, U, 0, 0, 0)
        assert mark(3100 * U, 3000 * U, tau, 0, vol, False) == Mark(0, 0, 3100 * U, vol, 0, 0, 0, 0)
        assert mark(2900 * U, 3000 * U, tau, 0, vol, False)[:2] == (100 * U, 100 * U)
        assert mark(2900 * U, 3000 * U, tau, 0, vol, False).delta == -U
        assert mark(3000 * U, 3000 * U, tau, 0, vol, True).delta == 0


def test_mark_units_against_the_float_display_model() -> None:
    m = mark(3000 * U, 3100 * U, YEAR // 4, 0, 800_000, True)
    g = black76(3000.0, 3100.0, 0.25, 0.8, True)
    assert m.mark_lo <= g.price * U <= m.mark_hi and m.mark_hi - m.mark_lo == 1
    assert m.iv == 800_000
    assert m.delta == round(g.delta * U) and m.gamma == round(g.gamma * U)
    assert m.vega == round(g.vega * U / 100) and m.theta == round(g.theta * U / 365)


def test_vol_must_be_an_integer() -> None:
    with pytest.raises(TypeError):
        mark(3000 * U, 3000 * U, YEAR, 0, 800_000.0, True)  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------------------------

def test_put_call_parity_holds_exactly_on_integers() -> None:
    for spot, strike, tau, vol, _ in GRID[::2]:
        c, p = mark(spot, strike, tau, 0, vol, True), mark(spot, strike, tau, 0, vol, False)
        assert c.mark_lo - p.mark_lo == spot - strike == c.mark_hi - p.mark_hi
        assert c.delta - p.delta == U and (c.gamma, c.vega, c.theta) == (p.gamma, p.vega, p.theta)


def test_monotone_in_spot_vol_and_time() -> None:
    """On 1%-steps the true price differences dwarf the ≤ 1e-15 base unit error, so the floor
    and ceiling of the price are monotone too."""
    strike = 3000 * U
    for tau in (3600, 30 * 86_400, YEAR):
        for vol in (50_000, 800_000, 3_000_000):
            spots = [strike * (20 + i) // 100 for i in range(0, 481, 4)]  # 0.2..5 x strike
            for call in (True, False):
                lo = [mark(s, strike, tau, 0, vol, call).mark_lo for s in spots]
                hi = [mark(s, strike, tau, 0, vol, call).mark_hi for s in spots]
                if not call:
                    lo, hi = lo[::-1], hi[::-1]
                assert lo == sorted(lo) and hi == sorted(hi)
        for spot in (1500 * U, 3000 * U, 4500 * U):
            for call in (True, False):
                by_vol = [mark(spot, strike, tau, 0, v, call).mark_lo
                          for v in range(50_000, 3_000_001, 50_000)]
                assert by_vol == sorted(by_vol)
    for spot in (1500 * U, 3000 * U, 4500 * U):
        by_tau = [mark(spot, strike, t, 0, 800_000, True).mark_lo
                  for t in range(0, YEAR, YEAR // 50)]
        assert by_tau == sorted(by_tau)


@settings(max_examples=400, deadline=None)
@given(spot=st.integers(1, 2**64 - 1), strike=st.integers(1, 2**64 - 1),
       tau=st.integers(-10**6, 3 * YEAR), vol=st.integers(0, 10**7), call=st.booleans())
def test_mark_bounds_property(spot: int, strike: int, tau: int, vol: int, call: bool) -> None:
    m = mark(spot, strike, tau, 0, vol, call)
    other = mark(spot, strike, tau, 0, vol, not call)
    assert m.mark_lo <= m.mark_hi <= m.mark_lo + 1
    intrinsic = max(spot - strike, 0) if call else max(strike - spot, 0)
    assert intrinsic <= m.mark_lo and m.mark_hi <= (spot if call else strike)
    sign = 1 if call else -1
    assert sign * (m.mark_lo - other.mark_lo) == spot - strike
    assert 0 <= sign * m.delta <= U and m.gamma >= 0 and m.vega >= 0 and m.theta <= 0


# --- vol interpolation ------------------------------------------------------------------------

def test_total_variance_interpolation() -> None:
    now = 0
    e = (30 * 86400, 90 * 86400)
    v = (500_000, 700_000)
    assert interpolate_vol(e, v, 10 * 86400, now) == 500_000  # flat before
    assert interpolate_vol(e, v, 200 * 86400, now) == 700_000  # flat after
    mid = interpolate_vol(e, v, 60 * 86400, now)
    w = (mpmath.mpf("0.25") * 30 + mpmath.mpf("0.49") * 90) / 2  # linear in σ²τ (τ in days)
    assert mid == int(mpmath.floor(mpmath.sqrt(w / 60) * U + mpmath.mpf("0.5")))
    assert type(mid) is int
    assert interpolate_vol(e, v, 60 * 86400, 40 * 86400) == 700_000  # past points ignored
    assert interpolate_vol(e, v, 60 * 86400, 100 * 86400) == 700_000  # all past: the last
    with pytest.raises(ValueError):
        interpolate_vol((), (), 1, 0)


@settings(max_examples=300, deadline=None)
@given(t0=st.integers(1, YEAR), dt=st.integers(1, YEAR), frac=st.integers(0, 10**6),
       v0=st.integers(1, 10**7), v1=st.integers(1, 10**7))
def test_interpolated_vol_is_the_rounded_exact_value(t0: int, dt: int, frac: int, v0: int,
                                                     v1: int) -> None:
    t1 = t0 + dt
    tau = t0 + dt * frac // 10**6
    got = interpolate_vol((t0, t1), (v0, v1), tau, 0)
    w = (mpmath.mpf(v0) ** 2 * t0 * (t1 - tau) + mpmath.mpf(v1) ** 2 * t1 * (tau - t0)) / (dt * tau)
    want = mpmath.sqrt(w)
    assert abs(got - want) <= mpmath.mpf("0.5") + mpmath.mpf("1e-30")
    assert min(v0, v1) <= got <= max(v0, v1)


# --- golden vectors: bit-exact across platforms and the cext/pure passes ----------------------

def test_golden_marks_reproduce_exactly() -> None:
    doc = json.loads(GOLDEN.read_text())
    rules = RULES[doc["rulesVersion"]]
    rows = doc["rows"]
    assert len(rows) >= 300
    bad = []
    for i, r in enumerate(rows):
        expiry, now = int(r["expiry"]), int(r["now"])
        vol = rules.interpolate_vol([int(x) for x in r["expiries"]], [int(x) for x in r["vols"]],
                                    expiry, now)
        m = rules.mark(int(r["spot"]), int(r["strike"]), expiry, now, vol, r["isCall"])
        if vol != int(r["vol"]) or list(m) != [int(x) for x in r["mark"]]:
            bad.append((i, r, vol, m))
    assert not bad, f"{len(bad)} golden rows differ; first: {bad[0]}"
