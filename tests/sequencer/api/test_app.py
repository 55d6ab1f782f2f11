"""The HTTP API in process (FastAPI TestClient) over a real node on LevelDB."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from fastapi.testclient import TestClient

from cext import to_checksum
from sequencer.api.app import create_app
from sequencer.api.auth import auth_message
from sequencer.node import Limits
from tests.sequencer.core.core_world import EXPIRY, ORACLES
from tests.sequencer.node.kit import CALL, SPOT, T0, USERS, Kit

U = 10**6
A, B = USERS[:2]


@pytest.fixture
def env(tmp_path: Path):
    k = Kit(tmp_path, limits=Limits(orders_per_second=5, burst=20, max_body_bytes=64 * 1024))
    for u in (A, B):
        k.fund(u, 50_000 * U)
    app = create_app(k.node, tick_seconds=3600, monotonic=k.clock)  # buckets refill only if we say
    with TestClient(app) as client:
        info = client.get("/v1/info").json()
        for key in ORACLES:
            feed = {"underlying": "ETH", "spot": str(SPOT), "timestamp": T0,
                    "expiries": [EXPIRY - 86400 * 30, EXPIRY], "vols": [800_000, 800_000]}
            r = client.post("/v1/oracle/feeds", json={"feed": feed, "signature": sign(info, "Feed", feed, key)})
            assert r.status_code == 200, r.text
        yield k, client, info


def sign(info: dict, primary: str, message: dict, key) -> str:
    """Sign with eth-account using only what /v1/info publishes."""
    types = {primary: info["eip712"]["types"][primary]}
    msg = encode_typed_data(domain_data=info["eip712"]["domain"], message_types=types,
                            message_data=message)
    return "0x" + bytes(Account.from_key(key.priv.secret).sign_message(msg).signature).hex()


def order_msg(key, **kw) -> dict:
    m = {"account": to_checksum(key.address), "instrument": CALL, "isBuy": False,
         "price": str(100 * U), "amount": "10000", "nonce": 1, "expiry": T0 + 3600,
         "timeInForce": 0, "postOnly": False, "reduceOnly": False}
    m.update(kw)
    return m


def post_order(client, info, key, **kw):
    m = order_msg(key, **kw)
    return client.post("/v1/orders", json={"order": m, "signature": sign(info, "Order", m, key)})


def auth(key, ts: int = T0) -> dict:
    sig = Account.from_key(key.priv.secret).sign_message(encode_defunct(auth_message(key.address, ts))).signature
    return {"X-Optrollup-Account": to_checksum(key.address), "X-Optrollup-Timestamp": str(ts),
            "X-Optrollup-Signature": "0x" + bytes(sig).hex()}


def test_info_publishes_domain_and_types(env) -> None:
    k, client, info = env
    assert info["chainId"] == k.cfg.chain_id
    assert info["eip712"]["types"]["Order"][0] == {"name": "account", "type": "address"}
    assert set(info["eip712"]["types"]) >= {"EIP712Domain", "Order", "Cancel", "CancelAll",
                                            "Withdraw", "SessionKey"}
    assert info["collateral"] == {"symbol": "USDC", "decimals": 6}


def test_order_signed_by_eth_account_trades(env) -> None:
    k, client, info = env
    r = post_order(client, info, A)
    assert r.status_code == 200, r.text
    maker = r.json()
    assert maker["status"] == "open" and maker["filledAmount"] == "0"
    r = post_order(client, info, B, isBuy=True, nonce=2, timeInForce=1)
    body = r.json()
    assert body["status"] == "filled" and body["filledAmount"] == "10000"
    assert body["fills"][0]["makerOrder"] == maker["orderHash"]
    assert body["fills"][0]["price"] == str(100 * U)
    trades = client.get("/v1/trades").json()["trades"]
    assert trades[0]["takerOrder"] == body["orderHash"]


def test_bad_inputs_get_4xx_with_stable_codes(env) -> None:
    k, client, info = env
    cases = [
        (client.post("/v1/orders", content=b"{not json"), 400, "malformed_json"),
        (client.post("/v1/orders", json={"order": order_msg(A), "signature": "0x00", "x": 1}), 400, "unknown_field"),
        (client.post("/v1/orders", json={"order": order_msg(A, price=-5), "signature": "0x" + "11" * 64 + "1b"}), 400, "invalid_number"),
        (client.post("/v1/orders", json={"order": order_msg(A), "signature": "0x" + "11" * 64}), 400, "invalid_length"),
        (client.post("/v1/orders", content=b"x" * 70_000), 413, "body_too_large"),
        (client.get("/v1/nope"), 404, "not_found"),
        (client.delete("/v1/orders"), 405, "method_not_allowed"),
        (client.get("/v1/blocks/99999"), 404, "block_not_found"),
        (client.get("/v1/blocks/abc"), 400, "invalid_request"),
        (client.get("/v1/book/ETH-1JAN27-1-C"), 404, "unknown_instrument"),
        (post_order(client, info, A, price=str(100 * U + 1)), 400, "price_not_on_tick"),
        (post_order(client, info, A, instrument="ETH-27DEC26-5000-C"), 404, "unknown_instrument"),
        (post_order(client, info, A, amount=str(10**12), nonce=9), 422, "insufficient_margin"),
    ]
    deep = client.post("/v1/orders", content=b"[" * 30_000 + b"]" * 30_000)  # never a 500:
    assert deep.status_code == 400 and deep.json()["error"]["code"] in ("malformed_json", "invalid_type")
    for r, status, code in cases:
        assert r.status_code == status, (code, r.status_code, r.text)
        assert r.json()["error"]["code"] == code, r.text
        assert r.json()["error"]["message"]


def test_wrong_signer_names_recovered_and_expected(env) -> None:
    k, client, info = env
    m = order_msg(A)
    r = client.post("/v1/orders", json={"order": m, "signature": sign(info, "Order", m, B)})
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "signer_mismatch"
    assert to_checksum(B.address).lower() in err["message"].lower()
    assert to_checksum(A.address).lower() in err["message"].lower()


def test_replayed_order_is_a_conflict(env) -> None:
    k, client, info = env
    m = order_msg(A, nonce=77)
    body = {"order": m, "signature": sign(info, "Order", m, A)}
    assert client.post("/v1/orders", json=body).status_code == 200
    r = client.post("/v1/orders", json=body)
    assert r.status_code == 409 and r.json()["error"]["code"] == "duplicate_order"


def test_batch_has_per_item_results(env) -> None:
    k, client, info = env
    good = order_msg(A, nonce=10)
    bad = order_msg(A, nonce=11, price="123")
    r = client.post("/v1/orders/batch", json={"orders": [
        {"order": good, "signature": sign(info, "Order", good, A)},
        {"order": bad, "signature": sign(info, "Order", bad, A)},
        {"order": {"account": "0x12"}, "signature": "0x"},
    ]})
    assert r.status_code == 200
    res = r.json()["results"]
    assert res[0]["status"] == "open"
    assert res[1]["error"]["code"] == "price_not_on_tick"
    assert res[2]["error"]["code"] == "invalid_length"  # the envelope is checked first
    too_many = client.post("/v1/orders/batch", json={"orders": [{}] * 501})
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "batch_too_large"


def test_rate_limit_is_429_with_retry_after(env) -> None:
    k, client, info = env
    codes = [post_order(client, info, A, nonce=1000 + i).status_code for i in range(40)]
    assert codes == [200] * 20 + [429] * 20  # burst 20, and the clock does not move
    r = post_order(client, info, A, nonce=5000)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"
    k.clock.t += 1  # 5 orders/s come back
    assert [post_order(client, info, A, nonce=6000 + i).status_code for i in range(6)] == [200] * 5 + [429]


def test_a_stranger_cannot_spend_an_accounts_budget(env) -> None:
    """Issue 10 #4: orders claiming A but signed by someone else are charged to nobody's
    account budget (only the sender's IP); A's own full burst still goes through."""
    k, client, info = env
    for i in range(100):
        m = order_msg(A, nonce=100 + i)
        r = client.post("/v1/orders", json={"order": m, "signature": sign(info, "Order", m, B)})
        assert r.status_code == 401 and r.json()["error"]["code"] == "signer_mismatch", r.text
    batch = [{"order": order_msg(A, nonce=300 + i), "signature": sign(info, "Order", order_msg(A, nonce=300 + i), B)}
             for i in range(50)]
    res = client.post("/v1/orders/batch", json={"orders": batch}).json()["results"]
    assert {r["error"]["code"] for r in res} == {"signer_mismatch"}
    codes = [post_order(client, info, A, nonce=1000 + i).status_code for i in range(21)]
    assert codes == [200] * 20 + [429]  # A's whole burst of 20 is A's


def test_one_ip_budget_covers_every_route_and_the_websocket(tmp_path: Path) -> None:
    k = Kit(tmp_path, limits=Limits(ip_requests_per_second=1, ip_burst=6))
    app = create_app(k.node, tick_seconds=3600, monotonic=k.clock)
    with TestClient(app) as client:
        got = [client.get(p).status_code for p in
               ("/v1/info", "/v1/instruments", "/openapi.json", "/v1/blocks/0", "/v1/nope")]
        assert got == [200, 200, 200, 200, 404]
        with client.websocket_connect("/v1/stream") as ws:  # the 6th: the connection
            ws.send_json({"op": "ping", "id": 1})           # the 7th: a message over it
            reply = ws.receive_json()
            assert reply["channel"] == "control" and reply["data"]["op"] == "error", reply
            assert reply["data"]["error"]["code"] == "rate_limited"
        r = client.get("/v1/info")
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        with pytest.raises(Exception):  # refused at the handshake
            with client.websocket_connect("/v1/stream"):
                pass
        k.clock.t += 1
        assert client.get("/v1/info").status_code == 200


def test_private_reads_need_auth(env) -> None:
    k, client, info = env
    r = client.get(f"/v1/accounts/{to_checksum(A.address)}")
    assert r.status_code == 401 and r.json()["error"]["code"] == "auth_required"
    r = client.get(f"/v1/accounts/{to_checksum(A.address)}", headers=auth(B))
    assert r.status_code == 400 and r.json()["error"]["code"] == "auth_account_mismatch"
    r = client.get(f"/v1/accounts/{to_checksum(A.address)}", headers=auth(A, T0 - 60))
    assert r.status_code == 401 and r.json()["error"]["code"] == "auth_expired"
    placed = post_order(client, info, A, nonce=3).json()
    r = client.get(f"/v1/accounts/{to_checksum(A.address)}", headers=auth(A))
    assert r.status_code == 200, r.text
    acct = r.json()
    assert acct["collateral"] == str(50_000 * U)
    assert int(acct["initialMargin"]) > 0 and int(acct["available"]) < 50_000 * U
    assert acct["openOrders"][0]["orderHash"] == placed["orderHash"]
    r = client.get(f"/v1/orders/{placed['orderHash']}", headers=auth(A))
    assert r.json()["status"] == "open"
    assert client.get(f"/v1/orders/{placed['orderHash']}", headers=auth(B)).status_code == 404


def test_cancel_and_cancel_all(env) -> None:
    k, client, info = env
    placed = post_order(client, info, A, nonce=4).json()
    c = {"account": to_checksum(A.address), "orderHash": placed["orderHash"]}
    r = client.post("/v1/cancel", json={"cancel": c, "signature": sign(info, "Cancel", c, A)})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    r = client.post("/v1/cancel", json={"cancel": c, "signature": sign(info, "Cancel", c, A)})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_order"
    post_order(client, info, A, nonce=5)
    ca = {"account": to_checksum(A.address), "instrument": "", "timestamp": T0}
    r = client.post("/v1/cancel_all", json={"cancelAll": ca, "signature": sign(info, "CancelAll", ca, A)})
    assert r.json() == {"cancelled": 1}
    r = client.post("/v1/cancel_all", json={"cancelAll": ca, "signature": sign(info, "CancelAll", ca, A)})
    assert r.status_code == 409 and r.json()["error"]["code"] == "cancel_all_replayed"


def test_withdrawal_block_and_proofs(env) -> None:
    k, client, info = env
    w = {"account": to_checksum(A.address), "recipient": to_checksum(A.address), "amount": str(5 * U), "nonce": 0}
    r = client.post("/v1/withdrawals", json={"withdraw": w, "signature": sign(info, "Withdraw", w, A)})
    assert r.status_code == 200, r.text
    wh = r.json()["withdrawalHash"]
    assert client.get(f"/v1/withdrawals/{wh}").json()["status"] == "pending"
    k.clock.t += 2
    k.node.seal().result(timeout=10)
    got = client.get(f"/v1/withdrawals/{wh}").json()
    assert got["status"] == "pending" and got["block"] >= 1   # sealed; no L1 in this test
    latest = client.get("/v1/blocks/latest").json()
    assert latest["header"]["number"] == got["block"] and len(latest["txs"]) >= 1
    assert client.get("/v1/blocks/latest/header").json() == {"header": latest["header"]}
    p = client.get(f"/v1/proofs/accounts/{to_checksum(A.address)}").json()
    assert len(p["proof"]) == 32 and p["stateRoot"] == latest["header"]["stateRoot"]
    assert p["pendingChanges"] is False
    assert client.get("/v1/withdrawals/0x" + "00" * 32).status_code == 404
    by_nonce = client.get(f"/v1/withdrawals/{to_checksum(A.address)}/0").json()  # the same leaf
    assert by_nonce == {**got, "status": by_nonce["status"]} and by_nonce["withdrawalHash"] == wh


def test_health_metrics_openapi(env) -> None:
    k, client, info = env
    assert client.get("/health").json()["status"] == "ok"
    post_order(client, info, A, nonce=6)
    client.get("/v1/blocks/99999")
    text = client.get("/metrics").text
    assert "optrollup_requests_accepted_total" in text and "optrollup_log_fsync_seconds" in text
    assert 'optrollup_http_request_seconds_count{route="/v1/orders"}' in text
    assert 'optrollup_requests_rejected_total{code="block_not_found",kind="http"} 1.0' in text
    spec = client.get("/openapi.json").json()
    schema = spec["paths"]["/v1/orders"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["order", "signature"]
    assert client.get("/docs").status_code == 200
    native = getattr(client.app, "_native_telemetry", None)  # FastAPI >= 0.165: off (api/telemetry.py)
    assert native is None or native.enabled() is False


def test_l1_messages_and_their_withdrawal_proofs(env) -> None:
    """GET /v1/l1-messages/{nonce} says what became of each L1 message; a refund or forced
    withdrawal leaf is served with its proof by (account, nonce); blocks carry marksRoot."""
    from cext import merkle_root, merkle_verify
    from sequencer.core import FORCED_NONCE_BASE, MAX_COLLATERAL
    from sequencer.node.l1follower import DEPOSIT, FORCED_WITHDRAWAL, Batch, L1View, SeenMessage

    k, client, info = env
    node = k.node
    C = USERS[2]
    n = node.core.engine.state.message_cursor  # A and B were funded: 2 messages
    node.process_l1_message(SeenMessage(n, FORCED_WITHDRAWAL, A.address, C.address, 5 * U, 7)).result(timeout=10)
    node.process_l1_message(SeenMessage(n + 1, DEPOSIT, B.address, C.address,
                                        MAX_COLLATERAL, 8)).result(timeout=10)  # refunded
    node.process_l1_message(SeenMessage(n + 2, FORCED_WITHDRAWAL, A.address, C.address,
                                        10**9 * U, 9)).result(timeout=10)      # refused
    r = client.get(f"/v1/l1-messages/{n}")
    assert r.status_code == 200 and r.json()["status"] == "pending" and r.json()["block"] is None
    r = client.get(f"/v1/l1-messages/{n + 3}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_l1_message"
    assert client.get("/v1/l1-messages/-1").json()["error"]["code"] == "invalid_number"
    assert client.get(f"/v1/l1-messages/{2**64}").status_code == 400
    k.clock.t += 2
    node.seal().result(timeout=10)
    block = client.get("/v1/blocks/latest").json()
    number = block["header"]["number"]
    assert block["marksRoot"].startswith("0x") and len(block["marksRoot"]) == 66
    assert client.get("/v1/blocks/0").json()["marksRoot"] == "0x" + node.block_marks_root(0).hex()
    assert client.get(f"/v1/l1-messages/{n}").json() == {
        "nonce": str(n), "kind": "forced_withdrawal", "account": to_checksum(A.address),
        "recipient": to_checksum(C.address), "amount": str(5 * U), "l1Block": 7,
        "status": "paid_out", "reason": None, "block": number,
        "withdrawal": {"account": to_checksum(A.address), "recipient": to_checksum(C.address),
                       "amount": str(5 * U), "nonce": str(FORCED_NONCE_BASE + n), "leafIndex": 0}}
    refund = client.get(f"/v1/l1-messages/{n + 1}").json()
    assert (refund["kind"], refund["depositor"], refund["status"]) == ("deposit", to_checksum(C.address), "refunded")
    assert refund["withdrawal"]["recipient"] == to_checksum(C.address)
    refused = client.get(f"/v1/l1-messages/{n + 2}").json()
    assert (refused["status"], refused["reason"], refused["withdrawal"]) == ("refused", "insufficient_collateral", None)
    assert client.get("/v1/l1-messages/0").json()["status"] == "credited"

    # the leaf by (account, nonce): sealed, not batched (no L1 yet)
    url = f"/v1/withdrawals/{to_checksum(A.address)}/{FORCED_NONCE_BASE + n}"
    got = client.get(url).json()
    assert (got["status"], got["block"], got["withdrawalHash"], got["nonce"]) == \
        ("pending", number, None, str(FORCED_NONCE_BASE + n))
    assert client.get(f"/v1/withdrawals/{to_checksum(A.address)}/{FORCED_NONCE_BASE + n + 2}"
                      ).json()["error"]["code"] == "unknown_withdrawal"
    assert client.get(f"/v1/withdrawals/{to_checksum(A.address)}/{2**64}").status_code == 400
    assert client.get("/v1/withdrawals/0x1234/1").json()["error"]["code"] == "invalid_address"

    # once a batch holds the block, the proofs are served
    roots = tuple(node.store.get(i)[0].header.withdrawal_root for i in range(1, number + 1))
    node.l1 = type("StubL1", (), {"view": L1View(1, [Batch(0, 1, number, roots, 1)], 0)})()
    for who, nonce, leaf_index in ((A, FORCED_NONCE_BASE + n, 0), (B, FORCED_NONCE_BASE + n + 1, 1)):
        got = client.get(f"/v1/withdrawals/{to_checksum(who.address)}/{nonce}").json()
        assert got["status"] == "batched" and got["batch"] == 0
        p = got["proof"]
        leaf = bytes.fromhex(got["leaf"][2:])
        assert p["leafIndex"] == leaf_index
        broot = bytes.fromhex(p["blockWithdrawalRoot"][2:])
        assert broot == node.core.head.withdrawal_root
        assert merkle_verify(broot, leaf, leaf_index, [bytes.fromhex(x[2:]) for x in p["leafProof"]])
        assert merkle_verify(merkle_root(list(roots)), broot, p["blockOffset"],
                             [bytes.fromhex(x[2:]) for x in p["blockProof"]])
    node.l1 = None
