"""Compliance in the node (docs/compliance.md): operator-signed Freeze/Unfreeze/DenyL1 as
input-log records and block txs, replayed on restart; the L1 message outcome of a denied
deposit; a snapshot round trip with frozen accounts and the deny list (and a version-5
snapshot written before they existed); statements built from the node's blocks."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from sequencer.api.compliance import statement
from sequencer.core import FORCED_NONCE_BASE
from sequencer.core.eip712 import DenyL1, FreezeAccount, UnfreezeAccount, Withdraw
from sequencer.core.header import WithdrawalLeaf
from sequencer.core.margin import fee as fee_of
from sequencer.core.statement import COLUMNS, to_csv
from sequencer.core.txs import DenyL1Tx, FreezeTx, UnfreezeTx, decode_tx
from sequencer.errors import OptrollupError
from sequencer.node.snapshot import copy_core_plain, decode_core, encode_core, pack_plain
from tests.sequencer.core.core_world import OPERATOR, Key
from tests.sequencer.node.kit import CALL, PUT, USERS, Kit
from tests.sequencer.node.snapshot_compare import assert_cores_equal

A, B, C = USERS[:3]
L1X = Key(777)
U = 10**6


def act(k: Kit, msg: Any, key: Key = OPERATOR) -> Any:
    return k.run([(msg, k.sign(key, msg))])[0]


def nonce(k: Kit) -> int:
    return k.node.core.engine.state.compliance_nonce


def test_freeze_unfreeze_deny_are_logged_block_txs_and_replay(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    for u in (A, B, C):
        k.fund(u, 10_000 * U)
    k.feeds()
    r = k.place(A, is_buy=False, price=100 * U, amount=10_000, nonce=1)
    seq = dict(k.node.core.book_seq)
    tx, cancelled = act(k, FreezeAccount(A.address, 0))
    assert isinstance(tx, FreezeTx) and cancelled == [r.orderHash]
    assert k.node.core.book_seq[CALL] == seq[CALL] + 1  # its book changed
    assert k.node.account(A.address).frozenAt == k.node.core.engine.now
    bad = act(k, FreezeAccount(B.address, 1), key=B)
    assert isinstance(bad, OptrollupError) and bad.code == "signer_mismatch"
    bad = act(k, FreezeAccount(B.address, 0))
    assert isinstance(bad, OptrollupError) and bad.code == "bad_compliance_nonce"
    assert k.place(A, is_buy=False, price=100 * U, amount=10_000, nonce=2).code == "account_frozen"
    act(k, DenyL1(L1X.address, True, 1))
    # a deposit from the denied address: refunded, with its reason and leaf
    f = k.node.credit_deposit(B.address, 5 * U, k.deposits, 1, depositor=L1X.address)
    f.result(timeout=10)
    refund_nonce = k.deposits
    k.deposits += 1
    act(k, UnfreezeAccount(A.address, 2))
    k.node.seal(int(k.clock()) + 1).result(timeout=10)
    m = k.node.l1_message(refund_nonce)
    assert (m.status, m.reason) == ("refunded", "depositor_denied")
    assert m.withdrawal == WithdrawalLeaf(B.address, L1X.address, 5 * U,
                                          FORCED_NONCE_BASE + refund_nonce)
    block = k.node.store.get(k.node.core.head.number)[0]
    kinds = [type(decode_tx(t)) for t in block.txs]
    assert kinds.count(FreezeTx) == kinds.count(UnfreezeTx) == kinds.count(DenyL1Tx) == 1
    st = k.node.core.engine.state
    want = (dict(st.frozen), dict(st.denied), st.compliance_nonce)
    assert want == ({}, {L1X.address: block.header.timestamp}, 3)
    live = k.node.core
    node = k.reopen()  # the log replays to the same core
    assert_cores_equal(live, node.core)
    node.close()


def test_snapshot_round_trip_with_frozen_accounts_and_the_deny_list(tmp_path: Path) -> None:
    k = Kit(tmp_path, snapshot_every_records=10**9)
    for u in (A, B):
        k.fund(u, 1_000 * U)
    act(k, FreezeAccount(A.address, 0))
    act(k, DenyL1(L1X.address, True, 1))
    act(k, DenyL1(C.address, True, 2))
    core, cfg = k.node.core, k.cfg
    data = encode_core(core, cfg)
    got = decode_core(data, cfg)
    assert_cores_equal(core, got)
    st = got.engine.state
    assert list(st.frozen) == [A.address] and list(st.denied) == [L1X.address, C.address]
    assert st.compliance_nonce == 3 and encode_core(got, cfg) == data
    # a version-5 state of 16 parts (written before compliance existed) reads as none of it
    plain = copy_core_plain(core, cfg)
    plain[4] = plain[4][:16]
    old = decode_core(pack_plain(plain), cfg).engine.state
    assert (old.frozen, old.denied, old.compliance_nonce) == ({}, {}, 0)
    k.node.close()


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_statement_running_balance_is_the_state(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    k.fund(A, 10_000 * U)
    k.fund(B, 10_000 * U)
    k.feeds()
    k.node.seal(int(k.clock()) + 1).result(timeout=10)
    k.clock.t += 1
    k.place(A, is_buy=False, price=100 * U, amount=U, nonce=1)
    k.place(B, is_buy=True, price=100 * U, amount=U, nonce=2, tif=1)     # A maker, sells
    k.place(A, instrument=PUT, is_buy=True, price=50 * U, amount=20_000, nonce=3)
    k.place(C, instrument=PUT, is_buy=False, price=50 * U, amount=20_000, nonce=4, tif=1)  # C unknown
    w = Withdraw(A.address, A.address, 7 * U, 0)
    assert not isinstance(act(k, w, key=A), OptrollupError)
    k.node.seal(int(k.clock()) + 1).result(timeout=10)
    k.fund(A, 3 * U)
    act(k, FreezeAccount(A.address, 0))
    k.node.seal(int(k.clock()) + 2).result(timeout=10)
    head = k.node.durable_head()
    assert head >= 3
    st = statement(k.node, A.address, 1, head)
    text = to_csv(st)
    got = rows(text)
    assert list(got[0]) == list(COLUMNS)
    assert got[0]["type"] == "opening_balance" and got[0]["balance"] == "0"
    assert got[-1]["type"] == "closing_balance"
    coll = k.node.core.engine.state.accounts[A.address].collateral
    assert int(got[-1]["balance"]) == coll == st.closing
    bal = 0
    for r in got[1:-1]:  # the running balance adds up
        bal += int(r["change"])
        assert int(r["balance"]) == bal
    kinds = [r["type"] for r in got]
    assert kinds == ["opening_balance", "deposit", "trade", "withdrawal", "deposit", "frozen",
                     "closing_balance"]
    trade = got[2]
    params = k.cfg.genesis.config.underlyings["ETH"]
    assert (trade["side"], trade["role"], trade["instrument"]) == ("sell", "maker", CALL)
    assert int(trade["premium"]) == 100 * U
    assert int(trade["fee"]) == fee_of(100 * U, U, 3000 * U, params.maker_fee, params.fee_cap)
    assert int(trade["change"]) == 100 * U - int(trade["fee"]) and trade["position"] == str(-U)
    assert trade["counterparty"].lower() == "0x" + B.address.hex()
    # a window: opening balance = the balance after the block before it
    later = statement(k.node, A.address, 3, head)
    assert later.rows[0].balance == st.rows[[r.block for r in st.rows].index(3)].balance \
        - st.rows[[r.block for r in st.rows].index(3)].change
    assert later.closing == coll
    # the fee account's view: fee income rows that add up to its collateral
    fee_acct = statement(k.node, k.cfg.genesis.config.fee_account, 1, head)
    assert {r.kind for r in fee_acct.rows[1:-1]} == {"fee_income"}
    assert fee_acct.closing == k.node.core.engine.state.accounts[
        k.cfg.genesis.config.fee_account].collateral
    k.node.close()
