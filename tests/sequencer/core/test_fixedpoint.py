"""Fixed-point primitives against mpmath at 50 significant digits (an independent reference),
their documented error bounds in ulps (2^-96), edge inputs, and a static check that the
consensus math uses no float."""

from __future__ import annotations

import ast
import inspect
import itertools
import random
import textwrap
from pathlib import Path

import mpmath
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sequencer.core
from sequencer.core import fixedpoint as fx
from sequencer.core import pricing

mpmath.mp.dps = 50
ONE = fx.ONE
MPONE = mpmath.mpf(ONE)


def real(x: int) -> mpmath.mpf:
    """The exact real value of a fixed-point integer."""
    return mpmath.mpf(x) / MPONE


def fixed(v: float | str) -> int:
    return int(mpmath.floor(mpmath.mpf(v) * MPONE))


def ulps(got: int, exact: mpmath.mpf) -> float:
    """|got − exact·2^96| in ulps."""
    return float(abs(mpmath.mpf(got) - exact * MPONE))


@mpmath.workdps(80)  # the 192-bit constants have 58 digits
def test_constants_are_the_floors_they_claim() -> None:
    assert fx.LN2 == int(mpmath.floor(mpmath.log(2) * MPONE))
    assert fx._LN2_WIDE == int(mpmath.floor(mpmath.log(2) * mpmath.mpf(2) ** 192))
    assert fx.INV_SQRT_2PI == int(mpmath.floor(MPONE / mpmath.sqrt(2 * mpmath.pi)))
    assert fx._INV_SQRT_2PI_WIDE == int(mpmath.floor(mpmath.mpf(2) ** 192
                                                     / mpmath.sqrt(2 * mpmath.pi)))
    for j, t in enumerate(fx._EXP_TABLE):
        assert t == int(mpmath.floor(mpmath.mpf(2) ** (mpmath.mpf(j) / 64) * MPONE))


@given(st.integers(0, 2**200))
def test_sqrt_is_the_exact_floor(x: int) -> None:
    r = fx.sqrt(x)
    assert r * r <= x * ONE < (r + 1) ** 2


@given(st.integers(-2**150, 2**150), st.integers(-2**150, 2**150).filter(bool))
def test_mul_div_floor(a: int, b: int) -> None:
    assert fx.mul(a, b) == (a * b) // ONE
    assert fx.div(a, b) == (a * ONE) // b


def test_sqrt_rejects_negative() -> None:
    with pytest.raises(ValueError):
        fx.sqrt(-1)


LN_EDGES = [(1, 1), (2, 1), (1, 2), (3, 2), (2, 3), (2**64, 1), (1, 2**64), (10**40, 7),
            (7, 10**40), (10**12 + 1, 10**12), (10**12, 10**12 + 1), (99, 70), (70, 99),
            (141421356, 100000000), (141421357, 100000000), (70710678, 100000000),
            (70710679, 100000000)]


def test_ln_ratio_against_mpmath() -> None:
    """≤ 8 ulps (documented bound) from 2^-133 to 2^133, including the reduction boundaries
    (sqrt2, 1/sqrt2, 1)."""
    rng = random.Random(11)
    cases = LN_EDGES + [(rng.randrange(1, 10**rng.randint(1, 40)),
                         rng.randrange(1, 10**rng.randint(1, 40))) for _ in range(3000)]
    cases += [(d + rng.randrange(-1000, 1000), d) for d in
              (rng.randrange(10**6, 10**15) for _ in range(1000))]
    worst = max(ulps(fx.ln_ratio(n, d), mpmath.log(mpmath.mpf(n) / d)) for n, d in cases)
    assert worst <= 8
    assert fx.ln_ratio(5, 5) == 0 and fx.ln(ONE) == 0
    for x in (ONE // 3, ONE * 7, 1, 2**200):
        assert ulps(fx.ln(x), mpmath.log(real(x))) <= 8
    for bad in ((0, 1), (1, 0), (-1, 1)):
        with pytest.raises(ValueError):
            fx.ln_ratio(*bad)


def test_exp_against_mpmath() -> None:
    """Relative error ≤ 2^-92 before the final floor: |got − e^x·2^96| ≤ 1 + e^x·2^4."""
    rng = random.Random(12)
    xs = [fixed(rng.uniform(-75, 70)) for _ in range(4000)]
    xs += [fixed(i / 16) for i in range(-1100, 1100)]
    xs += [0, 1, -1, fx.LN2, -fx.LN2, fx.LN2 // 128, fx._EXP_MIN, fx._EXP_MIN - 1,
           fx._EXP_MIN + 1, 64 * fx.LN2, -96 * fx.LN2]
    for x in xs:
        ref = mpmath.exp(real(x)) * MPONE
        got = fx.exp(x)
        assert abs(got - ref) <= 1 + ref * 16, x
    assert fx.exp(0) == ONE
    assert fx.exp(-10**40) == 0 and fx.exp(fx._EXP_MIN - 1) == 0


def test_pdf_and_cdf_against_mpmath() -> None:
    """pdf ≤ 3 ulps, cdf ≤ 3 ulps (absolute) on a fine grid over ±12, at the branch switch
    (4.25) and the zero cut (11.3) ± 1 ulp, and at random points."""
    rng = random.Random(13)
    xs = [fixed(i / 256) for i in range(-12 * 256, 12 * 256 + 1)]
    xs += [fixed(rng.uniform(-13, 13)) for _ in range(3000)]
    for edge in (fx._TAIL_SERIES_MAX, fx._TAIL_ZERO):
        xs += [edge - 1, edge, edge + 1, -edge + 1, -edge, -edge - 1]
    xs += [0, 1, -1, 10**40, -10**40]
    worst_cdf = worst_pdf = 0.0
    for x in xs:
        r = real(x)
        worst_cdf = max(worst_cdf, ulps(fx.cdf(x), mpmath.ncdf(r)))
        worst_pdf = max(worst_pdf, ulps(fx.pdf(x), mpmath.npdf(r)))
    assert worst_cdf <= 3 and worst_pdf <= 3


def test_cdf_symmetry_edges_and_monotonicity() -> None:
    assert fx.cdf(0) == fx.HALF
    assert fx.cdf(10**40) == ONE and fx.cdf(-10**40) == 0
    rng = random.Random(14)
    for x in [fixed(rng.uniform(-15, 15)) for _ in range(2000)] + [1, fx._TAIL_SERIES_MAX]:
        assert fx.cdf(x) + fx.cdf(-x) == ONE
        c, p = fx.cdf_pdf(x)
        assert c == fx.cdf(x) and p == fx.pdf(x)
    # non-decreasing where the true steps (≥ φ(8)/64 ≈ 8e-17) dwarf the error bound
    grid = [fx.cdf(fixed(i / 64)) for i in range(-8 * 64, 8 * 64 + 1)]
    assert all(a < b for a, b in itertools.pairwise(grid))


# --- no float in consensus code --------------------------------------------------------------

CORE = Path(sequencer.core.__file__).parent
# engine.py (the matching engine: proposes fills, `apply` decides) is left to its own tests.
FLOAT_FREE_MODULES = sorted(p.name for p in CORE.glob("*.py")
                            if p.name not in ("pricing.py", "engine.py", "__init__.py"))
CONSENSUS_PRICING = (pricing.interpolate_vol, pricing.black76_fixed, pricing._round_div,
                     pricing.mark)


def float_uses(tree: ast.AST) -> list[str]:
    """Float literals, `float`, true division `/`, and math.* other than isqrt in a syntax tree."""
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (float, complex)):
            bad.append(f"float literal {node.value!r} at line {node.lineno}")
        elif isinstance(node, ast.Name) and node.id == "float":
            bad.append(f"float at line {node.lineno}")
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            bad.append(f"true division at line {node.lineno}")
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "math" and node.attr != "isqrt"):
            bad.append(f"math.{node.attr} at line {node.lineno}")
        elif isinstance(node, ast.ImportFrom) and node.module == "math":
            bad += [f"from math import {a.name}" for a in node.names if a.name != "isqrt"]
    return bad


@pytest.mark.parametrize("name", FLOAT_FREE_MODULES)
def test_core_module_uses_no_float(name: str) -> None:
    assert float_uses(ast.parse((CORE / name).read_text())) == []


@pytest.mark.parametrize("fn", CONSENSUS_PRICING, ids=lambda f: f.__name__)
def test_consensus_pricing_uses_no_float(fn: object) -> None:
    src = textwrap.dedent(inspect.getsource(fn))  # type: ignore[arg-type]
    assert float_uses(ast.parse(src)) == []
    code = fn.__code__  # type: ignore[attr-defined]
    assert "black76" not in code.co_names and "norm_cdf" not in code.co_names


def test_the_float_check_catches_floats() -> None:
    src = "import math\nfrom math import exp\nx = 1.5\ny = float(2)\nz = a / b\nw = math.log(3)\n"
    assert len(float_uses(ast.parse(src))) == 5
