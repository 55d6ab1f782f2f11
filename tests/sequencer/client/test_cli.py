"""`optrollup keys ...` and `optrollup order ...` through sequencer.cli.main, against a live node."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest
from eth_account import Account as EthAccount

from cext import to_checksum
from sequencer.cli import main
from sequencer.client import cli as client_cli
from sequencer.client.cli import format_units, parse_units
from sequencer.errors import InvalidRequest
from tests.sequencer.client.live import live_node
from tests.sequencer.node.kit import CALL, USERS

A, B = USERS[:2]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    with live_node(tmp_path_factory.mktemp("cli")) as lv:
        yield lv


@pytest.fixture(scope="module")
def keyfiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Keystores of A and B (cheap KDF) and their password file."""
    d = tmp_path_factory.mktemp("keys")
    (d / "pw").write_text("pw\n")
    out = {"pw": str(d / "pw")}
    for name, user in (("A", A), ("B", B)):
        (d / f"{name}.json").write_text(json.dumps(EthAccount.encrypt(user.hex, "pw", kdf="pbkdf2", iterations=2)))
        out[name] = str(d / f"{name}.json")
    return out


@pytest.fixture(autouse=True)
def node_clock(request, monkeypatch) -> None:
    if "live" in request.fixturenames:
        monkeypatch.setattr(client_cli, "CLOCK", request.getfixturevalue("live").clock)


def test_parse_units_is_exact() -> None:
    assert parse_units("125.5", "p") == 125_500_000
    assert parse_units("0.000001", "p") == 1
    assert parse_units("3", "p") == 3_000_000
    assert parse_units("1.0000000", "p") == 1_000_000            # trailing zeros are exact
    for bad, code in [("0.0000001", "inexact_amount"), ("1e3", "invalid_number"), ("-1", "invalid_number"),
                      ("NaN", "invalid_number"), ("0", "invalid_number"), (" 1", "invalid_number"),
                      ("1.", "invalid_number"), ("0.1234567", "inexact_amount")]:
        with pytest.raises(InvalidRequest) as e:
            parse_units(bad, "p")
        assert e.value.code == code, bad
    assert format_units(125_500_000) == "125.5" and format_units(10_000) == "0.01"
    assert format_units(-3_000_000) == "-3"


def test_keys_new_and_show(tmp_path: Path, capsys) -> None:
    pw = tmp_path / "pw"
    pw.write_text("hunter2\n")
    out = tmp_path / "k.json"
    assert main(["keys", "new", "--out", str(out), "--password-file", str(pw)]) == 0
    address = capsys.readouterr().out.strip()
    blob = json.loads(out.read_text())
    assert to_checksum(bytes.fromhex(blob["address"])) == address
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    assert main(["keys", "show", str(out)]) == 0
    assert capsys.readouterr().out.strip() == address
    # --private needs its confirmation flag
    assert main(["keys", "show", str(out), "--private", "--password-file", str(pw)]) == 2
    err = capsys.readouterr().err
    assert "error [confirmation_required]" in err and "0x" not in err
    assert main(["keys", "show", str(out), "--private", "--yes-show-private-key",
                 "--password-file", str(pw)]) == 0
    addr2, secret = capsys.readouterr().out.split()
    assert addr2 == address and EthAccount.from_key(secret).address == address
    # never overwrite
    assert main(["keys", "new", "--out", str(out), "--password-file", str(pw)]) == 2
    assert "error [file_exists]" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.write_text("nope\n")
    assert main(["keys", "show", str(out), "--private", "--yes-show-private-key",
                 "--password-file", str(bad)]) == 2
    assert "error [bad_password]" in capsys.readouterr().err


def test_keys_new_prompts_twice(tmp_path: Path, monkeypatch, capsys) -> None:
    answers = iter(["a", "b"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    monkeypatch.delenv("OPTROLLUP_PASSWORD", raising=False)
    assert main(["keys", "new", "--out", str(tmp_path / "x.json")]) == 2
    assert "error [password_mismatch]" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_order_place_list_cancel(live, keyfiles, tmp_path: Path, monkeypatch, capsys) -> None:
    base = ["--url", live.url, "--keystore", keyfiles["A"], "--password-file", keyfiles["pw"]]
    assert main(["order", "place", *base, "--instrument", CALL, "--side", "sell", "--price", "125.5",
                 "--amount", "0.02", "--post-only", "--expiry-seconds", "600", "--json"]) == 0
    ack = json.loads(capsys.readouterr().out)
    assert ack["status"] == "open"
    book = json.loads(json.dumps(live.app.state.api.node.core.engine.books[CALL].depth(False)))
    assert [125_500_000, 20_000] in book
    assert main(["order", "list", *base]) == 0
    text = capsys.readouterr().out
    assert ack["orderHash"] in text and "125.5" in text and "0.02" in text
    # the taker's password from a named environment variable; an IOC buy fills it partly
    monkeypatch.setenv("B_PASSWORD", "pw")
    assert main(["order", "place", "--url", live.url, "--keystore", keyfiles["B"], "--password-env", "B_PASSWORD",
                 "--instrument", CALL, "--side", "buy", "--price", "125.5", "--amount", "0.01",
                 "--tif", "ioc"]) == 0
    out = capsys.readouterr().out
    assert "filled, filled 0.01 contracts" in out and "fill 0.01 @ 125.5 USDC" in out
    assert main(["order", "cancel", *base, ack["orderHash"]]) == 0
    assert "cancelled (0.01 contracts were open)" in capsys.readouterr().out
    assert main(["order", "list", *base]) == 0
    assert "no open orders" in capsys.readouterr().out


def test_order_errors_print_code_and_exit_nonzero(live, keyfiles, tmp_path: Path, monkeypatch, capsys) -> None:
    who = ["--keystore", keyfiles["A"], "--password-file", keyfiles["pw"]]
    base = ["order", "place", "--url", live.url, *who, "--instrument", CALL, "--side", "buy"]
    assert main([*base, "--price", "100.0000001", "--amount", "1"]) == 2
    assert "error [inexact_amount]" in capsys.readouterr().err
    assert main([*base, "--price", "100.05", "--amount", "0.01"]) == 2
    assert "error [price_not_on_tick]" in capsys.readouterr().err
    assert main(["order", "place", "--url", live.url, *who, "--instrument", "ETH-1JAN27-1-C",
                 "--side", "buy", "--price", "1", "--amount", "0.01"]) == 2
    assert "error [unknown_instrument]: " in capsys.readouterr().err
    assert main(["order", "cancel", "--url", live.url, *who, "0x" + "00" * 32]) == 2
    assert "error [unknown_order]" in capsys.readouterr().err
    not_a_keystore = tmp_path / "k.json"
    not_a_keystore.write_text("{}")
    assert main(["order", "list", "--url", live.url, "--keystore", str(not_a_keystore)]) == 2
    assert "error [invalid_keystore]" in capsys.readouterr().err
    monkeypatch.delenv("OPTROLLUP_PASSWORD", raising=False)
    assert main(["order", "list", "--url", live.url, "--keystore", keyfiles["A"], "--password-env", "UNSET_PW"]) == 2
    assert "error [password_missing]" in capsys.readouterr().err


def test_order_url_takes_the_signed_writes(live, keyfiles, capsys) -> None:
    """--order-url: the signed writes go there (here: nothing listens, so placing fails as a
    transport error), reads still go to --url."""
    from tests.e2e.serverkit import free_port
    who = ["--keystore", keyfiles["A"], "--password-file", keyfiles["pw"]]
    dead = f"http://127.0.0.1:{free_port()}"
    assert main(["order", "list", "--url", live.url, "--order-url", dead, *who]) == 0
    capsys.readouterr()
    assert main(["order", "place", "--url", live.url, "--order-url", dead, *who, "--instrument", CALL,
                 "--side", "buy", "--price", "1", "--amount", "0.01"]) != 0
    assert "error [transport_error]: POST /v1/orders" in capsys.readouterr().err


def test_order_takes_no_raw_key_on_the_command_line(keyfiles, capsys) -> None:
    with pytest.raises(SystemExit):   # refused, not taken as an abbreviation of --keystore
        main(["order", "list", "--url", "http://127.0.0.1:1", "--key", A.hex])
    err = capsys.readouterr().err
    assert "--key: raw private keys on a command line are for the devnet only" in err
    assert A.hex.removeprefix("0x") not in err  # the key is not echoed
