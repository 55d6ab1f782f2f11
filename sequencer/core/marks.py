"""Marks of every instrument at one block time and oracle version: derived data, cached per
(oracle_version, timestamp) and rebuilt when either changes. Computed by the rules version in
force at that block time (the genesis fork schedule), so a replay uses the rules a block was
made under."""

from __future__ import annotations

from cext import margin_sums
from sequencer.core.instruments import UNIT
from sequencer.core.margin import Margin, RiskRow, position_delta, positions_margin, short_margin
from sequencer.core.oracle import Price, current_price
from sequencer.core.portfolio import Exposure, ScenarioRows, exposures, scenario_rows
from sequencer.core.pricing import Mark
from sequencer.core.rules import Rules, rules_at
from sequencer.core.state import Account, State
from sequencer.errors import Rejected


class Marks:
    """Lazily computed marks at block time `now`. `row`/`mark` return None when the
    underlying has no valid oracle price (trading halts)."""

    __slots__ = ("state", "now", "version", "rules", "_prices", "_rows", "_marks", "_pos",
                 "_scen", "_exp")

    def __init__(self, state: State, now: int) -> None:
        self.state, self.now, self.version = state, now, state.oracle_version
        self.rules: Rules = rules_at(state.config.rules_schedule, now)
        self._prices: dict[str, Price | None] = {}
        self._rows: dict[str, RiskRow | None] = {}
        self._marks: dict[str, Mark | None] = {}
        self._pos: dict[bytes, list[int]] = {}
        self._scen: dict[str, ScenarioRows | None] = {}
        self._exp: dict[bytes, dict[str, Exposure]] = {}

    def current(self, state: State, now: int) -> bool:
        """True iff these marks are still valid for `state` at `now`."""
        return state is self.state and now == self.now and state.oracle_version == self.version

    @staticmethod
    def refreshed(m: Marks | None, state: State, now: int) -> Marks:
        """`m` if it is still `current` for `state` at `now`, else its `successor` (or new marks)."""
        if m is None:
            return Marks(state, now)
        return m if m.current(state, now) else m.successor(state, now)

    def successor(self, state: State, now: int) -> Marks:
        """Marks of `state` at `now` that replace these once they are no longer `current`. After
        an oracle update at the same block time they keep what was computed for each underlying
        whose median `Price` did not change (a mark, row or scenario row is a function of that
        price, the instrument and the rules at `now`), and the per-account caches when no priced
        underlying changed: most accepted feeds leave the median where it was (the first of a
        round of keys' posts), and repricing every instrument stalls the next orders."""
        new = Marks(state, now)
        if state is not self.state or now != self.now or not self._prices:
            return new
        same = {u for u, p in self._prices.items() if new.price(u) == p}
        if not same:
            return new
        listed = state.instruments
        for old, out in ((self._marks, new._marks), (self._rows, new._rows), (self._scen, new._scen)):
            for name, v in old.items():
                ins = listed.get(name)
                if ins is not None and ins.underlying in same:
                    out[name] = v
        if len(same) == len(self._prices):  # every row the account caches used is unchanged
            new._pos, new._exp = self._pos, self._exp
        return new

    def price(self, underlying: str) -> Price | None:
        """Median oracle price of `underlying` at `now`, or None (stale / no quorum)."""
        try:
            return self._prices[underlying]
        except KeyError:
            p = current_price(self.state.oracle.get(underlying), self.now, self.state.config.oracle)
            self._prices[underlying] = p
            return p

    def mark(self, name: str) -> Mark | None:
        """Integer mark and greeks of a listed instrument."""
        try:
            return self._marks[name]
        except KeyError:
            pass
        ins = self.state.instruments[name]
        p = self.price(ins.underlying)
        m = None
        if p is not None:
            rules = self.rules
            vol = rules.interpolate_vol(p.expiries, p.vols, ins.expiry, self.now)
            m = rules.mark(p.spot, ins.strike, ins.expiry, self.now, vol, ins.is_call)
        self._marks[name] = m
        return m

    def has_row(self, name: str) -> bool:
        """True iff `row(name)` is already computed (priced or not)."""
        return name in self._rows

    def row(self, name: str) -> RiskRow | None:
        """Margin inputs of a listed instrument."""
        try:
            return self._rows[name]
        except KeyError:
            pass
        m = self.mark(name)
        r = None
        if m is not None:
            ins = self.state.instruments[name]
            params = self.state.config.underlyings[ins.underlying]
            im, mm = short_margin(m.spot, ins.strike, ins.is_call, params)
            r = RiskRow(m.mark_lo, m.mark_hi, im, mm)
        self._rows[name] = r
        return r

    def margin(self, collateral: int, positions: dict[str, int]) -> Margin | None:
        """`positions_margin(collateral, positions)` at these marks (the liquidation scan runs it
        for every account with a short position at every block start: the rows are read from
        the dict, priced only when missing); None if a position has no price."""
        rows = self._rows
        try:
            rs = [rows[name] for name in positions]
        except KeyError:
            rs = [self.row(name) for name in positions]
        if None in rs:
            return None
        return Margin(*margin_sums(collateral, list(positions.values()), rs, UNIT))

    def scenarios(self, name: str) -> ScenarioRows | None:
        """The 27 portfolio-margin scenario prices of a listed instrument (portfolio.py)."""
        try:
            return self._scen[name]
        except KeyError:
            pass
        ins = self.state.instruments[name]
        p = self.price(ins.underlying)
        rows = None
        if p is not None:
            vol = self.rules.interpolate_vol(p.expiries, p.vols, ins.expiry, self.now)
            rows = scenario_rows(p.spot, ins.strike, ins.expiry - self.now, vol, ins.is_call)
        self._scen[name] = rows
        return rows

    def exposures(self, address: bytes, acct: Account) -> dict[str, Exposure]:
        """Portfolio exposures of the account per underlying (cached; kept exact by `moved`).
        Rejected oracle_stale if a position has no price."""
        c = self._exp.get(address)
        if c is None:
            c = exposures(self, acct.positions)
            if c is None:
                raise Rejected("a position has no valid oracle price", code="oracle_stale")
            self._exp[address] = c
        return c

    def positions(self, address: bytes, acct: Account) -> list[int]:
        """[Σ value(q), Σ initial margin(q)] over the account's positions (cached; callers keep
        it exact with `moved`/`forget`). Rejected oracle_stale if a position has no price."""
        c = self._pos.get(address)
        if c is None:
            rows = []
            for n, q in acct.positions.items():
                r = self.row(n)
                if r is None:
                    raise Rejected(f"no valid oracle price for {n}", code="oracle_stale")
                rows.append((q, r))
            m = positions_margin(0, rows)
            c = self._pos[address] = [m.equity, m.im]
        return c

    def moved(self, address: bytes, name: str, old: int, new: int) -> None:
        """Update the cached sums after a position changed from `old` to `new`."""
        c = self._pos.get(address)
        if c is not None:
            r = self.row(name)
            assert r is not None
            dv, dim = position_delta(old, new, r)
            c[0] += dv
            c[1] += dim
        x = self._exp.get(address)
        if x is not None:
            r = self.row(name)
            rows = self.scenarios(name)
            assert r is not None and rows is not None
            u = self.state.instruments[name].underlying
            e = x.get(u)
            if e is None:
                e = x[u] = Exposure()
            e.move(old, new, r.mark_lo, r.mark_hi, rows)

    def forget(self) -> None:
        """Drop the cached sums (after positions changed outside `moved`)."""
        self._pos.clear()
        self._exp.clear()
