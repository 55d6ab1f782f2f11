"""Intrusion response through the app: an IP over the bad-signature threshold gets 403
ip_blocked on every route (FastAPI routes, the fast write front, an ingress worker's frames, the
WebSocket handshake and an open stream), until the cool-down ends; the account it claimed keeps
its budget and its orders. `GET /v1/admin/alerts` needs the operator's auth headers; alerts are
counted in /metrics and reach the webhook, and a dead webhook does not slow trading."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import msgpack
import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from cext import to_checksum
from sequencer.api.app import create_app
from sequencer.core.eip712 import eip712_types
from sequencer.ingress import core as ingress_core
from sequencer.ingress import gateway
from sequencer.monitor import BadSignatureSettings, MonitorSettings, WebhookSettings, attach
from sequencer.node import Limits
from tests.sequencer.api.test_app import auth, order_msg, sign
from tests.sequencer.core.core_world import OPERATOR
from tests.sequencer.monitor.webhook_server import dead_server, recording_server
from tests.sequencer.node.kit import T0, USERS, Kit

U = 10**6
A, B = USERS[:2]
ATTACKER, HONEST = ("6.6.6.6", 4444), ("1.1.1.1", 1111)
LIMITS = Limits(orders_per_second=5, burst=20, ip_requests_per_second=1000, ip_burst=1000)


def settings(**webhook) -> MonitorSettings:
    return MonitorSettings(
        bad_signatures=BadSignatureSettings(window_seconds=60, per_ip=5, per_account=5, block_seconds=600),
        webhook=WebhookSettings(**webhook) if webhook else WebhookSettings())


def setup(tmp_path: Path, **webhook) -> tuple[Kit, object]:
    k = Kit(tmp_path, limits=LIMITS, monitor=settings(**webhook))
    for u in (A, B):
        k.fund(u, 50_000 * U)
    k.feeds()
    return k, create_app(k.node, tick_seconds=3600, monotonic=k.clock)


def forged(info: dict, nonce: int) -> dict:
    """An order claiming A, signed by B."""
    m = order_msg(A, nonce=nonce)
    return {"order": m, "signature": sign(info, "Order", m, B)}


def real(info: dict, nonce: int, **kw) -> dict:
    m = order_msg(A, nonce=nonce, **kw)
    return {"order": m, "signature": sign(info, "Order", m, A)}


def test_blocked_ip_gets_403_everywhere_and_the_claimed_account_still_trades(tmp_path: Path) -> None:
    k, app = setup(tmp_path)
    with TestClient(app, client=HONEST) as honest:
        info = honest.get("/v1/info").json()
        resting = honest.post("/v1/orders", json=real(info, 1)).json()
        assert resting["status"] == "open"
        bad = TestClient(app, client=ATTACKER)  # the app already runs (honest's lifespan)
        with bad.websocket_connect("/v1/stream") as ws:  # opened before the block
            for i in range(6):  # the 6th goes over per_ip = 5
                r = bad.post("/v1/orders", json=forged(info, 100 + i))
                assert r.status_code == 401 and r.json()["error"]["code"] == "signer_mismatch"
            # the fast write front
            r = bad.post("/v1/orders", json=forged(info, 200))
            assert r.status_code == 403 and r.json()["error"]["code"] == "ip_blocked"
            assert "until" in r.json()["error"]["message"] and int(r.headers["retry-after"]) > 500
            r = bad.post("/v1/orders/batch", json={"orders": [real(info, 201)]})
            assert r.status_code == 403 and r.json()["error"]["code"] == "ip_blocked"
            # FastAPI routes, public and private, /metrics included
            for path in ("/v1/info", "/v1/book/" + order_msg(A)["instrument"], "/metrics",
                         f"/v1/accounts/{to_checksum(A.address)}"):
                r = bad.get(path)
                assert r.status_code == 403 and r.json()["error"]["code"] == "ip_blocked", path
            # an open stream is dropped at its next message
            ws.send_json({"op": "ping", "id": 1})
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    ws.receive_json()
            assert closed.value.code == 1008 and "ip_blocked" in closed.value.reason
        # a new stream is refused at the handshake with the 403
        with pytest.raises(WebSocketDenialResponse) as denied:
            with bad.websocket_connect("/v1/stream"):
                pass
        assert denied.value.status_code == 403
        assert json.loads(denied.value.content)["error"]["code"] == "ip_blocked"

        # A, from its own IP: its resting order untouched, its whole burst of 20 its own
        acct = honest.get(f"/v1/accounts/{to_checksum(A.address)}", headers=auth(A)).json()
        assert [o["orderHash"] for o in acct["openOrders"]] == [resting["orderHash"]]
        codes = [honest.post("/v1/orders", json=real(info, 1000 + i)).status_code for i in range(20)]
        assert codes == [200] * 19 + [429]  # burst 20: the resting order took one, forgeries none
        with honest.websocket_connect("/v1/stream") as ws:  # other IPs are not affected
            ws.send_json({"op": "ping", "id": 7})
            assert ws.receive_json()["data"]["op"] == "pong"

        # the alerts
        kinds = {a.kind: a for a in app.state.api.monitor.store.list()}
        assert kinds["bad_signature_ip"].subject == "6.6.6.6"
        assert kinds["bad_signature_account"].subject == to_checksum(A.address)
        text = honest.get("/metrics").text
        assert 'optrollup_alerts_total{kind="bad_signature_ip",severity="warning"} 1.0' in text

        # the cool-down ends
        k.clock.t += 601
        assert bad.get("/v1/info").status_code == 200


def test_forged_frames_from_an_ingress_worker_block_its_client_ip(tmp_path: Path) -> None:
    k, app = setup(tmp_path)
    api = app.state.api
    dom = k.cfg.genesis.config.domain

    class Conn:
        def __init__(self) -> None:
            self.answers: list = []

        def answer(self, *a) -> None:
            self.answers.append(list(a))

    def frame(i: int, ip: str, body: dict) -> list:
        pl = gateway.payload("/v1/orders", json.dumps(body).encode(), None, dom, 500, 1 << 20)
        return [i, "/v1/orders", ip, msgpack.unpackb(msgpack.packb(pl, use_bin_type=True), raw=False)]

    async def run() -> list:
        srv = ingress_core.IngressServer(api, tmp_path / "x.sock")
        conn = Conn()
        async with app.router.lifespan_context(app):
            info = {"eip712": {"domain": {"name": "optrollup", "version": "1",
                                          "chainId": k.cfg.chain_id,
                                          "verifyingContract": to_checksum(bytes.fromhex(k.cfg.rollup[2:]))},
                               "types": eip712_types()}}
            for i in range(7):
                await srv.handle(conn, frame(i, "6.6.6.6", forged(info, 100 + i)))
            await srv.handle(conn, frame(7, "6.6.6.6", real(info, 5)))  # even a good one
            await srv.handle(conn, frame(8, "127.0.0.1", real(info, 6)))
        return conn.answers

    answers = asyncio.run(run())
    assert [a[1] for a in answers] == [401] * 6 + [403, 403, 200]
    assert answers[6][2]["error"]["code"] == "ip_blocked"
    assert dict(answers[6][3])["Retry-After"]
    assert answers[8][2]["status"] == "open"


def test_admin_alerts_need_the_operator(tmp_path: Path) -> None:
    _k, app = setup(tmp_path)
    with TestClient(app, client=HONEST) as c:
        info = c.get("/v1/info").json()
        bad = TestClient(app, client=ATTACKER)
        for i in range(6):
            bad.post("/v1/orders", json=forged(info, 100 + i))
        r = c.get("/v1/admin/alerts")
        assert r.status_code == 401 and r.json()["error"]["code"] == "auth_required"
        r = c.get("/v1/admin/alerts", headers=auth(A))  # a valid signature, not the operator
        assert r.status_code == 401 and r.json()["error"]["code"] == "operator_required"
        h = auth(OPERATOR)
        h["X-Optrollup-Signature"] = auth(A)["X-Optrollup-Signature"]  # claims the operator
        r = c.get("/v1/admin/alerts", headers=h)
        assert r.status_code == 401 and r.json()["error"]["code"] == "signer_mismatch"
        r = c.get("/v1/admin/alerts", headers=auth(OPERATOR))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == 2 and {a["kind"] for a in body["alerts"]} == {
            "bad_signature_ip", "bad_signature_account"}
        a = body["alerts"][0]
        assert set(a) == {"id", "kind", "severity", "subject", "detail", "firstSeen", "lastSeen", "count"}
        r = c.get("/v1/admin/alerts", params={"kind": "bad_signature_ip"}, headers=auth(OPERATOR))
        assert [x["subject"] for x in r.json()["alerts"]] == ["6.6.6.6"]
        r = c.get("/v1/admin/alerts", params={"since": T0 + 1}, headers=auth(OPERATOR))
        assert r.json()["alerts"] == []


def test_forged_auth_headers_count_as_bad_signatures(tmp_path: Path) -> None:
    _k, app = setup(tmp_path)
    with TestClient(app, client=ATTACKER) as bad:
        h = auth(A)
        h["X-Optrollup-Signature"] = auth(B)["X-Optrollup-Signature"]
        codes = [bad.get(f"/v1/accounts/{to_checksum(A.address)}", headers=h).status_code
                 for _ in range(7)]
        assert codes == [401] * 6 + [403]
        # a missing or expired header is not a bad signature
    with TestClient(app, client=("2.2.2.2", 1)) as other:
        codes = [other.get(f"/v1/accounts/{to_checksum(A.address)}").status_code for _ in range(10)]
        codes += [other.get(f"/v1/accounts/{to_checksum(A.address)}",
                            headers=auth(A, T0 - 3600)).status_code for _ in range(10)]
        assert set(codes) == {401}


def test_alerts_reach_the_webhook_with_the_app(tmp_path: Path) -> None:
    with recording_server() as (url, rec):
        _k, app = setup(tmp_path, url=url, backoff_seconds=0.05)
        mon = attach(app)
        with TestClient(app, client=HONEST) as c:
            assert mon.webhook is not None and mon._thread is not None  # started with the app
            info = c.get("/v1/info").json()
            bad = TestClient(app, client=ATTACKER)
            for i in range(6):
                bad.post("/v1/orders", json=forged(info, 100 + i))
            got = rec.wait_for(2)
        assert mon.webhook is None and mon._thread is None  # stopped with the app
    assert {b["alert"]["kind"] for b in got} == {"bad_signature_ip", "bad_signature_account"}
    assert {b["source"] for b in got} == {"sequencer"}


def test_a_dead_webhook_does_not_slow_trading(tmp_path: Path) -> None:
    with dead_server() as url:
        _k, app = setup(tmp_path, url=url, timeout_seconds=30, retries=5, queue=10)
        mon = attach(app)
        with TestClient(app, client=HONEST) as c:
            info = c.get("/v1/info").json()
            for n in range(40):  # 40 IPs blocked: 80 alerts for a webhook that never answers
                bad = TestClient(app, client=(f"6.6.6.{n}", 1))
                for i in range(6):
                    bad.post("/v1/orders", json=forged(info, 1000 * n + i))
            assert len(mon.store) == 41 and mon.webhook.dropped > 0
            t0 = time.perf_counter()
            codes = [c.post("/v1/orders", json=real(info, 50_000 + i)).status_code for i in range(15)]
            took = time.perf_counter() - t0
            assert codes == [200] * 15
            assert took < 3.0, took
        # shutting down does not wait for the dead webhook's timeout


def test_the_worker_thread_detects_wash_trading_in_a_running_app(tmp_path: Path) -> None:
    """attach(app): the worker reads the log and the node's trade events on its own thread."""
    _k, app = setup(tmp_path)
    mon = attach(app)
    key = USERS[9]
    with TestClient(app, client=HONEST) as c:
        info = c.get("/v1/info").json()
        for who in (A, B):
            m = {"account": to_checksum(who.address), "key": to_checksum(key.address),
                 "expiry": T0 + 86400}
            r = c.post("/v1/session_keys", json={"sessionKey": m, "signature": sign(info, "SessionKey", m, who)})
            assert r.status_code == 200, r.text
        assert c.post("/v1/orders", json=real(info, 1, isBuy=False)).json()["status"] == "open"
        mb = order_msg(B, nonce=1, isBuy=True)
        r = c.post("/v1/orders", json={"order": mb, "signature": sign(info, "Order", mb, B)})
        assert r.json()["status"] == "filled", r.text
        deadline = time.monotonic() + 10
        while not [a for a in mon.store.list() if a.kind == "wash_trade"] and time.monotonic() < deadline:
            time.sleep(0.05)
        [a] = [a for a in mon.store.list() if a.kind == "wash_trade"]
        assert "key:" + to_checksum(key.address) in a.detail
