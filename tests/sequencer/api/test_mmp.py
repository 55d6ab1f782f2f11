"""Market-maker protection over HTTP and on the private WebSocket channel: messages signed with
eth-account from what /v1/info publishes, the freeze seen through order refusals and the
account's MMP view, the error table, and the stream's mmp events."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cext import to_checksum
from sequencer.api.app import create_app
from optrollup_client._signing import Signer
from tests.sequencer.api.test_app import A, B, auth, env, post_order, sign  # noqa: F401 - env: fixture
from tests.sequencer.node.kit import T0, Kit

U = 10**6
Q = 20_000


def config_msg(key, **kw) -> dict:
    m = {"account": to_checksum(key.address), "underlying": "ETH", "intervalMs": 1000,
         "frozenMs": 0, "amountLimit": str(Q), "deltaLimit": "0", "vegaLimit": "0", "nonce": "1"}
    m.update(kw)
    return m


def set_config(client, info, key, signer=None, **kw):
    m = config_msg(key, **kw)
    return client.post("/v1/mmp/config", json={"mmpConfig": m,
                                                "signature": sign(info, "MmpConfig", m, signer or key)})


def unsigned(client, **kw):
    """A config that cannot be signed (out of its EIP-712 type), with a well-formed signature."""
    return client.post("/v1/mmp/config", json={"mmpConfig": config_msg(A, **kw),
                                                "signature": "0x" + "11" * 64 + "1b"})


def reset(client, info, key, ts: int = T0, signer=None):
    m = {"account": to_checksum(key.address), "underlying": "ETH", "timestamp": ts}
    return client.post("/v1/mmp/reset", json={"mmpReset": m,
                                               "signature": sign(info, "MmpReset", m, signer or key)})


def trip(client, info) -> None:
    """A quotes two asks; B lifts both: 2·Q > Q."""
    for n in (1, 2):
        assert post_order(client, info, A, nonce=n, amount=str(Q)).json()["status"] == "open"
    r = post_order(client, info, B, isBuy=True, nonce=3, amount=str(2 * Q), timeInForce=1)
    assert r.json()["filledAmount"] == str(2 * Q), r.text


def test_info_publishes_the_mmp_types(env) -> None:
    k, client, info = env
    types = info["eip712"]["types"]
    assert [f["name"] for f in types["MmpConfig"]] == ["account", "underlying", "intervalMs", "frozenMs",
                                                       "amountLimit", "deltaLimit", "vegaLimit", "nonce"]
    assert types["MmpReset"] == [{"name": "account", "type": "address"},
                                 {"name": "underlying", "type": "string"},
                                 {"name": "timestamp", "type": "uint64"}]
    assert info["limits"]["mmpMaxIntervalMs"] == 86_400_000


def test_config_trip_refusal_view_and_reset(env) -> None:
    k, client, info = env
    r = set_config(client, info, A)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "accepted" and body["enabled"] and not body["frozen"]
    assert body["config"] == {"intervalMs": 1000, "frozenMs": 0, "amountLimit": str(Q),
                              "deltaLimit": "0", "vegaLimit": "0", "nonce": "1"}
    trip(client, info)
    r = post_order(client, info, A, nonce=4)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "mmp_frozen"
    assert all(w in err["message"] for w in ("ETH", "amount limit", "until an MmpReset"))
    path = f"/v1/accounts/{to_checksum(A.address)}/mmp"
    assert client.get(path).status_code == 401
    assert client.get(path, headers=auth(B)).json()["error"]["code"] == "auth_account_mismatch"
    state = client.get(path, headers=auth(A)).json()
    assert state["timeMs"] == T0 * 1000
    [pair] = state["underlyings"]
    assert pair["frozen"] and pair["freeze"] == {"measure": "amount", "value": str(2 * Q),
                                                 "limit": str(Q), "atMs": T0 * 1000, "untilMs": None}
    assert pair["window"] == {"amount": "0", "delta": "0", "vega": "0"}
    r = reset(client, info, A)
    assert r.status_code == 200, r.text
    assert r.json()["lifted"]["measure"] == "amount" and not r.json()["frozen"]
    assert reset(client, info, A).json()["error"]["code"] == "mmp_reset_replayed"
    assert post_order(client, info, A, nonce=5).status_code == 200


def test_errors_name_the_field(env) -> None:
    k, client, info = env
    cases = [
        (set_config(client, info, A, signer=B), 401, "signer_mismatch", "0x"),
        (set_config(client, info, A, intervalMs=86_400_001), 400, "bad_mmp_config", "mmpConfig.intervalMs"),
        (set_config(client, info, A, vegaLimit=str(2**64)), 400, "bad_mmp_config", "mmpConfig.vegaLimit"),
        (set_config(client, info, A, underlying="BTC"), 404, "unknown_underlying", "mmpConfig.underlying"),
        (unsigned(client, intervalMs=-1), 400, "invalid_number", "mmpConfig.intervalMs"),
        (unsigned(client, frozenMs=str(2**64)), 400, "invalid_number", "mmpConfig.frozenMs"),
        (unsigned(client, x=1), 400, "unknown_field", "x"),
        (reset(client, info, A, ts=T0 - 61), 422, "mmp_reset_stale", "mmpReset.timestamp"),
        (reset(client, info, A, signer=B), 401, "signer_mismatch", "0x"),
    ]
    for r, status, code, field in cases:
        assert r.status_code == status, (code, r.text)
        assert r.json()["error"]["code"] == code and field in r.json()["error"]["message"], r.text
    assert set_config(client, info, A, nonce="7").status_code == 200
    r = set_config(client, info, A, nonce="7")
    assert r.status_code == 409 and r.json()["error"]["code"] == "mmp_nonce_replayed"


def test_private_channel_carries_mmp_events(tmp_path) -> None:
    k = Kit(tmp_path)
    for u in (A, B):
        k.fund(u, 50_000 * U)
    k.feeds()
    app = create_app(k.node, tick_seconds=3600, monotonic=k.clock)
    with TestClient(app) as client:
        info = client.get("/v1/info").json()
        ch = f"orders.{to_checksum(A.address)}"
        assert set_config(client, info, A, frozenMs=1500).status_code == 200
        with client.websocket_connect("/v1/stream") as ws:
            a_auth = Signer.from_private_key(A.hex).auth_object(int(k.clock()))
            ws.send_json({"op": "subscribe", "channel": ch, "auth": a_auth, "id": 1})
            trip(client, info)
            events = _mmp_events(ws, ch, 1)
            assert events[0]["event"] == "triggered" and events[0]["freeze"]["untilMs"] == T0 * 1000 + 1500
            assert events[0]["underlying"] == "ETH" and events[0]["account"] == to_checksum(A.address)
            k.clock.t += 2
            k.node.seal(int(k.clock.t)).result(timeout=10)  # the freeze ends with block time
            assert _mmp_events(ws, ch, 1)[0]["event"] == "expired"
            assert reset(client, info, A, ts=int(k.clock.t)).status_code == 200
            ev = _mmp_events(ws, ch, 1)[0]
            assert ev["event"] == "reset" and ev["freeze"] is None


def _mmp_events(ws, channel: str, n: int) -> list[dict]:
    out: list[dict] = []
    for _ in range(200):
        m = ws.receive_json()
        if m["channel"] == channel and m["data"].get("type") == "mmp":
            out.append(m["data"])
            if len(out) == n:
                return out
    raise AssertionError(f"fewer than {n} mmp events on {channel}")
