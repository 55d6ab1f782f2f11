"""The event tracker and the rollup tracker on an in-memory JSON-RPC node (httpx.MockTransport):
bounded ranges, incremental polls, confirmations depth, resuming from a cursor, L1 reorgs,
refused ranges, and the live-batch fold (rejections, freeze). On a real anvil:
tests/sequencer/node/test_l1follower.py and tests/prover."""

from __future__ import annotations

from typing import Any

import eth_abi

import pytest

from sequencer.l1 import Contract, Cursor, L1Client, L1Unavailable, RollupTracker, RpcError
from sequencer.l1.abi import abi_type
from sequencer.l1.rolluptracker import fold_batches
from tests.sequencer.l1.fake_l1 import URL, FakeL1

ROLLUP = "0x" + "aa" * 20
BRIDGE = "0x" + "bb" * 20
USER = "0x" + "cc" * 20


def rig(**kw: Any) -> tuple[FakeL1, L1Client, RollupTracker]:
    node = FakeL1()
    client = L1Client(URL, transport=node.transport(), retries=0)
    return node, client, RollupTracker(client, ROLLUP, BRIDGE, start_block=1, **kw)


def emit(node: FakeL1, client: L1Client, contract: str, name: str, **args: Any) -> None:
    """Schedule event `name` of the Rollup or Bridge into the next mined block."""
    c = Contract.at(client, contract, ROLLUP if contract == "Rollup" else BRIDGE)
    ev = c.abi.event(name)
    topics = [ev.topic0] + [eth_abi.encode([abi_type(p)], [args[p["name"]]]) for p in ev.inputs if p.get("indexed")]
    plain = [p for p in ev.inputs if not p.get("indexed")]
    data = eth_abi.encode([abi_type(p) for p in plain], [args[p["name"]] for p in plain])
    node.schedule_log(c.address, topics, data)


def deposit(node: FakeL1, client: L1Client, nonce: int, amount: int = 5) -> None:
    emit(node, client, "Bridge", "Deposited", nonce=nonce, depositor=USER, l2Account=USER, amount=amount)


def batch(node: FakeL1, client: L1Client, index: int, tag: int = 0) -> None:
    h = bytes([index + 1, tag]) + b"\0" * 30
    emit(node, client, "Rollup", "BatchSubmitted", batchIndex=index, firstBlock=10 * index + 1,
         lastBlock=10 * index + 10, lastHeaderHash=h, stateRoot=h, withdrawalsRoot=h, dataHash=h,
         messageCursor=index, marksRoot=h)


def log_ranges(node: FakeL1) -> list[tuple[int, int]]:
    return [(int(p[0]["fromBlock"], 16), int(p[0]["toBlock"], 16)) for m, p in node.calls if m == "eth_getLogs"]


def test_bounded_ranges_and_incremental_polls() -> None:
    node, client, t = rig(chunk=4)
    for b in range(1, 11):
        if b in (2, 5, 9):
            deposit(node, client, nonce=b)
        node.mine()
    up = t.poll()
    assert [d.nonce for d in up.deposits] == [2, 5, 9] and up.scanned_to == 10
    assert [d.l1_block for d in up.deposits] == [2, 5, 9] and up.deposits[0].account == bytes.fromhex("cc" * 20)
    assert log_ranges(node) == [(1, 4), (5, 8), (9, 10)]  # bounded, contiguous, one request each
    node.calls.clear()
    assert t.poll().deposits == [] and log_ranges(node) == []  # nothing new: nothing read
    deposit(node, client, nonce=11)
    node.mine()
    assert [d.nonce for d in t.poll().deposits] == [11] and log_ranges(node) == [(11, 11)]


def test_reports_only_what_has_the_confirmations() -> None:
    node, client, t = rig(confirmations=3)
    for n in range(4):
        deposit(node, client, nonce=n)
        node.mine()                      # deposits in blocks 1..4
    assert [d.nonce for d in t.poll().deposits] == [0, 1]   # blocks 1, 2 have 3 confirmations
    node.mine(2)
    assert [d.nonce for d in t.poll().deposits] == [2, 3]


def test_resumes_from_a_cursor() -> None:
    node, client, t = rig()
    deposit(node, client, nonce=0)
    node.mine(3)
    t.poll()
    deposit(node, client, nonce=1)
    node.mine()
    node.calls.clear()
    resumed = RollupTracker(client, ROLLUP, BRIDGE, start_block=1, cursor=t.events.cursor)
    assert resumed.events.cursor == Cursor(3, node.blocks[3].hash)
    assert [d.nonce for d in resumed.poll().deposits] == [1] and log_ranges(node) == [(4, 4)]


def test_reorg_rewinds_to_the_last_block_still_on_the_chain() -> None:
    node, client, t = rig()
    node.mine(2)
    batch(node, client, 0)
    node.mine()                      # block 3: batch 0
    t.poll()
    batch(node, client, 1)
    deposit(node, client, nonce=0)
    node.mine(2)                     # block 4: batch 1 and a deposit
    up = t.poll()
    assert [b.index for b in t.live_batches()] == [0, 1] and [d.nonce for d in up.deposits] == [0]
    old = t.live_batches()[1]

    batch(node, client, 1, tag=7)    # the new chain has another batch 1 (and no deposit)
    node.reorg(2)                    # blocks 4, 5 replaced
    up = t.poll()
    assert up.rewound_to == 3 and up.deposits == []
    live = t.live_batches()
    assert [b.index for b in live] == [0, 1] and live[1] != old and live[1].last_header_hash[1] == 7
    assert live[1].l1_block == 4


def test_reorg_below_every_checkpoint_rescans_from_the_start() -> None:
    node, client, t = rig()
    deposit(node, client, nonce=0)
    node.mine(3)
    assert len(t.poll().deposits) == 1
    node.reorg(3)                    # everything it read is gone
    up = t.poll()
    assert up.rewound_to == 0 and up.deposits == []


def test_a_refused_range_is_halved() -> None:
    node, client, t = rig(chunk=10)
    node.max_log_range = 3
    for n in range(9):
        deposit(node, client, nonce=n)
        node.mine()
    assert [d.nonce for d in t.poll().deposits] == list(range(9))
    assert all(hi - lo + 1 <= 3 for lo, hi in log_ranges(node)[-4:]) and t.events.chunk <= 3


def test_other_log_errors_are_not_taken_for_a_range_limit() -> None:
    node, client, t = rig(chunk=10)
    node.mine(5)
    node.refuse("eth_getLogs", "internal error")
    with pytest.raises(RpcError):
        t.poll()
    assert t.events.chunk == 10 and t.scanned_to == 0


def test_a_poll_that_fails_part_way_loses_nothing() -> None:
    node, client, t = rig(chunk=2)
    for n in range(6):
        deposit(node, client, nonce=n)
        node.mine()                                  # deposits in blocks 1..6
    node.down_after["eth_getLogs"] = 2               # L1 goes away after two ranges
    with pytest.raises(L1Unavailable):
        t.poll()
    assert t.events.cursor.block == 4 and t.scanned_to == 0   # the progress is kept, unreported ...
    del node.down_after["eth_getLogs"]
    up = t.poll()
    assert [d.nonce for d in up.deposits] == list(range(6))   # ... and reported once, in order
    assert t.poll().deposits == []


def test_rejections_and_the_freeze_shape_the_live_batches() -> None:
    node, client, t = rig()
    for i in range(3):
        batch(node, client, i)
    node.mine()                                                           # block 1
    emit(node, client, "Rollup", "BatchesRejected", fromBatchIndex=1, count=2, action=b"\1" * 32)
    node.mine()                                                           # block 2
    batch(node, client, 1, tag=9)
    node.mine()                                                           # block 3
    emit(node, client, "Rollup", "RollupFrozen", finalBatchCount=1, headerHash=b"\0" * 32,
         stateRoot=b"\0" * 32, reason=1)
    node.mine()                                                           # block 4
    t.poll()
    assert [b.index for b in t.live_batches()] == [0]
    assert [b.index for b in t.live_batches(at=1)] == [0, 1, 2]
    assert [b.index for b in t.live_batches(at=2)] == [0]
    at3 = t.live_batches(at=3)
    assert [b.index for b in at3] == [0, 1] and at3[1].last_header_hash[1] == 9
    assert fold_batches([]) == []
