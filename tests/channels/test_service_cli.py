"""`optrollup channels ...` (channels/cli.py) against two live channel services and a live node:
open, quote, trade, state, list, close, errors as `error [code]` with exit 2; and, on a real
anvil with the Adjudicator deployed, `challenge` (from the running service) and `conclude` (from
the store of a stopped one), with the watcher running inside a service."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sequencer.cli import main
from sequencer.l1 import Anvil, AnvilError, find_anvil
from sequencer.l1.adjudicator import deploy_adjudicator
from tests.channels.service_kit import (
    PASSWORD,
    PASSWORD_ENV,
    service_thread,
    write_keystore,
)
from tests.sequencer.client.live import live_node
from tests.sequencer.node.kit import CALL, USERS

A, B = USERS[0], USERS[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    if "--json" not in argv:
        out = "\n".join(" ".join(line.split()) for line in out.splitlines())  # spacing aside
    return code, out, err


def test_owner_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    ka = str(write_keystore(tmp_path / "a.json", A.priv.secret))
    kb = str(write_keystore(tmp_path / "b.json", B.priv.secret))
    with live_node(tmp_path / "node") as lv, \
            service_thread(tmp_path / "a", A.priv.secret, lv.url) as sa, \
            service_thread(tmp_path / "b", B.priv.secret, lv.url) as sb:
        as_a = ["--service", sa.url, "--keystore", ka, "--password-env", PASSWORD_ENV]
        as_b = ["--service", sb.url, "--keystore", kb, "--password-env", PASSWORD_ENV]
        code, out, err = run(capsys, "channels", "open", *as_a, "--peer", sb.url, "--deposit", "1000",
                             "--peer-deposit", "1000.5", "--challenge-period", "600")
        assert code == 0, err
        cid = out.strip()
        assert len(cid) == 66 and "opened on the rollup (open)" in err
        code, out, err = run(capsys, "channels", "quote", *as_b, cid, "--line", f"{CALL},95,10,105,2.5")
        assert code == 0, err
        assert "bid 95 x 10 ask 105 x 2.5" in out
        code, out, _ = run(capsys, "channels", "quote", *as_b, cid, "--json")
        assert json.loads(out)[0]["askAmount"] == 2_500_000
        code, out, err = run(capsys, "channels", "trade", *as_a, cid, "--instrument", CALL, "--side",
                             "buy", "--price", "105", "--amount", "0.5")
        assert code == 0, err
        assert f"channel {cid} turn 1" in out and "balance A 947.5 USDC" in out
        assert f"A holds 0.5 {CALL}" in out
        # refusals: the code, exit 2
        code, _, err = run(capsys, "channels", "trade", *as_a, cid, "--instrument", CALL, "--side",
                           "buy", "--price", "104", "--amount", "0.5")
        assert code == 2 and "error [price_outside_quote]" in err
        code, _, err = run(capsys, "channels", "trade", *as_a, cid, "--instrument", CALL, "--side",
                           "buy", "--price", "105.0000001", "--amount", "0.5")
        assert code == 2 and "error [inexact_amount]" in err
        code, _, err = run(capsys, "channels", "state", "--service", sa.url, "--keystore", kb,
                           "--password-env", PASSWORD_ENV, cid)
        assert code == 2 and "error [not_owner]" in err
        code, out, _ = run(capsys, "channels", "state", *as_b, cid, "--json")
        st = json.loads(out)
        assert st["channelState"]["turnNum"] == "1" and len(st["signatures"]) == 2
        code, out, _ = run(capsys, "channels", "list", *as_a)
        assert code == 0 and f"{cid} side a turn 1" in out and "rollup open" in out
        code, out, err = run(capsys, "channels", "close", *as_a, cid)
        assert code == 0, err
        assert "FINAL" in out and "rollup: closed at turn" in out
        code, _, err = run(capsys, "channels", "close", *as_a, cid)
        assert code == 2 and "error [channel_closed]" in err


@pytest.mark.anvil
def test_challenge_and_conclude_on_l1(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        find_anvil()
    except AnvilError as exc:
        pytest.fail(str(exc))
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    ka = str(write_keystore(tmp_path / "a.json", A.priv.secret))
    kb = str(write_keystore(tmp_path / "b.json", B.priv.secret))
    with Anvil(accounts=2) as node, node.client() as client, live_node(tmp_path / "node") as lv:
        adj, _ = deploy_adjudicator(client, node.accounts[0], 31337, "0x" + "42" * 20)
        for who in (A, B):  # the parties pay L1 gas with their own keys
            client.set_balance("0x" + who.address.hex(), 10**19)
        l1 = ["--l1-rpc", node.url, "--adjudicator", adj.address]
        with service_thread(tmp_path / "a", A.priv.secret, lv.url) as sa, \
                service_thread(tmp_path / "b", B.priv.secret, lv.url, l1_rpc=node.url,
                               adjudicator=adj.address, watcher_poll=0.2) as sb:
            as_a = ["--service", sa.url, "--keystore", ka, "--password-env", PASSWORD_ENV]
            as_b = ["--service", sb.url, "--keystore", kb, "--password-env", PASSWORD_ENV]
            code, out, err = run(capsys, "channels", "open", *as_a, "--peer", sb.url, "--deposit",
                                 "1000", "--peer-deposit", "1000", "--challenge-period", "60")
            assert code == 0, err
            cid = out.strip()
            assert run(capsys, "channels", "quote", *as_b, cid, "--line", f"{CALL},95,10,105,10")[0] == 0
            for _ in range(3):
                assert run(capsys, "channels", "trade", *as_a, cid, "--instrument", CALL, "--side",
                           "buy", "--price", "105", "--amount", "0.1")[0] == 0
            # the watcher inside B's service follows the channel
            assert sb.service.watcher is not None
            deadline = time.monotonic() + 30
            while bytes.fromhex(cid[2:]) not in sb.service.watcher.statuses:
                assert time.monotonic() < deadline, "the watcher never read the channel's status"
                time.sleep(0.1)
            code, out, err = run(capsys, "channels", "challenge", *as_a, cid, *l1)
            assert code == 0, err
            assert "turn 3: included in L1 block" in out and "turn 3 registered" in out
            code, _, err = run(capsys, "channels", "conclude", *as_a, cid, *l1)
            assert code == 2 and "ChallengeWindowOpen" in err
        # B's service is stopped: conclude from its store once the window has passed
        client.increase_time(61)
        client.mine()
        code, out, err = run(capsys, "channels", "conclude", "--keystore", kb, "--password-env",
                             PASSWORD_ENV, "--data-dir", str(tmp_path / "b"), cid, *l1)
        assert code == 0, err
        assert "concluded at turn 3" in out
        st = adj.status(cid)
        assert st.concluded and st.turn_num == 3
