"""The market-maker flow of issue 12, pre-signed: ladders, requote chains, taker orders.

What is generated (all orders signed before anything is timed; digests in cext batches, one
coincurve signature per digest, as `tests/e2e/serverkit.sign_orders` and `benchmarks/loadgen.py`
do; the work is spread over a process pool):

- a *market maker* quotes two-sided 5-level ladders: for each of its instruments and each of its
  `layers`, 5 bids and 5 asks (one "group" of 10 orders). Bids sit below the instrument's mark,
  asks above, with a random jitter inside each level, so no quote ever crosses another one.
- its *requote chain*: mass quotes (`POST /v1/quotes`), each re-quoting one group, i.e. 10
  pairs {cancel the slot's current order, place its new order}. The chain is fixed in advance:
  pair k of a slot cancels the order that pair k-1 (or the ladder) placed there, so one maker's
  quotes must be applied in order; a group comes back no sooner than `reorder_gap` quotes later,
  so up to that many of a maker's quotes may be in flight at once (its other groups).
- *takers*: IOC orders crossing the touch (a buy priced just above the best level of the asks,
  a sell just below the best bids), 0.01-0.05 contracts, so they fill a small part of one maker
  order and never exhaust it (maker orders are 50-150 contracts).
- *pairs* for the single-order latency runs: a GTC sell then an IOC buy from another account at
  the same price (as `benchmarks/loadgen.py`), on books emptied of the ladders.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from cext import Order, keccak256_many, order_digests, to_checksum
from sequencer.core.eip712 import TYPEHASH, CancelAll, digest
from tests.e2e.serverkit import order_json
from tests.sequencer.core.core_world import Key

U = 10**6
LEVELS = 5
GTC, IOC = 0, 1
MAKER_SEED, SHALLOW_SEED, TAKER_SEED, PAIR_SEED = 50_000, 51_000, 52_000, 53_000
FUNDS = 10**9 * U  # 1e9 USDC each: deep ladders of 100-contract orders need ~1e8 of margin


@dataclass(frozen=True)
class Quote:
    """One instrument as quoted: its name and, in ticks, the mark, half-spread and level step."""

    name: str
    tick: int
    mid: int
    half: int
    step: int

    @classmethod
    def from_mark(cls, name: str, mark: int, tick: int) -> Quote:
        mid = max(1, round(mark / tick))
        return cls(name, tick, mid, max(2, mid // 100), max(2, mid // 200))

    def price(self, is_buy: bool, level: int, jitter: int) -> int:
        """A level's price: bids mark - half - level*step - jitter, asks the mirror (>= 1 tick)."""
        off = self.half + level * self.step + jitter
        return (max(1, self.mid - off) if is_buy else self.mid + off) * self.tick

    def touch_taker(self, is_buy: bool) -> int:
        """A taker price that crosses the best level of the other side and no deeper level."""
        edge = self.half + self.step - 1
        return (self.mid + edge if is_buy else max(1, self.mid - edge)) * self.tick


def cancel_digests(domain: bytes, account: bytes, hashes: list[bytes]) -> list[bytes]:
    """EIP-712 digests of Cancel(account, orderHash) for each hash, in two cext keccak batches
    (equal to sequencer.core.eip712.digest, checked in `check_cancel_digest`)."""
    head = TYPEHASH["Cancel"] + account.rjust(32, b"\0")
    structs = keccak256_many([head + h for h in hashes])
    return keccak256_many([b"\x19\x01" + domain + s for s in structs])


def check_cancel_digest(domain: bytes) -> None:
    from sequencer.core.eip712 import Cancel
    a, h = b"\x11" * 20, b"\x22" * 32
    assert cancel_digests(domain, a, [h]) == [digest(domain, Cancel(a, h))]


def _sig(key: Key, d: bytes) -> str:
    """A 65-byte signature of digest `d` as 0x-hex (coincurve, equal to eth-account's)."""
    return "0x" + key.sign(d).hex()


def single_bodies(domain: bytes, keys: list[Key], orders: list[Order]) -> list[bytes]:
    """Pre-encoded POST /v1/orders bodies, one per order: digests in one cext batch, each signed
    by its account's key from `keys`."""
    by = {k.address: k for k in keys}
    return [json.dumps({"order": order_json(o), "signature": _sig(by[o.account], d)},
                       separators=(",", ":")).encode()
            for o, d in zip(orders, order_digests(domain, orders))]


# -- makers (run in pool workers) ---------------------------------------------------------------

@dataclass(frozen=True)
class MakerSpec:
    seed: int
    quotes: tuple[Quote, ...]   # instruments it quotes
    layers: int                 # orders per price level (groups per instrument)
    n_quotes: int               # mass quotes in its requote chain
    domain: bytes
    expiry: int
    nonce0: int = 0
    batch: int = 500


def reorder_gap(groups: int) -> int:
    """How many consecutive quotes of a chain over `groups` groups touch distinct groups, so
    may be sent without waiting for each other: a quarter of the groups, at most 64 (0: one
    group, every quote must follow the one before)."""
    return min(64, groups // 4)


def make_maker(spec: MakerSpec) -> tuple[list[bytes], list[bytes]]:
    """(ladder bodies for POST /v1/orders/batch, requote-chain bodies for POST /v1/quotes)."""
    key = Key(spec.seed)
    acct = key.address
    rng = random.Random(spec.seed)
    slots: list[tuple[Quote, bool, int]] = []
    groups: list[list[int]] = []
    for q in spec.quotes:
        for _ in range(spec.layers):
            g = []
            for is_buy in (True, False):
                for level in range(LEVELS):
                    g.append(len(slots))
                    slots.append((q, is_buy, level))
            groups.append(g)
    nonce = spec.nonce0

    def new_order(s: int) -> Order:
        nonlocal nonce
        q, is_buy, level = slots[s]
        nonce += 1
        return Order(acct, q.name, is_buy, q.price(is_buy, level, rng.randrange(q.step)),
                     rng.randrange(50, 151) * U, nonce, spec.expiry, GTC, False, False)

    ladder = [new_order(s) for s in range(len(slots))]
    order_of_groups: list[int] = []
    gap = reorder_gap(len(groups))
    while len(order_of_groups) < spec.n_quotes:
        cycle = list(range(len(groups)))
        rng.shuffle(cycle)
        # a group comes back no sooner than `gap` quotes later, even across cycles: quotes
        # that many apart may be in flight at once (the client's `maker_inflight`)
        recent = set(order_of_groups[-gap:]) if gap else set()
        head = [g for g in cycle if g not in recent][:gap]
        first = set(head)
        order_of_groups += head + [g for g in cycle if g not in first]
    chain_slots = [s for g in order_of_groups[:spec.n_quotes] for s in groups[g]]
    chain = [new_order(s) for s in chain_slots]
    ds = order_digests(spec.domain, ladder + chain)
    current = ds[:len(ladder)]
    cancelled = []
    for s, d in zip(chain_slots, ds[len(ladder):]):
        cancelled.append(current[s])
        current[s] = d
    cds = cancel_digests(spec.domain, acct, cancelled)
    account = to_checksum(acct)
    items = [{"order": order_json(o), "signature": _sig(key, d)} for o, d in zip(ladder, ds)]
    setup = [json.dumps({"orders": items[i:i + spec.batch]}, separators=(",", ":")).encode()
             for i in range(0, len(items), spec.batch)]
    pairs = [{"cancel": {"cancel": {"account": account, "orderHash": "0x" + h.hex()},
                         "signature": _sig(key, cd)},
              "order": {"order": order_json(o), "signature": _sig(key, d)}}
             for h, cd, o, d in zip(cancelled, cds, chain, ds[len(ladder):])]
    per = 2 * LEVELS
    quotes = [json.dumps({"quotes": pairs[i:i + per]}, separators=(",", ":")).encode()
              for i in range(0, len(pairs), per)]
    return setup, quotes


# -- takers and latency pairs -------------------------------------------------------------------

@dataclass(frozen=True)
class TakerSpec:
    seeds: tuple[int, ...]
    quotes: tuple[Quote, ...]
    n: int
    domain: bytes
    expiry: int
    rng_seed: int
    nonce0: int = 0


def make_takers(spec: TakerSpec) -> list[bytes]:
    """`n` single-order bodies (POST /v1/orders): IOC orders crossing the touch, accounts in turn."""
    keys = [Key(s) for s in spec.seeds]
    rng = random.Random(spec.rng_seed)
    orders = []
    for i in range(spec.n):
        k = keys[i % len(keys)]
        q = spec.quotes[rng.randrange(len(spec.quotes))]
        is_buy = rng.random() < 0.5
        orders.append(Order(k.address, q.name, is_buy, q.touch_taker(is_buy), rng.randrange(1, 6) * 10_000,
                            spec.nonce0 + i // len(keys), spec.expiry, IOC, False, False))
    return single_bodies(spec.domain, keys, orders)


def make_pairs(spec: TakerSpec) -> list[bytes]:
    """`n` single-order bodies: GTC sell then IOC buy from the next account, same price/amount."""
    keys = [Key(s) for s in spec.seeds]
    orders = []
    for j in range(spec.n // 2):
        maker, taker = keys[(2 * j) % len(keys)], keys[(2 * j + 1) % len(keys)]
        q = spec.quotes[j % len(spec.quotes)]
        price = (q.mid + j % 7) * q.tick
        amount = 10_000 * (1 + j % 3)
        nonce = spec.nonce0 + j
        orders.append(Order(maker.address, q.name, False, price, amount, nonce, spec.expiry, GTC, False, False))
        orders.append(Order(taker.address, q.name, True, price, amount, nonce, spec.expiry, IOC, False, False))
    return single_bodies(spec.domain, keys, orders)


def _split(spec: TakerSpec, parts: int, fn: Callable[[TakerSpec], list[bytes]],
           multiple: int = 1) -> list[tuple[Callable[[TakerSpec], list[bytes]], TakerSpec]]:
    """`spec` cut into up to `parts` jobs of a multiple of `multiple` orders each, with disjoint
    nonce ranges (so that the pool signs them in parallel)."""
    per = -(-spec.n // parts)
    per += -per % multiple
    out = []
    for p in range(parts):
        n = min(per, spec.n - p * per)
        if n > 0:
            out.append((fn, TakerSpec(spec.seeds, spec.quotes, n, spec.domain, spec.expiry,
                                      spec.rng_seed * 1000 + p, spec.nonce0 + p * per)))
    return out


def _call(job: tuple[Callable[[Any], Any], Any]) -> Any:
    fn, arg = job
    return fn(arg)


def generate(jobs: list[tuple[Callable[[Any], Any], Any]], workers: int | None = None) -> list[Any]:
    """Run (fn, spec) jobs on a spawn process pool (coincurve signing is CPU-bound)."""
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
        return list(ex.map(_call, jobs, chunksize=1))


# -- the flows ------------------------------------------------------------------------------------

@dataclass
class Flow:
    """Pre-encoded bodies of one market-maker flow, for the load generator (mmflow_client)."""

    name: str
    maker_seeds: list[int]
    setup: list[list[bytes]]        # per maker: ladder batches
    quotes: list[list[bytes]]       # per maker: its requote chain, one mass quote each
    takers: list[bytes]             # single-order taker bodies
    open_orders: int                # per maker
    pairs_per_quote: int = 2 * LEVELS
    meta: dict[str, Any] = field(default_factory=dict)
    reorder_gap: int = 0            # quotes of a chain that may be in flight at once (see reorder_gap)


def build_flow(name: str, quotes: list[Quote], *, makers: int, instruments_per_maker: int,
               layers: int, pairs_per_maker: int, takers: int, taker_seeds: list[int],
               taker_nonce0: int, seed0: int, domain: bytes, expiry: int, rng_seed: int,
               workers: int | None = None) -> Flow:
    """Makers `seed0 + i`: maker i quotes `instruments_per_maker` instruments (consecutive, from
    i * instruments_per_maker mod len) with `layers` orders per level; `pairs_per_maker` pairs
    (rounded up to whole groups) in its chain; `takers` taker orders, in the quoted instruments.
    Takers' nonces start at `taker_nonce0` (flows sharing taker accounts need disjoint ranges)."""
    per_group = 2 * LEVELS
    n_quotes = -(-pairs_per_maker // per_group)
    mspecs = []
    for i in range(makers):
        mine = tuple(quotes[(i * instruments_per_maker + j) % len(quotes)] for j in range(instruments_per_maker))
        mspecs.append((make_maker, MakerSpec(seed0 + i, mine, layers, n_quotes, domain, expiry)))
    quoted = tuple(dict.fromkeys(q for _, m in mspecs for q in m.quotes))  # takers cross these only
    tspec = TakerSpec(tuple(taker_seeds), quoted, takers, domain, expiry, rng_seed, taker_nonce0)
    t = time.perf_counter()
    out = generate(mspecs + _split(tspec, 8, make_takers), workers)
    made = out[:makers]
    taker_bodies = [b for part in out[makers:] for b in part]
    return Flow(name, [seed0 + i for i in range(makers)], [m[0] for m in made], [m[1] for m in made],
                taker_bodies, instruments_per_maker * layers * per_group, per_group,
                {"presign_s": round(time.perf_counter() - t, 1),
                 "signatures": sum(instruments_per_maker * layers * per_group + 2 * n_quotes * per_group
                                   for _ in range(makers)) + takers},
                reorder_gap(instruments_per_maker * layers))


def build_pairs(quotes: list[Quote], seeds: list[int], n: int, nonce0: int, domain: bytes,
                expiry: int, workers: int | None = None) -> list[bytes]:
    """`n` (rounded down to even) single-order bodies for the latency runs (`make_pairs`)."""
    spec = TakerSpec(tuple(seeds), tuple(quotes), n - n % 2, domain, expiry, 0, nonce0)
    return [b for part in generate(_split(spec, 16, make_pairs, multiple=2), workers) for b in part]


def cancel_all_body(seed: int, domain: bytes, ts: int) -> dict[str, Any]:
    """A signed POST /v1/cancel_all body: every resting order of account `seed`, all instruments
    (`ts`: unix seconds, within the node's cancelAllWindow)."""
    k = Key(seed)
    msg = CancelAll(k.address, "", ts)
    return {"cancelAll": {"account": to_checksum(k.address), "instrument": "", "timestamp": ts},
            "signature": _sig(k, digest(domain, msg))}


def address_of(seed: int) -> bytes:
    """The 20-byte address of the test key `seed`."""
    return Key(seed).address


def save(obj: Any, path: Path) -> Path:
    """Pickle `obj` (the flows) to `path` for the load generator process; returns `path`.
    Synced before it returns: ~470 MB left dirty would be written back by the kernel ~30 s
    later (vm.dirty_expire_centisecs), in the middle of a measured run, and every synced
    write of the node queued behind it (80-180 ms stalls of the single-order runs, found by
    sampling /proc/diskstats around the node's "slow synced log write" warning)."""
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        f.flush()
        os.fsync(f.fileno())
    return path
