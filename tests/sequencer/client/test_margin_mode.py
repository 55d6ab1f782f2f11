"""Margin modes through the HTTP API, the SDK and the CLI (`optrollup account margin-mode|show`),
against a real uvicorn over a real node: the switch, the account view's portfolio figures, and
each refusal with its code."""

from __future__ import annotations

import json

import httpx
import pytest
from eth_account import Account as EthAccount

from sequencer.cli import main
from optrollup_client import Client, RejectedError, ScenarioRisk
from sequencer.client import cli as client_cli
from tests.sequencer.client.live import U, live_node
from tests.sequencer.node.kit import CALL, USERS


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    with live_node(tmp_path_factory.mktemp("margin")) as lv:
        yield lv


def client(live, key, **kw) -> Client:
    return Client(live.url, private_key=key.hex, clock=live.clock, **kw)


def test_switch_to_portfolio_and_read_the_worst_scenario(live) -> None:
    a, b = USERS[0], USERS[1]
    with client(live, a) as c, client(live, b) as t:
        assert c.account().margin_mode == "standard"
        assert c.set_margin_mode("portfolio") == "portfolio"
        c.place_order(CALL, "sell", 120 * U, 2 * U)
        t.place_order(CALL, "buy", 120 * U, 2 * U, time_in_force="ioc")
        acct = c.account()
        assert acct.margin_mode == "portfolio" and acct.margin_nonce == 1
        [eth] = acct.portfolio
        assert isinstance(eth, ScenarioRisk) and eth.underlying == "ETH"
        assert (eth.spot_shock_pct, eth.vol_shock_pct) == (16, 30)  # a short call's worst corner
        assert eth.worst_loss > 0 and eth.initial_margin > eth.worst_loss
        assert acct.initial_margin == eth.initial_margin  # no open orders left
        assert acct.maintenance_margin == eth.maintenance_margin
        assert c.set_margin_mode("standard") == "standard"
        back = c.account()
        assert back.portfolio == [] and back.initial_margin > acct.initial_margin
        with pytest.raises(ValueError):
            c.set_margin_mode("cross")


def test_refusals_have_stable_codes(live) -> None:
    a = USERS[2]
    with client(live, a) as c:
        info = c.info()
        msg = {"account": EthAccount.from_key(a.hex).address, "mode": 2, "nonce": 0}
        from optrollup_client._signing import Signer, message_json
        sig = Signer(EthAccount.from_key(a.hex)).sign_typed(info.domain, info.types, "SetMarginMode", msg)
        r = httpx.post(f"{live.url}/v1/margin_mode",
                       json={"setMarginMode": message_json(info.types, "SetMarginMode", msg),
                             "signature": sig})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_margin_mode"
        c.set_margin_mode("portfolio")
        msg["mode"] = 1
        sig = Signer(EthAccount.from_key(a.hex)).sign_typed(info.domain, info.types, "SetMarginMode", msg)
        r = httpx.post(f"{live.url}/v1/margin_mode",
                       json={"setMarginMode": message_json(info.types, "SetMarginMode", msg),
                             "signature": sig})  # nonce 0 again: a replay
        assert r.status_code == 409 and r.json()["error"]["code"] == "bad_margin_nonce"
        # another key's signature
        msg["nonce"] = 1
        sig = Signer(EthAccount.from_key(USERS[3].hex), account=msg["account"]).sign_typed(info.domain, info.types, "SetMarginMode", msg)
        r = httpx.post(f"{live.url}/v1/margin_mode",
                       json={"setMarginMode": message_json(info.types, "SetMarginMode", msg),
                             "signature": sig})
        body = r.json()["error"]
        assert r.status_code in (400, 401) and body["code"] == "signer_mismatch"
        assert EthAccount.from_key(USERS[3].hex).address in body["message"]


def test_a_mode_the_account_cannot_meet_is_refused(live) -> None:
    """In portfolio mode USERS[4] writes calls (as a taker: what fills is margined as a
    position) in lots of 5 until the switch back to standard margin is refused with
    insufficient_margin: portfolio margin allows a book standard margin does not."""
    a, b = USERS[4], USERS[5]
    with client(live, a) as c, client(live, b) as t:
        c.set_margin_mode("portfolio")
        for _ in range(40):
            t.place_order(CALL, "buy", 380 * U, 5 * U)
            c.place_order(CALL, "sell", 380 * U, 5 * U, time_in_force="ioc")
            try:
                c.set_margin_mode("standard")
            except RejectedError as e:
                assert e.code == "insufficient_margin" and "standard" in str(e)
                break
            c.set_margin_mode("portfolio")
        else:
            pytest.fail("standard margin never refused what portfolio margin allowed")
        acct = c.account()
        assert acct.margin_mode == "portfolio" and acct.equity >= acct.initial_margin
        assert acct.positions[0].amount <= -50 * U


def test_cli_switches_and_shows(live, tmp_path, monkeypatch, capsys) -> None:
    a = USERS[3]
    (tmp_path / "pw").write_text("pw\n")
    ks = tmp_path / "a.json"
    ks.write_text(json.dumps(EthAccount.encrypt(a.hex, "pw", kdf="pbkdf2", iterations=2)))
    monkeypatch.setattr(client_cli, "CLOCK", live.clock)
    conn = ["--url", live.url, "--keystore", str(ks), "--password-file", str(tmp_path / "pw")]
    assert main(["account", "margin-mode", *conn, "portfolio"]) == 0
    assert "portfolio margin" in capsys.readouterr().out
    assert main(["account", "show", *conn, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["margin_mode"] == "portfolio" and shown["margin_nonce"] == 1
    assert main(["account", "show", *conn]) == 0
    assert "portfolio margin" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["account", "margin-mode", *conn, "cross"])
