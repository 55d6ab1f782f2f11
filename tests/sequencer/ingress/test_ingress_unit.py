"""sequencer.ingress without processes: frames, the gateway's decoding/verification, and the
core's answers against the node's own HTTP front (in process, one node)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import msgpack
import pytest

from cext import Order
from sequencer.api.app import create_app
from sequencer.ingress import core as ingress_core
from sequencer.ingress import gateway
from sequencer.ingress.protocol import FrameReader, pack
from sequencer.node.node import Node
from sequencer.node.records import Signed, decode_record
from tests.e2e.serverkit import U, fund, instrument_names, node_config, open_limits, sign_orders
from tests.sequencer.core.core_world import Key

A, STRANGER = Key(81), Key(82)


def test_frames_split_anywhere() -> None:
    objs = [[1, "/v1/orders", "1.2.3.4", [None, [b"\x00" * 300]]], {"a": 1}, [2, 200, {"x": "y"}, []]]
    raw = b"".join(pack(o) for o in objs)
    for step in (1, 3, 7, len(raw)):
        r, got = FrameReader(), []
        for i in range(0, len(raw), step):
            got += r.feed(raw[i:i + step])
        assert got == objs and not r.buf


def test_frame_size_is_bounded() -> None:
    with pytest.raises(ValueError):
        FrameReader().feed(b"\xff\xff\xff\xff")


def _world(tmp_path: Path):
    cfg = node_config(time.time(), limits=open_limits())
    names, expiry = instrument_names(cfg.genesis.timestamp + 10)
    return cfg, names, expiry - 86400


def test_payload_decodes_and_verifies_like_the_node(tmp_path: Path) -> None:
    cfg, names, exp = _world(tmp_path)
    dom = cfg.genesis.config.domain
    o = Order(A.address, names[0], True, 100 * U, 10_000, 1, exp, 0, False, False)
    [(d, body)] = sign_orders(cfg, {A.address: A}, [o])
    err, items = gateway.payload("/v1/orders", json.dumps(body).encode(), None, dom, 500, 1 << 20)
    assert err is None and len(items) == 1
    rec = decode_record(items[0])
    assert isinstance(rec, Signed) and rec.msg == o and rec.digest == d and rec.signer == A.address
    # a batch keeps each item's error in place
    err, items = gateway.payload("/v1/orders/batch", json.dumps({"orders": [body, {"x": 1}]}).encode(),
                                 None, dom, 500, 1 << 20)
    assert err is None and isinstance(items[0], bytes)
    assert items[1]["error"]["code"] == "missing_field"
    # whole-request errors carry the status and body the error table gives
    err, items = gateway.payload("/v1/orders", b"{", None, dom, 500, 1 << 20)
    assert err[0] == 400 and err[1]["error"]["code"] == "malformed_json" and items == []
    err, _ = gateway.payload("/v1/orders", None, "999999999", dom, 500, 1 << 20)
    assert err[0] == 413 and err[1]["error"]["code"] == "body_too_large"


def test_core_answers_as_the_http_front(tmp_path: Path) -> None:
    """One node: the same order, forged then real, through the core's frame handler and then
    through the app's front (a duplicate there): statuses and bodies as the front renders them."""
    cfg, names, exp = _world(tmp_path)
    fund(tmp_path / "d", cfg, [A], 10**11)
    node = Node(tmp_path / "d", cfg)
    app = create_app(node)
    api = app.state.api
    dom = cfg.genesis.config.domain
    o = Order(A.address, names[0], True, 100 * U, 10_000, 1, exp, 0, False, False)
    [(_, body)] = sign_orders(cfg, {A.address: A}, [o])
    [(_, forged)] = sign_orders(cfg, {A.address: STRANGER}, [o])

    class Conn:
        answers: list = []

        def answer(self, *a):  # noqa: ANN002
            self.answers.append(list(a))

    async def run() -> list:
        srv = ingress_core.IngressServer(api, tmp_path / "x.sock")
        conn = Conn()
        async with app.router.lifespan_context(app):
            for i, b in enumerate((forged, body)):
                pl = gateway.payload("/v1/orders", json.dumps(b).encode(), None, dom, 500, 1 << 20)
                pl = msgpack.unpackb(msgpack.packb(pl, use_bin_type=True), raw=False)  # as framed
                await srv.handle(conn, [i, "/v1/orders", "127.0.0.1", pl])
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                dup = await c.post("/v1/orders", json=body)
        return [*conn.answers, [9, dup.status_code, dup.json(), []]]

    forged_ans, real_ans, dup = asyncio.run(run())
    assert forged_ans[1] == 401 and forged_ans[2]["error"]["code"] == "signer_mismatch"
    assert real_ans[1] == 200 and real_ans[2]["status"] == "open"
    assert dup[1] == 409 and dup[2]["error"]["code"] == "duplicate_order"
