"""The write routes' front (sequencer/api/fastpath.py) answers exactly as the FastAPI routes
behind it would: same status, headers that matter and body, for good requests and for every
kind of bad one; anything else passes through to FastAPI."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from fastapi.testclient import TestClient

from sequencer.api.app import create_app
from sequencer.api.fastpath import FastWrites
from sequencer.node import Limits
from tests.sequencer.api.test_app import order_msg, sign
from tests.sequencer.node.kit import USERS, Kit

U = 10**6
A, B = USERS[:2]


def behind_the_front(app) -> object:
    """The app's own stack without FastWrites (what a hot request skips)."""
    layer = app.middleware_stack
    while not isinstance(layer, FastWrites):
        layer = layer.app
    return layer.app


def test_front_and_routes_answer_alike(tmp_path: Path) -> None:
    k = Kit(tmp_path, limits=Limits(orders_per_second=1000, burst=1000, max_body_bytes=4096,
                                    ip_requests_per_second=1000, ip_burst=1000))
    k.fund(A, 50_000 * U)
    k.feeds()
    app = create_app(k.node, tick_seconds=3600, monotonic=k.clock)
    with TestClient(app) as front:
        info = front.get("/v1/info").json()
        direct = TestClient(behind_the_front(app))  # no lifespan: the node is already running

        def signed(nonce: int, **kw) -> bytes:
            m = order_msg(A, nonce=nonce, **kw)
            return json.dumps({"order": m, "signature": sign(info, "Order", m, A)}).encode()

        wrong_key = json.loads(signed(90))
        wrong_key["signature"] = sign(info, "Order", wrong_key["order"], B)
        cases = [  # (path, body): each sent once through each stack
            ("/v1/orders", b"{not json"),
            ("/v1/orders", b"[]"),
            ("/v1/orders", b'{"order": {}, "signature": "0x00"}'),
            ("/v1/orders", json.dumps(wrong_key).encode()),
            ("/v1/orders", b"x" * 5000),  # over max_body_bytes
            ("/v1/orders/batch", b'{"orders": []}'),
            ("/v1/quotes", b'{"quotes": [{"cancel": {}}]}'),
            ("/v1/orders/replace", b"{}"),
            ("/v1/cancel", b'{"cancel": {"account": "0x12"}, "signature": "0x"}'),
        ]
        for path, body in cases:
            a = front.post(path, content=body, headers={"content-type": "application/json"})
            b = direct.post(path, content=body, headers={"content-type": "application/json"})
            assert a.status_code == b.status_code and a.status_code in (200, 400, 401, 413), (path, a.text)
            assert a.json() == b.json(), path
        # accepted orders: the same answer shape (different nonces: different orders)
        a = front.post("/v1/orders", content=signed(1), headers={"content-type": "application/json"})
        b = direct.post("/v1/orders", content=signed(2), headers={"content-type": "application/json"})
        assert a.status_code == b.status_code == 200
        assert a.json().keys() == b.json().keys() and a.json()["status"] == b.json()["status"] == "open"
        # duplicates are refused alike
        a = front.post("/v1/orders", content=signed(2), headers={"content-type": "application/json"})
        assert a.status_code == 409 and a.json()["error"]["code"] == "duplicate_order"
        # the same latency histogram label for both
        text = front.get("/metrics").text
        assert 'optrollup_http_request_seconds_count{route="/v1/orders"}' in text
        # a GET and an unknown POST pass through to FastAPI
        assert front.get("/v1/orders/0x" + "00" * 32).status_code in (401, 404)
        r = front.post("/v1/nothing", content=b"{}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_front_charges_the_ip_budget_and_fails_safe(tmp_path: Path) -> None:
    k = Kit(tmp_path, limits=Limits(ip_requests_per_second=1, ip_burst=2))
    app = create_app(k.node, tick_seconds=3600, monotonic=k.clock)  # the clock stands still
    with TestClient(app) as client:
        codes = [client.post("/v1/orders", content=b"{}").status_code for _ in range(3)]
        assert codes == [400, 400, 429]
        r = client.post("/v1/orders", content=b"{}")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limited"
        k.clock.t += 100  # budget back
        k.node.fail("injected: the disk is gone")
        r = client.post("/v1/orders", content=b"{}")
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"


def test_a_slow_write_is_counted_and_logged_by_the_stage_that_held_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """With OPTROLLUP_REQUEST_STAGES=1, faults injected in two stages (a 40 ms disk, a 40 ms
    engine): each slow order is counted under the stage that took the time and logged with
    every stage's ms; a quick one is not. Without it nothing is traced."""
    off = Kit(tmp_path / "off")
    assert off.node.stages is None
    off.node.close()
    monkeypatch.setenv("OPTROLLUP_REQUEST_STAGES", "1")
    monkeypatch.setenv("OPTROLLUP_SLOW_REQUEST_MS", "25")
    other = Kit(tmp_path / "other")
    assert other.node.stages.threshold == 0.025  # read when the node starts
    other.node.close()
    monkeypatch.delenv("OPTROLLUP_SLOW_REQUEST_MS")
    k = Kit(tmp_path / "on")
    assert k.node.stages.threshold == 0.010
    k.fund(A, 50_000 * U)
    k.feeds()
    app = create_app(k.node, tick_seconds=3600, monotonic=k.clock)
    reg = k.node.metrics.registry
    k.node.stages.sample_every = 1  # sum every request's stages (the node samples 1 in 8)
    count = lambda stage: reg.get_sample_value("optrollup_slow_requests_total", {"stage": stage}) or 0
    with TestClient(app) as client, caplog.at_level(logging.WARNING, logger="optrollup.node"):
        info = client.get("/v1/info").json()

        def post(nonce: int) -> None:
            m = order_msg(A, nonce=nonce)
            r = client.post("/v1/orders", json={"order": m, "signature": sign(info, "Order", m, A)})
            assert r.status_code == 200, r.text

        post(1)
        assert sum(count(s) for s in ("fsync", "apply", "answer", "verify")) == 0
        write = k.node.log.write

        def slow_write(*a: Any, **kw: Any) -> None:
            time.sleep(0.04)
            write(*a, **kw)

        k.node.log.write = slow_write  # type: ignore[method-assign]
        post(2)
        assert count("fsync") == 1 and count("apply") == 0
        k.node.log.write = write  # type: ignore[method-assign]
        apply = k.node._apply

        def slow_apply(rec: Any, **kw: Any) -> Any:
            time.sleep(0.04)
            return apply(rec, **kw)

        k.node._apply = slow_apply  # type: ignore[method-assign]
        k.node.stages._logged = -float("inf")  # log this one too
        post(3)
        assert count("apply") == 1 and count("fsync") == 1
    # every write request's stages are summed (the mean of each over a run)
    assert reg.get_sample_value("optrollup_request_traced_total") == 3
    for stage in ("read", "verify", "apply", "fsync", "answer"):
        assert reg.get_sample_value("optrollup_request_stage_seconds_total", {"stage": stage}) > 0
    assert reg.get_sample_value("optrollup_request_stage_seconds_total", {"stage": "fsync"}) >= 0.04
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("slow request")]
    assert len(lines) == 2, lines
    for line, stage in zip(lines, ("fsync", "apply")):
        parts = dict(p.rsplit(" ", 1) for p in line.split("(")[1].rstrip(")").split(", "))
        assert list(parts)[:5] == ["read", "decode", "verify", "tick", "apply"], line
        assert float(parts[stage]) >= 40, line
        total = float(line.split(": ")[1].split(" ms")[0])
        assert sum(map(float, parts.values())) == pytest.approx(total, abs=0.1 * len(parts))
