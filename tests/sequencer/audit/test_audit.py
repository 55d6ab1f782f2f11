"""`optrollup audit export|verify` (sequencer.audit, format sequencer.core.audit): a round trip
over a node's data dir and over its HTTP API, the CLI, a one-byte edit anywhere caught (at the
right line), and files signed by the operator that still lie (another record, another block, a
block that does not replay) caught by the re-execution against the chain and the input log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from sequencer.api.app import create_app
from sequencer.audit.export import export, keystore_signer
from sequencer.audit.sources import DataDirSource, HttpSource
from sequencer.audit.verify import verify
from sequencer.cli import main
from sequencer.core.audit import AuditError, Writer, check_file
from sequencer.core.eip712 import Cancel, DenyL1, FreezeAccount, Withdraw
from sequencer.core.header import Header, tx_root
from sequencer.errors import OptrollupError
from sequencer.node.records import decode_record
from tests.sequencer.core.core_world import OPERATOR, Key
from tests.sequencer.node.kit import PUT, USERS, Kit

A, B, C = USERS[:3]
U = 10**6
OP = Account.from_key(OPERATOR.priv.secret)


def build(tmp: Path) -> Path:
    """A data dir (node closed) with 4+ blocks: deposits, feeds, trades, an order that never
    fills and its cancel, a withdrawal, a freeze and a deny-list entry; node.json beside it."""
    k = Kit(tmp / "node")
    (tmp / "node.json").write_text(json.dumps(k.cfg.to_json()))
    for u in (A, B, C):
        k.fund(u, 10_000 * U)
    k.feeds()
    k.node.seal(int(k.clock()) + 1).result(timeout=10)
    k.clock.t += 1
    k.place(A, is_buy=False, price=100 * U, amount=U, nonce=1)
    k.place(B, is_buy=True, price=100 * U, amount=50_000, nonce=2, tif=1)
    spoof = k.place(C, instrument=PUT, is_buy=True, price=20 * U, amount=10_000, nonce=3)
    c = Cancel(C.address, spoof.orderHash)
    assert not isinstance(k.run([(c, k.sign(C, c))])[0], Exception)
    k.node.seal(int(k.clock()) + 1).result(timeout=10)
    k.clock.t += 1
    w = Withdraw(B.address, B.address, 5 * U, 0)
    for msg, key in ((w, B), (FreezeAccount(A.address, 0), OPERATOR),
                     (DenyL1(Key(777).address, True, 1), OPERATOR)):
        assert not isinstance(k.run([(msg, k.sign(key, msg))])[0], Exception)
    k.node.seal(int(k.clock()) + 1).result(timeout=10)
    k.clock.t += 5
    k.place(B, is_buy=True, price=100 * U, amount=50_000, nonce=4, tif=1)  # A's rest was cancelled
    k.fund(C, 1 * U)
    k.node.seal(int(k.clock()) + 1).result(timeout=10)
    assert k.node.core.head.number >= 4
    k.node.close()
    return tmp / "node"


@pytest.fixture(scope="module")
def datadir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("audit"))


def do_export(d: Path, first: int, last: int, key: Any = OP) -> bytes:
    src = DataDirSource(d)
    try:
        return export(src, first, last, *keystore_signer(key))
    finally:
        src.close()


def do_verify(d: Path, data: bytes) -> Any:
    src = DataDirSource(d)
    try:
        return verify(data, src)
    finally:
        src.close()


def bad_line(d: Path, data: bytes) -> int:
    with pytest.raises(AuditError) as e:
        do_verify(d, data)
    return e.value.line


def lines_of(data: bytes) -> list[dict]:
    return [json.loads(x) for x in data.splitlines()]


def resign(objs: list[dict], key: Any = OP) -> bytes:
    """The same lines, re-chained and re-signed (what a dishonest operator could produce)."""
    w = Writer()
    for o in objs[:-1]:
        w.add({k: v for k, v in o.items() if k != "prev"})
    signer, sign = keystore_signer(key)
    return w.finish(signer, sign)


def test_round_trip_over_the_data_dir(datadir: Path) -> None:
    data = do_export(datadir, 2, 3)
    objs = lines_of(data)
    assert objs[0]["kind"] == "header" and objs[-1]["kind"] == "end"
    assert [o["number"] for o in objs if o["kind"] == "block"] == [2, 3]
    types = [o["type"] for o in objs if o["kind"] == "record"]
    # the audit trail has what blocks do not: the order that never filled and its cancel
    assert "Cancel" in types and types.count("Order") == 3 and "FreezeAccount" in types
    assert types[-1] == "Seal"
    rep = do_verify(datadir, data)
    assert rep.reexecuted and (rep.first, rep.last) == (2, 3) and rep.records == len(types)
    whole = do_export(datadir, 1, 4)
    assert do_verify(datadir, whole).lines == len(whole.splitlines())
    # only the operator signs exports
    with pytest.raises(OptrollupError) as e:
        do_export(datadir, 1, 2, key=Account.from_key(B.priv.secret))
    assert e.value.code == "operator_required"
    with pytest.raises(OptrollupError) as e:
        do_export(datadir, 3, 99)
    assert e.value.code == "block_not_found"


def test_every_one_byte_edit_is_caught(datadir: Path) -> None:
    data = do_export(datadir, 3, 3)
    check_file(data, decode_record)
    n = len(data.splitlines())
    starts = [0]
    for line in data.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    for i in range(len(data)):
        for new in {data[i] ^ 0x01, ord("0") if data[i] != ord("0") else ord("1")}:
            edited = data[:i] + bytes([new]) + data[i + 1:]
            with pytest.raises(AuditError) as e:
                check_file(edited, decode_record)
            line = next(j for j in range(n) if starts[j] <= i < starts[j + 1]) + 1
            # caught at the edited line, or the next one (whose prev no longer matches)
            assert e.value.line in (line, line + 1), (i, e.value)
    # and the full verification fails on a few of them too
    for i in (10, len(data) // 2, len(data) - 5):
        assert bad_line(datadir, data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]) >= 1


def test_operator_signed_lies_are_caught(datadir: Path) -> None:
    data = do_export(datadir, 2, 3)
    objs = lines_of(data)
    # another record in place of the logged one (C's bid at another price)
    i = next(j for j, o in enumerate(objs) if o.get("type") == "Order" and o["kind"] == "record")
    rec = decode_record(bytes.fromhex(objs[i]["raw"][2:]))
    msg = rec.msg._replace(price=rec.msg.price + 100_000)
    from sequencer.node.records import Signed, encode_record
    from sequencer.core.audit import record_json
    raw = encode_record(Signed(msg, rec.signature, rec.digest, rec.signer))
    forged = [dict(o) for o in objs]
    forged[i] = {**objs[i], "raw": "0x" + raw.hex(), "record": record_json(raw)}
    assert bad_line(datadir, resign(forged)) == i + 1
    # a block whose txs are reordered (header made consistent): it does not replay
    b = max((j for j, o in enumerate(objs) if o["kind"] == "block"),
            key=lambda j: len(objs[j]["txs"]))
    txs = list(reversed(objs[b]["txs"]))
    assert txs != objs[b]["txs"]
    h = Header.from_json(objs[b]["header"])
    h2 = Header(h.number, h.parent_hash, h.timestamp, tx_root([bytes.fromhex(t[2:]) for t in txs]),
                h.state_root, h.withdrawal_root, h.l1_message_cursor)
    forged = [dict(o) for o in objs]
    forged[b] = {**objs[b], "txs": txs, "header": h2.to_json()}
    assert bad_line(datadir, resign(forged)) == b + 1
    # a record left out (seqs re-numbered would not match the log; left as is: not contiguous)
    forged = [dict(o) for o in objs]
    del forged[i]
    assert bad_line(datadir, resign(forged)) == i + 1
    # signed by a key that is not the chain's operator (header naming it)
    other = Account.from_key(B.priv.secret)
    forged = [dict(o) for o in objs]
    forged[0] = {**objs[0], "operator": other.address.lower()}
    assert bad_line(datadir, resign(forged, other)) == len(objs)
    # the canonical form is part of the file: same JSON, other spacing
    lines = data.splitlines()
    spaced = b"\n".join([lines[0].replace(b",", b", ", 1), *lines[1:]]) + b"\n"
    assert bad_line(datadir, spaced) == 1


def test_verify_over_http_and_the_cli(datadir: Path, tmp_path: Path, capsys) -> None:
    ks = tmp_path / "operator.json"
    ks.write_text(json.dumps(Account.encrypt(OPERATOR.priv.secret, "pw")))
    pw = tmp_path / "pw"
    pw.write_text("pw\n")
    out = tmp_path / "audit.jsonl"
    assert main(["audit", "export", "--data-dir", str(datadir), "--from", "1", "--to", "3",
                 "--keystore", str(ks), "--password-file", str(pw), "--out", str(out)]) == 0
    assert main(["audit", "verify", str(out), "--data-dir", str(datadir)]) == 0
    assert "OK" in capsys.readouterr().out
    data = out.read_bytes()
    k = data.index(b'"kind":"block"')
    out.write_bytes(data[:k + 3] + b"X" + data[k + 4:])
    assert main(["audit", "verify", str(out), "--data-dir", str(datadir)]) == 1
    assert "INVALID at line" in capsys.readouterr().err
    # against the sequencer's HTTP API (blocks only: the records are checked in form)
    from tests.sequencer.node.kit import node_config
    from sequencer.node.node import Node
    from tests.sequencer.node.kit import Clock
    node = Node(datadir, node_config(), clock=Clock(0))
    try:
        client = TestClient(create_app(node))
        src = HttpSource("http://testserver", client)
        rep = verify(data, src)
        assert not rep.reexecuted and rep.last == 3
        with pytest.raises(AuditError):
            verify(data[:-40] + data[-40:].replace(b"a", b"b", 1), src)
    finally:
        node.close()
