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


def test_parse_move() -> None:
    import pytest

    from sequencer.feeder import parse_move
    assert parse_move("+20%") == 1.2 and parse_move("-15%") == 0.85 and parse_move("1.5x") == 1.5
    for bad in ("20", "+x%", "-100%", "200x", ""):
        with pytest.raises(ValueError, match="spot move"):
            parse_move(bad)


def test_shock_moves_the_next_feed_once_and_survives_a_restart(tmp_path) -> None:
    """`feed shock`: the feeder answers the request, then its feeds walk to exactly before x
    factor in steps of at most 9 % (the oracle refuses a key more than 10 % from the others),
    each request applies once, and a restarted feeder does not apply it again. The node is a
    stand-in that records the feeds posted to it."""
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from sequencer.feeder import Feeder, request_shock

    posted: list[int] = []

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            posted.append(int(body["feed"]["spot"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    key = "0x" + "11" * 32
    now = 1_800_000_000
    try:
        f = Feeder(url, b"\0" * 32, [key], "ETH", 3000.0, [now + 86400 * 30], interval=0.05,
                   seed=7, control=tmp_path)
        f.start()
        got = request_shock(tmp_path, 1.2, timeout=10)
        assert got is not None and math.isclose(got["after"], got["before"] * 1.2)
        assert got["feeds"] == 3  # 1.09^2 < 1.2 <= 1.09^3
        shocked = round(got["after"] * 1e6)
        deadline = time.monotonic() + 10
        while shocked not in posted and time.monotonic() < deadline:
            time.sleep(0.01)
        f.stop.set()
        f.join(5)
        assert shocked in posted  # the target went out as it was
        walk = posted[posted.index(round(got["before"] * 1e6)) if round(got["before"] * 1e6) in posted
                      else 0:posted.index(shocked) + 1]
        assert all(b / a <= 1.09 + 1e-9 for a, b in zip(walk, walk[1:]))
        assert not f.apply_shock()  # once per request
        g = Feeder(url, b"\0" * 32, [key], "ETH", 3000.0, [now + 86400 * 30], control=tmp_path)
        assert g.shock_id == got["id"] and not g.apply_shock()  # a restart does not redo it
    finally:
        srv.shutdown()
