"""Statements from blocks (sequencer.core.statement): liquidation takes and takeovers, trades
and settlements as rows whose running balance is the state's collateral, a window's opening
balance, and a block that does not re-seal to its header refused."""

from __future__ import annotations

import pytest

from sequencer.core import encode_tx, genesis, make_instrument
from sequencer.core.accounttree import AccountTree
from sequencer.core.chain import replay_block
from sequencer.core.header import ZERO32, Block, Header
from sequencer.core.state import account_leaf
from sequencer.core.statement import StatementError, build, to_csv
from tests.sequencer.core.core_world import CALL, PUT, T0, USERS
from tests.sequencer.core.test_liquidation import Flow, auctioned, short_account

B, C = USERS[1], USERS[2]
U = 10**6


def chain(f: Flow) -> tuple[list[Block], object]:
    """The Flow's blocks (the open one sealed too) with their headers, and a fresh genesis."""
    w = f.w
    kept = [*f.blocks, (w.engine.now, list(w.engine.txs))]
    st, tree, head = start(f)
    out = []
    for ts, txs in kept:
        if txs:
            raw = [encode_tx(t) for t in txs]
            head = replay_block(st, tree, head, ts, raw)
            out.append(Block(head, tuple(raw)))
    return out, st


def start(f: Flow):
    st = genesis(f.w.config, [make_instrument(CALL), make_instrument(PUT)])
    tree = AccountTree()
    tree.update({st.index[a]: account_leaf(a, x) for a, x in st.accounts.items()})
    st.touched.clear()
    return st, tree, Header(0, ZERO32, T0, ZERO32, tree.root(), ZERO32, 0)


def statement(f: Flow, blocks: list[Block], who: bytes, first: int = 1, last: int | None = None):
    st, tree, head = start(f)
    return build(st, tree, head, iter(blocks), who, first, len(blocks) if last is None else last)


def check_running(s, want: int) -> None:
    assert s.rows[0].kind == "opening_balance" and s.rows[-1].kind == "closing_balance"
    bal = s.rows[0].balance
    for r in s.rows[1:-1]:
        bal += r.change
        assert r.balance == bal, r
    assert s.closing == bal == want


def test_liquidation_take_rows_add_up() -> None:
    f = Flow()
    w = f.w
    poor = auctioned(f)
    f.bid(C, poor, 500_000)
    f.block()
    blocks, final = chain(f)
    for who in (poor.address, C.address, B.address, w.config.insurance_fund, w.config.fee_account):
        s = statement(f, blocks, who)
        check_running(s, w.state.accounts[who].collateral)
        assert "," in to_csv(s)
    kinds = [r.kind for r in statement(f, blocks, poor.address).rows]
    assert kinds[:3] == ["opening_balance", "deposit", "trade"]
    assert "auction_start" in kinds and "liquidated" in kinds
    taker = [r for r in statement(f, blocks, C.address).rows if r.kind == "liquidation_take"]
    assert len(taker) == 1 and taker[0].counterparty == poor.address
    assert "positions" in taker[0].detail
    # a window: its opening balance is the balance after the block before it
    whole = statement(f, blocks, poor.address)
    part = statement(f, blocks, poor.address, first=3)
    before = [r for r in whole.rows if r.block < 3 and r.tx is not None]
    assert part.rows[0].balance == (before[-1].balance if before else 0)
    assert part.closing == whole.closing


def test_takeover_rows_for_the_account_and_the_fund() -> None:
    f = Flow()
    w = f.w
    poor = short_account(f, amount=5 * U, collateral=460 * U)
    f.block(3000 * U)
    f.block(dt=61)
    w.feed_all(4400 * U, f.t)
    f.block()
    blocks, _ = chain(f)
    s = statement(f, blocks, poor.address)
    check_running(s, 0)
    assert [r.kind for r in s.rows if r.kind in ("auction_start", "takeover")] == \
        ["auction_start", "takeover"]
    fund = statement(f, blocks, w.config.insurance_fund)
    check_running(fund, w.state.accounts[w.config.insurance_fund].collateral)
    assert any(r.kind == "takeover_absorbed" and r.counterparty == poor.address for r in fund.rows)


def test_a_block_that_does_not_reseal_is_refused() -> None:
    f = Flow()
    f.w.place(B, is_buy=False, price=100 * U, amount=U, nonce=1)
    blocks, _ = chain(f)
    h = blocks[0].header
    bad = [Block(Header(h.number, h.parent_hash, h.timestamp, h.tx_root, b"\1" * 32,
                        h.withdrawal_root, h.l1_message_cursor), blocks[0].txs)]
    with pytest.raises(StatementError):
        statement(f, bad, B.address)
