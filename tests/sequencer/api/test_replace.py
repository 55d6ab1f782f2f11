"""Amend and mass quote over HTTP (`POST /v1/orders/replace`, `POST /v1/quotes`, design.md):
both or neither, per-pair answers, the failing part named, and a restart replays them exactly."""

from __future__ import annotations

from cext import to_checksum
from tests.sequencer.api.test_app import A, B, env, order_msg, sign  # noqa: F401 - env is a fixture
from tests.sequencer.node.kit import CALL

U = 10**6

__all__ = ["env"]


def signed_order(info: dict, key, **kw) -> dict:
    m = order_msg(key, **kw)
    return {"order": m, "signature": sign(info, "Order", m, key)}


def signed_cancel(info: dict, key, order_hash: str) -> dict:
    c = {"account": to_checksum(key.address), "orderHash": order_hash}
    return {"cancel": c, "signature": sign(info, "Cancel", c, key)}


def open_orders(k, key) -> dict[str, int]:
    return {"0x" + d.hex(): r.remaining for d, r in k.node.core.engine.by_account.get(key.address, {})
            .get(CALL, {}).items()}


def test_replace_over_http(env) -> None:
    k, client, info = env
    old = client.post("/v1/orders", json=signed_order(info, A, nonce=1, price=str(150 * U))).json()["orderHash"]
    body = {"cancel": signed_cancel(info, A, old), "order": signed_order(info, A, nonce=2, price=str(140 * U))}
    r = client.post("/v1/orders/replace", json=body)
    assert r.status_code == 200, r.text
    new = r.json()["orderHash"]
    assert r.json()["status"] == "open" and open_orders(k, A) == {new: 10_000}
    # the same cancel again: the old order is gone, so nothing happens and the cancel is blamed
    again = {"cancel": signed_cancel(info, A, old), "order": signed_order(info, A, nonce=3)}
    r = client.post("/v1/orders/replace", json=again)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_order"
    assert r.json()["error"]["message"].startswith("cancel: ")
    assert open_orders(k, A) == {new: 10_000}
    # a bad order leaves the old one in place, and says the order failed
    bad = {"cancel": signed_cancel(info, A, new), "order": signed_order(info, A, nonce=4, amount=str(10**12))}
    r = client.post("/v1/orders/replace", json=bad)
    assert r.status_code == 422 and r.json()["error"]["code"] == "insufficient_margin"
    assert r.json()["error"]["message"].startswith("order: ")
    assert open_orders(k, A) == {new: 10_000}
    # malformed bodies are 4xx with the field named
    r = client.post("/v1/orders/replace", json={"cancel": signed_cancel(info, A, new)})
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_field" and "order" in r.json()["error"]["message"]
    forged = {"cancel": signed_cancel(info, B, new), "order": signed_order(info, A, nonce=5)}
    forged["cancel"]["cancel"]["account"] = to_checksum(A.address)  # B's signature over A's cancel
    r = client.post("/v1/orders/replace", json=forged)
    assert 400 <= r.status_code < 500 and r.json()["error"]["message"].startswith("cancel: ")
    assert open_orders(k, A) == {new: 10_000}


def test_mass_quote_answers_per_pair_and_replays(env) -> None:
    k, client, info = env
    hashes = []
    for i in range(3):
        r = client.post("/v1/orders", json=signed_order(info, A, nonce=10 + i, price=str((150 + i) * U)))
        hashes.append(r.json()["orderHash"])
    quotes = [{"cancel": signed_cancel(info, A, hashes[0]), "order": signed_order(info, A, nonce=20, price=str(145 * U))},
              {"cancel": signed_cancel(info, A, "0x" + "11" * 32), "order": signed_order(info, A, nonce=21)},
              {"cancel": signed_cancel(info, A, hashes[2]), "order": signed_order(info, A, nonce=22, price=str(147 * U))},
              {"cancel": signed_cancel(info, A, hashes[1])}]
    r = client.post("/v1/quotes", json={"quotes": quotes})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert res[0]["status"] == "open" and res[2]["status"] == "open"
    assert res[1]["error"]["code"] == "unknown_order" and res[1]["error"]["message"].startswith("cancel: ")
    assert res[3]["error"]["code"] == "missing_field"
    want = {res[0]["orderHash"]: 10_000, hashes[1]: 10_000, res[2]["orderHash"]: 10_000}
    assert open_orders(k, A) == want
    book = k.node.core.engine.books[CALL]
    queues = {p: list(level) for p, level in book.asks.items()}
    # restart: the log replays the amends to the same book, queues and orders
    k.reopen()
    assert open_orders(k, A) == want
    book = k.node.core.engine.books[CALL]
    assert {p: list(level) for p, level in book.asks.items()} == queues
    r = client.post("/v1/quotes", json={"quotes": [quotes[0]] * 501})  # past the 64 KiB body limit first
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert open_orders(k, A) == want
