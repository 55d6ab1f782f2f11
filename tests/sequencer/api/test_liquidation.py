"""Liquidation over HTTP: the auctions list with prices, bids signed with eth-account from what
/v1/info publishes (liquidator or session key), the error table (stable codes, the field named),
the insurance fund in /v1/info and /metrics, and the account view's liquidation mark."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cext import to_checksum
from sequencer.api.app import create_app
from tests.sequencer.api.test_app import auth, sign
from tests.sequencer.node.kit import CALL, Kit
from tests.sequencer.node.test_liquidation import LIQ, POOR, RICH, in_auction

U = 10**6


@pytest.fixture
def env(tmp_path: Path):
    k = in_auction(Kit(tmp_path, block_time=10**9))
    app = create_app(k.node, tick_seconds=3600, monotonic=k.clock)
    with TestClient(app) as client:
        yield k, client, client.get("/v1/info").json()


def bid_msg(**kw) -> dict:
    m = {"liquidator": to_checksum(LIQ.address), "account": to_checksum(POOR.address),
         "fractionPpm": 500_000, "maxPrice": str(10**12), "nonce": "1"}
    m.update(kw)
    return m


def post_bid(client, info, signer=LIQ, **kw):
    m = bid_msg(**kw)
    return client.post("/v1/liquidations",
                       json={"liquidate": m, "signature": sign(info, "Liquidate", m, signer)})


def test_info_publishes_the_type_the_fund_and_the_curve(env) -> None:
    k, client, info = env
    assert info["eip712"]["types"]["Liquidate"] == [
        {"name": "liquidator", "type": "address"}, {"name": "account", "type": "address"},
        {"name": "fractionPpm", "type": "uint32"}, {"name": "maxPrice", "type": "int256"},
        {"name": "nonce", "type": "uint64"}]
    fund = info["insuranceFund"]
    cfg = k.cfg.genesis.config
    assert fund["address"] == to_checksum(cfg.insurance_fund) and fund["enabled"]
    assert fund["feeSharePpm"] == 200_000 and fund["shortfall"] == "0"
    assert int(fund["balance"]) == k.node.core.engine.state.accounts[cfg.insurance_fund].collateral > 0
    assert info["liquidation"] == {"startDiscountPpm": 50_000, "endDiscountPpm": 300_000,
                                   "rampSeconds": 900}


def test_auctions_listed_with_their_price_then_taken(env) -> None:
    k, client, info = env
    r = client.get("/v1/liquidations")
    assert r.status_code == 200, r.text
    body = r.json()
    [a] = body["auctions"]
    assert a["account"] == to_checksum(POOR.address) and a["discountPpm"] == 50_000
    assert a["positions"] == [{"instrument": CALL, "amount": str(-2 * U)}] and not a["insolvent"]
    equity = int(a["equity"])
    assert 0 < equity < int(a["maintenanceMargin"])
    assert int(a["price"]) == equity * 950_000 // 10**6
    assert body["insuranceFund"]["address"] == info["insuranceFund"]["address"]
    r = post_bid(client, info)
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["status"] == "taken" and t["positions"] == [{"instrument": CALL, "amount": str(-U)}]
    assert t["fractionPpm"] == 500_000 and not t["auctionEnded"] and t["nonce"] == "1"
    assert int(t["price"]) == int(t["value"]) * 950_000 // 10**6
    view = client.get(f"/v1/accounts/{to_checksum(POOR.address)}", headers=auth(POOR, k.clock()))
    assert view.json()["liquidationStartedAt"] == a["startedAt"]
    r = post_bid(client, info, fractionPpm=1_000_000, nonce="2")
    assert r.status_code == 200 and r.json()["auctionEnded"], r.text
    assert client.get("/v1/liquidations").json()["auctions"] == []
    metrics = client.get("/metrics").text
    assert 'optrollup_liquidation_steps_total{step="start"} 1.0' in metrics
    assert "optrollup_insurance_fund_balance" in metrics and "optrollup_shortfall 0.0" in metrics


@pytest.mark.parametrize("kw,status,code,field", [
    ({"fractionPpm": 0}, 400, "bad_fraction", "fractionPpm"),
    ({"fractionPpm": 2**32}, 400, "invalid_number", "fractionPpm"),
    ({"maxPrice": "-1"}, 422, "price_above_max", "maxPrice"),
    ({"maxPrice": str(2**64)}, 400, "invalid_number", "maxPrice"),
    ({"maxPrice": "1.5"}, 400, "invalid_number", "maxPrice"),
    ({"account": "RICH"}, 422, "not_in_liquidation", "account"),
    ({"liquidator": "POOR"}, 400, "self_liquidation", "liquidator"),
    ({"bogus": 1}, 400, "unknown_field", "bogus"),
    ({"signer": "RICH"}, 401, "signer_mismatch", "liquidate"),
])
def test_bad_bids_answer_a_stable_code_naming_the_field(env, kw, status, code, field) -> None:
    k, client, info = env
    signer = RICH if kw.pop("signer", None) else POOR if kw.get("liquidator") == "POOR" else LIQ
    for key, who in (("account", RICH), ("liquidator", POOR)):
        if kw.get(key) in ("RICH", "POOR"):
            kw[key] = to_checksum(who.address)
    if "bogus" in kw:
        m = {**bid_msg(), **kw}
        r = client.post("/v1/liquidations", json={"liquidate": m, "signature": "0x" + "11" * 64 + "1b"})
    elif code == "invalid_number":
        m = bid_msg(**kw)
        r = client.post("/v1/liquidations", json={"liquidate": m, "signature": "0x" + "11" * 64 + "1b"})
    else:
        r = post_bid(client, info, signer=signer, **kw)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and field in err["message"], err
