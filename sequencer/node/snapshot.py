"""Snapshots of the node's `Core` as versioned plain data (msgpack), not pickle.

A snapshot holds exactly what replaying the input log rebuilds: the committed `State`, the
engine's books, order indexes and open block, the account tree, the head header and the
node's read-side indexes. Classes may be refactored freely as long as this module still maps
them to the same plain data. Changing *what* is stored means a new `FORMAT_VERSION`. A snapshot
of another version, of another chain, or made by code whose classes have fields this module
does not know is refused with `SnapshotError`, and the node then replays the log.

Not stored, rebuilt lazily after decoding: the engine's risk cache (`Engine._risk`), the
block context's digest, signer and marks caches, and a request's staging area (`Engine._txn`).
Those are empty (None) between requests. `State.config` is not stored either: the decoder
takes it from the node's genesis and checks the snapshot's chain fingerprint against it.

Format, version 4 (msgpack, `use_bin_type=True`; version 3 lacked the liquidation state
(`auctions`, `shortfall`, `liquidateNonces`) and is still read, as a state without auctions or
shortfall; version 2 also lacked `mmp` and is still read, as a node without market-maker
protection; version 1 lacked `withdrawalLeaves` and held DepositTx bytes without a depositor). Arrays are written as `[...]`. Addresses and
digests are bin. Integers are msgpack ints; an integer outside [-2^63, 2^64) is ext type 1
(big-endian two's complement). Dict entries keep their insertion order. Sets are sorted.

    [5, fingerprint, addrs, names, state, engine, tree, node]
    fingerprint = keccak256(msgpack([chainId, verifyingContract, Genesis.to_bytes()]))
    addrs, names  tables that orders refer to by position (account address, instrument name)
    order   = [addr#, name#, isBuy, price, amount, nonce, expiry, timeInForce, postOnly, reduceOnly]
    state   = [accounts, indexKeys|nil, indexValues, instruments, settled, orders, oracle,
               holders, messageCursor, oracleVersion, touched, withdrawalLeaves, auctions,
               shortfall, liquidateNonces]
      accounts    [[address, collateral, [[instrument, amount]..], [[key, expiry]..],
                    [usedKeyDigest..] (sorted), withdrawalNonce, (marginMode, marginNonce)]..]
                  the margin fields only when marginNonce > 0 (version 5; before: none)
      indexKeys   nil when State.index has the same key order as accounts (always, today)
      indexValues leaf index of each key, in that order
      instruments [[name, [Instrument fields..]]..];  settled [[name, price]..]
      orders      [[digest, order, filled]..]  (filled orders: State.orders)
      oracle      [[underlying, [[key, [Feed fields..]]..], [[timestamp, spot]..]]..]
      holders     [[instrument, [address..]]..];  touched [address..] (sorted)
      withdrawalLeaves [[account, recipient, amount, nonce]..] of the open block, in order
                  (the node snapshots right after a seal, when it is empty; the format does
                  not rely on that, as it also stores the open block's txs)
      auctions    [[address, startTimestamp]..] in dict order;  shortfall int
      liquidateNonces [[address, nextNonce]..] in dict order
      channels    [[channelId, [ChannelOpen fields..], openedAt, status, closedTurn,
                   closedHash]..] in dict order (version 5)
      compliance  [[[address, frozenAt]..], [[l1Address, deniedAt]..], complianceNonce], the
                  frozen accounts and the L1 deny list in dict order (docs/compliance.md;
                  version 5, present once complianceNonce > 0: a state of 16 parts has none)
      (State.collateral_total is not stored: it is Σ collateral, recomputed)
    engine  = [timestamp, resting, books, byAccount, seen, expiring, lastCancelAll, txs, mmp]
      resting     [[digest, order|nil, signature, remaining]..] in `Engine.open` order; nil
                  means the order of State.orders[digest]. A "row" below is a position here.
      books       [[instrument, bids, asks]..] in `Engine.books` order. Each side is
                  [[price, [row..]]..], prices ascending, rows in time priority.
      byAccount   [[address, [[instrument, [row..]]..]]..] (empty entries kept)
      seen        its size when it is exactly the digests in `expiring`, else [digest..] (sorted)
      expiring    [[expiry, digest | ref]..], the heap's list as is; an int ref stands for
                  the digest at that position in (State.orders keys ++ resting digests)
      lastCancelAll [[address, timestamp]..];  txs [canonical tx bytes..] (the open block)
      mmp         [configs, windows, frozen, lastReset] (sequencer.core.mmp), in dict order:
                  configs [[MmpConfig fields..]..]; windows [[account, underlying,
                  [[tMs, amount, delta, vega]..]]..] (sums are recomputed); frozen [[account,
                  underlying, atMs, untilMs|nil, measure, value, limit]..]; lastReset [[account,
                  underlying, timestamp]..]. Absent in version 2 (= all empty).
    tree    = [depth, [[[index..], hashes]..]] with depth+1 levels from the leaves up. Only
              non-empty nodes are stored; `hashes` concatenates their 32-byte values.
    node    = [head (7 header fields), tradesMaxlen|nil, [trade map..], [[instrument, seq]..],
               l1Block, [[digest, account, recipient, amount, nonce]..] (pending withdrawals)]

Checked on decoding: the version, the fingerprint, the known class shapes, the row counts of
the books and indexes, and that the tree's root is the head's stateRoot.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from itertools import chain, count
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import msgpack

from cext import ORDER_FIELDS, Order, keccak256
from sequencer.core.accounttree import AccountTree
from sequencer.core.book import Book, Resting
from sequencer.core.eip712 import Feed, MmpConfig, Withdraw
from sequencer.core.engine import Engine
from sequencer.core.header import Header, WithdrawalLeaf
from sequencer.core.instruments import Instrument
from sequencer.core.mmp import Freeze, Mmp, Window
from sequencer.core.oracle import OracleState
from sequencer.core.channelmsg import ChannelOpen
from sequencer.core.state import Account, Channel, FilledOrder, State
from sequencer.core.transition import BlockContext
from sequencer.core.txs import decode_tx, encode_tx
from sequencer.errors import OptrollupError
from sequencer.node.config import NodeConfig
from sequencer.store import StoreError

if TYPE_CHECKING:  # node.py imports this module; Core is imported lazily at decode time
    from sequencer.node.node import Core

FORMAT_VERSION = 5
READABLE = (2, 3, 4, 5)  # 4 = 5 without margin modes; 3 = 4 without liquidation state; 2 = 3
# without MMP data
_BIGINT = 1  # msgpack ext type of integers outside msgpack's range


class SnapshotError(StoreError):
    """A snapshot cannot be written or used. Reasons: another format version, another chain,
    code that changed what a snapshot must hold, or corrupt bytes. Replaying the log is the
    answer to all of them."""

    code = "snapshot_unusable"


# -- what this format knows of the classes it stores ------------------------------------------

_SHAPES: list[tuple[type, tuple[str, ...]]] = [
    (State, ("config", "accounts", "index", "instruments", "settled", "orders", "oracle",
             "holders", "message_cursor", "oracle_version", "auctions", "shortfall",
             "liquidate_nonces", "channels", "frozen", "denied", "compliance_nonce",
             "collateral_total", "touched", "withdrawal_leaves")),
    (Channel, ("open", "opened_at", "status", "closed_turn", "closed_hash")),
    (Account, ("collateral", "positions", "session_keys", "used_key_digests", "withdrawal_nonce",
               "margin_mode", "margin_nonce")),
    (FilledOrder, ("order", "filled")),
    (OracleState, ("feeds", "history")),
    (Header, ("number", "parent_hash", "timestamp", "tx_root", "state_root", "withdrawal_root",
              "l1_message_cursor")),
    (BlockContext, ("timestamp", "signers", "digests", "_marks")),  # only timestamp is stored
]
_TUPLES: list[tuple[type, tuple[str, ...]]] = [
    (Order, tuple(n for n, _ in ORDER_FIELDS)),
    (Instrument, ("name", "underlying", "expiry", "strike", "is_call", "tick_size",
                  "amount_step", "min_amount")),
    (Feed, ("underlying", "spot", "timestamp", "expiries", "vols")),
    (Withdraw, ("account", "recipient", "amount", "nonce")),
    (WithdrawalLeaf, ("account", "recipient", "amount", "nonce")),
    (MmpConfig, ("account", "underlying", "intervalMs", "frozenMs", "amountLimit", "deltaLimit",
                 "vegaLimit", "nonce")),
    (Freeze, ("at_ms", "until_ms", "measure", "value", "limit")),
]
_SLOTS: list[tuple[type, tuple[str, ...]]] = [
    (Resting, ("digest", "order", "signature", "remaining")),
    (Book, ("bids", "asks")),
    (Mmp, ("configs", "windows", "frozen", "last_reset", "events")),  # events: transient
    (Window, ("buckets", "amount", "delta", "vega")),  # the sums are recomputed
]
_CORE_FIELDS = ("engine", "tree", "head", "trades", "book_seq", "l1_block", "pending_withdrawals")
_ENGINE_STORED = frozenset({"state", "books", "open", "by_account", "seen", "expiring",
                            "last_cancel_all", "ctx", "txs", "mmp"})
# caches that rebuild lazily from the stored fields
_ENGINE_DERIVED = frozenset({"_risk", "_open_totals", "_next_marks", "_next_scan"})
_TREE_ATTRS = frozenset({"depth", "_zeros", "_levels"})


def _check_classes(core_cls: type) -> None:
    """SnapshotError unless every stored class has exactly the fields this format maps."""
    bad = []
    for cls, want in _SHAPES + [(core_cls, _CORE_FIELDS)]:
        got = tuple(f.name for f in fields(cls))
        if got != want:
            bad.append(f"{cls.__name__} fields {got} != {want}")
    for cls, want in _TUPLES:
        if cls._fields != want:  # type: ignore[attr-defined]
            bad.append(f"{cls.__name__} fields {cls._fields} != {want}")  # type: ignore[attr-defined]
    for cls, want in _SLOTS:
        if cls.__slots__ != want:
            bad.append(f"{cls.__name__} slots {cls.__slots__} != {want}")
    if bad:
        raise SnapshotError(f"snapshot format v{FORMAT_VERSION} does not match the code: "
                            + "; ".join(bad))


def _check_engine(engine: Engine) -> None:
    """SnapshotError unless every engine attribute is stored, derived, or empty (a transient
    staging area between requests)."""
    attrs = vars(engine)
    missing = _ENGINE_STORED - attrs.keys()
    extra = [k for k, v in attrs.items() if k not in _ENGINE_STORED and k not in _ENGINE_DERIVED
             and not (v is None or (hasattr(v, "__len__") and len(v) == 0))]
    if missing or extra:
        raise SnapshotError(f"snapshot format v{FORMAT_VERSION} does not match Engine: missing "
                            f"{sorted(missing)}, unknown non-empty {sorted(extra)} (in a request?)")


def _check_tree(tree: AccountTree) -> None:
    if vars(tree).keys() != _TREE_ATTRS:
        raise SnapshotError(f"snapshot format v{FORMAT_VERSION} does not match AccountTree: "
                            f"attributes {sorted(vars(tree))}")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC (process-wide) while ~10^6 objects are built that all stay alive:
    the collections it would trigger meanwhile find nothing and cost seconds."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def chain_fingerprint(cfg: NodeConfig) -> bytes:
    """32-byte identity of a chain: keccak256(msgpack([chainId, verifyingContract, genesis bytes]))."""
    g = cfg.genesis
    return keccak256(msgpack.packb([g.config.chain_id, g.config.verifying_contract, g.to_bytes()],
                                   use_bin_type=True))


# -- encoding ------------------------------------------------------------------------------------

def copy_core_plain(core: Core, cfg: NodeConfig) -> list[Any]:
    """The snapshot of `core` as plain data (lists, tuples, dicts, bytes, str, int, bool,
    None), ready for `pack_plain`. It shares only immutable objects with `core`, so the core
    may change while another thread or process packs it. A pure function of `core` and
    `cfg`: no I/O and no threads. Call it between requests (SnapshotError if one is staged).
    ~1.5 objects per order: pause the cyclic GC around it and its packing (as `encode_core`
    does) to spare collections that would scan them."""
    _check_classes(type(core))
    eng, st, tree = core.engine, core.engine.state, core.tree
    _check_engine(eng)
    _check_tree(tree)
    if st.config != cfg.genesis.config:
        raise SnapshotError("the core's config is not the genesis config of `cfg`")
    return _plain(core, cfg)


def _plain(core: Core, cfg: NodeConfig) -> list[Any]:
    eng, st, tree = core.engine, core.engine.state, core.tree
    filled = list(map(attrgetter("order"), st.orders.values()))
    resting = list(map(attrgetter("order"), eng.open.values()))
    addrs = list(dict.fromkeys(map(itemgetter(0), chain(filled, resting))))
    names = list(dict.fromkeys(map(itemgetter(1), chain(filled, resting))))
    aid = {a: i for i, a in enumerate(addrs)}
    nid = {n: i for i, n in enumerate(names)}

    accounts = [(a, x.collateral, tuple(x.positions.items()), tuple(x.session_keys.items()),
                 sorted(x.used_key_digests), x.withdrawal_nonce,
                 *((x.margin_mode, x.margin_nonce) if x.margin_nonce else ()))
                for a, x in st.accounts.items()]
    index_keys = list(st.index)
    state = [
        accounts,
        None if index_keys == list(st.accounts) else index_keys,
        list(st.index.values()),
        [(n, tuple(i)) for n, i in st.instruments.items()],
        list(st.settled.items()),
        [(d, (aid[o[0]], nid[o[1]]) + o[2:], f) for d, o, f in
         zip(st.orders, filled, map(attrgetter("filled"), st.orders.values()))],
        [(u, [(k, tuple(f)) for k, f in o.feeds.items()], tuple(o.history))
         for u, o in st.oracle.items()],
        [(n, tuple(h)) for n, h in st.holders.items()],
        st.message_cursor,
        st.oracle_version,
        sorted(st.touched),
        [tuple(w) for w in st.withdrawal_leaves],
        list(st.auctions.items()),
        st.shortfall,
        list(st.liquidate_nonces.items()),
        [(cid, tuple(c.open), c.opened_at, c.status, c.closed_turn, c.closed_hash)
         for cid, c in st.channels.items()],
        # compliance only once the operator acted, so other snapshots keep their 16 parts
        *([[list(st.frozen.items()), list(st.denied.items()), st.compliance_nonce]]
          if st.compliance_nonce else []),
    ]

    orders = st.orders
    rows = []
    for (d, r), o in zip(eng.open.items(), resting):
        if r.digest != d:
            raise SnapshotError(f"engine index broken: open[{d.hex()}] holds {r.digest.hex()}")
        fo = orders.get(d)
        same = fo is not None and (fo.order is o or fo.order == o)
        rows.append((d, None if same else (aid[o[0]], nid[o[1]]) + o[2:], r.signature, r.remaining))
    row = {d: i for i, d in enumerate(eng.open)}
    try:
        books = [(name, [(p, [row[d] for d in lvl]) for p, lvl in b.bids.items()],
                  [(p, [row[d] for d in lvl]) for p, lvl in b.asks.items()])
                 for name, b in eng.books.items()]
        by_account = [(a, [(n, [row[d] for d in per]) for n, per in inner.items()])
                      for a, inner in eng.by_account.items()]
    except KeyError as exc:
        raise SnapshotError(f"engine index broken: {exc.args[0].hex()} rests but is not open") from None
    # `seen` is normally exactly the digests in the heap: then only its size is stored (the
    # decoder rebuilds it and checks the size, which also catches a digest twice in the heap)
    heap_digests = map(itemgetter(1), eng.expiring)
    exact = len(eng.seen) == len(eng.expiring) and eng.seen.issuperset(heap_digests)
    seen = len(eng.seen) if exact else sorted(eng.seen)
    ref = dict(zip(chain(st.orders, eng.open), count()))  # most digests in the heap
    expiring = [(e, ref.get(d, d)) for e, d in eng.expiring]
    try:
        txs = [encode_tx(t) for t in eng.txs]
    except OptrollupError as exc:
        raise SnapshotError(f"a transaction of the open block does not encode: {exc}") from exc
    engine = [eng.ctx.timestamp, rows, books, by_account, seen, expiring,
              list(eng.last_cancel_all.items()), txs, _mmp_plain(eng.mmp)]

    levels = tree._levels  # noqa: SLF001 - the tree's nodes are what is stored
    tree_plain = [tree.depth, [(list(lv), b"".join(lv.values())) for lv in levels]]

    h = core.head
    node = [(h.number, h.parent_hash, h.timestamp, h.tx_root, h.state_root, h.withdrawal_root,
             h.l1_message_cursor),
            core.trades.maxlen, [dict(t) for t in core.trades], list(core.book_seq.items()),
            core.l1_block, [(d, *w) for d, w in core.pending_withdrawals.items()]]
    return [FORMAT_VERSION, chain_fingerprint(cfg), addrs, names, state, engine, tree_plain, node]


def _mmp_plain(m: Mmp) -> list[Any]:
    return [[tuple(c) for c in m.configs.values()],
            [(a, u, [tuple(b) for b in w.buckets]) for (a, u), w in m.windows.items()],
            [(a, u, *f) for (a, u), f in m.frozen.items()],
            [(a, u, t) for (a, u), t in m.last_reset.items()]]


def _mmp_build(plain: Any) -> Mmp:
    m = Mmp()
    if plain is None:  # a version-2 snapshot: made before MMP existed
        return m
    configs, windows, frozen, last_reset = plain
    m.configs = {(c[0], c[1]): MmpConfig._make(c) for c in configs}
    for a, u, buckets in windows:
        if (a, u) not in m.configs:
            raise SnapshotError("snapshot MMP window of a pair without a config")
        w = m.windows[(a, u)] = Window()
        for b in buckets:
            w.add(*b)
        if len(w.buckets) != len(buckets):
            raise SnapshotError("snapshot MMP window has two buckets of one block time")
    m.frozen = {(a, u): Freeze._make(f) for a, u, *f in frozen}
    m.last_reset = {(a, u): t for a, u, t in last_reset}
    return m


def _default(obj: Any) -> Any:
    if type(obj) is int:  # outside msgpack's int range
        n = (obj + (obj < 0)).bit_length() // 8 + 1
        return msgpack.ExtType(_BIGINT, obj.to_bytes(n, "big", signed=True))
    raise TypeError(f"cannot snapshot a {type(obj).__name__}: {obj!r:.80}")


def pack_plain(plain: list[Any]) -> bytes:
    """msgpack bytes of `copy_core_plain`'s result."""
    try:
        return msgpack.packb(plain, use_bin_type=True, default=_default)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SnapshotError(f"snapshot does not encode: {exc}") from exc


def encode_core(core: Core, cfg: NodeConfig) -> bytes:
    """Snapshot bytes of `core` (between requests), for the chain of `cfg`. The cyclic GC
    is paused meanwhile; the plain copy is freed before it resumes."""
    with _gc_paused():
        plain = copy_core_plain(core, cfg)
        data = pack_plain(plain)
        del plain
    return data


# -- decoding ------------------------------------------------------------------------------------

def _ext_hook(code: int, data: bytes) -> Any:
    if code == _BIGINT:
        return int.from_bytes(data, "big", signed=True)
    raise ValueError(f"unknown msgpack ext type {code}")


def decode_core(data: bytes, cfg: NodeConfig) -> Core:
    """The Core that `encode_core` wrote, for the chain of `cfg` (which gives State.config).
    SnapshotError if the bytes are of another format version (an old pickle snapshot
    included), of another chain, do not fit the current classes or do not decode."""
    from sequencer.node.node import Core

    u = msgpack.Unpacker(use_list=False, raw=False, ext_hook=_ext_hook, strict_map_key=True,
                         max_buffer_size=max(len(data), 1))
    try:
        u.feed(data)
        n = u.read_array_header()
        version = u.unpack() if n else None
    except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types
        raise SnapshotError(f"not a versioned snapshot (an old pickle one?): {exc}") from None
    if type(version) is not int or version not in READABLE:
        raise SnapshotError(f"snapshot format version {version!r} is unknown to this code, "
                            f"which reads versions {', '.join(map(str, READABLE))}")
    if n != 8:
        raise SnapshotError(f"snapshot v{version} has {n} parts, not 8")
    want = chain_fingerprint(cfg)
    try:
        got = u.unpack()
    except Exception as exc:  # noqa: BLE001
        raise SnapshotError(f"snapshot fingerprint does not decode: {exc}") from None
    if got != want:
        shown = got.hex() if isinstance(got, bytes) else repr(got)
        raise SnapshotError(f"snapshot belongs to another chain: genesis fingerprint {shown}, "
                            f"this node's chain {want.hex()}")
    _check_classes(Core)
    with _gc_paused():
        try:
            parts = [u.unpack() for _ in range(n - 2)]
            if u.tell() != len(data):
                raise SnapshotError(f"{len(data) - u.tell()} bytes after the snapshot")
            del u
            core = _build(parts, cfg, Core, version)
            del parts
        except SnapshotError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means: replay instead
            raise SnapshotError(f"snapshot v{version} does not decode: {exc!r}") from exc
    return core


def _build(parts: list[Any], cfg: NodeConfig, core_cls: type, version: int) -> Core:
    addrs, names, s, e, t, c = parts
    mk = Order._make

    # state
    if len(s) not in ((16, 17) if version >= 5 else (15,) if version >= 4 else (12,)):
        raise SnapshotError(f"snapshot v{version} state has {len(s)} parts")
    (accounts, index_keys, index_values, instruments, settled, orders, oracle, holders,
     message_cursor, oracle_version, touched, withdrawal_leaves) = s[:12]
    st = State(cfg.genesis.config)
    st.accounts = {a: Account(coll, dict(pos), dict(keys), set(used), nonce, *margin)
                   for a, coll, pos, keys, used, nonce, *margin in accounts}
    keys = list(st.accounts) if index_keys is None else index_keys
    if len(keys) != len(index_values):
        raise SnapshotError("snapshot index keys and values differ in length")
    st.index = dict(zip(keys, index_values))
    st.instruments = {n: Instrument._make(i) for n, i in instruments}
    st.settled = dict(settled)
    st.orders = {d: FilledOrder(mk((addrs[o[0]], names[o[1]]) + o[2:]), f) for d, o, f in orders}
    st.oracle = {u: OracleState({k: Feed._make(f) for k, f in feeds}, list(hist))
                 for u, feeds, hist in oracle}
    st.holders = {n: dict.fromkeys(h) for n, h in holders}
    st.message_cursor, st.oracle_version = message_cursor, oracle_version
    st.touched = set(touched)
    st.withdrawal_leaves = [WithdrawalLeaf._make(w) for w in withdrawal_leaves]
    if version >= 4:  # before: made by code without liquidation (no auctions, no shortfall)
        auctions, st.shortfall, nonces = s[12:15]
        st.auctions, st.liquidate_nonces = dict(auctions), dict(nonces)
    if version >= 5:
        st.channels = {cid: Channel(ChannelOpen(*o), at, status, turn, h)
                       for cid, o, at, status, turn, h in s[15]}
    if len(s) > 16:  # compliance (docs/compliance.md)
        frozen, denied, st.compliance_nonce = s[16]
        st.frozen, st.denied = dict(frozen), dict(denied)
    st.collateral_total = sum(a.collateral for a in st.accounts.values()) + sum(
        c.open.depositA + c.open.depositB for c in st.channels.values() if c.status == 0)

    # engine: build it as the code does, then put the stored fields in
    if len(e) != (8 if version == 2 else 9):
        raise SnapshotError(f"snapshot v{version} engine has {len(e)} parts")
    ts, resting, books, by_account, seen, expiring, last_cancel_all, txs = e[:8]
    eng = Engine(st)
    _check_engine(eng)
    filled = st.orders
    D = [r[0] for r in resting]
    R = [Resting(d, filled[d].order if o is None else mk((addrs[o[0]], names[o[1]]) + o[2:]),
                 sig, rem) for d, o, sig, rem in resting]
    eng.open = dict(zip(D, R))
    eng.books = {}
    placed = 0
    for name, bids, asks in books:
        b = Book()
        for side, levels in ((b.bids, bids), (b.asks, asks)):
            side.update([(p, {D[i]: R[i] for i in rows}) for p, rows in levels])
            placed += sum(len(rows) for _, rows in levels)
        eng.books[name] = b
    eng.by_account = {a: {n: {D[i]: R[i] for i in rows} for n, rows in per}
                      for a, per in by_account}
    indexed = sum(len(x) for per in eng.by_account.values() for x in per.values())
    if not len(eng.open) == len(R) == placed == indexed:
        raise SnapshotError(f"snapshot engine rows disagree: {len(R)} resting, {len(eng.open)} "
                            f"distinct, {placed} in books, {indexed} by account")
    known = [*st.orders, *D]
    eng.expiring = [(e, x if type(x) is bytes else known[x]) for e, x in expiring]
    if type(seen) is int:
        eng.seen = set(map(itemgetter(1), eng.expiring))
        if len(eng.seen) != seen:
            raise SnapshotError(f"snapshot seen set has {len(eng.seen)} digests, not {seen}")
    else:
        eng.seen = set(seen)
    eng.last_cancel_all = dict(last_cancel_all)
    eng.ctx = BlockContext(ts)
    eng.txs = [decode_tx(b) for b in txs]
    eng.mmp = _mmp_build(e[8] if version >= 3 else None)

    # account tree
    depth, levels = t
    tree = AccountTree(depth)
    _check_tree(tree)
    if len(levels) != depth + 1:
        raise SnapshotError(f"snapshot tree of depth {depth} has {len(levels)} levels")
    nodes = []
    for idx, blob in levels:
        if len(blob) != 32 * len(idx):
            raise SnapshotError("snapshot tree level: hashes and indexes differ in count")
        nodes.append(dict(zip(idx, [blob[i:i + 32] for i in range(0, len(blob), 32)])))
    tree._levels = nodes  # noqa: SLF001

    head, maxlen, trades, book_seq, l1_block, pending = c
    header = Header(*head)
    if tree.root() != header.state_root:
        raise SnapshotError("snapshot tree root is not the head's stateRoot")
    return core_cls(eng, tree, header, deque(trades, maxlen=maxlen), dict(book_seq), l1_block,
                    {w[0]: Withdraw._make(w[1:]) for w in pending})
