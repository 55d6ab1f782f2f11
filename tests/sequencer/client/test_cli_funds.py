"""`optrollup withdraw` (without --force) and `optrollup deposit` against a live node without L1:
the request reaches the node and is watched, `--no-finalize` prints the finalize call, and every
bad input is `error [code]` with exit 2. The whole L1 round trip is tests/e2e/test_cli_funds_e2e.py."""

from __future__ import annotations

import json
from pathlib import Path

import optrollup_client
import pytest
from eth_account import Account as EthAccount
from optrollup_client import Withdrawal

from cext import to_checksum
from prover import withdrawcli
from sequencer.cli import main
from sequencer.client import cli as client_cli
from tests.sequencer.client.live import live_node
from tests.sequencer.node.kit import USERS

A = USERS[0]
U = 10**6


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    with live_node(tmp_path_factory.mktemp("funds")) as lv:
        yield lv


@pytest.fixture(scope="module")
def who(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    d = tmp_path_factory.mktemp("keys")
    (d / "pw").write_text("pw\n")
    (d / "A.json").write_text(json.dumps(EthAccount.encrypt(A.hex, "pw", kdf="pbkdf2", iterations=2)))
    return ["--keystore", str(d / "A.json"), "--password-file", str(d / "pw")]


@pytest.fixture(autouse=True)
def node_clock(live, monkeypatch) -> None:
    monkeypatch.setattr(client_cli, "CLOCK", live.clock)
    monkeypatch.setattr(withdrawcli, "CLOCK", live.clock)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return code, out.out, out.err


def test_withdraw_requests_watches_and_prints_the_finalize_call(live, who, capsys, monkeypatch) -> None:
    recipient = to_checksum(b"\x5e" * 20)
    code, out, err = run(capsys, "withdraw", "--url", live.url, *who, "--amount", "12.5", "--recipient", recipient,
                         "--no-finalize", "--max-wait", "0.5", "--poll", "0.1")
    # no L1 here: it stays short of final, and the command says so after --max-wait
    assert code == 2 and "error [timeout]" in err and "--hash 0x" in err, err
    first = out.splitlines()[0]
    assert first.endswith(f": 12.5 USDC from {to_checksum(A.address)} to {recipient} requested"), out
    wh = first.split()[1].rstrip(":")
    assert f"withdrawal {wh}: " in out.splitlines()[1]
    acct = live.app.state.api.node.core.engine.state.accounts[A.address]
    assert acct.withdrawal_nonce == 1 and acct.collateral == 50_000 * U - 12_500_000

    # once final, --no-finalize prints the ready-made L1 call (the node's answer, here stood in for)
    final = Withdrawal(wh, "final", 3, batch=1, finalize={"to": "0x" + "b1" * 20, "data": "0xabcdef"},
                       recipient=recipient, amount=12_500_000)
    monkeypatch.setattr(optrollup_client.Client, "withdrawal", lambda self, h: final)
    code, out, err = run(capsys, "withdraw", "--url", live.url, *who, "--hash", wh.upper().replace("0X", "0x"),
                         "--no-finalize")
    assert code == 0, err
    assert f"withdrawal {wh}: final (L2 block 3, L1 batch 1)" in out
    assert f"it pays {recipient}" in out and "to   0x" + "b1" * 20 in out and "data 0xabcdef" in out


@pytest.mark.parametrize("argv, code", [
    (["--amount", "1", "--no-finalize"], "missing_option"),                          # no --url
    (["--url", "U", "--no-finalize"], "missing_option"),                             # no --amount / --hash
    (["--url", "U", "--amount", "1", "--hash", "0x" + "00" * 32, "--no-finalize"], "missing_option"),
    (["--url", "U", "--amount", "1"], "missing_option"),                             # no --l1-rpc
    (["--url", "U", "--amount", "1", "--rollup", "0x" + "11" * 20, "--no-finalize"], "invalid_option"),
    (["--url", "U", "--amount", "1.0000001", "--no-finalize"], "inexact_amount"),
    (["--url", "U", "--amount", "-3", "--no-finalize"], "invalid_number"),
    (["--url", "U", "--amount", "1", "--recipient", "bob", "--no-finalize"], "invalid_address"),
    (["--url", "U", "--hash", "0x12", "--no-finalize"], "invalid_hash"),
    (["--url", "U", "--amount", "1", "--no-finalize", "--max-wait", "-1"], "invalid_number"),
    (["--url", "U", "--amount", "1", "--no-finalize", "--poll", "0"], "invalid_number"),
    (["--force", "--url", "U", "--amount", "1", "--l1-rpc", "X", "--rollup", "0x" + "11" * 20], "invalid_option"),
    (["--force", "--l1-rpc", "X", "--rollup", "0x" + "11" * 20], "invalid_option"),  # --force needs --amount
])
def test_withdraw_bad_input(live, who, capsys, argv: list[str], code: str) -> None:
    argv = [live.url if a == "U" else a for a in argv]
    got, _, err = run(capsys, "withdraw", *argv, *who)
    assert got == 2 and f"error [{code}]" in err, err


def test_withdraw_more_than_available_is_the_nodes_refusal(live, who, capsys) -> None:
    got, _, err = run(capsys, "withdraw", "--url", live.url, *who, "--amount", "1000000", "--no-finalize")
    assert got == 2 and "error [" in err


def test_deposit_bad_input(live, who, capsys, tmp_path: Path) -> None:
    base = ["deposit", "--url", live.url, *who]
    got, _, err = run(capsys, *base, "--l1-rpc", "http://127.0.0.1:1", "--amount", "0.0000001")
    assert got == 2 and "error [inexact_amount]" in err
    # this node follows no L1 (or the L1 RPC does not answer): said, not a traceback
    got, _, err = run(capsys, *base, "--l1-rpc", "http://127.0.0.1:1", "--amount", "5")
    assert got == 2 and ("error [no_l1]" in err or "error [l1_rpc_error]" in err), err
    got, _, err = run(capsys, *base, "--l1-rpc", "http://127.0.0.1:1", "--amount", "5", "--to", "0x12")
    assert got == 2 and "error [invalid_address]" in err
    got, _, err = run(capsys, *base, "--l1-rpc", "http://127.0.0.1:1", "--amount", "5", "--max-wait", "-1")
    assert got == 2 and "error [invalid_number]" in err
    with pytest.raises(SystemExit):
        main(["deposit", "--url", live.url, "--key", A.hex, "--l1-rpc", "x", "--amount", "1"])
    assert A.hex.removeprefix("0x") not in capsys.readouterr().err
