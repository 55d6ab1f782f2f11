"""Market-maker protection through the SDK (sync, async, a session key, the stream) and the CLI
(`optrollup mmp set|reset|show`), against a real uvicorn over a real node."""

from __future__ import annotations

import asyncio
import json

import pytest
from eth_account import Account as EthAccount

from cext import to_checksum
from sequencer.cli import main
from optrollup_client import (AsyncClient, BadRequestError, Client, ClientError, MmpPair, MmpState,
                              RejectedError)
from sequencer.client import cli as client_cli
from tests.sequencer.client.live import U, live_node
from tests.sequencer.node.kit import CALL, PUT, USERS

Q = 20_000


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    with live_node(tmp_path_factory.mktemp("mmp")) as lv:
        yield lv


def client(live, key, **kw) -> Client:
    return Client(live.url, private_key=key.hex, clock=live.clock, **kw)


def lift(live, taker, instrument: str, price: int, amount: int) -> None:
    with client(live, taker) as t:
        ack = t.place_order(instrument, "buy", price, amount, time_in_force="ioc")
        assert ack.filled_amount == amount, ack


def test_sync_client_sets_trips_reads_and_resets(live) -> None:
    maker, taker = USERS[0], USERS[1]
    with client(live, maker) as c:
        pair = c.set_mmp("ETH", interval_ms=1000, frozen_ms=0, amount_limit=Q)
        assert isinstance(pair, MmpPair) and pair.enabled and pair.config.amount_limit == Q
        for p in (101, 102):
            c.place_order(CALL, "sell", p * U, Q)
        lift(live, taker, CALL, 102 * U, 2 * Q)
        with pytest.raises(RejectedError) as e:
            c.place_order(CALL, "sell", 101 * U, Q)
        assert e.value.code == "mmp_frozen" and "ETH" in str(e.value)
        state = c.mmp()
        assert isinstance(state, MmpState) and state.account == to_checksum(maker.address)
        eth = state.pair("ETH")
        assert eth.frozen and eth.freeze.measure == "amount" and eth.freeze.value == 2 * Q
        assert eth.freeze.until_ms is None and not c.open_orders()
        ack = c.reset_mmp("ETH")
        assert ack.lifted is not None and not ack.pair.frozen
        assert c.reset_mmp("ETH").lifted is None  # a second reset (same second: retried +1 s)
        c.place_order(CALL, "sell", 150 * U, Q)
        assert c.cancel_all(CALL) == 1
        with pytest.raises(ClientError):
            c.set_mmp("ETH", interval_ms=-1, frozen_ms=0)


def test_async_client_and_a_session_key(live) -> None:
    maker, taker, key = USERS[2], USERS[3], EthAccount.create()

    async def run() -> None:
        async with AsyncClient(live.url, private_key=maker.hex, clock=live.clock) as c:
            await c.register_session_key(key.address, int(live.clock()) + 3600)
            pair = await c.set_mmp("ETH", interval_ms=5000, frozen_ms=60_000, delta_limit=10**12)
            assert pair.config.delta_limit == 10**12 and pair.config.frozen_ms == 60_000
            assert (await c.mmp()).pair("ETH").enabled
        async with AsyncClient(live.url, private_key=key.key, account=to_checksum(maker.address),
                               clock=live.clock) as s:
            pair = await s.set_mmp("ETH", interval_ms=5000, frozen_ms=0, vega_limit=1)
            assert pair.config.vega_limit == 1
            await s.place_order(PUT, "sell", 300 * U, Q)
        lift(live, taker, PUT, 300 * U, Q)
        async with AsyncClient(live.url, private_key=maker.hex, clock=live.clock) as c:
            eth = (await c.mmp()).pair("ETH")
            assert eth.frozen and eth.freeze.measure == "vega" and eth.freeze.value < -1
            assert (await c.reset_mmp("ETH")).lifted.measure == "vega"
    asyncio.run(run())
    with client(live, USERS[4]) as stranger, pytest.raises(BadRequestError) as e:
        stranger.mmp(to_checksum(maker.address))  # another account's view
    assert e.value.code == "auth_account_mismatch"


def test_stream_reports_the_trigger(live) -> None:
    maker, taker = USERS[4], USERS[5]
    with client(live, maker) as c:
        c.set_mmp("ETH", interval_ms=1000, frozen_ms=0, amount_limit=Q)
        c.place_order(CALL, "sell", 110 * U, 2 * Q)
        with c.stream("orders") as s:
            next(iter(s))  # the snapshot of open orders
            lift(live, taker, CALL, 110 * U, 2 * Q)
            for m in s:
                if m.data.get("type") == "mmp":
                    assert m.data["event"] == "triggered" and m.data["freeze"]["measure"] == "amount"
                    break
        c.reset_mmp("ETH")


@pytest.fixture(scope="module")
def keyfile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("mmpkeys")
    (d / "pw").write_text("pw\n")
    (d / "k.json").write_text(json.dumps(EthAccount.encrypt(USERS[5].hex, "pw", kdf="pbkdf2", iterations=2)))
    return {"file": str(d / "k.json"), "pw": str(d / "pw")}


def test_cli_set_show_reset(live, keyfile, capsys, monkeypatch) -> None:
    monkeypatch.setattr(client_cli, "CLOCK", live.clock)
    conn = ["--url", live.url, "--keystore", keyfile["file"], "--password-file", keyfile["pw"]]
    assert main(["mmp", "set", *conn, "--underlying", "ETH", "--interval-ms", "2000",
                 "--frozen-ms", "0", "--amount", "0.03", "--delta", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "ETH: MMP on, window 2000 ms, freeze until reset" in out
    assert "amount 0.03, delta 1.5, vega none" in out
    assert main(["mmp", "show", *conn, "--json"]) == 0
    [pair] = json.loads(capsys.readouterr().out)
    assert pair["config"]["amount_limit"] == 30_000 and pair["config"]["delta_limit"] == 1_500_000
    assert main(["mmp", "set", *conn, "--underlying", "ETH", "--interval-ms", "1000",
                 "--frozen-ms", "0", "--amount", "0.0000001"]) == 2
    assert "inexact_amount" in capsys.readouterr().err
    assert main(["mmp", "set", *conn, "--underlying", "BTC", "--interval-ms", "1000",
                 "--frozen-ms", "0"]) == 2
    assert "unknown_underlying" in capsys.readouterr().err
    assert main(["mmp", "reset", *conn, "--underlying", "ETH"]) == 0
    assert "was not frozen" in capsys.readouterr().out
    assert main(["mmp", "show", *conn]) == 0
    assert "window: amount 0" in capsys.readouterr().out
