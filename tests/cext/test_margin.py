"""margin_sums against a reference written with exact fractions and math.floor, in both twins:
int64 edges, values and sums beyond int64 (the C path hands those to the pure twin), the heap
path over 64 positions, and the errors."""

from __future__ import annotations

import math
from fractions import Fraction
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cext
from sequencer.core.margin import RiskRow, positions_margin
from tests.cext.conftest import TWINS

I64 = 2**63
UNIT = 10**6


def reference(collateral: int, amounts: list[int], rows: list[tuple[int, int, int, int]],
              unit: int) -> tuple[int, int, int]:
    """The design's sums with every division an exact fraction floored (against the holder)."""
    e = Fraction(collateral)
    im = mm = 0
    for q, (lo, hi, r_im, r_mm) in zip(amounts, rows):
        if q >= 0:
            e += math.floor(Fraction(q * lo, unit))
        else:
            e += math.floor(Fraction(q * hi, unit))
            im += -math.floor(Fraction(q * r_im, unit))
            mm += -math.floor(Fraction(q * r_mm, unit))
    return int(e), im, mm


EDGES = [0, 1, -1, 999_999, -999_999, 10**6, -(10**6), I64 - 1, -I64, I64, -I64 - 1, 2**127, -(2**200)]
small = st.integers(-(10**15), 10**15)
edgy = st.one_of(small, st.sampled_from(EDGES), st.integers(-(2**70), 2**70))
row = st.tuples(edgy, edgy, edgy, edgy)


@pytest.mark.parametrize("twin", TWINS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
@given(data=st.data())
@settings(max_examples=200, deadline=None)
def test_sums_match_the_reference(twin: ModuleType, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 80))  # over 64: the accelerated twin's heap buffer
    amounts = data.draw(st.lists(edgy, min_size=n, max_size=n))
    rows = data.draw(st.lists(row, min_size=n, max_size=n))
    collateral = data.draw(edgy)
    unit = data.draw(st.one_of(st.just(UNIT), st.integers(1, 10**12), st.sampled_from([1, I64 - 1, I64, 2**80])))
    assert twin.margin_sums(collateral, amounts, rows, unit) == reference(collateral, amounts, rows, unit)


@pytest.mark.parametrize("q", [1, -1, 999_999, -999_999, 1_000_001, -1_000_001])
def test_rounding_goes_against_the_holder(twin: ModuleType, q: int) -> None:
    """A long's value rounds down, a short's value rounds down (more negative), margins up."""
    e, im, mm = twin.margin_sums(0, [q], [(3, 7, 5, 2)], UNIT)
    assert e == math.floor(Fraction(q * (3 if q >= 0 else 7), UNIT))
    assert (im, mm) == ((0, 0) if q >= 0 else (math.ceil(Fraction(-q * 5, UNIT)), math.ceil(Fraction(-q * 2, UNIT))))


def test_sums_beyond_int64_are_exact(twin: ModuleType) -> None:
    """Each term fits int64 but their sum does not (the C path's running check), and the other
    way round: a huge collateral brought back by a loss."""
    big = I64 - 1
    assert twin.margin_sums(big, [UNIT], [(1, 1, 0, 0)], UNIT) == (big + 1, 0, 0)
    assert twin.margin_sums(0, [-UNIT] * 3, [(0, big, big, big)] * 3, UNIT) == (-3 * big, 3 * big, 3 * big)
    assert twin.margin_sums(2**100, [-(10**12)], [(0, 10**12, 0, 0)], UNIT) == (2**100 - 10**18, 0, 0)


def test_bad_inputs_fail_alike(twin: ModuleType) -> None:
    with pytest.raises(ValueError, match="2 amounts but 1 rows"):
        twin.margin_sums(0, [1, 2], [(1, 1, 1, 1)], UNIT)
    # money is integers: a float anywhere is refused, not rounded
    for args in ((0, [1.5], [(1, 1, 1, 1)], UNIT), (0, [-1], [(1, 1, 2.0, 1)], UNIT),
                 (0.5, [1], [(1, 1, 1, 1)], UNIT), (0, [-1], [(1, 1, "1", 1)], UNIT)):
        with pytest.raises(TypeError, match="must be an int"):
            twin.margin_sums(*args)
    with pytest.raises(ZeroDivisionError):
        twin.margin_sums(0, [1], [(1, 1, 1, 1)], 0)
    # rows given as lists and other sequences are read like tuples
    assert twin.margin_sums(5, (q for q in [-UNIT]), [[1, 2, 3, 4]], UNIT) == (3, 3, 4)


def test_positions_margin_is_the_sums_on_risk_rows() -> None:
    rows = [RiskRow(10, 12, 7, 5), RiskRow(20, 22, 9, 4)]
    m = positions_margin(100, zip([5_000_000, -3_000_001], rows))
    assert (m.equity, m.im, m.mm) == reference(100, [5_000_000, -3_000_001], rows, UNIT) == (83, 28, 13)
    assert cext.margin_sums(100, [5_000_000, -3_000_001], rows, UNIT) == (83, 28, 13)
