"""Issue 16's terminal commands against a live node: `book`, `trades`, `account` (bare and
`show`), `order cancel-all`, `order replace`, `session-key add|revoke`; tables by default,
`--json` for scripts, bad input as `error [code]` and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account as EthAccount

from cext import to_checksum
from sequencer.cli import main
from sequencer.client import cli as client_cli
from tests.sequencer.client.live import live_node
from tests.sequencer.node.kit import CALL, PUT, USERS

A, B = USERS[:2]
A_ADDR = to_checksum(A.address)
U = 10**6


@pytest.fixture
def live(tmp_path: Path, monkeypatch):
    with live_node(tmp_path / "node") as lv:
        monkeypatch.setattr(client_cli, "CLOCK", lv.clock)
        yield lv


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Keystores (cheap KDF) of A, B and a fresh session key S, and their password file."""
    d = tmp_path_factory.mktemp("keys")
    (d / "pw").write_text("pw\n")
    out = {"pw": str(d / "pw")}
    s = EthAccount.create()
    out["S_address"] = s.address
    for name, secret in (("A", A.hex), ("B", B.hex), ("S", s.key)):
        (d / f"{name}.json").write_text(json.dumps(EthAccount.encrypt(secret, "pw", kdf="pbkdf2", iterations=2)))
        out[name] = str(d / f"{name}.json")
    return out


def conn(live, keys, who: str = "A") -> list[str]:
    return ["--url", live.url, "--keystore", keys[who], "--password-file", keys["pw"]]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def place(capsys, live, keys, who: str, side: str, price: str, amount: str, *extra: str) -> dict:
    code, out, err = run(capsys, "order", "place", *conn(live, keys, who), "--instrument", CALL, "--side", side,
                         "--price", price, "--amount", amount, "--json", *extra)
    assert code == 0, err
    return json.loads(out)


def table_row(text: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    rows = [line.split() for line in text.splitlines() if line.split()[:1] == [first]]
    assert len(rows) == 1, text
    return rows[0]


def test_book_and_trades_as_tables_and_json(live, keys, capsys) -> None:
    place(capsys, live, keys, "A", "sell", "125.5", "0.02", "--post-only")
    place(capsys, live, keys, "A", "sell", "126", "0.03", "--post-only")
    place(capsys, live, keys, "B", "buy", "120", "0.05", "--post-only")

    code, out, _ = run(capsys, "book", CALL, "--url", live.url, "--json")
    assert code == 0
    book = json.loads(out)
    assert book["instrument"] == CALL
    assert book["bids"] == [["120000000", "50000"]]
    assert book["asks"] == [["125500000", "20000"], ["126000000", "30000"]]
    code, out, _ = run(capsys, "book", CALL, "--url", live.url)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(CALL) and lines[1].split() == ["bid", "size", "bid", "USDC", "ask", "USDC", "ask", "size"]
    assert lines[3].split() == ["0.05", "120", "125.5", "0.02"]   # best bid beside best ask
    assert lines[4].split() == ["126", "0.03"]
    code, out, _ = run(capsys, "book", PUT, "--url", live.url)
    assert code == 0 and "the book is empty" in out

    code, out, _ = run(capsys, "trades", "--url", live.url, "--json")
    assert code == 0 and json.loads(out) == []
    # B lifts 0.01 at 125.5, then 0.02 across both asks (0.01 @ 125.5, 0.01 @ 126)
    place(capsys, live, keys, "B", "buy", "125.5", "0.01", "--tif", "ioc")
    place(capsys, live, keys, "B", "buy", "126", "0.02", "--tif", "ioc")
    code, out, _ = run(capsys, "trades", "--url", live.url, "--instrument", CALL, "--json")
    assert code == 0
    trades = json.loads(out)
    assert [(t["price"], t["amount"], t["takerSide"]) for t in trades] == [
        ("126000000", "10000", "buy"), ("125500000", "10000", "buy"), ("125500000", "10000", "buy")]
    code, out, _ = run(capsys, "trades", "--url", live.url, "--limit", "2")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [r[-3:] for r in rows] == [["buy", "126", "0.01"], ["buy", "125.5", "0.01"]]
    assert all(CALL in r for r in rows)
    code, out, _ = run(capsys, "book", CALL, "--url", live.url, "--json")
    assert json.loads(out)["asks"] == [["126000000", "20000"]]


def test_replace_and_cancel_all(live, keys, capsys) -> None:
    first = place(capsys, live, keys, "A", "sell", "130", "0.04", "--post-only")
    place(capsys, live, keys, "A", "buy", "90", "0.01", "--post-only")
    code, out, err = run(capsys, "order", "replace", *conn(live, keys), first["orderHash"], "--price", "131.5",
                         "--json")
    assert code == 0, err
    ack = json.loads(out)
    assert ack["status"] == "open" and ack["orderHash"] != first["orderHash"]
    code, out, _ = run(capsys, "order", "list", *conn(live, keys), "--json")
    orders = {o["orderHash"]: o for o in json.loads(out)}
    assert first["orderHash"] not in orders
    new = orders[ack["orderHash"]]
    assert (new["price"], new["remaining"], new["side"]) == ("131500000", "40000", "sell")
    book = json.loads(run(capsys, "book", CALL, "--url", live.url, "--json")[1])
    assert book["asks"] == [["131500000", "40000"]] and book["bids"] == [["90000000", "10000"]]
    # the amount alone, in text: the table says from what to what
    code, out, err = run(capsys, "order", "replace", *conn(live, keys), ack["orderHash"], "--amount", "0.03")
    assert code == 0, err
    assert "sell 0.04 @ 131.5 USDC) by 0.03 @ 131.5 USDC" in out and "open" in out
    # text table of open orders: both orders with their numbers
    code, out, _ = run(capsys, "order", "list", *conn(live, keys))
    assert code == 0
    assert {tuple(line.split()[1:6]) for line in out.splitlines()[2:]} == {
        (CALL, "sell", "131.5", "0.03", "0.03"), (CALL, "buy", "90", "0.01", "0.01")}
    # a replaced (cancelled) order cannot be replaced again
    code, _, err = run(capsys, "order", "replace", *conn(live, keys), first["orderHash"], "--price", "132")
    assert code == 2 and "error [order_not_open]" in err

    code, out, _ = run(capsys, "order", "cancel-all", *conn(live, keys), "--instrument", PUT)
    assert code == 0 and "cancelled 0 open orders in " + PUT in out
    code, out, _ = run(capsys, "order", "cancel-all", *conn(live, keys), "--json")
    assert code == 0 and json.loads(out) == {"cancelled": 2, "instrument": ""}
    code, out, _ = run(capsys, "order", "list", *conn(live, keys), "--json")
    assert json.loads(out) == []
    book = json.loads(run(capsys, "book", CALL, "--url", live.url, "--json")[1])
    assert book["asks"] == [] and book["bids"] == []


def test_account_summary(live, keys, capsys) -> None:
    maker = place(capsys, live, keys, "A", "sell", "125", "0.05", "--post-only")
    place(capsys, live, keys, "B", "buy", "125", "0.02", "--tif", "ioc")   # A is short 0.02
    code, out, err = run(capsys, "account", *conn(live, keys))            # bare `account` = show
    assert code == 0, err
    acct = json.loads(run(capsys, "account", "show", *conn(live, keys), "--json")[1])
    assert acct["account"] == A_ADDR
    assert 50_000 * U < acct["collateral"] <= 50_000 * U + 2_500_000  # premium 125 × 0.02 less the fee
    assert [(p["instrument"], p["amount"]) for p in acct["positions"]] == [(CALL, -20_000)]
    assert [o["order_hash"] for o in acct["open_orders"]] == [maker["orderHash"]]
    assert table_row(out, "collateral") == ["collateral", client_cli.format_units(acct["collateral"])]
    assert table_row(out, "equity")[1] == client_cli.format_units(acct["equity"])
    assert table_row(out, "available")[1] == client_cli.format_units(acct["available"])
    pos = table_row(out, CALL)
    assert pos[1] == "-0.02"
    hash_row = table_row(out, maker["orderHash"])
    assert hash_row[1:6] == [CALL, "sell", "125", "0.03", "0.05"]
    code, shown, _ = run(capsys, "account", "show", *conn(live, keys))
    assert code == 0 and shown == out


def test_session_key_add_lets_it_trade_and_revoke_stops_it(live, keys, capsys) -> None:
    s = keys["S_address"]
    as_session = ["--url", live.url, "--keystore", keys["S"], "--password-file", keys["pw"],
                  "--account", A_ADDR]
    order = ["--instrument", CALL, "--side", "sell", "--price", "140", "--amount", "0.01", "--post-only"]
    # not registered yet: refused
    code, _, err = run(capsys, "order", "place", *as_session, *order)
    assert code == 2 and "error [" in err and "Traceback" not in err
    # registered by its keystore file (only the address is read), JSON for scripts
    code, out, err = run(capsys, "session-key", "add", *conn(live, keys), keys["S"], "--expiry-seconds", "600",
                         "--json")
    assert code == 0, err
    added = json.loads(out)
    assert added["key"] == s and added["expiry"] == int(live.clock()) + 600
    code, out, err = run(capsys, "order", "place", *as_session, *order, "--json")
    assert code == 0, err
    h = json.loads(out)["orderHash"]
    mine = json.loads(run(capsys, "order", "list", *conn(live, keys), "--json")[1])
    assert [(o["orderHash"], o["price"]) for o in mine] == [(h, "140000000")]   # the order is A's
    # revoked by address: the session key signs no more for A
    code, out, err = run(capsys, "session-key", "revoke", *conn(live, keys), s)
    assert code == 0, err
    assert f"session key {s} revoked" in out
    code, _, err = run(capsys, "order", "place", *as_session, *order)
    assert code == 2 and "error [" in err and "Traceback" not in err
    code, _, err = run(capsys, "order", "cancel", *as_session, h)
    assert code == 2
    # the account itself still trades; and it may add the key again later
    assert run(capsys, "order", "cancel", *conn(live, keys), h)[0] == 0
    live.clock.t += 1
    assert run(capsys, "session-key", "add", *conn(live, keys), s)[0] == 0
    assert run(capsys, "order", "place", *as_session, *order)[0] == 0


def test_bad_input_is_a_message_and_exit_2(live, keys, tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "account", "--url", live.url)
    assert code == 2 and "error [missing_option]" in err
    code, _, err = run(capsys, "order", "replace", *conn(live, keys), "0x" + "11" * 32)
    assert code == 2 and "error [missing_option]" in err
    code, _, err = run(capsys, "order", "replace", *conn(live, keys), "0x" + "11" * 32, "--price", "1.0000001")
    assert code == 2 and "error [inexact_amount]" in err
    code, _, err = run(capsys, "order", "replace", *conn(live, keys), "0x" + "11" * 32, "--price", "130")
    assert code == 2 and "error [" in err and "Traceback" not in err
    code, _, err = run(capsys, "book", "ETH-1JAN27-1-C", "--url", live.url)
    assert code == 2 and "error [" in err
    code, _, err = run(capsys, "book", CALL, "--url", live.url, "--depth", "0")
    assert code == 2 and "error [invalid_number]" in err
    code, _, err = run(capsys, "trades", "--url", live.url, "--limit", "-1")
    assert code == 2 and "error [invalid_number]" in err
    code, _, err = run(capsys, "session-key", "add", *conn(live, keys), "not-an-address")
    assert code == 2 and "error [invalid_address]" in err
    code, _, err = run(capsys, "session-key", "add", *conn(live, keys), "0x" + "zz" * 20)
    assert code == 2 and "error [invalid_address]" in err
    code, _, err = run(capsys, "session-key", "add", *conn(live, keys), keys["S_address"], "--expiry-seconds", "0")
    assert code == 2 and "error [invalid_number]" in err
    code, _, err = run(capsys, "book", CALL, "--url", "http://127.0.0.1:1")
    assert code == 2 and "error [" in err
    with pytest.raises(SystemExit):   # no raw key on the command line
        main(["session-key", "add", "--url", live.url, "--key", A.hex, keys["S_address"]])
    assert A.hex.removeprefix("0x") not in capsys.readouterr().err
