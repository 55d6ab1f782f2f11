"""Snapshot codec of the node's Core (`sequencer.node.snapshot`, msgpack) against the pickle it
replaced, on a large core: 200,000 open orders and 500,000 filled orders (10 % of the open
ones partially filled, so in both), 100 accounts with 20 positions each, 80 instruments.

    .venv/bin/python -m pytest benchmarks/test_snapshot.py --benchmark-only -q -s -p no:cacheprovider

Entries: encode = `encode_core` (copy to plain data + msgpack); `copy` = `copy_core_plain`
alone, GC paused as a caller should (what must run where the core lives if the packing happens
elsewhere); pickle = `pickle.dumps` as `Node.seal` called it. decode = `decode_core` and
`pickle.loads`, both with the cyclic GC paused as `Node._recover` runs them. Sizes go to stdout
and extra_info. Change the sizes with OPTROLLUP_BENCH_SNAP_OPEN / _FILLED / _ACCOUNTS.
"""

from __future__ import annotations

import calendar
import gc
import heapq
import os
import pickle
import random
from collections.abc import Callable
from typing import Any

import pytest

from cext import Order, keccak256
from sequencer.core import CoreConfig, Feed, FilledOrder, OracleParams, Resting, digests, make_instrument
from sequencer.core.chain import seal_header
from sequencer.core.chainspec import Genesis
from sequencer.core.eip712 import Withdraw
from sequencer.core.state import set_position
from sequencer.core.txs import encode_tx
from sequencer.node import Core, NodeConfig
from sequencer.node.node import genesis_core
from sequencer.node.snapshot import copy_core_plain, decode_core, encode_core

U = 10**6
T0 = calendar.timegm((2026, 11, 1, 8, 0, 0))
EXPIRIES = ["27DEC26", "29JAN27"]
STRIKES = range(2000, 4000, 100)  # 20 strikes x 2 expiries x C/P = 80 instruments
SIG = b"\x01" * 65  # a feed signature; its signer is supplied pre-recovered


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def addr(i: int) -> bytes:
    return keccak256(i.to_bytes(8, "big"))[12:]


ORACLE = addr(10**6)


def big_core(n_open: int = 200_000, n_filled: int = 500_000, n_accounts: int = 100,
             seed: int = 1) -> tuple[Core, NodeConfig]:
    """A node Core the shape of a busy day: real deposits, feed and seals through the engine
    and the account tree; positions, filled orders (State.orders) and resting orders (books,
    `open`, `by_account`, `seen`, the expiry heap) put in directly with random digests,
    signatures and prices (2 x 200 price levels per book); an open block with transactions;
    1,000 trades, pending withdrawals."""
    rng = random.Random(seed)
    names = [f"ETH-{e}-{k}-{cp}" for e in EXPIRIES for k in STRIKES for cp in "CP"]
    cc = CoreConfig(chain_id=1, verifying_contract=b"\x42" * 20, operator=addr(0),
                    fee_account=addr(1), oracle=OracleParams(keys=(ORACLE,), quorum=1))
    cfg = NodeConfig(chain_id=1, rollup="0x" + "42" * 20,
                     genesis=Genesis(cc, T0 - 10, tuple(make_instrument(n) for n in names)))
    core, _ = genesis_core(cfg)
    eng, st = core.engine, core.engine.state
    eng.begin_block(T0)
    exp = [calendar.timegm((2026, 12, 27, 8, 0, 0)), calendar.timegm((2027, 1, 29, 8, 0, 0))]
    feed = Feed("ETH", 3000 * U, T0, tuple(exp), (700_000, 750_000))
    eng.ctx.signers[(digests(cc.domain, [feed])[0], SIG)] = ORACLE
    eng.feed(feed, SIG)
    accts = [addr(100 + i) for i in range(n_accounts)]
    for i, a in enumerate(accts):
        eng.deposit(a, 10_000_000 * U, i)
    for i, a in enumerate(accts):  # 20 positions each, zero-sum pairs
        if i & 1 == 0:
            for n in rng.sample(names, 20):
                q = rng.randrange(1, 50) * 10_000
                set_position(st, a, st.accounts[a], n, q)
                peer = accts[i ^ 1] if i + 1 < n_accounts else accts[0]
                set_position(st, peer, st.accounts[peer], n, -q)
    txs = eng.end_block()
    core.head = seal_header(st, core.tree, core.head, eng.now, txs, [encode_tx(t) for t in txs])
    eng.begin_block(T0 + 1)
    now = eng.now

    def random_order(nonce: int) -> Order:
        is_buy = rng.random() < 0.5
        ticks = rng.randrange(1, 201) + (0 if is_buy else 200)
        return Order(rng.choice(accts), rng.choice(names), is_buy, ticks * 100_000,
                     rng.randrange(1, 100) * 10_000, nonce, now + rng.randrange(600, 30 * 86_400),
                     0, False, False)

    for k in range(n_filled):
        o = random_order(k)
        d = rng.randbytes(32)
        st.orders[d] = FilledOrder(o, o.amount)
        heapq.heappush(eng.expiring, (o.expiry, d))
        eng.seen.add(d)
    for k in range(n_open):
        o = random_order(n_filled + k)
        d = rng.randbytes(32)
        remaining = o.amount
        if k % 10 == 0 and o.amount > 10_000:
            remaining = o.amount - 10_000
            st.orders[d] = FilledOrder(o, 10_000)
        eng._rest(Resting(d, o, rng.randbytes(65), remaining), eng.books[o.instrument])
        heapq.heappush(eng.expiring, (o.expiry, d))
        eng.seen.add(d)
    for i, a in enumerate(accts[:50]):
        eng.last_cancel_all[a] = now - i
    eng.deposit(accts[0], 1_000 * U, n_accounts)  # the open block holds transactions
    for i, a in enumerate(accts[:20]):
        w = Withdraw(a, a, U, 0)
        core.pending_withdrawals[rng.randbytes(32)] = w
    for i in range(1000):
        core.trades.append({"instrument": rng.choice(names), "price": 100 * U, "amount": 10_000,
                            "takerSide": "buy", "timestamp": now, "makerOrder": rng.randbytes(32),
                            "takerOrder": rng.randbytes(32)})
    core.book_seq.update({n: rng.randrange(10**6) for n in names})
    core.l1_block = 123
    return core, cfg


@pytest.fixture(scope="module")
def big() -> tuple[Core, NodeConfig]:
    return big_core(env_int("OPTROLLUP_BENCH_SNAP_OPEN", 200_000),
                    env_int("OPTROLLUP_BENCH_SNAP_FILLED", 500_000),
                    env_int("OPTROLLUP_BENCH_SNAP_ACCOUNTS", 100))


@pytest.fixture(scope="module")
def blobs(big: tuple[Core, NodeConfig]) -> dict[str, bytes]:
    core, cfg = big
    return {"msgpack": encode_core(core, cfg),
            "pickle": pickle.dumps(core, protocol=pickle.HIGHEST_PROTOCOL)}


def gc_paused(fn: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        was = gc.isenabled()
        gc.disable()
        try:
            return fn()
        finally:
            if was:
                gc.enable()
    return run


@pytest.mark.benchmark(group="snapshot-encode")
@pytest.mark.parametrize("codec", ["msgpack", "copy", "pickle"])
def test_encode(benchmark, big, blobs, codec: str) -> None:
    core, cfg = big
    fn = {"msgpack": lambda: encode_core(core, cfg),
          "copy": gc_paused(lambda: copy_core_plain(core, cfg)),
          "pickle": lambda: pickle.dumps(core, protocol=pickle.HIGHEST_PROTOCOL)}[codec]
    benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=0)
    size = len(blobs.get(codec, b""))
    benchmark.extra_info["bytes"] = size
    print(f"\n[snapshot encode {codec}] open={len(core.engine.open)} "
          f"filled={len(core.engine.state.orders)} bytes={size} ({size / 2**20:.1f} MiB)")


@pytest.mark.benchmark(group="snapshot-decode")
@pytest.mark.parametrize("codec", ["msgpack", "pickle"])
def test_decode(benchmark, big, blobs, codec: str) -> None:
    _, cfg = big
    data = blobs[codec]
    fn = gc_paused(lambda: decode_core(data, cfg)) if codec == "msgpack" else \
        gc_paused(lambda: pickle.loads(data))
    benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=0)
    benchmark.extra_info["bytes"] = len(data)


def test_big_round_trip_is_exact(big, blobs) -> None:
    from tests.sequencer.node.snapshot_compare import assert_cores_equal
    core, cfg = big
    assert_cores_equal(core, decode_core(blobs["msgpack"], cfg), proofs=200)
