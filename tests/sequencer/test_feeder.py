from __future__ import annotations

import math
import statistics

from sequencer.feeder import GbmSpot, make_feed, vol_curve


def test_gbm_is_seeded_and_has_the_right_volatility() -> None:
    a, b = GbmSpot(3000.0, 0.7, seed=1), GbmSpot(3000.0, 0.7, seed=1)
    path = [a.step(60) for _ in range(20_000)]
    assert path == [b.step(60) for _ in range(20_000)]
    rets = [math.log(y / x) for x, y in zip([3000.0] + path, path)]
    realised = statistics.pstdev(rets) * math.sqrt(365 * 86400 / 60)
    assert abs(realised - 0.7) < 0.03          # annualised vol recovered from the returns
    assert all(p > 0 for p in path)


def test_vol_curve_and_feed() -> None:
    now = 1_800_000_000
    exps = [now + 86400 * d for d in (60, 3, 10)]
    vols = vol_curve(sorted(exps), now)
    assert vols == sorted(vols, reverse=True)   # short end higher than long end
    assert 600_000 < vols[-1] < vols[0] < 750_001
    f = make_feed("ETH", 3_000_000_000, now, exps + [now - 5])
    assert list(f.expiries) == sorted(exps) and len(f.vols) == 3  # past expiries dropped
