"""The node on a real LevelDB: trading, sealing, restart from the log and from snapshots."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest

from cext import merkle_verify
from sequencer.core import state_bytes
from sequencer.core.chainspec import Genesis
from sequencer.core.state import account_leaf
from sequencer.errors import OptrollupError
from sequencer.node import NodeConfig
from sequencer.node.node import Node
from sequencer.store import DataDirLocked, StoreError, open_db
from sequencer.store import log as log_store
from tests.sequencer.node.kit import CALL, T0, USERS, Kit, order

A, B, C = USERS[:3]
U = 10**6


def test_leaves_taken_ahead_seal_the_block_a_replay_seals(tmp_path: Path) -> None:
    """`seal_ahead` (the runner's call just before a seal) takes the touched accounts' leaves
    and hashes the open block's tx leaves (`hash_ahead`, every tick, only those), so the seal
    does only what came after. Accounts changed after it (B, and A again) must still
    reach the root: the sealed block is the one a node that never looked ahead seals (the
    reopened node replays the log and checks every stored block against its own)."""
    k = Kit(tmp_path)
    trade_some(k)
    node, eng = k.node, k.node.core.engine
    seal(k)
    def trade(seller: Any, buyer: Any, nonce: int) -> None:
        r = k.place(seller, instrument=CALL, is_buy=False, price=100 * U, amount=10_000,
                    nonce=nonce, expiry=T0 + 3600)
        assert r.status == "open"
        r = k.place(buyer, instrument=CALL, is_buy=True, price=100 * U, amount=10_000,
                    nonce=nonce + 1, expiry=T0 + 3600, tif=1)
        assert r.filledAmount == 10_000

    trade(A, B, 200)
    node.hash_ahead()  # an ordinary tick: only tx leaves are hashed
    assert "_leaves_ahead" not in node.__dict__ and eng.state.touched
    assert len(node._open_bytes().leaves) == len(eng.txs) > 0
    k.clock.t += 0.9
    assert node.seal_due() == eng.now + 1
    node.seal_ahead()  # just before the seal: A's and B's leaves taken now
    ahead = dict(node.__dict__["_leaves_ahead"])
    assert {A.address, B.address} <= set(ahead) and not eng.state.touched
    trade(C, A, 300)  # A trades again after its leaf was taken, C for the first time
    assert {A.address, C.address} <= eng.state.touched and B.address not in eng.state.touched
    seal(k)
    assert "_leaves_ahead" not in node.__dict__
    st, tree = eng.state, node.core.tree
    for u in (A, B, C):
        assert tree.leaf(st.index[u.address]) == account_leaf(u.address, st.accounts[u.address])
    reg = node.metrics.registry  # the work done ahead is timed (optrollup_seal_ahead_seconds)
    assert reg.get_sample_value("optrollup_seal_ahead_seconds_count") == 1
    head = node.core.head
    again = k.reopen()  # replays every record; a re-sealed block unequal to the stored one raises
    assert again.core.head == head


def trade_some(k: Kit, n: int = 5) -> None:
    for u in (A, B, C):
        k.fund(u, 100_000 * U)
    k.feeds()
    for i in range(n):
        r = k.place(A, instrument=CALL, is_buy=False, price=(100 + i) * U, amount=10_000, nonce=i,
                    expiry=T0 + 3600)
        assert r.status == "open", r
    k.clock.t += 1
    r = k.place(B, instrument=CALL, is_buy=True, price=102 * U, amount=30_000, nonce=100,
                expiry=T0 + 3600, tif=1)
    assert r.filledAmount == 30_000 and len(r.fills) == 3


def seal(k: Kit) -> None:
    k.clock.t += 1
    k.node.seal().result(timeout=10)


def test_trading_seals_a_chained_block(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    trade_some(k)
    seal(k)
    node = k.node
    head = node.core.head
    assert head.number >= 1
    blocks = [node.store.get(n)[0] for n in range(head.number + 1)]
    for parent, child in zip(blocks, blocks[1:]):
        assert child.header.parent_hash == parent.header.hash()
        assert child.header.number == parent.header.number + 1
    assert blocks[0].header == k.cfg.genesis.block0()[2]
    # an account proof against the head's state root
    state = node.core.engine.state
    idx = state.index[B.address]
    assert merkle_verify(head.state_root, account_leaf(B.address, state.accounts[B.address]), idx,
                         node.core.tree.proof(idx))
    assert state.accounts[B.address].positions[CALL] == 30_000
    assert len(node.core.trades) == 3
    # every seal is timed (optrollup_seal_seconds): at least one per sealed block, in seconds
    reg = node.metrics.registry
    seals = reg.get_sample_value("optrollup_seal_seconds_count")
    assert seals >= head.number
    assert 0 < reg.get_sample_value("optrollup_seal_seconds_sum") / seals < 10
    k.node.close()


def test_rejected_requests_are_not_logged(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    k.fund(A, 1_000 * U)
    k.feeds()
    before = k.node.committer.next_seq
    bad = k.place(A, instrument=CALL, is_buy=False, price=100 * U + 1, amount=10_000, nonce=1)
    assert isinstance(bad, OptrollupError) and bad.code == "price_not_on_tick"
    o = order(A, nonce=2)
    forged = k.run([(o, B.sign(b"\0" * 32))])[0]   # a signature by someone else over another digest
    assert isinstance(forged, OptrollupError) and forged.code in ("signer_mismatch", "bad_signature")
    assert k.node.committer.next_seq == before
    k.node.close()


def served(node: Node) -> tuple:
    """What a node serves that a restart must reproduce: state, head, tree root, open orders,
    time and trades."""
    return (state_bytes(node.core.engine.state), node.core.head, node.core.tree.root(),
            set(node.core.engine.open), node.core.engine.now, list(node.core.trades))


def restart_matches(k: Kit) -> None:
    want = served(k.node)
    assert served(k.reopen()) == want


def trades_on_and_replays(k: Kit) -> None:
    """After a restart the node keeps working: C's bid fills, the block seals, it replays."""
    r = k.place(C, instrument=CALL, is_buy=True, price=104 * U, amount=10_000, nonce=8,
                expiry=T0 + 3600)
    assert r.filledAmount == 10_000
    seal(k)
    restart_matches(k)


def test_restart_replays_log_to_the_same_state(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    trade_some(k)
    seal(k)
    k.place(C, instrument=CALL, is_buy=True, price=90 * U, amount=10_000, nonce=7, expiry=T0 + 3600)
    restart_matches(k)   # open block with pending state, resting orders
    trades_on_and_replays(k)
    k.node.close()


def test_a_log_written_a_value_per_record_still_replays(tmp_path: Path) -> None:
    """Data dirs from before the grouped log (sequencer/store/log.py) kept one LevelDB value per
    record: a node reopened on one replays to the same state, logs on after it in groups, and
    replays the mix."""
    k = Kit(tmp_path)
    trade_some(k)
    seal(k)
    k.place(C, instrument=CALL, is_buy=True, price=90 * U, amount=10_000, nonce=7, expiry=T0 + 3600)
    want, n = served(k.node), k.node.log.next_seq
    k.node.close()
    db = open_db(tmp_path / "db")  # rewrite the log as the old layout had it
    groups = list(db.iterator(prefix=log_store.PREFIX))
    assert len(groups) < n  # it was written in groups
    with db.write_batch(sync=True) as wb:
        for key, value in groups:
            wb.delete(key)
            first = int.from_bytes(key[len(log_store.PREFIX):], "big")
            for i, rec in enumerate(log_store.unpack_group(value)):
                wb.put(log_store.PREFIX + (first + i).to_bytes(8, "big"), rec)
    assert sum(1 for _ in db.iterator(prefix=log_store.PREFIX)) == n
    db.close()
    k.node = Node(tmp_path, k.cfg, clock=k.clock)
    assert k.node.log.next_seq == n
    assert served(k.node) == want
    trades_on_and_replays(k)
    k.node.close()


def test_restart_from_snapshot(tmp_path: Path) -> None:
    k = Kit(tmp_path, snapshot_every_records=5)
    trade_some(k)
    seal(k)
    k.place(C, instrument=CALL, is_buy=True, price=90 * U, amount=10_000, nonce=7, expiry=T0 + 3600)
    k.node.snapshotter.wait()
    assert k.node.snapshot_files.latest() is not None
    assert len(k.node.snapshot_files.seqs()) <= 2  # pruned
    restart_matches(k)
    k.node.close()


def test_corrupt_snapshot_falls_back_to_full_replay(tmp_path: Path) -> None:
    k = Kit(tmp_path, snapshot_every_records=3)
    trade_some(k)
    seal(k)
    k.node.snapshotter.wait()
    seq, _ = k.node.snapshot_files.latest()
    path = k.node.snapshot_files.path(seq)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1  # a flipped bit: the CRC refuses it
    path.write_bytes(bytes(raw))
    restart_matches(k)
    k.node.close()


def test_second_node_on_same_dir_is_refused(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    with pytest.raises(DataDirLocked):
        Node(tmp_path, k.cfg)
    k.node.close()


def test_data_dir_of_another_chain_is_refused(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    k.node.close()
    g = k.cfg.genesis
    other = NodeConfig(k.cfg.chain_id, k.cfg.rollup, Genesis(g.config, g.timestamp + 1, g.instruments))
    with pytest.raises(StoreError, match="another chain"):
        Node(tmp_path, other)


def test_operator_cancel_is_logged_and_replayed(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    trade_some(k)
    k.place(C, instrument=CALL, is_buy=True, price=90 * U, amount=10_000, nonce=7, expiry=T0 + 3600)
    assert any(r.order.account == C.address for r in k.node.core.engine.open.values())
    k.node.operator_cancel_all(C.address, "cancel_on_disconnect").result(timeout=10)
    assert not any(r.order.account == C.address for r in k.node.core.engine.open.values())
    assert k.node.operator_cancel_all(C.address, "again") is None
    restart_matches(k)   # replay repeats the cancel: the order does not come back
    assert not any(r.order.account == C.address for r in k.node.core.engine.open.values())
    k.node.close()


def test_listeners_fire_only_after_durability_and_never_for_rejections(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    trade_some(k)
    seen: list[tuple[str, object]] = []
    k.node.listeners.append(lambda kind, payload: seen.append((kind, payload)))
    bad = k.place(A, instrument=CALL, is_buy=False, price=100 * U + 1, amount=10_000, nonce=50)
    assert isinstance(bad, OptrollupError) and seen == []
    k.place(C, instrument=CALL, is_buy=True, price=110 * U, amount=10_000, nonce=51, expiry=T0 + 3600,
            tif=1)  # Kit.run waits for durability before returning
    kinds = [kind for kind, _ in seen]
    assert "trade" in kinds and "book" in kinds
    k.node.close()


def test_a_sealed_withdrawal_is_never_unfindable(tmp_path: Path) -> None:
    """Between sealing and the seal's synced write, a withdrawal must still answer (pending)."""
    from sequencer.core.eip712 import Withdraw
    k = Kit(tmp_path)
    k.fund(A, 1_000 * U)
    w = Withdraw(A.address, A.address, 5 * U, 0)
    assert not isinstance(k.run([(w, k.sign(A, w))])[0], OptrollupError)
    d = k.node.core.engine.ctx.digest(k.node.domain, w)
    release = __import__("threading").Event()
    real_write = k.node.log.write

    def slow_write(*args, **kw):  # injected fault: hold the seal's write until we have looked
        release.wait(10)
        return real_write(*args, **kw)

    k.node.log.write = slow_write
    k.clock.t += 2
    fut = k.node.seal()
    assert k.node.withdrawal(d) is None and d in k.node.core.pending_withdrawals  # still findable
    release.set()
    fut.result(timeout=10)
    assert k.node.withdrawal(d)[0] == k.node.core.head.number
    k.node.log.write = real_write
    k.clock.t += 2
    k.node.seal().result(timeout=10)
    assert d not in k.node.core.pending_withdrawals   # dropped once durable
    k.node.close()


def test_order_status_of_finished_orders_survives_restart(tmp_path: Path) -> None:
    k = Kit(tmp_path)
    for u in (A, B):
        k.fund(u, 100_000 * U)
    k.feeds()
    maker = k.place(A, instrument=CALL, is_buy=False, price=100 * U, amount=10_000, nonce=1, expiry=T0 + 3600)
    resting = k.place(A, instrument=CALL, is_buy=False, price=120 * U, amount=10_000, nonce=2, expiry=T0 + 3600)
    taker = k.place(B, instrument=CALL, is_buy=True, price=100 * U, amount=10_000, nonce=3, expiry=T0 + 3600, tif=1)
    assert taker.filledAmount == 10_000
    k.reopen()
    node = k.node
    assert node.order_status(maker.orderHash)[1:] == ("filled", 10_000)
    assert node.order_status(resting.orderHash)[1:] == ("open", 0)
    assert node.order_status(taker.orderHash)[1:] == ("filled", 10_000)
    assert node.order_status(b"\1" * 32) is None
    assert set(node.accepted_order_hashes()) == {maker.orderHash, resting.orderHash, taker.orderHash}
    k.node.close()


def test_a_withdrawal_to_our_own_contracts_is_refused(tmp_path: Path) -> None:
    from sequencer.core.eip712 import Withdraw
    k = Kit(tmp_path)
    k.fund(A, 1_000 * U)
    rollup = bytes.fromhex(k.cfg.rollup[2:])
    w = Withdraw(A.address, rollup, 5 * U, 0)
    r = k.run([(w, k.sign(A, w))])[0]
    assert isinstance(r, OptrollupError) and r.code == "bad_recipient" and "the Rollup" in r.message
    k.node.close()


def test_blocks_are_sealed_by_size_and_each_fits_one_l1_batch(tmp_path: Path) -> None:
    """Fills stream in faster than blocks are timed (the clock stands still): the node seals
    whenever the open block reaches max_block_bytes, so no block ever outgrows what the poster
    can post in one batch (prover/plan.py refuses a block that alone exceeds its budget, which
    stalled the poster for good). Takers sweep MAX_FILLS_PER_ORDER makers each."""
    from prover.batch import block_data, encode_batch
    from sequencer.core.engine import MAX_FILLS_PER_ORDER as CAP
    k = Kit(tmp_path)
    makers, taker = USERS[1:21], USERS[0]
    for key in [taker, *makers]:
        k.fund(key, 10**6 * U)
    k.feeds()
    head0 = k.node.core.head.number
    asks = [order(m, is_buy=False, price=100 * U + (i % 50) * 100_000, amount=U, nonce=1000 + i)
            for i in range(30) for m in makers]  # 600 one-contract asks
    assert all(not isinstance(r, Exception) for r in k.run([(o, k.sign(o_key, o)) for o, o_key in
                                                           zip(asks, [m for _ in range(30) for m in makers])]))
    takes = [order(taker, price=200 * U, amount=CAP * U, tif=1, nonce=i) for i in range(9)]
    results = k.run([(o, k.sign(taker, o)) for o in takes])
    assert [r.filledAmount for r in results] == [CAP * U] * 9  # 576 fills
    k.node.seal().result(timeout=10)
    sealed = [k.node.store.get(n)[0] for n in range(head0 + 1, k.node.core.head.number + 1)]
    sizes = [sum(map(len, b.txs)) for b in sealed]
    assert len(sealed) >= 2 and sizes[0] >= k.cfg.max_block_bytes, sizes  # sealed by size
    domain = k.cfg.genesis.config.domain
    for b, size in zip(sealed, sizes):
        assert size < k.cfg.max_block_bytes + 30_000, sizes  # one request past the threshold at most
        assert len(encode_batch([block_data(b)], domain)) <= 120_000  # the poster's default budget
    k.node.close()


def test_concurrent_submits_are_answered_once_durable_with_one_wakeup_per_sync(tmp_path: Path) -> None:
    """Requests on the node's loop wait for their last record's group commit through the
    node's per-batch wake-up: every one is answered, none before its record is durable, and
    events fire in log order before the answers."""
    import asyncio

    from sequencer.node.node import ORDER
    k = Kit(tmp_path)
    k.fund(USERS[0], 10**6 * U)
    k.feeds()
    node = k.node
    seen: list[str] = []
    node.listeners.append(lambda kind, payload: seen.append(kind))
    orders = [order(USERS[0], price=(50 + i) * U, amount=U, nonce=500 + i) for i in range(200)]

    async def main() -> list[object]:
        node.bind_loop(asyncio.get_running_loop())
        calls = 0
        real = node._fire

        def counting(last: int) -> None:
            nonlocal calls
            calls += 1
            real(last)
        node._fire = counting  # type: ignore[method-assign]

        async def one(o):
            [r] = await node.submit([(o, k.sign(USERS[0], o))])
            assert node.db.get(ORDER + r.orderHash) is not None  # answered once on disk
            return r
        out = await asyncio.gather(*(one(o) for o in orders))
        assert calls <= node.committer.syncs + 1  # a wake-up per synced batch, not per request
        return out

    out = asyncio.run(main())
    assert [r.status for r in out] == ["open"] * 200
    assert not node._waiters and node._durable_upto >= node._logged_seq
    assert seen.count("book") >= 1
    # the two hops besides the fsync, once per synced batch (optrollup_log_queue_seconds,
    # optrollup_durable_wake_seconds): the writer's queue and the loop's wake-up
    reg = node.metrics.registry
    syncs = node.committer.syncs
    assert reg.get_sample_value("optrollup_log_queue_seconds_count") == syncs
    wakes = reg.get_sample_value("optrollup_durable_wake_seconds_count")
    assert 1 <= wakes <= syncs
    # seconds per wake-up (units, not speed: the pure twin verifies on the loop, slowly)
    assert 0 <= reg.get_sample_value("optrollup_durable_wake_seconds_sum") / wakes < 10
    node.close()


def test_a_slow_synced_write_is_logged_with_its_time(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A synced log write over Node.SLOW_SYNC is named in the log (once a second at most), so
    an operator can set it against what else wrote to the disk then; fast ones are not."""
    k = Kit(tmp_path)
    real = k.node.log.write

    def slow(first: int, records: list[bytes], **kw: Any) -> None:
        time.sleep(0.05)  # a disk that takes 50 ms, injected
        real(first, records, **kw)

    k.node.seal().result(timeout=10)
    assert "slow synced log write" not in caplog.text
    k.node.log.write = slow  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="optrollup.node"):
        k.node.seal(T0 + 1).result(timeout=10)
        k.node.seal(T0 + 2).result(timeout=10)  # within the second: not logged again
    lines = [r.getMessage() for r in caplog.records if "slow synced log write" in r.getMessage()]
    assert len(lines) == 1 and re.fullmatch(r"slow synced log write: \d+\.\d ms for 1 records", lines[0]), lines
    assert float(lines[0].split(": ")[1].split(" ms")[0]) >= 50
    k.node.close()


def test_ticks_between_seals_price_the_next_blocks_marks(tmp_path: Path) -> None:
    """A tick that does not seal prices the next block's marks (a few rows per tick); the seal
    then starts the block from them, and the node's blocks are those of a node that never
    priced ahead (restart replays the log to the same state)."""
    k = Kit(tmp_path)
    trade_some(k)
    node, eng = k.node, k.node.core.engine
    seal(k)
    k.clock.t += 0.4
    assert node.tick() is None
    assert eng._next_marks is None  # a tick only seals; the runner prices ahead
    assert node.prepare_next_block() and node.prepare_next_block()
    ahead = eng._next_marks
    names = [n for n, i in eng.state.instruments.items() if i.expiry > eng.now + 1]
    assert ahead is not None and ahead.now == eng.now + 1 and names
    assert all(ahead.has_row(n) for n in names)
    k.clock.t += 0.6
    fut = node.tick()
    assert fut is not None
    fut.result(timeout=10)
    assert eng.ctx.marks(eng.state) is ahead
    r = k.place(B, instrument=CALL, is_buy=True, price=102 * U, amount=10_000, nonce=101,
                expiry=T0 + 3600, tif=1)
    assert r.status in ("filled", "cancelled")
    seal(k)
    before = state_bytes(eng.state)
    head = node.core.head
    node.close()
    again = k.reopen()
    assert again.core.head == head and state_bytes(again.core.engine.state) == before
