"""Structural comparison of two node `Core`s: everything replay rebuilds, in the order it is
iterated (dict order, book price-time priority, the expiry heap's list). Derived caches
(engine risk cache, block-context digest/signer/marks caches) are not compared.

    assert_cores_equal(a, b)                         # raises AssertionError listing differences
    core_diff(a, b, ignore=("pending_withdrawals",)) # the differences, as messages

`ignore` takes section names: state, books, open, by_account, seen, expiring, last_cancel_all,
mmp, ctx, txs, tree, head, trades, book_seq, l1_block, pending_withdrawals.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from sequencer.core.state import State, state_bytes
from sequencer.core.txs import encode_tx
from sequencer.node.node import Core

_STATE_SPECIAL = {"accounts", "index", "instruments", "settled", "orders", "oracle", "holders",
                  "touched"}


def _first_diff(x: list[Any], y: list[Any]) -> str:
    if len(x) != len(y):
        head = f"lengths {len(x)} != {len(y)}"
    else:
        head = "same length"
    for i, (p, q) in enumerate(zip(x, y)):
        if p != q:
            return f"{head}; first difference at {i}: {p!r:.300} != {q!r:.300}"
    return head


def _cmp(out: list[str], name: str, x: Any, y: Any) -> None:
    if x != y:
        if isinstance(x, list) and isinstance(y, list):
            out.append(f"{name}: {_first_diff(x, y)}")
        else:
            out.append(f"{name}: {x!r:.300} != {y!r:.300}")


def _accounts(st: State) -> list[Any]:
    return [(a, x.collateral, list(x.positions.items()), list(x.session_keys.items()),
             sorted(x.used_key_digests), x.withdrawal_nonce, x.margin_mode, x.margin_nonce)
            for a, x in st.accounts.items()]


def state_diff(a: State, b: State) -> list[str]:
    """Differences between two committed states, order-sensitive where iteration order is."""
    out: list[str] = []
    _cmp(out, "state.accounts", _accounts(a), _accounts(b))
    _cmp(out, "state.index", list(a.index.items()), list(b.index.items()))
    _cmp(out, "state.instruments", list(a.instruments.items()), list(b.instruments.items()))
    _cmp(out, "state.settled", list(a.settled.items()), list(b.settled.items()))
    _cmp(out, "state.orders", [(d, f.order, f.filled) for d, f in a.orders.items()],
         [(d, f.order, f.filled) for d, f in b.orders.items()])
    _cmp(out, "state.oracle", [(u, list(o.feeds.items()), list(o.history)) for u, o in a.oracle.items()],
         [(u, list(o.feeds.items()), list(o.history)) for u, o in b.oracle.items()])
    _cmp(out, "state.holders", [(n, list(h)) for n, h in a.holders.items()],
         [(n, list(h)) for n, h in b.holders.items()])
    _cmp(out, "state.touched", sorted(a.touched), sorted(b.touched))
    for f in fields(State):  # everything else, including fields added after this helper
        if f.name not in _STATE_SPECIAL:
            _cmp(out, f"state.{f.name}", getattr(a, f.name), getattr(b, f.name))
    if not out:
        try:
            _cmp(out, "state_bytes", state_bytes(a), state_bytes(b))
        except OverflowError:  # state_bytes takes 64-bit integers only; the fields matched
            pass
    return out


def _rows(level: dict[bytes, Any]) -> list[Any]:
    return [(d, r.order, r.signature, r.remaining) for d, r in level.items()]


def _book(book: Any) -> list[Any]:
    return [[(p, _rows(lvl)) for p, lvl in side.items()] for side in (book.bids, book.asks)]


def _priority(book: Any) -> list[Any]:
    """Digests met by an unlimited buy and an unlimited sell, in matching order."""
    return [[r.digest for r in book.matches(True, 2**256)],
            [r.digest for r in book.matches(False, 0)]]


def _shared(core: Core, who: str) -> list[str]:
    """Each open order must be one object in `open`, its book level and `by_account`."""
    eng, out = core.engine, []
    for d, r in eng.open.items():
        o = r.order
        book = eng.books.get(o.instrument)
        side = None if book is None else (book.bids if o.isBuy else book.asks)
        lvl = None if side is None else side.get(o.price)
        if lvl is None or lvl.get(d) is not r:
            out.append(f"{who}: open order {d.hex()} is not the object in its book level")
        if eng.by_account.get(o.account, {}).get(o.instrument, {}).get(d) is not r:
            out.append(f"{who}: open order {d.hex()} is not the object in by_account")
        if len(out) > 3:
            break
    return out


def _is_heap(h: list[Any]) -> bool:
    return all(not h[i] < h[(i - 1) // 2] for i in range(1, len(h)))


def mmp_diff(a: Any, b: Any) -> list[str]:
    """Differences between two engines' market-maker protection data (events are transient)."""
    out: list[str] = []
    _cmp(out, "mmp.configs", list(a.configs.items()), list(b.configs.items()))
    for name, get in (("mmp.windows", lambda m: [(k, [list(x) for x in w.buckets], w.amount,
                                                  w.delta, w.vega) for k, w in m.windows.items()]),
                      ("mmp.frozen", lambda m: list(m.frozen.items())),
                      ("mmp.last_reset", lambda m: list(m.last_reset.items()))):
        _cmp(out, name, get(a), get(b))
    return out


def core_diff(a: Core, b: Core, ignore: Iterable[str] = (), proofs: int = 64) -> list[str]:
    """Every difference between two Cores (empty when equal); `proofs` account proofs checked."""
    skip = set(ignore)
    out: list[str] = []
    ea, eb = a.engine, b.engine
    if "state" not in skip:
        out += state_diff(ea.state, eb.state)
        _cmp(out, "state.config", ea.state.config, eb.state.config)
    if "books" not in skip:
        _cmp(out, "books (names)", list(ea.books), list(eb.books))
        for name in ea.books.keys() & eb.books.keys():
            _cmp(out, f"books[{name}] levels", _book(ea.books[name]), _book(eb.books[name]))
            _cmp(out, f"books[{name}] priority", _priority(ea.books[name]), _priority(eb.books[name]))
    if "open" not in skip:
        _cmp(out, "open", _rows(ea.open), _rows(eb.open))
        out += _shared(a, "a") + _shared(b, "b")
    if "by_account" not in skip:
        _cmp(out, "by_account", [(x, [(n, list(per)) for n, per in inner.items()])
                                 for x, inner in ea.by_account.items()],
             [(x, [(n, list(per)) for n, per in inner.items()]) for x, inner in eb.by_account.items()])
    if "seen" not in skip:
        _cmp(out, "seen", ea.seen, eb.seen)
    if "expiring" not in skip:
        _cmp(out, "expiring", ea.expiring, eb.expiring)
        for who, h in (("a", ea.expiring), ("b", eb.expiring)):
            if not _is_heap(h):
                out.append(f"{who}: expiring is not a heap")
        _cmp(out, "expiring (popped order)", heapq.nsmallest(len(ea.expiring), ea.expiring),
             heapq.nsmallest(len(eb.expiring), eb.expiring))
    if "last_cancel_all" not in skip:
        _cmp(out, "last_cancel_all", list(ea.last_cancel_all.items()), list(eb.last_cancel_all.items()))
    if "mmp" not in skip:
        out += mmp_diff(ea.mmp, eb.mmp)
    if "ctx" not in skip:
        _cmp(out, "ctx.timestamp", ea.ctx.timestamp, eb.ctx.timestamp)
    if "txs" not in skip:
        _cmp(out, "txs", ea.txs, eb.txs)
        _cmp(out, "txs (bytes)", [encode_tx(t) for t in ea.txs], [encode_tx(t) for t in eb.txs])
    if "tree" not in skip:
        ta, tb = a.tree, b.tree
        _cmp(out, "tree.depth", ta.depth, tb.depth)
        _cmp(out, "tree.root", ta.root(), tb.root())
        _cmp(out, "tree.len", len(ta), len(tb))
        for h, (la, lb) in enumerate(zip(ta._levels, tb._levels)):  # noqa: SLF001
            if la != lb:
                out.append(f"tree level {h}: {len(la)} != {len(lb)} nodes or different hashes")
        n = len(ea.state.index)
        for i in sorted({*range(min(n, proofs)), n, n + 1, (1 << ta.depth) - 1}):
            if i < (1 << ta.depth):
                _cmp(out, f"tree.leaf({i})", ta.leaf(i), tb.leaf(i))
                _cmp(out, f"tree.proof({i})", ta.proof(i), tb.proof(i))
    if "head" not in skip:
        _cmp(out, "head", a.head, b.head)
    if "trades" not in skip:
        _cmp(out, "trades", list(a.trades), list(b.trades))
        _cmp(out, "trades.maxlen", a.trades.maxlen, b.trades.maxlen)
    if "book_seq" not in skip:
        _cmp(out, "book_seq", list(a.book_seq.items()), list(b.book_seq.items()))
    if "l1_block" not in skip:
        _cmp(out, "l1_block", a.l1_block, b.l1_block)
    if "pending_withdrawals" not in skip:
        _cmp(out, "pending_withdrawals", list(a.pending_withdrawals.items()),
             list(b.pending_withdrawals.items()))
    return out


def assert_cores_equal(a: Core, b: Core, ignore: Iterable[str] = (), proofs: int = 64) -> None:
    """AssertionError listing every difference between two Cores (see `core_diff`)."""
    diff = core_diff(a, b, ignore, proofs)
    assert not diff, "cores differ:\n  " + "\n  ".join(diff)
