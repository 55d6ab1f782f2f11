"""The detectors: pure objects fed events with explicit timestamps (unix seconds), returning the
alerts they fire (`Firing`). No I/O, no clock, no threads: whoever owns one feeds it from one
thread (sequencer.monitor._node does, from the node's input log and events; tests do, by hand).

Each detector fires at most once per subject per its window (an "episode"); the alert store
counts episodes. Memory is bounded: per-key state is pruned once idle, and key tables are
capped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from cext import to_checksum
from sequencer.monitor._alerts import CRITICAL, WARNING, Firing
from sequencer.monitor._settings import (OracleSettings, SpoofSettings, WashSettings,
                                         WithdrawalSettings)

MAX_KEYS = 100_000


def _acct(a: bytes) -> str:
    return to_checksum(a)


def _money(v: int) -> str:
    return f"{v / 10**6:,.6f} USDC"


class WindowSum:
    """A sum over the last `window` seconds in `buckets` time buckets (so memory does not grow
    with the event rate): an event counts from `t` until its bucket is wholly out of the window,
    i.e. for `window` to `window + window/buckets` seconds. `add(t, v)`; `total(now)`. Times may
    arrive slightly out of order."""

    __slots__ = ("width", "window", "q", "sum")

    def __init__(self, window: float, buckets: int = 30) -> None:
        self.window = max(window, 1e-9)
        self.width = self.window / buckets
        self.q: deque[list] = deque()  # [bucket start, value]
        self.sum: int | float = 0  # exact for integer values (amounts)

    def _expire(self, now: float) -> None:
        q, edge = self.q, now - self.window
        while q and q[0][0] + self.width <= edge:
            self.sum -= q.popleft()[1]

    def add(self, t: float, v: int | float = 1) -> int | float:
        start = t - t % self.width
        q = self.q
        if q and q[-1][0] >= start:
            q[-1][1] += v
        else:
            q.append([start, v])
        self.sum += v
        self._expire(t)
        return self.sum

    def total(self, now: float) -> int | float:
        self._expire(now)
        return self.sum if self.q else 0

    def clear(self) -> None:
        self.q.clear()
        self.sum = 0


class Keyed:
    """WindowSums by key, capped at `max_keys` (idle ones pruned first, then the oldest)."""

    def __init__(self, window: float, max_keys: int = MAX_KEYS) -> None:
        self.window, self.max_keys = window, max_keys
        self.sums: dict[object, WindowSum] = {}

    def add(self, key: object, t: float, v: float = 1) -> float:
        s = self.sums.get(key)
        if s is None:
            if len(self.sums) >= self.max_keys:
                self.prune(t)
                while len(self.sums) >= self.max_keys:
                    del self.sums[next(iter(self.sums))]
            s = self.sums[key] = WindowSum(self.window)
        return s.add(t, v)

    def total(self, key: object, now: float) -> float:
        s = self.sums.get(key)
        return 0.0 if s is None else s.total(now)

    def reset(self, key: object) -> None:
        self.sums.pop(key, None)

    def prune(self, now: float) -> None:
        for k in [k for k, s in self.sums.items() if s.total(now) == 0]:
            del self.sums[k]


class Episodes:
    """`ready(key, now)`: True (and remembers `now`) unless `key` fired within `quiet` seconds."""

    def __init__(self, quiet: float, max_keys: int = MAX_KEYS) -> None:
        self.quiet, self.max_keys = quiet, max_keys
        self.last: dict[object, float] = {}

    def ready(self, key: object, now: float) -> bool:
        t = self.last.get(key)
        if t is not None and now - t < self.quiet:
            return False
        if t is None and len(self.last) >= self.max_keys:
            for k in [k for k, v in self.last.items() if now - v >= self.quiet]:
                del self.last[k]
            while len(self.last) >= self.max_keys:
                del self.last[next(iter(self.last))]
        self.last[key] = now
        return True


# -- wash trading ----------------------------------------------------------------------------------

class Links:
    """Which accounts are linked: two accounts are linked when they share a link token, a
    session key ("key:<address>": both registered it, or one registered the other's address as
    its key) or an L1 depositor ("depositor:<address>": deposits from one L1 address credited
    both, or one of them is that address). A token shared by more than `max_accounts` accounts
    besides its own address (an exchange's hot wallet, a deposit router) links nobody. Links
    are never removed: a key shared once says who controls both."""

    def __init__(self, max_accounts: int = 10) -> None:
        self.max_accounts = max_accounts
        self.members: dict[str, set[bytes]] = {}
        self.public: set[str] = set()
        self.tokens: dict[bytes, set[str]] = {}

    def _add(self, token: str, account: bytes, owner: bytes) -> None:
        if token in self.public:
            return
        m = self.members.setdefault(token, set())
        m.add(account)
        if len(m) - (owner in m) > self.max_accounts:
            self.public.add(token)
            for a in self.members.pop(token):
                ts = self.tokens.get(a)
                if ts is not None:
                    ts.discard(token)
            return
        self.tokens.setdefault(account, set()).add(token)

    def session_key(self, account: bytes, key: bytes) -> None:
        token = "key:" + _acct(key)
        self._add(token, account, key)
        if key != account:
            self._add(token, key, key)  # the key's own account, should it trade

    def depositor(self, account: bytes, depositor: bytes) -> None:
        if depositor == account:
            return  # a self-deposit links nothing new
        token = "depositor:" + _acct(depositor)
        self._add(token, account, depositor)
        self._add(token, depositor, depositor)

    def link(self, a: bytes, b: bytes) -> str | None:
        """The token linking `a` and `b` (smallest first), or None."""
        ta, tb = self.tokens.get(a), self.tokens.get(b)
        if not ta or not tb:
            return None
        shared = ta & tb
        return min(shared) if shared else None


class WashTrading:
    """A fill whose maker and taker are one account, or linked accounts (`Links`)."""

    KIND = "wash_trade"

    def __init__(self, s: WashSettings, links: Links | None = None) -> None:
        self.s = s
        self.links = links if links is not None else Links(s.max_linked_accounts)
        self.fills = Keyed(s.window_seconds)
        self.episodes = Episodes(s.window_seconds)

    def fill(self, now: float, maker: bytes, taker: bytes, instrument: str, amount: int,
             price: int) -> list[Firing]:
        if maker == taker:
            subject, via = _acct(maker), "maker and taker are the same account"
        else:
            token = self.links.link(maker, taker)
            if token is None:
                return []
            a, b = sorted((maker, taker))
            subject = f"{_acct(a)}|{_acct(b)}"
            via = f"maker {_acct(maker)} and taker {_acct(taker)} are linked by {token}"
        n = self.fills.add(subject, now)
        if n < self.s.min_fills or not self.episodes.ready(subject, now):
            return []
        return [Firing(self.KIND, WARNING, subject,
                       f"{via}: {int(n)} such fill(s) in {self.s.window_seconds:g} s, latest "
                       f"{amount / 10**6:g} contracts of {instrument} at {_money(price)}", now)]


# -- spoofing: cancel/fill ratio ------------------------------------------------------------------

class Spoofing:
    """An account that cancels far more than it fills over the window: at least `min_cancels`
    cancels and more than `max_cancels_per_fill` x max(1, fills)."""

    KIND = "spoofing"

    def __init__(self, s: SpoofSettings) -> None:
        self.s = s
        self.cancels = Keyed(s.window_seconds)
        self.fills = Keyed(s.window_seconds)
        self.episodes = Episodes(s.window_seconds)

    def fill(self, now: float, account: bytes) -> list[Firing]:
        self.fills.add(account, now)
        return []

    def cancel(self, now: float, account: bytes, n: int = 1) -> list[Firing]:
        c = self.cancels.add(account, now, n)
        if c < self.s.min_cancels:
            return []
        f = self.fills.total(account, now)
        if c <= self.s.max_cancels_per_fill * max(1.0, f) or not self.episodes.ready(account, now):
            return []
        return [Firing(self.KIND, WARNING, _acct(account),
                       f"{int(c)} cancels against {int(f)} fills in {self.s.window_seconds:g} s "
                       f"(more than {self.s.max_cancels_per_fill:g} per fill)", now)]

    def prune(self, now: float) -> None:
        self.cancels.prune(now)
        self.fills.prune(now)


# -- oracle ------------------------------------------------------------------------------------------

def _median(values: list[int]) -> int:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n & 1 else (s[n // 2 - 1] + s[n // 2]) // 2


class OracleWatch:
    """Per underlying, each oracle key's latest accepted feed (spot, timestamp).

    Deviation: a feed whose spot is more than `max_deviation_ppm` from the median of the fresh
    feeds (each key's latest no older than `fresh_seconds`, this one included; at least
    `min_feeds` of them). Staleness (`tick`): fewer than `quorum` keys have a feed newer than
    `stale_seconds`, i.e. no valid price for that long (the node's own quorum rule, over the
    feeds' timestamps)."""

    DEVIATION, STALE = "oracle_deviation", "oracle_stale"

    def __init__(self, s: OracleSettings, quorum: int = 1, underlyings: Iterable[str] = (),
                 start: float = 0.0) -> None:
        self.s, self.quorum = s, max(1, quorum)
        self.feeds: dict[str, dict[bytes, tuple[int, float]]] = {}
        self.since: dict[str, float] = {u: start for u in underlyings}  # watched since
        self.deviations = Episodes(s.fresh_seconds)
        self.stale = Episodes(s.stale_seconds)

    def seed(self, underlying: str, key: bytes, spot: int, timestamp: float) -> None:
        """A feed the node held before the detector started (no deviation check)."""
        self.feeds.setdefault(underlying, {})[key] = (spot, timestamp)
        self.since.setdefault(underlying, timestamp)

    def feed(self, now: float, underlying: str, key: bytes, spot: int,
             timestamp: float) -> list[Firing]:
        table = self.feeds.setdefault(underlying, {})
        self.since.setdefault(underlying, now)
        old = table.get(key)
        if old is None or timestamp >= old[1]:
            table[key] = (spot, timestamp)
        fresh = [sp for sp, ts in table.values() if timestamp - ts <= self.s.fresh_seconds]
        if len(fresh) < self.s.min_feeds:
            return []
        med = _median(fresh)
        if med <= 0:
            return []
        dev = abs(spot - med) * 10**6 // med
        subject = f"{underlying}/{_acct(key)}"
        if dev <= self.s.max_deviation_ppm or not self.deviations.ready(subject, now):
            return []
        return [Firing(self.DEVIATION, WARNING, subject,
                       f"feed of {underlying} by oracle key {_acct(key)} at {timestamp:.0f}: spot "
                       f"{spot} is {dev / 10**4:.2f}% from the median {med} of {len(fresh)} fresh "
                       f"feeds (limit {self.s.max_deviation_ppm / 10**4:.2f}%)", now)]

    def valid_since(self, underlying: str) -> float | None:
        """The time of the quorum-th newest key's feed: the price is valid from then on."""
        ts = sorted((t for _, t in self.feeds.get(underlying, {}).values()), reverse=True)
        return ts[self.quorum - 1] if len(ts) >= self.quorum else None

    def tick(self, now: float) -> list[Firing]:
        out = []
        for u, since in self.since.items():
            v = self.valid_since(u)
            age = now - (v if v is not None else since)
            if age <= self.s.stale_seconds or not self.stale.ready(u, now):
                continue
            what = (f"the newest quorum ({self.quorum} keys) of feeds is {age:.0f} s old"
                    if v is not None else
                    f"fewer than {self.quorum} oracle keys have ever fed it ({age:.0f} s watched)")
            out.append(Firing(self.STALE, CRITICAL, u,
                              f"no valid price for {u} for more than {self.s.stale_seconds:g} s: "
                              f"{what}", now))
        return out


# -- withdrawals -------------------------------------------------------------------------------------

class WithdrawalSpike:
    """The sum of accepted withdrawals over the window above `max_total` (all accounts), or one
    account's above `max_per_account` (0 turns either off)."""

    KIND = "withdrawal_spike"
    ALL = "all accounts"

    def __init__(self, s: WithdrawalSettings) -> None:
        self.s = s
        self.total = WindowSum(s.window_seconds)
        self.per_account = Keyed(s.window_seconds)
        self.episodes = Episodes(s.window_seconds)

    def withdrawal(self, now: float, account: bytes, amount: int) -> list[Firing]:
        out = []
        t = self.total.add(now, amount)
        if self.s.max_total and t > self.s.max_total and self.episodes.ready(self.ALL, now):
            out.append(Firing(self.KIND, CRITICAL, self.ALL,
                              f"{_money(int(t))} withdrawn in {self.s.window_seconds:g} s, above "
                              f"{_money(self.s.max_total)} (latest: {_money(amount)} by "
                              f"{_acct(account)})", now))
        if self.s.max_per_account:
            a = self.per_account.add(account, now, amount)
            if a > self.s.max_per_account and self.episodes.ready(account, now):
                out.append(Firing(self.KIND, WARNING, _acct(account),
                                  f"{_money(int(a))} withdrawn by {_acct(account)} in "
                                  f"{self.s.window_seconds:g} s, above {_money(self.s.max_per_account)}",
                                  now))
        return out

    def prune(self, now: float) -> None:
        self.per_account.prune(now)
