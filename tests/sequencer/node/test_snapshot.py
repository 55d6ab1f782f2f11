"""Snapshots of the node's Core (sequencer.node.snapshot): exact round trip of everything replay
rebuilds, identical behaviour afterwards, refusal of other versions and other chains, and the
node restarting from one."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cext import Order
from sequencer.core.chain import seal_header
from sequencer.core.chainspec import Genesis
from sequencer.core.eip712 import (Cancel, CancelAll, Feed, Listing, SessionKey, Withdraw, digest,
                                   order_digest)
from sequencer.core.state import set_position
from sequencer.core.txs import encode_tx
from sequencer.node import NodeConfig
from sequencer.node.node import Core, genesis_core
from sequencer.node.snapshot import (FORMAT_VERSION, SnapshotError, copy_core_plain, decode_core,
                                     encode_core, pack_plain)
from sequencer.store import StoreError
from tests.sequencer.core.core_world import EXPIRY, OPERATOR, ORACLES, Key
from tests.sequencer.node.kit import CALL, PUT, SPOT, T0, USERS, Kit, node_config, order
from tests.sequencer.node.snapshot_compare import assert_cores_equal, core_diff

A, B, C, D = USERS[:4]
SK = USERS[10]  # C's session key
U = 10**6
SHORT = "ETH-2NOV26-3000-C"  # expires a day after T0
SHORT_EXPIRY = T0 + 86_400


def ok(v: Any) -> Any:
    assert not isinstance(v, Exception), v
    return v


def run_signed(k: Kit, signer: Key, msg: Any) -> Any:
    return k.run([(msg, k.sign(signer, msg))])[0]


def build_scenario(k: Kit) -> None:
    """A node with: a settled instrument, resting orders at several levels on both sides (two
    accounts at one level, a partially filled maker, a partially filled resting taker, a
    reduce-only and a post-only order), orders signed by a session key, a cancel and a
    cancel-all, expired orders, a sealed and a pending withdrawal, deposits, and an open
    block holding transactions."""
    for u in (A, B, C, D):
        k.fund(u, 1_000_000 * U)
    k.feeds()
    lst = Listing(SHORT, 100_000, 10_000, 10_000)
    ok(run_signed(k, OPERATOR, lst))
    k.clock.t += 1
    ok(k.place(A, instrument=SHORT, is_buy=False, price=50 * U, amount=20_000, nonce=1))
    assert ok(k.place(B, instrument=SHORT, is_buy=True, price=50 * U, amount=20_000, nonce=2,
                      tif=1)).filledAmount == 20_000
    ok(k.place(C, instrument=CALL, is_buy=True, price=10 * U, amount=10_000, nonce=3))  # expires
    for t in (SHORT_EXPIRY - 120, SHORT_EXPIRY - 60):
        k.clock.t = t
        k.feeds()
    k.clock.t = SHORT_EXPIRY + 61
    k.node.seal().result(timeout=10)  # the next block settles SHORT
    assert SHORT in k.node.core.engine.state.settled

    k.clock.t += 1
    k.feeds()
    now = int(k.clock.t)
    exp = now + 3600
    ok(run_signed(k, C, SessionKey(C.address, SK.address, exp + 86_400)))
    for key, p, amt, nonce in [(A, 100, 20_000, 10), (A, 100, 20_000, 11), (D, 100, 30_000, 12),
                               (A, 101, 10_000, 13), (D, 103, 50_000, 14)]:
        ok(k.place(key, instrument=CALL, is_buy=False, price=p * U, amount=amt, nonce=nonce,
                   expiry=exp + nonce))
    for signer, acct, p, amt, nonce, kw in [
            (SK, C, 95, 20_000, 20, {}), (B, B, 95, 10_000, 21, {"post_only": True}),
            (SK, C, 92, 10_000, 22, {}), (B, B, 90, 40_000, 23, {}), (C, C, 85, 10_000, 24, {}),
            (SK, C, 88, 10_000, 25, {}), (D, D, 88, 20_000, 26, {})]:
        ok(run_signed(k, signer, order(acct, instrument=CALL, is_buy=True, price=p * U,
                                       amount=amt, nonce=nonce, expiry=exp - nonce, **kw)))
    ok(k.place(B, instrument=PUT, is_buy=True, price=80 * U, amount=20_000, nonce=30, expiry=exp))
    assert ok(k.place(D, instrument=PUT, is_buy=False, price=80 * U, amount=10_000, nonce=32,
                      expiry=exp, tif=1)).filledAmount == 10_000
    ok(k.place(D, instrument=PUT, is_buy=False, price=85 * U, amount=10_000, nonce=31, expiry=exp))
    # B lifts A's first order and part of A's second: a partially filled maker stays resting
    r = ok(k.place(B, instrument=CALL, is_buy=True, price=100 * U, amount=30_000, nonce=40,
                   expiry=exp, tif=1))
    assert r.filledAmount == 30_000 and len(r.fills) == 2
    # D hits the 95 bids (C's, then B's) and rests the rest: a partially filled resting taker
    r = ok(k.place(D, instrument=CALL, is_buy=False, price=95 * U, amount=40_000, nonce=41,
                   expiry=exp))
    assert r.status == "partially_filled" and r.filledAmount == 30_000
    ok(k.place(B, instrument=CALL, is_buy=False, price=110 * U, amount=10_000, nonce=42,
               expiry=exp, reduce_only=True))
    a101 = order_digest(k.cfg.genesis.config.domain, order(A, instrument=CALL, is_buy=False,
                                                           price=101 * U, amount=10_000, nonce=13,
                                                           expiry=exp + 13))
    ok(run_signed(k, A, Cancel(A.address, a101)))
    assert ok(run_signed(k, D, CancelAll(D.address, PUT, now))) == 1
    w0 = Withdraw(A.address, A.address, 7 * U, 0)
    ok(run_signed(k, A, w0))
    k.clock.t += 2
    k.node.seal().result(timeout=10)
    k.clock.t += 2
    k.node.seal().result(timeout=10)  # w0 is sealed and durable now: no longer pending
    # the open block: a deposit, a fill, a pending withdrawal
    k.clock.t += 1
    k.fund(D, 5_000 * U)
    assert ok(k.place(A, instrument=CALL, is_buy=False, price=92 * U, amount=10_000, nonce=50,
                      expiry=exp, tif=1)).filledAmount == 10_000
    ok(run_signed(k, A, Withdraw(A.address, B.address, 5 * U, 1)))


@pytest.fixture
def scenario(tmp_path: Path) -> Kit:
    k = Kit(tmp_path, snapshot_every_records=10**9)
    build_scenario(k)
    yield k
    k.node.close()


def test_scenario_covers_what_the_snapshot_holds(scenario: Kit) -> None:
    core = scenario.node.core
    eng, st = core.engine, core.engine.state
    book = eng.books[CALL]
    assert len(book.bids) >= 3 and len(book.asks) >= 3
    assert any(len(lvl) >= 2 for lvl in book.asks.values())
    partial = [r for d, r in eng.open.items() if d in st.orders]
    assert any(r.order.account == A.address for r in partial)   # maker partially filled
    assert any(r.order.account == D.address for r in partial)   # taker rested after filling
    assert st.settled and SHORT not in st.instruments and SHORT not in eng.books
    assert st.accounts[C.address].session_keys and st.accounts[C.address].used_key_digests
    assert core.pending_withdrawals and st.accounts[A.address].withdrawal_nonce == 2
    assert eng.txs and eng.last_cancel_all and core.l1_block and core.trades and core.book_seq
    assert st.oracle["ETH"].history and st.message_cursor == 5 and st.touched
    expired = order_digest(st.config.domain, order(C, instrument=CALL, is_buy=True, price=10 * U,
                                                   amount=10_000, nonce=3))
    assert expired not in eng.seen and len(eng.seen) == len(eng.expiring) > 10


def test_round_trip_is_exact_and_canonical(scenario: Kit) -> None:
    core, cfg = scenario.node.core, scenario.cfg
    data = encode_core(core, cfg)
    got = decode_core(data, cfg)
    assert_cores_equal(core, got)
    assert got.engine.state.config is cfg.genesis.config
    assert not got.engine._risk and got.engine.ctx._marks is None and not got.engine.ctx.signers
    assert encode_core(got, cfg) == data  # nothing lost, nothing reordered
    assert pack_plain(copy_core_plain(core, cfg)) == data
    assert msgpack.unpackb(data, strict_map_key=False, ext_hook=lambda c, b: b)[0] == FORMAT_VERSION
    # shares storage with the original where it can: a partially filled order is one object
    d = next(d for d in got.engine.open if d in got.engine.state.orders)
    assert got.engine.open[d].order is got.engine.state.orders[d].order


def test_helper_detects_differences(scenario: Kit) -> None:
    core, cfg = scenario.node.core, scenario.cfg
    got = decode_core(encode_core(core, cfg), cfg)
    lvl = next(lv for lv in got.engine.books[CALL].asks.values() if len(lv) >= 2)
    first = next(iter(lvl))
    lvl[first] = lvl.pop(first)  # the same orders, another time priority
    diff = core_diff(core, got)
    assert any("books[" in m for m in diff), diff
    assert core_diff(core, got, ignore=("books", "open")) == []


def step(core: Core, msg: Any, sig: bytes) -> Any:
    """Apply one signed request to a core as the node does; the answer or the error's code."""
    eng = core.engine
    try:
        if isinstance(msg, Order):
            return eng.place_order(msg, sig)
        if isinstance(msg, Cancel):
            return eng.cancel(msg, sig)
        if isinstance(msg, CancelAll):
            return eng.cancel_all(msg, sig)
        if isinstance(msg, Withdraw):
            return eng.withdraw(msg, sig)
        if isinstance(msg, Feed):
            return eng.feed(msg, sig)
        if isinstance(msg, SessionKey):
            return eng.session_key(msg, sig)
    except Exception as exc:  # noqa: BLE001 - compared between the two cores
        return ("error", type(exc).__name__, getattr(exc, "code", None), str(exc))
    raise TypeError(msg)


def seal(core: Core, next_ts: int) -> bytes | None:
    """Seal the open block (as the node does) and open the next at `next_ts`; the header hash."""
    eng = core.engine
    txs = eng.end_block()
    h = None
    if txs:
        core.head = seal_header(eng.state, core.tree, core.head, eng.now, txs,
                                [encode_tx(t) for t in txs])
        h = core.head.hash()
    eng.begin_block(next_ts)
    return h


def signed(cfg: NodeConfig, key: Key, msg: Any) -> tuple[Any, bytes]:
    dom = cfg.genesis.config.domain
    return msg, key.sign(order_digest(dom, msg) if isinstance(msg, Order) else digest(dom, msg))


def feeds_at(cfg: NodeConfig, ts: int) -> list[tuple[Any, bytes]]:
    return [signed(cfg, k, Feed("ETH", SPOT, ts, (EXPIRY - 86400 * 30, EXPIRY), (800_000, 800_000)))
            for k in ORACLES]


def test_decoded_core_behaves_identically(scenario: Kit) -> None:
    cfg = scenario.cfg
    a = scenario.node.core
    b = decode_core(encode_core(a, cfg), cfg)
    scenario.node.close()  # from here on both cores are driven directly, the same way
    now = a.engine.now
    exp = now + 1800
    resting_c = next(d for d, r in a.engine.open.items() if r.order.account == C.address)
    script = [
        signed(cfg, B, order(B, instrument=CALL, is_buy=True, price=103 * U, amount=60_000,
                             nonce=100, expiry=exp)),          # sweeps 95, 100, part of 103
        signed(cfg, SK, order(C, instrument=CALL, is_buy=False, price=85 * U, amount=30_000,
                              nonce=101, expiry=exp)),         # session key; hits the bids
        signed(cfg, C, Cancel(C.address, resting_c)),
        signed(cfg, A, Withdraw(A.address, A.address, 3 * U, 2)),
        signed(cfg, A, Withdraw(A.address, A.address, 3 * U, 2)),  # replayed nonce: refused
        signed(cfg, D, order(D, instrument=PUT, is_buy=True, price=81 * U, amount=10_000,
                             nonce=102, expiry=now + 5)),      # expires at the next seal
        signed(cfg, B, CancelAll(B.address, "", now)),
    ]
    hashes: list[tuple[Any, Any]] = []
    results = []
    for msg, sig in script:
        ra, rb = step(a, msg, sig), step(b, msg, sig)
        assert ra == rb
        results.append(ra)
    assert [f.price // U for f in results[0].fills] == [95, 100, 100, 103]  # price-time priority
    assert results[1].fills and results[3][0] != "error"
    assert results[4][:3] == ("error", "Conflict", "bad_withdrawal_nonce")
    hashes.append((seal(a, now + 10), seal(b, now + 10)))
    for msg, sig in feeds_at(cfg, now + 10) + [
            signed(cfg, A, order(A, instrument=CALL, is_buy=False, price=99 * U, amount=20_000,
                                 nonce=103, expiry=exp)),
            signed(cfg, C, order(C, instrument=CALL, is_buy=True, price=120 * U, amount=50_000,
                                 nonce=104, expiry=exp, tif=2))]:
        assert step(a, msg, sig) == step(b, msg, sig)
    hashes.append((seal(a, now + 20), seal(b, now + 20)))
    hashes.append((seal(a, now + 7200), seal(b, now + 7200)))  # every remaining order expires
    assert all(x == y for x, y in hashes) and hashes[0][0] is not None
    assert_cores_equal(a, b)
    assert not a.engine.open


def test_unknown_version_is_refused(scenario: Kit) -> None:
    data = encode_core(scenario.node.core, scenario.cfg)
    assert data[:2] == bytes([0x98, FORMAT_VERSION])  # [version, ...] of 8 parts
    with pytest.raises(SnapshotError, match="version 99 is unknown"):
        decode_core(data[:1] + bytes([99]) + data[2:], scenario.cfg)
    old = pickle.dumps(scenario.node.core, protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(SnapshotError, match="not a versioned snapshot"):
        decode_core(old, scenario.cfg)
    with pytest.raises(SnapshotError, match="does not decode"):
        decode_core(data[:-7], scenario.cfg)
    with pytest.raises(SnapshotError, match="bytes after"):
        decode_core(data + b"\0", scenario.cfg)
    with pytest.raises(SnapshotError):
        decode_core(b"", scenario.cfg)
    assert issubclass(SnapshotError, StoreError)


def test_snapshot_of_another_chain_is_refused(scenario: Kit) -> None:
    cfg = scenario.cfg
    data = encode_core(scenario.node.core, cfg)
    g = cfg.genesis
    later = NodeConfig(cfg.chain_id, cfg.rollup, Genesis(g.config, g.timestamp + 1, g.instruments))
    with pytest.raises(SnapshotError, match="another chain"):
        decode_core(data, later)
    other = replace(g.config, chain_id=g.config.chain_id + 1)
    other_id = NodeConfig(other.chain_id, cfg.rollup, Genesis(other, g.timestamp, g.instruments))
    with pytest.raises(SnapshotError, match="another chain"):
        decode_core(data, other_id)
    with pytest.raises(SnapshotError, match="not the genesis config"):
        encode_core(scenario.node.core, other_id)


def test_encoder_refuses_what_it_cannot_store(scenario: Kit) -> None:
    core, cfg = scenario.node.core, scenario.cfg
    eng = core.engine
    eng._txn = object()  # a request in progress
    with pytest.raises(SnapshotError, match="_txn"):
        encode_core(core, cfg)
    eng._txn = None
    eng.mmp_frozen = {A.address: 1}  # state some future code keeps and this format does not know
    with pytest.raises(SnapshotError, match="mmp_frozen"):
        encode_core(core, cfg)
    eng.mmp_frozen = {}  # empty between requests: a staging area, nothing to store
    data = encode_core(core, cfg)
    del eng.mmp_frozen
    assert_cores_equal(core, decode_core(data, cfg))


def test_seen_apart_from_the_expiry_heap_round_trips(scenario: Kit) -> None:
    core, cfg = scenario.node.core, scenario.cfg
    core.engine.seen.add(b"\7" * 32)  # not what the engine does, but kept exactly if it did
    got = decode_core(encode_core(core, cfg), cfg)
    assert b"\7" * 32 in got.engine.seen
    assert_cores_equal(core, got)


def test_integers_beyond_64_bits_round_trip(scenario: Kit) -> None:
    core, cfg = scenario.node.core, scenario.cfg
    st_ = core.engine.state
    st_.accounts[A.address].collateral = 2**70 + 3
    set_position(st_, B.address, st_.accounts[B.address], CALL, -(2**66) - 1)
    st_.collateral_total = sum(a.collateral for a in st_.accounts.values())  # kept in step by apply
    st_.shortfall = 2**65
    got = decode_core(encode_core(core, cfg), cfg)
    assert got.engine.state.accounts[A.address].collateral == 2**70 + 3
    assert got.engine.state.accounts[B.address].positions[CALL] == -(2**66) - 1
    assert_cores_equal(core, got)


def test_node_restarts_from_a_versioned_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sequencer.node.node as node_mod
    k = Kit(tmp_path, snapshot_every_records=20)
    build_scenario(k)
    k.node.snapshotter.wait()  # snapshots are written off the loop
    snap = k.node.snapshot_files.latest()
    assert snap is not None and snap[1][1] == FORMAT_VERSION
    live = k.node.core
    calls: list[int] = []
    real = node_mod.decode_core
    monkeypatch.setattr(node_mod, "decode_core", lambda data, cfg: calls.append(1) or real(data, cfg))
    node = k.reopen()
    assert calls == [1] and node.core is not live
    # the log after the snapshot replays on top of it to the live node's exact core
    assert_cores_equal(live, node.core)
    node.close()


def test_node_falls_back_to_replay_on_an_unusable_snapshot(tmp_path: Path) -> None:
    k = Kit(tmp_path, snapshot_every_records=20)
    build_scenario(k)
    live = k.node.core
    k.node.snapshotter.wait()  # snapshots are written off the loop
    seq, _ = k.node.snapshot_files.latest()
    k.node.snapshot_files.write(seq, pickle.dumps(live))  # the old format (a sound file)
    node = k.reopen()
    assert_cores_equal(live, node.core)
    node.close()


# -- random flows ------------------------------------------------------------------------------

FLOW_KEYS = USERS[:4]
_order_op = st.tuples(
    st.just("order"), st.integers(0, 3), st.booleans(), st.integers(-3, 3), st.integers(1, 6),
    st.sampled_from([0, 0, 0, 1, 2]), st.sampled_from([False] * 5 + [True]),
    st.sampled_from([False] * 5 + [True]), st.integers(1, 120), st.sampled_from([CALL, CALL, PUT]))
_op = st.one_of(
    _order_op, _order_op, _order_op, _order_op, _order_op, _order_op,
    st.tuples(st.just("cancel"), st.integers(0, 40)),
    st.tuples(st.just("cancel_all"), st.integers(0, 3), st.booleans()),
    st.tuples(st.just("seal"), st.integers(0, 25)),
    st.tuples(st.just("withdraw"), st.integers(0, 3), st.integers(1, 50)),
    st.tuples(st.just("feed")),
)


def flow_core(cfg: NodeConfig) -> Core:
    core, _ = genesis_core(cfg)
    for i, key in enumerate(FLOW_KEYS):
        core.engine.deposit(key.address, 50_000 * U, i)
    for msg, sig in feeds_at(cfg, core.engine.now):
        core.engine.feed(msg, sig)
    for i, key in enumerate(FLOW_KEYS):  # a book to trade against, two levels a side
        for j, (buy, p) in enumerate([(True, 99 - i % 2), (False, 101 + i % 2)]):
            msg, sig = signed(cfg, key, order(key, instrument=CALL, is_buy=buy, price=p * U,
                                              amount=30_000, nonce=10**6 + 2 * i + j,
                                              expiry=core.engine.now + 60 + 30 * i))
            assert step(core, msg, sig).status == "open"
    return core


def flow_message(cfg: NodeConfig, core: Core, op: tuple, n: int) -> list[tuple[Any, bytes]] | int:
    """The signed request(s) of `op` at the core's current time, or the next block time."""
    eng, now = core.engine, core.engine.now
    kind = op[0]
    if kind == "order":
        _, i, buy, off, steps, tif, post, reduce, ttl, name = op
        key = FLOW_KEYS[i]
        return [signed(cfg, key, order(key, instrument=name, is_buy=buy,
                                       price=(101 + off if buy else 99 - off) * U,
                                       amount=steps * 10_000, nonce=n, expiry=now + ttl, tif=tif,
                                       post_only=post and tif == 0, reduce_only=reduce))]
    if kind == "cancel":
        live = sorted(eng.open)
        if not live:
            return []
        r = eng.open[live[op[1] % len(live)]]
        key = next(k for k in FLOW_KEYS if k.address == r.order.account)
        return [signed(cfg, key, Cancel(key.address, r.digest))]
    if kind == "cancel_all":
        key = FLOW_KEYS[op[1]]
        return [signed(cfg, key, CancelAll(key.address, CALL if op[2] else "", now))]
    if kind == "withdraw":
        key = FLOW_KEYS[op[1]]
        nonce = eng.state.accounts[key.address].withdrawal_nonce
        return [signed(cfg, key, Withdraw(key.address, key.address, op[2] * U, nonce))]
    if kind == "feed":
        fresh = eng.state.oracle["ETH"].feeds[ORACLES[0].address].timestamp >= now
        return [] if fresh else feeds_at(cfg, now)
    return now + op[1]


def run_ops(cfg: NodeConfig, cores: list[Core], ops: list[tuple], start: int) -> None:
    """Apply `ops` to every core in `cores`; their answers and block hashes must agree."""
    for n, op in enumerate(ops, start):
        what = flow_message(cfg, cores[0], op, n)
        if isinstance(what, int):
            hs = [seal(c, what) for c in cores]
            assert hs.count(hs[0]) == len(hs)
            continue
        for msg, sig in what:
            rs = [step(c, msg, sig) for c in cores]
            assert rs.count(rs[0]) == len(rs), (op, rs)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=10, max_size=80), data=st.data())
def test_round_trip_over_random_flows(ops: list[tuple], data: st.DataObject) -> None:
    cfg = node_config()
    split = data.draw(st.integers(0, len(ops)), label="snapshot after op")
    a = flow_core(cfg)
    run_ops(cfg, [a], ops[:split], 0)
    blob = encode_core(a, cfg)
    b = decode_core(blob, cfg)
    assert_cores_equal(a, b)
    assert encode_core(b, cfg) == blob
    run_ops(cfg, [a, b], ops[split:] + [("seal", 1)], split)
    assert_cores_equal(a, b)
