from __future__ import annotations

import pytest

from sequencer.api.ratelimit import RateLimiter
from sequencer.errors import InvalidRequest, RateLimited


def test_burst_then_refill() -> None:
    rl = RateLimiter(rate=10, burst=5)
    for _ in range(5):
        rl.take("a", 0.0)
    with pytest.raises(RateLimited) as info:
        rl.take("a", 0.0)
    assert info.value.retry_after == pytest.approx(0.1)
    rl.take("b", 0.0)  # other keys unaffected
    rl.take("a", 0.1)  # one token back after 100 ms
    with pytest.raises(RateLimited):
        rl.take("a", 0.1)


def test_cost_and_burst_cap() -> None:
    rl = RateLimiter(rate=100, burst=500)
    rl.take("a", 0.0, cost=500)
    with pytest.raises(RateLimited) as info:
        rl.take("a", 1.0, cost=200)
    assert info.value.retry_after == pytest.approx(1.0)
    with pytest.raises(InvalidRequest) as info2:
        rl.take("a", 100.0, cost=501)
    assert info2.value.code == "exceeds_rate_burst"


def test_prunes_idle_keys() -> None:
    rl = RateLimiter(rate=1, burst=1, max_keys=3)
    for k in "abc":
        rl.take(k, 0.0)
    rl.take("d", 10.0)  # a, b, c are full again: pruned
    assert len(rl._buckets) == 1
