"""The node fails safe: once a log write fails it refuses every write and read with
503 store_unavailable (it never serves state that is not durable), and a restart recovers
exactly the durable state. Storage errors are never blamed on the client (no 400)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import sequencer
from sequencer.api.app import create_app
from sequencer.api.errors import status_of
from sequencer.core.chain import BadBlock
from sequencer.errors import OptrollupError, StoreUnavailable
from sequencer.node.node import Node
from sequencer.store import DataDirLocked, StoreError
from tests.sequencer.api.test_app import order_msg, sign
from tests.sequencer.node.kit import CALL, USERS, Kit

A = USERS[0]
U = 10**6


def _failing_write(*args, **kw) -> None:
    raise StoreError("No space left on device (injected)")


def test_a_failed_log_write_stops_the_node_until_restart(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    k.fund(A, 50_000 * U)
    k.feeds()
    app = create_app(k.node, tick_seconds=3600, monotonic=k.clock)
    with TestClient(app) as client:
        info = client.get("/v1/info").json()
        m = order_msg(A, nonce=1)
        ok = client.post("/v1/orders", json={"order": m, "signature": sign(info, "Order", m, A)})
        assert ok.status_code == 200 and ok.json()["status"] == "open"
        k.node.log.write = _failing_write  # the disk fills up
        m2 = order_msg(A, nonce=2, price=str(101 * U))
        r = client.post("/v1/orders", json={"order": m2, "signature": sign(info, "Order", m2, A)})
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable", r.text
        # the order was applied in memory but is not durable: nothing may show it, or anything
        for path in (f"/v1/book/{CALL}", "/v1/info", "/health", "/v1/health", "/v1/blocks/0",
                     f"/v1/orders/{ok.json()['orderHash']}"):
            got = client.get(path)
            assert got.status_code == 503 and got.json()["error"]["code"] == "store_unavailable", path
        m3 = order_msg(A, nonce=3)
        r = client.post("/v1/orders", json={"order": m3, "signature": sign(info, "Order", m3, A)})
        assert r.status_code == 503
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "optrollup_node_failed 1.0" in metrics.text
        with pytest.raises(Exception):
            with client.websocket_connect("/v1/stream"):
                pass
    node = Node(tmp_path, k.cfg, clock=k.clock)  # the operator restarts it
    try:
        assert node.failed is None
        book = node.core.engine.books[CALL]
        assert list(book.asks) == [100 * U]  # the durable order, not the one that failed
    finally:
        node.close()


def test_a_failed_node_refuses_every_write_path(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    k.fund(A, 50_000 * U)
    k.node.log.write = _failing_write
    with pytest.raises(StoreError):
        k.fund(USERS[1], U)  # the write fails: its future carries the error
    assert k.node.failed is not None
    for call in (lambda: k.node.credit_deposit(USERS[2].address, U, 2, 1),
                 lambda: k.node.seal(), lambda: k.node.operator_cancel_all(A.address, "x"),
                 lambda: k.place(A, price=100 * U)):
        with pytest.raises(StoreUnavailable):
            call()
    assert k.node.tick() is None
    k.node.committer.close()
    k.node.db.close()


def _our_error_classes() -> set[type[OptrollupError]]:
    for mod in pkgutil.walk_packages(sequencer.__path__, "sequencer."):
        if mod.name.startswith(("sequencer.api", "sequencer.node", "sequencer.core",
                                "sequencer.store", "sequencer.l1", "sequencer.errors")):
            importlib.import_module(mod.name)
    seen, todo = set(), [OptrollupError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return {c for c in seen if c.__module__.startswith(("sequencer.api", "sequencer.node",
            "sequencer.core", "sequencer.store", "sequencer.l1", "sequencer.errors"))}


def test_every_error_the_node_can_raise_has_a_status() -> None:
    classes = _our_error_classes()
    assert StoreError in classes and DataDirLocked in classes
    for cls in classes - {BadBlock}:  # BadBlock: raised by replay and the verifier, never a request
        status = status_of(cls.__new__(cls))
        assert status != 500, f"{cls.__module__}.{cls.__name__} has no HTTP status"
        if issubclass(cls, StoreError):
            assert status == 503, cls  # never the client's fault
