"""Portfolio margin (design.md "Risk"; docs/margin.md), rules version >= PORTFOLIO_VERSION.

Per underlying, with S its spot and σ each position's interpolated vol at the block's marks,
every position is repriced by the same integer Black-76 as the marks (`pricing.black76_fixed`,
same time to expiry) in 27 scenarios: spot `floor(S·(100 + s)/100)` for
s ∈ {−16, −12, …, +16}%, vol `floor(σ·(100 + v)/100)` for v ∈ {−30, 0, +30}%; a scenario
price is floored for longs and ceiled for shorts, as the marks are. With value() rounding
against the holder (margin.py):

    loss_k = Σ value(q, mark) − Σ value(q, scenario k)         (positions in the underlying)
    L      = max(0, max_k loss_k)
    IM     = L + ceil(0.003·S·Σ|q| over shorts / 10^6)
    MM     = ceil(0.8·L) + ceil(0.002·S·Σ|q| over shorts / 10^6)

An account's IM and MM are the sums over its underlyings. Scenario (0, 0) is the mark itself,
so loss_k is exactly 0 there. Open orders count as in standard margin: each instrument adds
what its open orders add to the standard requirement (`requirement(q, orders) − im_of(q)`,
the engine's admission rule), never credited against the scenario loss.

Incremental: `Exposure` keeps, per account and underlying, Σ value at marks, the 27 scenario
sums and Σ|q| of shorts, so a fill updates it in O(27) and the check costs O(27·underlyings)
whatever the number of positions or open orders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from sequencer.core import fixedpoint as fx
from sequencer.core.instruments import UNIT
from sequencer.core.margin import Margin
from sequencer.core.pricing import black76_fixed

if TYPE_CHECKING:
    from sequencer.core.marks import Marks

STANDARD, PORTFOLIO = 0, 1
MODES = {STANDARD: "standard", PORTFOLIO: "portfolio"}
SPOT_SHOCKS = (-16, -12, -8, -4, 0, 4, 8, 12, 16)
"""Spot shocks, percent."""
VOL_SHOCKS = (-30, 0, 30)
"""Vol shocks, percent of the vol."""
SCENARIOS: tuple[tuple[int, int], ...] = tuple((s, v) for v in VOL_SHOCKS for s in SPOT_SHOCKS)
"""(spot shock %, vol shock %) in the order scenarios are indexed (the first worst one is
reported)."""
PPM = 10**6
IM_SHORT_PPM = 3_000
"""Initial-margin contingency: 0.3% of spot per short contract."""
MM_SHORT_PPM = 2_000
"""Maintenance contingency: 0.2% of spot per short contract."""
MM_LOSS_PPM = 800_000
"""Maintenance margin counts 80% of the worst scenario loss."""

ScenarioRows = tuple[tuple[int, ...], tuple[int, ...]]
"""(price floors, price ceilings): base units per contract, one of each per scenario of
SCENARIOS (floors value longs, ceilings value shorts)."""


def scenario_rows(spot: int, strike: int, tau: int, vol_ppm: int, is_call: bool) -> ScenarioRows:
    """The 27 scenario prices of one option (`tau` seconds to expiry, `vol_ppm` its vol x 10^6
    at the marks), floored and ceiled to base units."""
    p = fx.PREC
    los, his = [], []
    for s, v in SCENARIOS:
        g = black76_fixed(spot * (100 + s) // 100, strike, tau, vol_ppm * (100 + v) // 100,
                          is_call).price
        los.append(g >> p)
        his.append(-(-g >> p))
    return tuple(los), tuple(his)


def _value(q: int, lo: int, hi: int) -> int:
    return q * lo // UNIT if q >= 0 else q * hi // UNIT


class Exposure:
    """One account's positions in one underlying, summed: `value` Σ value(q) at the marks,
    `values[k]` Σ value(q) in scenario k, `short` Σ|q| over short positions (contracts x 10^6)."""

    __slots__ = ("value", "values", "short", "_next")

    def __init__(self) -> None:
        self.value = 0
        self.values = [0] * len(SCENARIOS)
        self.short = 0
        # the scenario values `loss_after` computed last, reused by the `move` that follows
        # (a fill is checked, then applied): (old, new, rows, value, values); any move drops it
        self._next: tuple[int, int, ScenarioRows, int, list[int]] | None = None

    def add(self, q: int, mark_lo: int, mark_hi: int, rows: ScenarioRows) -> None:
        """Add a position q (in a new instrument)."""
        self.move(0, q, mark_lo, mark_hi, rows)

    def move(self, old: int, new: int, mark_lo: int, mark_hi: int, rows: ScenarioRows) -> None:
        """A position goes from `old` to `new` (one pass over the scenarios)."""
        if old == new:
            return
        nxt, self._next = self._next, None
        self.short += max(-new, 0) - max(-old, 0)
        if nxt is not None and nxt[0] == old and nxt[1] == new and nxt[2] is rows:
            self.value, self.values = nxt[3], nxt[4]
            return
        self.value += _value(new, mark_lo, mark_hi) - _value(old, mark_lo, mark_hi)
        pn = rows[0] if new >= 0 else rows[1]
        if old:
            po = rows[0] if old >= 0 else rows[1]
            self.values = [v + new * a // UNIT - old * b // UNIT
                           for v, a, b in zip(self.values, pn, po)]
        else:
            self.values = [v + new * a // UNIT for v, a in zip(self.values, pn)]

    def loss_after(self, old: int, new: int, mark_lo: int, mark_hi: int,
                   rows: ScenarioRows) -> int:
        """The worst scenario loss L if a position went from `old` to `new` (self unchanged)."""
        value = self.value + _value(new, mark_lo, mark_hi) - _value(old, mark_lo, mark_hi)
        pn = rows[0] if new >= 0 else rows[1]
        po = rows[0] if old >= 0 else rows[1]
        values = [v + new * a // UNIT - old * b // UNIT for v, a, b in zip(self.values, pn, po)]
        self._next = (old, new, rows, value, values)
        return max(0, value - min(values))


class UnderlyingMargin(NamedTuple):
    """Portfolio figures of one underlying, base units: the worst scenario `loss` L (>= 0),
    which scenario it is (`spot_shock`, `vol_shock`, percent; the first worst in SCENARIOS
    order), `im` and `mm`."""

    underlying: str
    loss: int
    spot_shock: int
    vol_shock: int
    im: int
    mm: int


def _im(loss: int, short: int, spot: int) -> int:
    return loss + -(-IM_SHORT_PPM * spot * short // (PPM * UNIT))


def figures(underlying: str, e: Exposure, spot: int) -> UnderlyingMargin:
    """IM and MM of one underlying's exposure at spot `spot` (base units)."""
    low = min(e.values)
    worst = max(0, e.value - low)
    at = e.values.index(low) if worst else SCENARIOS.index((0, 0))
    mm = -(-MM_LOSS_PPM * worst // PPM) + -(-MM_SHORT_PPM * spot * e.short // (PPM * UNIT))
    s, v = SCENARIOS[at]
    return UnderlyingMargin(underlying, worst, s, v, _im(worst, e.short, spot), mm)


class PortfolioMargin(NamedTuple):
    """Account-level portfolio figures: `equity` (collateral + Σ value at marks), Σ `im`,
    Σ `mm`, and the figures of each underlying (sorted by name)."""

    equity: int
    im: int
    mm: int
    underlyings: tuple[UnderlyingMargin, ...]

    def margin(self) -> Margin:
        return Margin(self.equity, self.im, self.mm)


def exposures(marks: Marks, positions: Mapping[str, int]) -> dict[str, Exposure] | None:
    """Exposure per underlying of `positions` at `marks`; None if one has no valid price."""
    out: dict[str, Exposure] = {}
    instruments = marks.state.instruments
    for name, q in positions.items():
        row, rows = marks.row(name), marks.scenarios(name)
        if row is None or rows is None:
            return None
        u = instruments[name].underlying
        e = out.get(u)
        if e is None:
            e = out[u] = Exposure()
        e.add(q, row.mark_lo, row.mark_hi, rows)
    return out


def of_exposures(marks: Marks, collateral: int, exps: Mapping[str, Exposure]) -> PortfolioMargin:
    """Account figures from its exposures (every underlying priced at `marks`)."""
    equity, im, mm, per = collateral, 0, 0, []
    for u in sorted(exps):
        e = exps[u]
        price = marks.price(u)
        assert price is not None  # an exposure exists only for priced positions
        f = figures(u, e, price.spot)
        equity += e.value
        im += f.im
        mm += f.mm
        per.append(f)
    return PortfolioMargin(equity, im, mm, tuple(per))


def portfolio_margin(marks: Marks, collateral: int,
                     positions: Mapping[str, int]) -> PortfolioMargin | None:
    """From scratch: the portfolio figures of `positions` with `collateral`; None if a position
    has no valid oracle price."""
    exps = exposures(marks, positions)
    return None if exps is None else of_exposures(marks, collateral, exps)


def im_after(marks: Marks, exps: Mapping[str, Exposure], name: str, old: int, new: int) -> int:
    """Σ IM of `exps` with position `name` moved from `old` to `new` (exps unchanged)."""
    u = marks.state.instruments[name].underlying
    total = total_im(marks, ((x, e) for x, e in exps.items() if x != u))
    e = exps.get(u) or Exposure()
    row, rows = marks.row(name), marks.scenarios(name)
    price = marks.price(u)
    assert row is not None and rows is not None and price is not None
    loss = e.loss_after(old, new, row.mark_lo, row.mark_hi, rows)
    return total + _im(loss, e.short + max(-new, 0) - max(-old, 0), price.spot)


def _im_of(marks: Marks, u: str, e: Exposure) -> int:
    price = marks.price(u)
    assert price is not None
    return _im(max(0, e.value - min(e.values)), e.short, price.spot)


def total_im(marks: Marks, exps: Iterable[tuple[str, Exposure]]) -> int:
    """Σ IM over (underlying, exposure) pairs."""
    return sum(_im_of(marks, u, e) for u, e in exps)
