"""Market-maker protection in the node: MmpConfig/MmpReset as input-log records, the state rebuilt
exactly by log replay and from the snapshot worker's snapshots, the snapshot round trip (format 3,
and format 2 read as a node without MMP), and the events listeners get once records are durable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest

from sequencer.core.eip712 import MmpConfig, MmpReset
from sequencer.core.mmp import Freeze
from sequencer.errors import OptrollupError
from sequencer.node.snapshot import FORMAT_VERSION, _mmp_plain, decode_core, encode_core, pack_plain
from sequencer.node.snapshot import copy_core_plain
from tests.sequencer.core.core_world import Key
from tests.sequencer.node.kit import CALL, PUT, T0, USERS, Kit
from tests.sequencer.node.snapshot_compare import assert_cores_equal

A, B, C, D = USERS[:4]
U = 10**6
Q = 20_000


def ok(v: Any) -> Any:
    assert not isinstance(v, Exception), v
    return v


def signed(k: Kit, key: Key, msg: Any) -> Any:
    return k.run([(msg, k.sign(key, msg))])[0]


def ask(k: Kit, key: Key, price: int, nonce: int, amount: int = Q, instrument: str = CALL) -> bytes:
    r = ok(k.place(key, instrument=instrument, is_buy=False, price=price * U, amount=amount,
                   nonce=nonce, expiry=T0 + 3600))
    assert r.status == "open"
    return r.orderHash


def lift(k: Kit, amount: int, price: int, nonce: int, instrument: str = CALL) -> Any:
    return ok(k.place(B, instrument=instrument, is_buy=True, price=price * U, amount=amount,
                      nonce=nonce, expiry=T0 + 3600, tif=1))


def seal(k: Kit, dt: int = 1) -> None:
    k.clock.t += dt
    k.node.seal(int(k.clock.t)).result(timeout=10)


def build(k: Kit) -> None:
    """A frozen-until-reset pair (A), a pair with a window over two blocks (C), a freeze with an
    end (D), a reset (C), and a config that was turned off (B)."""
    for u in (A, B, C, D):
        k.fund(u, 100_000 * U)
    k.feeds()
    ok(signed(k, A, MmpConfig(A.address, "ETH", 5000, 0, Q, 0, 0, 1)))
    ok(signed(k, C, MmpConfig(C.address, "ETH", 10_000, 2000, 100 * Q, 0, 0, 1)))
    ok(signed(k, D, MmpConfig(D.address, "ETH", 10_000, 60_000, 0, 1, 0, 1)))  # delta: 1e-6
    ok(signed(k, B, MmpConfig(B.address, "ETH", 0, 0, Q, 0, 0, 5)))             # off
    for n, p in enumerate((100, 101, 102)):
        ask(k, A, p, n)
    ask(k, A, 50, 10, instrument=PUT)
    ask(k, C, 103, 20, amount=10 * Q)
    r = lift(k, 5 * Q, 103, 100)            # A breaches on its second ask; then C fills
    assert r.filledAmount == 5 * Q
    seal(k)
    lift(k, Q, 103, 101)                    # C: a second bucket
    ask(k, D, 90, 30)
    assert lift(k, Q, 90, 102).fills[0].maker.order.account == D.address  # D breaches delta
    ok(signed(k, C, MmpReset(C.address, "ETH", int(k.clock.t))))
    ask(k, C, 95, 21, amount=10 * Q)
    seal(k)
    lift(k, Q, 95, 103)                     # C again, after its reset
    eng = k.node.core.engine
    mmp = eng.mmp
    assert mmp.frozen[(A.address, "ETH")].until_ms is None
    assert mmp.frozen[(D.address, "ETH")].until_ms is not None
    assert mmp.last_reset and (C.address, "ETH") in mmp.windows and len(mmp.configs) == 4


def test_mmp_records_replay_to_the_same_node(tmp_path: Path) -> None:
    k = Kit(tmp_path, snapshot_every_records=10**9)
    build(k)
    live = k.node.core
    node = k.reopen()
    assert node.core is not live
    assert_cores_equal(live, node.core)
    # and it goes on identically: the freeze of A holds, D's ends with block time
    r = k.place(A, instrument=CALL, is_buy=False, price=100 * U, amount=Q, nonce=50, expiry=T0 + 3600)
    assert isinstance(r, OptrollupError) and r.code == "mmp_frozen"
    seal(k, 61)
    k.feeds()
    assert (D.address, "ETH") not in node.core.engine.mmp.frozen
    k.node.close()


def test_restart_from_a_worker_snapshot_holds_mmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sequencer.node.node as node_mod
    k = Kit(tmp_path, snapshot_every_records=4)  # the default writer: the snapshot worker
    build(k)
    seal(k)
    k.node.snapshotter.wait()
    seq, blob = k.node.snapshot_files.latest()
    assert blob[1] == FORMAT_VERSION == 5
    snap = decode_core(blob, k.cfg)
    assert snap.engine.mmp.configs and snap.engine.mmp.frozen  # the worker's replica had MMP
    live = k.node.core
    calls: list[int] = []
    real = node_mod.decode_core
    monkeypatch.setattr(node_mod, "decode_core", lambda data, cfg: calls.append(1) or real(data, cfg))
    node = k.reopen()
    assert calls == [1]
    assert_cores_equal(live, node.core)
    node.close()


def test_snapshot_round_trip_and_identical_behaviour(tmp_path: Path) -> None:
    k = Kit(tmp_path, snapshot_every_records=10**9)
    build(k)
    core, cfg = k.node.core, k.cfg
    data = encode_core(core, cfg)
    got = decode_core(data, cfg)
    assert_cores_equal(core, got)
    assert encode_core(got, cfg) == data
    big = got.engine.mmp
    big.frozen[(B.address, "ETH")] = Freeze(1, None, "vega", -(2**80), 2**64 - 1)  # ext ints
    assert_cores_equal(got, decode_core(encode_core(got, cfg), cfg))
    del big.frozen[(B.address, "ETH")]
    k.node.close()
    # both cores, driven the same way, stay equal (windows age, freezes end)
    t = core.engine.now
    for c in (core, got):
        c.engine.begin_block(t + 5)
    assert_cores_equal(core, got)
    assert (D.address, "ETH") in core.engine.mmp.frozen and (C.address, "ETH") in core.engine.mmp.windows
    for c in (core, got):
        c.engine.begin_block(t + 90)
    assert_cores_equal(core, got)
    assert (D.address, "ETH") not in core.engine.mmp.frozen
    assert (C.address, "ETH") not in core.engine.mmp.windows


def test_a_format_2_snapshot_reads_as_a_node_without_mmp(tmp_path: Path) -> None:
    k = Kit(tmp_path, snapshot_every_records=10**9)
    for u in (A, B):
        k.fund(u, 100_000 * U)
    k.feeds()
    ask(k, A, 100, 1)
    core, cfg = k.node.core, k.cfg
    plain = copy_core_plain(core, cfg)
    assert plain[5][8] == _mmp_plain(core.engine.mmp) == [[], [], [], []]
    plain[0] = 2
    del plain[5][8]
    del plain[4][12:]  # nor the liquidation state of version 4
    got = decode_core(pack_plain(plain), cfg)
    assert_cores_equal(core, got)
    plain[5].append([[], [], [], []])  # a version-2 snapshot with 9 engine parts is corrupt
    with pytest.raises(Exception, match="engine has 9 parts"):
        decode_core(pack_plain(plain), cfg)
    assert msgpack.unpackb(encode_core(core, cfg), strict_map_key=False, ext_hook=lambda c, b: b)[0] == FORMAT_VERSION
    k.node.close()


def test_events_fire_once_durable(tmp_path: Path) -> None:
    k = Kit(tmp_path, snapshot_every_records=10**9)
    seen: list[tuple[str, Any]] = []
    k.node.listeners.append(lambda kind, p: seen.append((kind, p)))
    for u in (A, B):
        k.fund(u, 100_000 * U)
    k.feeds()
    ok(signed(k, A, MmpConfig(A.address, "ETH", 1000, 1500, Q, 0, 0, 1)))
    a_put = ask(k, A, 50, 1, instrument=PUT)
    ask(k, A, 100, 2, amount=2 * Q)
    seen.clear()
    lift(k, 2 * Q, 100, 100)
    mmp = [p for kind, p in seen if kind == "mmp"]
    assert [e.kind for e in mmp] == ["triggered"] and mmp[0].cancelled == (a_put,)
    assert ("book", PUT) in seen  # the book a trigger cancelled an order in changed
    seen.clear()
    seal(k)                                   # 1000 ms < 1500 ms: still frozen
    assert not [p for kind, p in seen if kind == "mmp"]
    seal(k)
    [ev] = [p for kind, p in seen if kind == "mmp"]
    assert ev.kind == "expired" and ev.freeze.until_ms == T0 * 1000 + 1500
    seen.clear()
    r = signed(k, A, MmpReset(A.address, "ETH", int(k.clock.t)))
    assert r.lifted is None
    assert [p.kind for kind, p in seen if kind == "mmp"] == ["reset"]
    k.node.close()
