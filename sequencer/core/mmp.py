"""Market-maker protection (MMP, design.md "Risk"): per (account, underlying), the account's
maker fills over a sliding window of block time, and a freeze when they breach a limit.

Engine-level and off L1: configs, windows and freezes are engine data. `MmpConfig` and
`MmpReset` are input-log records (never block transactions), so replaying the log rebuilds
all of it, and node snapshots store it. The engine calls in at four points: a new block
(`Mmp.begin_block`), a new order (`Mmp.check_open`), a maker fill (`Mmp.count`, staged in the
request) and the commit of a request (`Mmp.commit`).

Rules (docs/mmp.md walks through an example):
- Time is block time in ms, `block timestamp (unix s) × 1000`; nothing here reads a clock, so a
  replay rebuilds the same windows and freezes. All fills of one block have that block's time.
- A fill at block time `t` is in the window at block time `T` while `T − t < intervalMs`: the
  fills of one block always count together, and with 1 s blocks an `intervalMs` ≤ 1000 means
  "this block only".
- Measures, per maker fill of `q` (contracts × 10^6; `s` = +1 if the maker bought, −1 if it
  sold) at the block's marks (`Mark.delta` × 10^6 per contract, `Mark.vega` base units per vol
  point per contract): amount = Σ q; delta = Σ s·q·Δ / 10^6 (contracts × 10^6 of underlying);
  vega = Σ s·q·v / 10^6 (base units per vol point). The greek sums are kept exactly (× 10^6
  of those units) and a breach is `Σ q > amountLimit`, `|Σ s·q·Δ| > deltaLimit·10^6` or
  `|Σ s·q·v| > vegaLimit·10^6` (checked in that order): no rounding decides.
- A limit of 0 is no limit on that measure; `intervalMs` 0, or all three limits 0, turns MMP
  off for the pair.
- Counting: every maker fill counts when the matching engine makes it, in matching order, and
  the limits are checked right after it. The fill that breaches stands; the pair freezes at
  once: the account's resting orders in every instrument of the underlying are cancelled and
  the rest of the same request does not trade with them (the taker goes on against other
  makers); later requests of the block see the freeze. A request rejected as a whole (e.g. a
  FOK) leaves no count and no freeze.
- A freeze lasts until block time `breach + frozenMs` (the first block at or after that time
  lifts it), or with `frozenMs` 0 until an MmpReset. Meanwhile the account's new orders in the
  underlying are refused with `mmp_frozen`. A breach, an MmpReset and a new MmpConfig each
  empty the window; a new config does not lift a freeze.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container
from itertools import chain
from typing import NamedTuple

from cext import to_checksum
from sequencer.core.eip712 import MmpConfig, MmpReset
from sequencer.errors import Conflict, InvalidRequest, NotFound, Rejected

Key = tuple[bytes, str]
"""(account, underlying)"""
MS = 1000  # block time (unix s) → ms
GREEK = 10**6  # scale of the exact greek sums over the limits' units
MAX_INTERVAL_MS = 86_400_000  # one day
MAX_FROZEN_MS = 86_400_000
MAX_LIMIT = 2**64 - 1  # what an input-log record holds
MEASURES = ("amount", "delta", "vega")


class Freeze(NamedTuple):
    """A breach: at block time `at_ms`, `measure`'s window total `value` passed `limit`
    (`value` exact: contracts × 10^6 for amount, × 10^6 of the limit's units for the greeks);
    frozen until block time `until_ms` (None: until an MmpReset)."""

    at_ms: int
    until_ms: int | None
    measure: str
    value: int
    limit: int


class MmpEvent(NamedTuple):
    """What the node announces on the account's private channel. `kind`: triggered | reset |
    expired; `freeze` the freeze that started or ended (None: a reset of an unfrozen pair);
    `cancelled` the order digests a trigger cancelled and `instruments` their instruments."""

    kind: str
    account: bytes
    underlying: str
    at_ms: int
    freeze: Freeze | None
    cancelled: tuple[bytes, ...] = ()
    instruments: tuple[str, ...] = ()


class MmpView(NamedTuple):
    """One pair as a read sees it: the last config (None if never set), whether it is on, the
    window totals (`amount` contracts × 10^6, `delta`/`vega` exact, × 10^6 of the limits'
    units) and the current freeze."""

    underlying: str
    config: MmpConfig | None
    active: bool
    amount: int
    delta: int
    vega: int
    freeze: Freeze | None


class ResetResult(NamedTuple):
    """An accepted MmpReset: the freeze it lifted (None if the pair was not frozen) and the
    pair after it."""

    lifted: Freeze | None
    view: MmpView


class Window:
    """Maker fills of one pair by block time: buckets [t_ms, amount, delta, vega], oldest
    first, one per block time, and their sums."""

    __slots__ = ("buckets", "amount", "delta", "vega")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.amount = self.delta = self.vega = 0

    def add(self, t_ms: int, amount: int, delta: int, vega: int) -> None:
        last = self.buckets[-1] if self.buckets else None
        if last is not None and last[0] == t_ms:
            last[1] += amount
            last[2] += delta
            last[3] += vega
        else:
            self.buckets.append([t_ms, amount, delta, vega])
        self.amount += amount
        self.delta += delta
        self.vega += vega

    def prune(self, cutoff_ms: int) -> None:
        """Drop the buckets at or before `cutoff_ms`."""
        b = self.buckets
        while b and b[0][0] <= cutoff_ms:
            _, a, d, v = b.popleft()
            self.amount -= a
            self.delta -= d
            self.vega -= v


class Stage:
    """One request's MMP effects until it commits: per pair the counted fills [amount, delta,
    vega] and the freezes with the orders they cancel (digests, instruments)."""

    __slots__ = ("fills", "trips")

    def __init__(self) -> None:
        self.fills: dict[Key, list[int]] = {}
        self.trips: dict[Key, tuple[Freeze, tuple[bytes, ...], tuple[str, ...]]] = {}


def active(cfg: MmpConfig) -> bool:
    """True iff the config limits anything: an interval and at least one non-zero limit."""
    return cfg.intervalMs > 0 and bool(cfg.amountLimit or cfg.deltaLimit or cfg.vegaLimit)


def check_config(msg: MmpConfig, underlyings: Container[str]) -> None:
    """Field rules of an MmpConfig against the configured `underlyings`."""
    if msg.underlying not in underlyings:
        raise NotFound(f"mmpConfig.underlying {msg.underlying!r} is not configured",
                       code="unknown_underlying")
    if msg.intervalMs > MAX_INTERVAL_MS:
        raise InvalidRequest(f"mmpConfig.intervalMs must be at most {MAX_INTERVAL_MS} (one day), "
                             f"got {msg.intervalMs}", code="bad_mmp_config")
    if msg.frozenMs > MAX_FROZEN_MS:
        raise InvalidRequest(f"mmpConfig.frozenMs must be at most {MAX_FROZEN_MS} (one day; 0 "
                             f"freezes until an MmpReset), got {msg.frozenMs}",
                             code="bad_mmp_config")
    for name in ("amountLimit", "deltaLimit", "vegaLimit"):
        value = getattr(msg, name)
        if value > MAX_LIMIT:
            raise InvalidRequest(f"mmpConfig.{name} must be below 2^64 (0 = no limit), got {value}",
                                 code="bad_mmp_config")


def breach(cfg: MmpConfig, amount: int, delta: int, vega: int) -> tuple[str, int, int] | None:
    """(measure, value, limit) of the first limit the totals pass, or None."""
    if cfg.amountLimit and amount > cfg.amountLimit:
        return "amount", amount, cfg.amountLimit
    if cfg.deltaLimit and abs(delta) > cfg.deltaLimit * GREEK:
        return "delta", delta, cfg.deltaLimit
    if cfg.vegaLimit and abs(vega) > cfg.vegaLimit * GREEK:
        return "vega", vega, cfg.vegaLimit
    return None


def in_limit_units(measure: str, value: int) -> int:
    """A window total in its limit's units: amounts as they are, greek sums divided by 10^6
    and rounded away from zero (display only: a breach always shows a value above its limit)."""
    if measure == "amount":
        return value
    q = -(-abs(value) // GREEK)
    return q if value >= 0 else -q


def frozen_message(account: bytes, underlying: str, f: Freeze) -> str:
    """The `mmp_frozen` error: which pair, which limit, until when."""
    until = ("until an MmpReset" if f.until_ms is None
             else f"until block time {f.until_ms} ms (unix ms)")
    shown = in_limit_units(f.measure, f.value)
    total = f"Σ amount {shown}" if f.measure == "amount" else f"|Σ {f.measure}| {abs(shown)}"
    return (f"{to_checksum(account)} is frozen in {underlying} by market-maker protection: its "
            f"maker fills passed the {f.measure} limit ({total} > {f.limit}) at block time "
            f"{f.at_ms} ms; new orders there are refused {until}")


class Mmp:
    """The MMP data of an engine: `configs` the last MmpConfig per pair (kept when off, for its
    nonce), `windows` the pairs with fills in their window, `frozen` the current freezes,
    `last_reset` the last MmpReset timestamp per pair. `events` is transient: the node takes
    it after every record (`take_events`); snapshots do not store it."""

    __slots__ = ("configs", "windows", "frozen", "last_reset", "events")

    def __init__(self) -> None:
        self.configs: dict[Key, MmpConfig] = {}
        self.windows: dict[Key, Window] = {}
        self.frozen: dict[Key, Freeze] = {}
        self.last_reset: dict[Key, int] = {}
        self.events: list[MmpEvent] = []

    # -- the engine's hooks -------------------------------------------------------------------

    def begin_block(self, now_ms: int) -> None:
        """A block at `now_ms` opens: lift the freezes that end by then, age the windows."""
        for key, f in [(k, f) for k, f in self.frozen.items()
                       if f.until_ms is not None and f.until_ms <= now_ms]:
            del self.frozen[key]
            self.events.append(MmpEvent("expired", key[0], key[1], now_ms, f))
        for key, w in list(self.windows.items()):
            w.prune(now_ms - self.configs[key].intervalMs)
            if not w.buckets:
                del self.windows[key]

    def check_open(self, account: bytes, underlying: str, now_ms: int) -> None:
        """Rejected `mmp_frozen` if the pair is frozen at `now_ms`."""
        f = self.frozen.get((account, underlying))
        if f is not None and (f.until_ms is None or now_ms < f.until_ms):
            raise Rejected(frozen_message(account, underlying, f), code="mmp_frozen")

    def watched(self, key: Key) -> MmpConfig | None:
        """The pair's config if it is on, else None."""
        cfg = self.configs.get(key)
        return cfg if cfg is not None and active(cfg) else None

    def count(self, stage: Stage, key: Key, cfg: MmpConfig, amount: int, delta: int,
              vega: int, now_ms: int) -> Freeze | None:
        """Stage one maker fill of pair `key` (`delta`, `vega` = s·q·greek, exact) and check
        the window with it; the Freeze it causes, or None. The caller stages the trip."""
        staged = stage.fills.get(key)
        if staged is None:
            staged = stage.fills[key] = [0, 0, 0]
        staged[0] += amount
        staged[1] += delta
        staged[2] += vega
        a, d, v = staged
        w = self.windows.get(key)
        if w is not None:
            a, d, v = a + w.amount, d + w.delta, v + w.vega
        hit = breach(cfg, a, d, v)
        if hit is None:
            return None
        return Freeze(now_ms, now_ms + cfg.frozenMs if cfg.frozenMs else None, *hit)

    def commit(self, stage: Stage, now_ms: int) -> None:
        """Make a request's staged fills and freezes real (cannot fail)."""
        for key, (a, d, v) in stage.fills.items():
            if key not in stage.trips:
                w = self.windows.get(key)
                if w is None:
                    w = self.windows[key] = Window()
                w.add(now_ms, a, d, v)
        for key, (freeze, cancelled, names) in stage.trips.items():
            self.windows.pop(key, None)
            self.frozen[key] = freeze
            self.events.append(MmpEvent("triggered", *key, now_ms, freeze, cancelled, names))

    def take_events(self) -> list[MmpEvent]:
        """The events since the last call, oldest first."""
        out, self.events = self.events, []
        return out

    # -- signed messages ----------------------------------------------------------------------

    def configure(self, msg: MmpConfig) -> None:
        """Accept a checked (`check_config`), authorised MmpConfig: replaces the pair's config
        and empties its window; Conflict `mmp_nonce_replayed` unless its nonce is new."""
        key = (msg.account, msg.underlying)
        old = self.configs.get(key)
        if old is not None and msg.nonce <= old.nonce:
            raise Conflict(f"mmpConfig.nonce {msg.nonce} is not above {old.nonce}, the nonce of "
                           f"the last config in {msg.underlying}", code="mmp_nonce_replayed")
        self.configs[key] = msg
        self.windows.pop(key, None)

    def reset(self, msg: MmpReset, now: int, window_s: int) -> Freeze | None:
        """Accept an authorised MmpReset at block time `now` (unix s): lift the pair's freeze
        (returned, None if it had none) and empty its window. `timestamp` must be within
        `window_s` of `now` (Rejected `mmp_reset_stale`) and after the pair's last reset
        (Conflict `mmp_reset_replayed`)."""
        if abs(msg.timestamp - now) > window_s:
            raise Rejected(f"mmpReset.timestamp {msg.timestamp} not within {window_s}s of block "
                           f"time {now}", code="mmp_reset_stale")
        key = (msg.account, msg.underlying)
        last = self.last_reset.get(key)
        if last is not None and msg.timestamp <= last:
            raise Conflict(f"mmpReset.timestamp {msg.timestamp} not after the last reset in "
                           f"{msg.underlying} ({last})", code="mmp_reset_replayed")
        self.last_reset[key] = msg.timestamp
        self.windows.pop(key, None)
        f = self.frozen.pop(key, None)
        self.events.append(MmpEvent("reset", msg.account, msg.underlying, now * MS, f))
        return f

    # -- reads --------------------------------------------------------------------------------

    def view(self, key: Key) -> MmpView:
        """One pair as it stands."""
        cfg, w = self.configs.get(key), self.windows.get(key)
        return MmpView(key[1], cfg, cfg is not None and active(cfg),
                       w.amount if w else 0, w.delta if w else 0, w.vega if w else 0,
                       self.frozen.get(key))

    def views(self, account: bytes) -> list[MmpView]:
        """Every pair of `account` with a config, fills or a freeze, by underlying."""
        names = {u for a, u in chain(self.configs, self.windows, self.frozen) if a == account}
        return [self.view((account, u)) for u in sorted(names)]
