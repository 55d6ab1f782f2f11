"""Binary fixed-point math in pure integers: the same bits on every platform.

A fixed-point number is a Python int `x` standing for the real `x / ONE`, `ONE = 2^96`
(96 fractional bits; one unit in the last place, ulp, is 2^-96 ≈ 1.3e-29). Python ints are
unbounded, so there is no overflow; the only source of error is rounding, and every rounding
here is explicit: `>>` and `//` floor (toward -inf). No float and no `math` function other than
`math.isqrt` is used, so results depend on nothing but the integer inputs.

Error bounds (absolute, in ulps of 2^-96; asserted against mpmath at 50 digits by
tests/sequencer/core/test_fixedpoint.py, measured maxima in brackets):
- `mul`, `div`, `from_ratio`, `sqrt`: the exact floor.
- `ln`, `ln_ratio`: ≤ 8 ulps for ratios from 10^-40 to 10^40 [4].
- `exp`: relative error ≤ 2^-92 before the final floor: |exp(x) − e^x·2^96| ≤ 1 + 2^-92·e^x·2^96
  [2^-94.5 relative].
- `pdf`: ≤ 3 ulps [1.7]. `cdf`: ≤ 3 ulps [2.1] everywhere, `cdf(x) + cdf(-x) == ONE`
  exactly, `cdf(0) == HALF`.
"""

from __future__ import annotations

from math import isqrt

PREC = 96
"""Fractional bits."""
ONE = 1 << PREC
"""1.0 in fixed point."""
HALF = ONE >> 1

LN2 = 54916777467707473351141471128
"""floor(ln 2 · 2^96)."""
_LN2_WIDE = 4350955369971217654477563090224794165364344896676135745069
"""floor(ln 2 · 2^192): range reduction in `exp` uses the extra bits."""
INV_SQRT_2PI = 31607463825455920808620519744
"""floor(2^96 / sqrt(2π))."""
_INV_SQRT_2PI_WIDE = 2504201280626952864894549311249338563268063356138482501336
"""floor(2^192 / sqrt(2π))."""

_EXP_TABLE_BITS = 6
_EXP_TABLE = tuple(isqrt(isqrt(isqrt(isqrt(isqrt(isqrt(1 << (j + PREC * 64)))))))
                   for j in range(1 << _EXP_TABLE_BITS))
"""floor(2^(j/64) · 2^96), exactly: six nested floor square roots of 2^j · 2^(96·64)
(floor(sqrt(floor(y))) == floor(sqrt(y)), so nesting loses nothing)."""
_EXP_TABLE_MASK = (1 << _EXP_TABLE_BITS) - 1
_EXP_TERMS = 10
"""Taylor terms of e^r for |r| ≤ ln2/128 (degree 10): the next is below 2^-108."""
_EXP_MIN = -(PREC + 2) * LN2
"""Below this e^x < 2^-98: `exp` answers 0."""

_LN_TERMS = 19
"""Terms of 2·atanh(z) = ln((1+z)/(1-z)) for |z| ≤ 3 - 2·sqrt(2) ≈ 0.1716: the next is below
2^-103."""
_LN_COEF = tuple(ONE // (2 * k + 1) for k in range(_LN_TERMS))

_GUARD = 24
"""Extra bits of `pdf` and of the power-series branch of `_upper_tail` (there 1/2 − φ·S
loses log2(S) ≤ 14 bits to cancellation, S = Σ a^(2k+1)/(2k+1)!! ≤ 1.1e4)."""
_TAIL_SERIES_MAX = 4 * ONE + ONE // 4
"""`_upper_tail` uses the power series below this argument (4.25), the continued fraction above."""
_TAIL_ZERO = 11 * ONE + ONE * 3 // 10
"""Q(x) ≤ Q(11.3) ≈ 0.52·2^-96 from here on: `_upper_tail` answers 0."""
_CF_DEPTH_NUM = 1250
"""Continued-fraction depth at x is 1250/x² + 4 (≈ 73 at 4.25, 14 at 11.3): from the observed
≈ 1150/x² needed for < 1 ulp, plus margin; the cdf bound above is tested across the range."""


def mul(a: int, b: int) -> int:
    """a·b, floor."""
    return (a * b) >> PREC


def div(a: int, b: int) -> int:
    """a/b for b ≠ 0, floor."""
    return (a << PREC) // b


def from_ratio(n: int, d: int) -> int:
    """The fixed-point value of the rational n/d (d > 0), floor."""
    return (n << PREC) // d


def sqrt(x: int) -> int:
    """Square root of x ≥ 0, floor (exact: math.isqrt of x·2^96)."""
    if x < 0:
        raise ValueError("sqrt of a negative number")
    return isqrt(x << PREC)


def ln_ratio(n: int, d: int) -> int:
    """Natural log of the rational n/d (both positive integers). The ratio is split exactly as
    m·2^e with m in [1/sqrt2, sqrt2), then ln m = 2·atanh((m-1)/(m+1)) by its power series."""
    if n <= 0 or d <= 0:
        raise ValueError("ln of a non-positive number")
    e = n.bit_length() - d.bit_length()
    if e >= 0:
        num, den = n, d << e
    else:
        num, den = n << -e, d
    # num/den in (1/2, 2): move it into [1/sqrt2, sqrt2) by comparing squares (exact)
    if num * num >= 2 * den * den:
        den <<= 1
        e += 1
    elif 2 * num * num < den * den:
        num <<= 1
        e -= 1
    z = ((num - den) << PREC) // (num + den)
    z2 = (z * z) >> PREC
    coef = _LN_COEF
    p = coef[-1]
    for k in range(_LN_TERMS - 2, -1, -1):
        p = coef[k] + ((p * z2) >> PREC)
    return ((e * _LN2_WIDE) >> PREC) + ((z * p) >> (PREC - 1))


def ln(x: int) -> int:
    """Natural log of x > 0."""
    return ln_ratio(x, ONE)


def _exp_bits(x: int, bits: int) -> int:
    """floor(e^(x/ONE) · 2^bits) for bits ≤ 2·PREC: x = (64k + j)·ln2/64 + r with
    |r| ≤ ln2/128 (reduced with a 192-bit ln 2), e^x = 2^k · 2^(j/64) · e^r, an exact table
    entry times a degree-10 Taylor polynomial in Horner form."""
    if x < _EXP_MIN - ((bits - PREC) * LN2):
        return 0
    wide = x << PREC
    n = ((wide << _EXP_TABLE_BITS) + (_LN2_WIDE >> 1)) // _LN2_WIDE
    r = (wide - ((n * _LN2_WIDE) >> _EXP_TABLE_BITS)) >> PREC
    p = ONE
    for k in range(_EXP_TERMS, 0, -1):
        p = ONE + ((p * r) >> PREC) // k
    v = _EXP_TABLE[n & _EXP_TABLE_MASK] * p   # scale 2^(2·PREC)
    shift = 2 * PREC - bits - (n >> _EXP_TABLE_BITS)
    return v >> shift if shift >= 0 else v << -shift


def exp(x: int) -> int:
    """e^x, floor of a result with relative error ≤ 2^-92."""
    return _exp_bits(x, PREC)


def _pdf_bits(x: int, bits: int) -> int:
    """floor(φ(x) · 2^bits) for bits ≤ 2·PREC (up to a few units of 2^-bits)."""
    return (_exp_bits(-((x * x) >> (PREC + 1)), bits) * _INV_SQRT_2PI_WIDE) >> (2 * PREC)


def pdf(x: int) -> int:
    """Standard normal density φ(x) = e^(-x²/2)/sqrt(2π), computed with 24 guard bits."""
    return _pdf_bits(x, PREC + _GUARD) >> _GUARD


def _upper_tail(a: int) -> tuple[int, int]:
    """(Q(a), φ(a)) for a ≥ 0, Q = 1 - Φ the upper tail.
    Below 4.25: Q = 1/2 - φ(a)·Σ a^(2k+1)/(2k+1)!! (all terms positive, summed to the last
    non-zero one), with 24 guard bits since the sum reaches 10^4 where φ is small.
    From 4.25: Q = φ(a)/(a + 1/(a + 2/(a + 3/(a + ...)))) (Laplace's continued fraction)
    evaluated bottom-up from depth 1250/a² + 4. From 11.3 on: 0."""
    if a >= _TAIL_ZERO:
        return 0, pdf(a)
    if a < _TAIL_SERIES_MAX:
        b = PREC + _GUARD
        aw = a << _GUARD
        a2 = (aw * aw) >> b
        t = s = aw
        k = 3
        while t:
            t = ((t * a2) >> b) // k
            s += t
            k += 2
        phi = _pdf_bits(a, b)
        return (HALF - ((phi * s) >> (b + _GUARD))), phi >> _GUARD
    phi = pdf(a)
    depth = _CF_DEPTH_NUM * ONE * ONE // (a * a) + 4
    c = 0
    two = PREC << 1
    for n in range(depth, 0, -1):
        c = (n << two) // (a + c)
    return (phi << PREC) // (a + c), phi


def cdf_pdf(x: int) -> tuple[int, int]:
    """(Φ(x), φ(x)) sharing one exponential. Φ(-x) is computed as the upper tail Q(x) itself,
    so small tails keep their precision and Φ(x) + Φ(-x) == ONE exactly."""
    if x >= 0:
        q, phi = _upper_tail(x)
        return ONE - q, phi
    return _upper_tail(-x)


def cdf(x: int) -> int:
    """Standard normal CDF Φ(x)."""
    return cdf_pdf(x)[0]
