"""WebSocket /v1/stream: in process (TestClient) and over a real uvicorn with the SDK's stream."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from cext import to_checksum
from sequencer.api.app import create_app
from optrollup_client import (Client, ClientError, NewOrder, StreamClosed, StreamGap,
                              UnauthorizedError)
from optrollup_client._signing import Signer
from optrollup_client._stream import _Protocol
from sequencer.node import Limits
from tests.sequencer.client.live import live_node
from tests.sequencer.core.core_world import EXPIRY, ORACLES, SPOT
from tests.sequencer.node.kit import CALL, PUT, USERS, Kit

U = 10**6
P, Q = 100 * U, 10_000
A, B = USERS[:2]


@pytest.fixture
def env(tmp_path: Path):
    k = Kit(tmp_path, limits=Limits())
    for u in (A, B):
        k.fund(u, 50_000 * U)
    k.feeds()
    app = create_app(k.node, tick_seconds=0.05)
    with TestClient(app) as tc:
        a = Client("http://testserver", private_key=A.hex, http=tc, clock=k.clock)
        b = Client("http://testserver", private_key=B.hex, http=tc, clock=k.clock)
        yield k, app, tc, a, b


def auth(key, k: Kit) -> dict:
    return Signer.from_private_key(key.hex).auth_object(int(k.clock()))


def recv(ws, channel: str) -> dict:
    """The next message of `channel` (others, e.g. control replies, are skipped)."""
    for _ in range(1000):
        m = ws.receive_json()
        if m["channel"] == channel:
            return m
    raise AssertionError(f"no message on {channel}")


def test_book_snapshot_then_deltas_with_seq(env) -> None:
    k, app, tc, a, b = env
    a.place_order(CALL, "sell", P, 2 * Q)
    with tc.websocket_connect("/v1/stream") as ws:
        ws.send_json({"op": "subscribe", "channel": f"book.{CALL}", "id": 1})
        snap = recv(ws, f"book.{CALL}")
        assert snap["seq"] == 1 and snap["data"]["type"] == "snapshot"
        assert snap["data"]["asks"] == [[str(P), str(2 * Q)]] and snap["data"]["bids"] == []
        assert snap["data"]["sequence"] == tc.get(f"/v1/book/{CALL}").json()["sequence"]
        ack = recv(ws, "control")
        assert ack["data"] == {"op": "subscribed", "channel": f"book.{CALL}", "id": 1}
        b.place_order(CALL, "buy", P - U, Q)
        d1 = recv(ws, f"book.{CALL}")
        assert d1["seq"] == 2 and d1["data"]["type"] == "delta"
        assert d1["data"]["bids"] == [[str(P - U), str(Q)]] and d1["data"]["asks"] == []
        assert d1["data"]["sequence"] > snap["data"]["sequence"]
        b.place_order(CALL, "buy", P, 2 * Q, time_in_force="ioc")      # takes the whole ask
        d2 = recv(ws, f"book.{CALL}")
        assert d2["seq"] == 3 and d2["data"]["asks"] == [[str(P), "0"]]   # "0": level gone


def test_trades_blocks_and_heartbeats(env) -> None:
    k, app, tc, a, b = env
    app.state.stream.heartbeat_seconds = 0.2
    with tc.websocket_connect("/v1/stream") as ws:
        ws.send_json({"op": "subscribe", "channel": f"trades.{CALL}"})
        ws.send_json({"op": "subscribe", "channel": "blocks"})
        assert recv(ws, "heartbeat")["data"]["head"] == 0
        maker = a.place_order(CALL, "sell", P, Q)
        taker = b.place_order(CALL, "buy", P, Q)
        t = recv(ws, f"trades.{CALL}")
        assert t["seq"] == 1 and t["data"]["makerOrder"] == maker.order_hash
        assert t["data"]["takerOrder"] == taker.order_hash and t["data"]["price"] == str(P)
        k.clock.t += 2                                   # the ticker seals the block
        blk = recv(ws, "blocks")
        assert blk["seq"] == 1 and blk["data"]["header"]["number"] == 1
        assert blk["data"]["header"] == tc.get("/v1/blocks/1").json()["header"]
        hb = [recv(ws, "heartbeat")["seq"] for _ in range(2)]
        assert hb[1] == hb[0] + 1


def test_orders_channel_needs_auth_and_reports_own_orders(env) -> None:
    k, app, tc, a, b = env
    ch = f"orders.{to_checksum(A.address)}"
    with tc.websocket_connect("/v1/stream") as ws:
        ws.send_json({"op": "subscribe", "channel": ch, "id": 1})
        err = recv(ws, "control")["data"]
        assert err["op"] == "error" and err["status"] == 401 and err["error"]["code"] == "auth_required"
        ws.send_json({"op": "subscribe", "channel": ch, "auth": auth(B, k), "id": 2})
        assert recv(ws, "control")["data"]["error"]["code"] == "auth_account_mismatch"
        stale = auth(A, k) | {"timestamp": str(int(k.clock()) - 120)}
        ws.send_json({"op": "subscribe", "channel": ch, "auth": stale, "id": 3})
        assert recv(ws, "control")["data"]["error"]["code"] == "auth_expired"
        ws.send_json({"op": "cancel_on_disconnect", "enabled": True, "id": 4})
        assert recv(ws, "control")["data"]["error"]["code"] == "auth_required"
        resting = a.place_order(CALL, "sell", P, 2 * Q)
        ws.send_json({"op": "subscribe", "channel": ch, "auth": auth(A, k), "id": 5})
        snap = recv(ws, ch)
        assert [o["orderHash"] for o in snap["data"]["openOrders"]] == [resting.order_hash]
        assert recv(ws, "control")["data"]["op"] == "subscribed"
        b.place_order(CALL, "buy", P, Q, time_in_force="ioc")
        up = recv(ws, ch)["data"]
        assert (up["orderHash"], up["status"], up["remaining"], up["filledAmount"]) == \
            (resting.order_hash, "partially_filled", str(Q), str(Q))
        a.cancel(resting.order_hash)
        up = recv(ws, ch)["data"]
        assert (up["status"], up["remaining"]) == ("cancelled", "0")
        b.place_order(CALL, "buy", P, Q)                 # someone else's order: nothing on A's channel
        ws.send_json({"op": "ping", "id": 9})
        assert recv(ws, "control")["data"]["op"] == "pong"


def test_bad_requests_get_error_replies(env) -> None:
    k, app, tc, a, b = env
    with tc.websocket_connect("/v1/stream") as ws:
        for msg, code in [("{nope", "malformed_json"), ('{"op": "fly"}', "unknown_op"),
                          ('{"op": "subscribe", "channel": "weather"}', "unknown_channel"),
                          ('{"op": "subscribe", "channel": "book.ETH-1JAN27-1-C"}', "unknown_instrument"),
                          ('{"op": "subscribe", "channel": 5}', "invalid_type"),
                          ("[1]", "invalid_type"), ("x" * 70_000, "body_too_large")]:
            ws.send_text(msg)
            data = recv(ws, "control")["data"]
            assert data["op"] == "error" and data["error"]["code"] == code, (msg[:30], data)


def test_slow_consumer_is_disconnected_with_reason(env) -> None:
    k, app, tc, a, b = env
    app.state.stream.queue_size = 5
    res = a.place_orders([NewOrder(PUT, "sell", P, Q) for _ in range(20)])
    assert all(r.status == "open" for r in res)
    with tc.websocket_connect("/v1/stream") as ws:
        ws.send_json({"op": "subscribe", "channel": f"trades.{PUT}", "id": 1})
        assert recv(ws, "control")["data"]["op"] == "subscribed"
        b.place_order(PUT, "buy", P, 20 * Q, time_in_force="ioc")   # 20 trades at once
        with pytest.raises(WebSocketDisconnect) as e:
            for _ in range(30):
                ws.receive_json()
        assert e.value.code == 1008 and e.value.reason.startswith("slow_consumer")


def test_cancel_on_disconnect_cancels_the_accounts_orders(env) -> None:
    k, app, tc, a, b = env
    placed = a.place_order(CALL, "sell", P, Q)
    assert placed.order_hash in {o.order_hash for o in a.open_orders()}
    with tc.websocket_connect("/v1/stream") as ws:
        ws.send_json({"op": "auth", "auth": auth(A, k), "id": 1})
        ws.send_json({"op": "cancel_on_disconnect", "enabled": True, "id": 2})
        assert recv(ws, "control")["data"]["op"] == "authenticated"
        assert recv(ws, "control")["data"] == {"op": "cancel_on_disconnect", "enabled": True, "id": 2}
    deadline = time.monotonic() + 5
    while a.open_orders() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert a.open_orders() == []
    assert a.order(placed.order_hash).status == "cancelled"


def test_client_detects_gaps() -> None:
    p = _Protocol(lambda: None, heartbeats=False, check_gaps=True)
    p.feed('{"channel": "blocks", "seq": 1, "data": {}}')
    with pytest.raises(StreamGap) as e:
        p.feed('{"channel": "blocks", "seq": 3, "data": {}}')
    assert (e.value.expected, e.value.got) == (2, 3)


def test_sdk_stream_over_real_uvicorn(tmp_path: Path) -> None:
    with live_node(tmp_path) as lv:
        a = Client(lv.url, private_key=A.hex, clock=lv.clock)
        b = Client(lv.url, private_key=B.hex, clock=lv.clock)
        with pytest.raises(ClientError):
            Client(lv.url).stream("orders")                       # no key, no account
        with pytest.raises(UnauthorizedError) as e:
            with Client(lv.url, private_key=B.hex, account=to_checksum(A.address), clock=lv.clock) \
                    .stream(f"orders.{to_checksum(A.address)}"):
                pass
        assert e.value.code == "signer_mismatch"
        with a.stream(f"book.{CALL}", f"trades.{CALL}", "blocks", "orders") as s:
            first = s.recv(timeout=5)
            assert first.channel == f"book.{CALL}" and first.seq == 1 and first.data["type"] == "snapshot"
            snap = s.recv(timeout=5)
            assert snap.channel == f"orders.{to_checksum(A.address)}" and snap.data["openOrders"] == []
            maker = a.place_order(CALL, "sell", P, Q)
            b.place_order(CALL, "buy", P, Q)
            lv.clock.t += 2
            got: dict[str, list] = {}
            deadline = time.monotonic() + 10
            while "blocks" not in got or f"trades.{CALL}" not in got:
                assert time.monotonic() < deadline
                m = s.recv(timeout=5)
                got.setdefault(m.channel, []).append(m)
            assert got[f"trades.{CALL}"][0].data["makerOrder"] == maker.order_hash
            assert got["blocks"][0].data["header"]["number"] == 1
            seqs = [m.seq for m in got.get(f"book.{CALL}", [])]
            assert seqs == list(range(2, 2 + len(seqs)))             # contiguous after the snapshot
            s.ping()
        a.close()
        b.close()


@pytest.mark.timeout(30)
def test_stream_closed_carries_reason(tmp_path: Path) -> None:
    with live_node(tmp_path) as lv:
        lv.app.state.stream.queue_size = 3
        a = Client(lv.url, private_key=A.hex, clock=lv.clock)
        a.place_orders([NewOrder(PUT, "sell", P, Q) for _ in range(10)])
        with a.stream(f"trades.{PUT}") as s:
            Client(lv.url, private_key=B.hex, clock=lv.clock).place_order(PUT, "buy", P, 10 * Q,
                                                                          time_in_force="ioc")
            with pytest.raises(StreamClosed) as e:
                for _ in s:
                    pass
        assert e.value.close_code == 1008 and e.value.reason.startswith("slow_consumer")


def test_async_sdk_stream(tmp_path: Path) -> None:
    import asyncio

    from optrollup_client import AsyncClient

    with live_node(tmp_path) as lv:
        async def main() -> None:
            async with AsyncClient(lv.url, private_key=A.hex, clock=lv.clock) as a, \
                    AsyncClient(lv.url, private_key=B.hex, clock=lv.clock) as b:
                async with a.stream(f"trades.{CALL}", "orders") as s:
                    snap = await asyncio.wait_for(s.recv(), 5)
                    assert snap.data["type"] == "snapshot"
                    maker = await a.place_order(CALL, "sell", P, Q)
                    await b.place_order(CALL, "buy", P, Q)
                    seen = set()
                    async for m in s:
                        seen.add(m.channel)
                        if m.channel.startswith("orders."):
                            assert m.data["orderHash"] == maker.order_hash
                        if len(seen) == 2:
                            break
                    await s.ping()
        asyncio.run(main())


def test_liquidations_channel_and_the_accounts_own_events(tmp_path: Path) -> None:
    """Public `liquidations` and the liquidated account's `orders.<account>`: the auction's
    start from a block's detection, a take, then the fund's takeover."""
    from tests.sequencer.api.test_app import sign
    from tests.sequencer.node.test_liquidation import LIQ, POOR, RICH, seal
    k = Kit(tmp_path, block_time=10**9)
    seal(k, 0)
    for key, amount in ((RICH, 10**6 * U), (LIQ, 10**6 * U), (POOR, 1_000 * U)):
        k.fund(key, amount)
    k.feeds(3000 * U)
    assert k.place(POOR, is_buy=False, price=380 * U, amount=2 * U, nonce=1).status == "open"
    assert k.place(RICH, price=380 * U, amount=2 * U, nonce=1, tif=1).status == "filled"
    app = create_app(k.node, tick_seconds=3600, monotonic=k.clock)
    with TestClient(app) as tc, tc.websocket_connect("/v1/stream") as ws:
        info = tc.get("/v1/info").json()
        ws.send_json({"op": "subscribe", "channel": "liquidations"})
        ws.send_json({"op": "subscribe", "channel": f"orders.{to_checksum(POOR.address)}",
                      "auth": auth(POOR, k)})
        recv(ws, f"orders.{to_checksum(POOR.address)}")          # the snapshot
        for spot in (3300, 3600):
            seal(k)
            k.feeds(spot * U)
        seal(k)                                                   # detection: the auction starts
        ev = recv(ws, "liquidations")
        assert ev["data"] == {"type": "start", "account": to_checksum(POOR.address),
                              "timestamp": k.node.core.engine.state.auctions[POOR.address]}
        own = recv(ws, f"orders.{to_checksum(POOR.address)}")
        while own["data"].get("type") != "liquidation":
            own = recv(ws, f"orders.{to_checksum(POOR.address)}")
        assert own["data"]["event"] == "start"
        m = {"liquidator": to_checksum(LIQ.address), "account": to_checksum(POOR.address),
             "fractionPpm": 250_000, "maxPrice": str(10**12), "nonce": "1"}
        r = tc.post("/v1/liquidations", json={"liquidate": m, "signature": sign(info, "Liquidate", m, LIQ)})
        assert r.status_code == 200, r.text
        taken = recv(ws, "liquidations")["data"]
        assert taken["type"] == "taken" and taken["price"] == r.json()["price"]
        k.feeds(3960 * U)                                         # +10%, deep in the money
        seal(k)                                                   # taken over by the fund
        kinds = [recv(ws, "liquidations")["data"]["type"]]
        if k.node.core.engine.state.shortfall:
            kinds.append(recv(ws, "liquidations")["data"]["type"])
        assert kinds[0] == "takeover" and kinds[1:] in ([], ["shortfall"])


def test_marks_channel_snapshot_then_each_block_that_moved_them(env) -> None:
    k, app, tc, a, b = env
    info = tc.get("/v1/info").json()
    with tc.websocket_connect("/v1/stream") as ws:
        ws.send_json({"op": "subscribe", "channel": "marks"})
        snap = recv(ws, "marks")
        assert snap["seq"] == 1 and snap["data"]["type"] == "marks"
        assert snap["data"]["instruments"] == tc.get("/v1/instruments").json()["instruments"]
        before = {i["name"]: int(i["mark"]) for i in snap["data"]["instruments"]}
        k.clock.t += 2
        for key in ORACLES:                               # spot +10 %: every call's mark rises
            feed = {"underlying": "ETH", "spot": str(SPOT * 11 // 10), "timestamp": int(k.clock()),
                    "expiries": [EXPIRY - 86400 * 30, EXPIRY], "vols": [800_000, 800_000]}
            sig = Signer.from_private_key(key.hex).sign_typed(
                info["eip712"]["domain"], {"Feed": info["eip712"]["types"]["Feed"]}, "Feed", feed)
            assert tc.post("/v1/oracle/feeds", json={"feed": feed, "signature": sig}).status_code == 200
        k.clock.t += 2                                    # the ticker seals the block
        seqs = [1]
        for _ in range(5):    # marks move with time too: a block sealed before the feed may come first
            upd = recv(ws, "marks")
            seqs.append(upd["seq"])
            if all(i["spot"] == str(SPOT * 11 // 10) for i in upd["data"]["instruments"]):
                break
        assert seqs == list(range(1, len(seqs) + 1)) and upd["data"]["block"] >= 1
        after = {i["name"]: int(i["mark"]) for i in upd["data"]["instruments"]}
        assert after[CALL] > before[CALL] and after[PUT] < before[PUT]
        assert upd["data"]["instruments"] == tc.get("/v1/instruments").json()["instruments"]
