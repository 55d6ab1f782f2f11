"""L1 messages on the node (real LevelDB): deposits and forced withdrawals in one nonce order,
refunds and payouts indexed by (account, nonce) with servable proofs, outcomes reported per
nonce, the marks root stored with every block, and all of it replayed exactly after a restart
(from the log and from a snapshot)."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path

import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak

from cext import merkle_proof, merkle_root, merkle_verify
from sequencer.core import FORCED_NONCE_BASE, MAX_COLLATERAL, state_bytes
from sequencer.core.chain import marks_root
from sequencer.core.eip712 import Withdraw, digest
from sequencer.core.header import WithdrawalLeaf
from sequencer.errors import Conflict
from sequencer.node.l1follower import DEPOSIT, FORCED_WITHDRAWAL, SeenMessage
from tests.sequencer.node.kit import CALL, PUT, USERS, Kit

A, B, C, D = USERS[:4]
U = 10**6


def forced(k: Kit, account: bytes, recipient: bytes, amount: int, l1_block: int = 2) -> int:
    """Process a forced withdrawal as the next L1 message; returns its nonce."""
    n = k.node.core.engine.state.message_cursor
    f: Future | None = k.node.process_l1_message(
        SeenMessage(n, FORCED_WITHDRAWAL, account, recipient, amount, l1_block))
    assert f is not None
    f.result(timeout=10)
    k.deposits = n + 1  # Kit.fund numbers deposits itself: keep it in the one queue
    return n


def deposit(k: Kit, account: bytes, amount: int, depositor: bytes, l1_block: int = 2) -> int:
    n = k.node.core.engine.state.message_cursor
    f = k.node.process_l1_message(SeenMessage(n, DEPOSIT, account, depositor, amount, l1_block))
    assert f is not None
    f.result(timeout=10)
    k.deposits = n + 1
    return n


def seal(k: Kit) -> None:
    k.clock.t += 1
    k.node.seal().result(timeout=10)


def leaf_by_hand(account: bytes, recipient: bytes, amount: int, nonce: int) -> bytes:
    return keccak(abi_encode(["bytes32", "address", "address", "uint256", "uint64"],
                             [keccak(b"optrollup.withdrawal.v1"), account, recipient, amount, nonce]))


def scenario(k: Kit) -> dict[str, int]:
    """Funded traders, resting orders, a short position; then one block with a refunded deposit,
    a credited one, a paid and two refused forced withdrawals, and a signed withdrawal."""
    for u in (A, B, C):
        k.fund(u, 10_000 * U)
    k.feeds()
    assert k.place(A, is_buy=False, price=100 * U, amount=U, nonce=1).status == "open"
    assert k.place(B, is_buy=True, price=100 * U, amount=U, nonce=2, tif=1).filledAmount == U
    assert k.place(A, is_buy=False, price=150 * U, amount=10_000, nonce=3).status == "open"
    assert k.place(A, instrument=PUT, is_buy=True, price=10 * U, amount=10_000, nonce=4).status == "open"
    assert k.place(C, is_buy=True, price=90 * U, amount=10_000, nonce=5).status == "open"
    seal(k)
    out = {}
    out["fill_to_cap"] = deposit(k, D.address, MAX_COLLATERAL - 1, C.address)
    out["refund"] = deposit(k, D.address, 2, C.address)                  # would overflow
    out["credit"] = deposit(k, B.address, 5 * U, C.address)              # later ones still credited
    out["paid"] = forced(k, A.address, D.address, 100 * U)               # cancels A's orders too
    everything = k.node.core.engine.state.accounts[A.address].collateral
    out["margin"] = forced(k, A.address, D.address, everything)          # short: refused
    out["unknown"] = forced(k, USERS[30].address, D.address, U)          # no such account
    w = Withdraw(C.address, C.address, 7 * U, 0)
    assert not isinstance(k.run([(w, k.sign(C, w))])[0], Exception)
    out["credit2"] = deposit(k, C.address, 3 * U, C.address)
    return out


def test_l1_messages_outcomes_leaves_and_index(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    n = scenario(k)
    node, st = k.node, k.node.core.engine.state
    # before the seal: processed, pending
    got = node.l1_message(n["paid"])
    assert got.status == "pending" and got.block is None and got.withdrawal is None
    assert node.l1_message(st.message_cursor) is None
    # the engine cancelled A's resting orders; C's is still there
    assert not node.core.engine.by_account.get(A.address)
    assert [r.order.account for r in node.core.engine.open.values()] == [C.address]
    assert st.accounts[D.address].collateral == MAX_COLLATERAL - 1  # the 2 were refunded
    assert st.accounts[B.address].collateral == 10_000 * U - 100 * U - fee(k, B) + 5 * U
    assert st.accounts[A.address].collateral == 10_000 * U + 100 * U - fee(k, A) - 100 * U
    seal(k)
    head = node.core.head
    want = [WithdrawalLeaf(D.address, C.address, 2, FORCED_NONCE_BASE + n["refund"]),
            WithdrawalLeaf(A.address, D.address, 100 * U, FORCED_NONCE_BASE + n["paid"]),
            WithdrawalLeaf(C.address, C.address, 7 * U, 0)]
    leaves = [leaf_by_hand(*w) for w in want]
    assert head.withdrawal_root == merkle_root(leaves)
    assert node.block_withdrawal_leaves(head.number) == leaves
    assert head.l1_message_cursor == n["credit2"] + 1

    def message(nonce: int) -> tuple:
        m = node.l1_message(nonce)
        return (m.kind, m.account, m.counterparty, m.amount, m.status, m.reason, m.block,
                m.withdrawal, m.leaf_index)

    assert message(n["refund"]) == (DEPOSIT, D.address, C.address, 2, "refunded", None,
                                    head.number, want[0], 0)
    assert message(n["credit"]) == (DEPOSIT, B.address, C.address, 5 * U, "credited", None,
                                    head.number, None, None)
    assert message(n["paid"]) == (FORCED_WITHDRAWAL, A.address, D.address, 100 * U, "paid_out",
                                  None, head.number, want[1], 1)
    assert message(n["margin"])[4:7] == ("refused", "insufficient_margin", head.number)
    assert message(n["unknown"])[4:6] == ("refused", "unknown_account")
    assert node.l1_message(0).status == "credited" and node.l1_message(0).block < head.number
    # every leaf by (account, nonce), the signed one also by its digest; proofs verify
    for i, w in enumerate(want):
        got = node.withdrawal_by_nonce(w.account, w.nonce)
        assert got == (head.number, i, w.account, w.recipient, w.amount, w.nonce)
        assert merkle_verify(head.withdrawal_root, leaves[i], i, merkle_proof(leaves, i))
    d = digest(k.cfg.genesis.config.domain, Withdraw(C.address, C.address, 7 * U, 0))
    assert node.withdrawal(d) == (head.number, 2, C.address, C.address, 7 * U, 0)
    assert node.withdrawal_by_nonce(A.address, FORCED_NONCE_BASE + n["margin"]) is None
    k.node.close()


def fee(k: Kit, key) -> int:
    """Fees `key` paid on its one fill (maker A, taker B) in the scenario."""
    from sequencer.core.margin import fee as fee_of
    params = k.cfg.genesis.config.underlyings["ETH"]
    rate = params.maker_fee if key is A else params.taker_fee
    return fee_of(100 * U, U, 3000 * U, rate, params.fee_cap)


def test_the_marks_root_is_stored_with_every_block(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    node = k.node
    g = node.store.sealed(0)
    assert g.marks_root == marks_root(k.cfg.genesis.block0()[0], k.cfg.genesis.timestamp)
    assert g.block.header == k.cfg.genesis.block0()[2]  # the header is unchanged by it
    k.fund(A, 1_000 * U)
    k.feeds()
    seal(k)
    st, head = node.core.engine.state, node.core.head
    stored = node.store.sealed(head.number)
    assert stored.marks_root == marks_root(st, head.timestamp) != g.marks_root
    assert node.block_marks_root(head.number) == stored.marks_root
    k.clock.t += 3600  # the feeds go stale: the next block's marks are 0/0
    k.fund(B, U)
    seal(k)
    head = node.core.head
    assert node.block_marks_root(head.number) == marks_root(st, head.timestamp) == g.marks_root
    assert node.block_marks_root(head.number + 1) is None
    k.node.close()


@pytest.mark.parametrize("snapshots", [False, True])
def test_restart_replays_refunds_and_forced_withdrawals(tmp_path: Path, snapshots: bool) -> None:
    """Close and reopen the node on its LevelDB (log replay, or a snapshot and the log after it):
    the same headers, state, outcomes and index; the node keeps processing in nonce order."""
    k = Kit(tmp_path, **({"snapshot_every_records": 4} if snapshots else {}))
    n = scenario(k)
    seal(k)
    extra = forced(k, B.address, A.address, U)          # left in the open block
    node = k.node
    if snapshots:
        node.snapshotter.wait()
        from sequencer.node.snapshot import decode_core
        decode_core(node.snapshot_files.latest()[1], k.cfg)  # usable: the restart starts there
    head = node.core.head
    want = (state_bytes(node.core.engine.state), head, node.core.tree.root(),
            [node.store.get(i)[0] for i in range(head.number + 1)],
            [node.l1_message(i) for i in range(extra + 1)],
            [node.block_marks_root(i) for i in range(head.number + 1)],
            node.withdrawal_by_nonce(A.address, FORCED_NONCE_BASE + n["paid"]))
    node = k.reopen()
    got = (state_bytes(node.core.engine.state), node.core.head, node.core.tree.root(),
           [node.store.get(i)[0] for i in range(head.number + 1)],
           [node.l1_message(i) for i in range(extra + 1)],
           [node.block_marks_root(i) for i in range(head.number + 1)],
           node.withdrawal_by_nonce(A.address, FORCED_NONCE_BASE + n["paid"]))
    assert got == want
    assert node.l1_message(extra).status == "pending"
    assert node.core.engine.state.withdrawal_leaves == [
        WithdrawalLeaf(B.address, A.address, U, FORCED_NONCE_BASE + extra)]
    seal(k)
    assert node.l1_message(extra).status == "paid_out"
    assert node.core.head.number == head.number + 1
    k.node.close()


def test_messages_are_processed_once_in_nonce_order(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    k.fund(A, 10 * U)                                    # nonce 0
    node = k.node
    later = SeenMessage(2, FORCED_WITHDRAWAL, A.address, B.address, U, 3)
    with pytest.raises(Conflict) as info:
        node.process_l1_message(later)
    assert info.value.code == "l1_message_gap" and "before the message cursor 1" in info.value.message
    with pytest.raises(Conflict) as info:
        node.process_l1_message(SeenMessage(2, DEPOSIT, A.address, B.address, U, 3))
    assert info.value.code == "deposit_gap"
    assert node.process_l1_message(SeenMessage(0, FORCED_WITHDRAWAL, A.address, B.address, U, 1)) is None
    assert node.core.engine.state.message_cursor == 1  # nothing happened
    node.process_l1_message(SeenMessage(1, FORCED_WITHDRAWAL, A.address, B.address, U, 3)).result(timeout=10)
    node.process_l1_message(later).result(timeout=10)
    assert node.core.engine.state.accounts[A.address].collateral == 8 * U
    assert node.core.l1_block == 3
    k.node.close()


def test_a_forced_withdrawal_bumps_the_books_it_cancelled_in(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    k.fund(A, 1_000 * U)
    k.feeds()
    assert k.place(A, instrument=PUT, is_buy=True, price=10 * U, amount=10_000, nonce=1).status == "open"
    seq = dict(k.node.core.book_seq)
    forced(k, A.address, B.address, U)
    assert k.node.core.book_seq[PUT] == seq[PUT] + 1 and k.node.core.book_seq.get(CALL) == seq.get(CALL)
    assert k.node.open_orders(A.address) == {}
    k.node.close()
