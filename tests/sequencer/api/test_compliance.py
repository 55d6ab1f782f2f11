"""Compliance over HTTP (sequencer.api.compliance): operator-signed freeze, unfreeze and deny
routes with their refusal codes, the account view's `frozen`, GET /v1/compliance, the CSV
statement (authenticated, its running balance equal to the account's collateral), and the SDK
helpers."""

from __future__ import annotations

import csv
import io

from cext import to_checksum
from optrollup_client import Client
from tests.sequencer.api.test_app import auth, env, post_order, sign  # noqa: F401 - env: fixture
from tests.sequencer.core.core_world import OPERATOR, Key
from tests.sequencer.node.kit import USERS

U = 10**6
A, B, C = USERS[:3]
L1X = Key(777)


def admin(client, info, path: str, key: str, primary: str, msg: dict, signer=OPERATOR):
    return client.post(path, json={key: msg, "signature": sign(info, primary, msg, signer)})


def freeze(client, info, who, nonce: int, signer=OPERATOR):
    return admin(client, info, "/v1/admin/freeze", "freeze", "Freeze",
                 {"account": to_checksum(who.address), "nonce": nonce}, signer)


def test_freeze_unfreeze_deny_over_http(env) -> None:  # noqa: F811
    k, client, info = env
    assert {"Freeze", "Unfreeze", "DenyL1"} <= set(info["eip712"]["types"])
    assert client.get("/v1/compliance").json() == {
        "complianceNonce": "0", "operator": to_checksum(OPERATOR.address), "frozen": [], "denied": []}
    order = post_order(client, info, A).json()
    # refusals: not the operator, a wrong nonce
    r = freeze(client, info, A, 0, signer=B)
    assert r.status_code == 401 and r.json()["error"]["code"] == "signer_mismatch"
    r = freeze(client, info, A, 3)
    assert r.status_code == 409 and r.json()["error"]["code"] == "bad_compliance_nonce"
    r = freeze(client, info, A, 0)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "frozen" and body["cancelled"] == [order["orderHash"]]
    assert body["complianceNonce"] == "1" and body["frozenAt"] == k.node.core.engine.now
    acct = client.get(f"/v1/accounts/{to_checksum(A.address)}", headers=auth(A)).json()
    assert acct["frozen"] is True and acct["openOrders"] == []
    r = post_order(client, info, A, nonce=2)
    assert r.status_code == 422 and r.json()["error"]["code"] == "account_frozen"
    assert to_checksum(A.address) in r.json()["error"]["message"]
    w = {"account": to_checksum(A.address), "recipient": to_checksum(A.address),
         "amount": str(U), "nonce": "0"}
    r = client.post("/v1/withdrawals", json={"withdraw": w, "signature": sign(info, "Withdraw", w, A)})
    assert r.status_code == 422 and r.json()["error"]["code"] == "account_frozen"
    r = freeze(client, info, A, 1)
    assert r.status_code == 409 and r.json()["error"]["code"] == "account_already_frozen"
    # the deny list
    deny = {"l1Address": to_checksum(L1X.address), "denied": True, "nonce": 1}
    r = admin(client, info, "/v1/admin/deny", "denyL1", "DenyL1", deny)
    assert r.status_code == 200 and r.json()["status"] == "denied", r.text
    w = {**w, "account": to_checksum(B.address), "recipient": to_checksum(L1X.address)}
    r = client.post("/v1/withdrawals", json={"withdraw": w, "signature": sign(info, "Withdraw", w, B)})
    assert r.status_code == 422 and r.json()["error"]["code"] == "recipient_denied"
    assert to_checksum(L1X.address) in r.json()["error"]["message"]
    got = client.get("/v1/compliance").json()
    assert got["complianceNonce"] == "2"
    assert [x["account"] for x in got["frozen"]] == [to_checksum(A.address)]
    assert [x["l1Address"] for x in got["denied"]] == [to_checksum(L1X.address)]
    r = admin(client, info, "/v1/admin/unfreeze", "unfreeze", "Unfreeze",
              {"account": to_checksum(A.address), "nonce": 2})
    assert r.status_code == 200 and r.json() == {"status": "unfrozen",
                                                  "account": to_checksum(A.address),
                                                  "complianceNonce": "3"}
    assert post_order(client, info, A, nonce=3).status_code == 200
    # malformed bodies are 400s
    r = client.post("/v1/admin/freeze", json={"freeze": {"account": "0x12"}, "signature": "0x00"})
    assert r.status_code == 400


def test_statement_csv_over_http(env) -> None:  # noqa: F811
    k, client, info = env
    assert post_order(client, info, A).status_code == 200
    assert post_order(client, info, B, isBuy=True, nonce=2, timeInForce=1).status_code == 200
    k.node.seal(int(k.clock()) + 1).result(timeout=10)
    k.clock.t += 1
    path = f"/v1/accounts/{to_checksum(B.address)}/statement"
    r = client.get(path, headers=auth(B, int(k.clock())))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [x["type"] for x in rows] == ["opening_balance", "deposit", "trade", "closing_balance"]
    assert int(rows[-1]["balance"]) == k.node.core.engine.state.accounts[B.address].collateral
    assert rows[2]["side"] == "buy" and rows[2]["role"] == "taker"
    # authentication and ranges
    assert client.get(path).status_code == 401
    r = client.get(path, headers=auth(A, int(k.clock())))
    assert r.status_code == 400 and r.json()["error"]["code"] == "auth_account_mismatch"
    head = k.node.durable_head()
    r = client.get(path, params={"to": head + 5}, headers=auth(B, int(k.clock())))
    assert r.status_code == 404 and r.json()["error"]["code"] == "block_not_found"
    r = client.get(path, params={"from": 0}, headers=auth(B, int(k.clock())))
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_range"
    r = client.get(path, params={"from": "x"}, headers=auth(B, int(k.clock())))
    assert r.status_code == 400
    r = client.get(path, params={"from": head + 1, "to": head}, headers=auth(B, int(k.clock())))
    assert [x["type"] for x in csv.DictReader(io.StringIO(r.text))] == \
        ["opening_balance", "closing_balance"]
    # the SDK: statement and the operator's helpers
    with Client("http://testserver", private_key=B.hex, http=client, clock=k.clock) as c:
        assert c.statement() == client.get(path, headers=auth(B, int(k.clock()))).text
        assert c.account().frozen is False
    with Client("http://testserver", private_key=OPERATOR.hex, http=client, clock=k.clock) as op:
        got = op.freeze(to_checksum(B.address))
        assert got["status"] == "frozen"
        assert op.compliance().frozen == {to_checksum(B.address): k.node.core.engine.now}
        assert op.deny_l1(to_checksum(C.address))["status"] == "denied"
        assert op.unfreeze(to_checksum(B.address))["complianceNonce"] == "3"
