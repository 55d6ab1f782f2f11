"""Token-bucket rate limits per key (account, IP). Time is passed in (seconds, monotonic)."""

from __future__ import annotations

from dataclasses import dataclass

from sequencer.errors import InvalidRequest, RateLimited


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`rate` tokens per second, bursts up to `burst`; `take(key, now, cost)` spends or raises
    RateLimited with the seconds until enough tokens are back. Idle buckets are pruned."""

    def __init__(self, rate: float, burst: float, *, what: str = "requests",
                 max_keys: int = 100_000) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate, self.burst, self.what, self.max_keys = rate, burst, what, max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float, cost: float = 1.0) -> None:
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            b = self._buckets[key] = _Bucket(self.burst, now)
        b.tokens = min(self.burst, b.tokens + (now - b.updated) * self.rate)
        b.updated = now
        if cost > self.burst:
            raise InvalidRequest(f"{cost:g} {self.what} at once exceeds the burst limit of "
                                 f"{self.burst:g}; split the request", code="exceeds_rate_burst")
        if b.tokens < cost:
            wait = (cost - b.tokens) / self.rate
            raise RateLimited(f"rate limit for {key}: {self.rate:g} {self.what}/s, burst "
                              f"{self.burst:g}; retry in {wait:.2f} s", retry_after=wait)
        b.tokens -= cost

    def _prune(self, now: float) -> None:
        full = [k for k, b in self._buckets.items()
                if b.tokens + (now - b.updated) * self.rate >= self.burst]
        for k in full:
            del self._buckets[k]
