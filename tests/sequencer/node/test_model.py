"""Model-based test of the node (hypothesis stateful), as an attacker would drive it.

Random flows go through a real `Node` on a temp LevelDB: places that rest, cross, self-cross,
reduce-only and post-only orders, IOC/FOK, cancels and cancel-alls, oracle moves (and staleness),
deposits (some too big to fit, hence refunded), withdrawals, forced withdrawals from L1 (paid or
refused; they cancel the account's orders), operator cancels, market-maker protection configs
and resets (whose freezes then cancel and refuse orders), short sales by thin accounts and
liquidation bids (auctions start, end and are taken over at seals), the operator's compliance
actions (Freeze, Unfreeze, DenyL1: frozen accounts lose their orders and may only reduce; denied
L1 addresses get their deposits refunded and no withdrawals), block seals, and
rejections of every kind (bad and
foreign signatures, replays, duplicate orders, off-tick prices, stale cancel-alls, margin and
collateral failures). At random points the node is closed, or killed with unacknowledged requests
in flight, and reopened. Checked:

- after a clean close, the reopened node serves exactly what the live node served (books in
  priority order, open orders, accounts, filled amounts, block hashes, the open block);
- after a kill, every acknowledged request is there and the node equals a replay of the
  durable prefix;
- at the end, a fresh node fed only the requests the live node accepted, in order, equals the
  live node (so a rejected request left no trace);
- after every step, the incremental risk caches (`Engine._risk`, the position sums in `Marks`)
  equal a from-scratch computation, and collateral is conserved (Σ collateral − shortfall =
  deposits − withdrawals).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

from cext import Order
from sequencer.core import MAX_COLLATERAL
from sequencer.core.eip712 import (Cancel, CancelAll, DenyL1, Feed, FreezeAccount, Liquidate,
                                   MmpConfig, MmpReset, SetMarginMode, SessionKey,
                                   UnfreezeAccount, Withdraw)
from sequencer.core.margin import positions_margin
from sequencer.core.portfolio import exposures
from sequencer.errors import OptrollupError
from sequencer.node.l1follower import DEPOSIT, FORCED_WITHDRAWAL, SeenMessage
from sequencer.node.node import WITHDRAWAL, WITHDRAWAL_BY_NONCE, Node
from sequencer.store import StoreError
from tests.sequencer.core.core_world import OPERATOR, ORACLES, USERS, Key
from tests.sequencer.node.kit import CALL, EXPIRY, PUT, T0, Clock, node_config

U = 10**6
TRADERS = USERS[:4]
STRANGER = USERS[10]  # never funded: signs for others
SESSION = {k.address: USERS[20 + i] for i, k in enumerate(TRADERS)}  # each trader's session key
PRICES = [u * U for u in (300, 340, 360, 370, 375, 380, 400, 450)]
AMOUNTS = [10_000, 20_000, 50_000, 100_000]
MOVES_PCT = [-8, -4, 4, 8, 8]  # feeds may deviate at most 10% from the other keys' median
# a rich trader, two middling ones and a poor one, so margin and collateral rejections happen
FUNDS = [200_000 * U, 20_000 * U, 5_000 * U, 60 * U]

# a bigger run: OPTROLLUP_MODEL_EXAMPLES=500 pytest tests/sequencer/node/test_model.py
EXAMPLES = int(os.environ.get("OPTROLLUP_MODEL_EXAMPLES", "25"))


def picture(node: Node) -> dict[str, Any]:
    """Everything the node serves or commits to, as plain comparable data."""
    core = node.core
    eng, state = core.engine, core.engine.state
    books = {}
    for name, b in sorted(eng.books.items()):
        books[name] = tuple([(p, [(r.digest, r.remaining) for r in lvl.values()])
                             for p, lvl in side.items()] for side in (b.bids, b.asks))
    head = node.store.head()
    return {
        "books": books,
        "book_seq": dict(sorted(core.book_seq.items())),
        "open": {d: (r.order, r.remaining) for d, r in sorted(eng.open.items())},
        "by_account": {a: sorted(d for per in v.values() for d in per)
                       for a, v in sorted(eng.by_account.items()) if v},
        "accounts": {a: (x.collateral, sorted(x.positions.items()), x.withdrawal_nonce,
                         sorted(x.session_keys.items()), x.margin_mode, x.margin_nonce)
                     for a, x in sorted(state.accounts.items())},
        "filled": {d: fo.filled for d, fo in sorted(state.orders.items())},
        "seen": sorted(eng.seen),
        "expiring": sorted(eng.expiring),
        "last_cancel_all": dict(sorted(eng.last_cancel_all.items())),
        "mmp": (list(eng.mmp.configs.items()), list(eng.mmp.frozen.items()),
                list(eng.mmp.last_reset.items()),
                [(k, [list(b) for b in w.buckets]) for k, w in eng.mmp.windows.items()]),
        "message_cursor": state.message_cursor,
        "compliance": (list(state.frozen.items()), list(state.denied.items()),
                       state.compliance_nonce),
        "liquidation": (list(state.auctions.items()), state.shortfall,
                        list(state.liquidate_nonces.items()), state.collateral_total),
        "now": eng.now,
        "open_block": [type(t).__name__ for t in eng.txs],
        "head": core.head.hash(),
        "blocks": [node.store.get(n)[0].header.hash() for n in range(head + 1)] if head is not None else [],
        "trades": list(core.trades),
        # what GET /v1/withdrawals/{hash} answers from (pending until its seal is durable)
        "withdrawals": {d: node.withdrawal(d) for d in sorted(
            {*core.pending_withdrawals, *(k[len(WITHDRAWAL):] for k in node.db.iterator(
                prefix=WITHDRAWAL, include_value=False))})},
        # every leaf (signed, refund, forced) by (account, nonce), and each L1 message's outcome
        "withdrawal_leaves": dict(node.db.iterator(prefix=WITHDRAWAL_BY_NONCE)),
        "open_leaves": list(state.withdrawal_leaves),
        "l1_messages": [node.l1_message(n) for n in range(state.message_cursor)],
    }


def same(got: dict[str, Any], want: dict[str, Any], what: str) -> None:
    """Assert two pictures are equal, naming the parts that differ."""
    bad = {k: (got.get(k), want.get(k)) for k in {*got, *want} if got.get(k) != want.get(k)}
    assert not bad, f"{what}: " + "; ".join(f"{k}: {g!r} != {w!r}" for k, (g, w) in bad.items())


def check_risk_caches(node: Node) -> None:
    """The engine's per-account risk cache and the position sums in Marks equal a recomputation."""
    eng = node.core.engine
    state = eng.state
    marks = eng.ctx.marks(state)
    for address, c in marks._pos.items():  # noqa: SLF001 - checking the cache itself
        acct = state.accounts[address]
        rows = [(q, marks.row(n)) for n, q in acct.positions.items()]
        m = positions_margin(0, rows)  # type: ignore[arg-type]
        assert c == [m.equity, m.im], f"Marks position sums of {address.hex()}: {c} != {m}"
    for address, exps in marks._exp.items():  # noqa: SLF001 - portfolio exposures, incremental
        fresh = exposures(marks, state.accounts[address].positions)
        assert fresh is not None
        got = {u: (e.value, e.values, e.short) for u, e in exps.items() if e.values != [0] * 27 or e.value or e.short}
        want = {u: (e.value, e.values, e.short) for u, e in fresh.items()}
        assert got == want, f"portfolio exposures of {address.hex()}"
    for address, risk in eng._risk.items():  # noqa: SLF001
        if risk.marks is not marks:
            continue  # stale: rebuilt on next use
        total_v = total_r = 0
        for name, part in risk.parts.items():
            assert name not in risk.dirty
            fresh = eng._part(address, name, marks)  # noqa: SLF001
            assert part == fresh, f"risk part {address.hex()}/{name}: {part} != {fresh}"
            total_v += part[0]
            total_r += part[1]
        assert (risk.value, risk.req) == (total_v, total_r)


def kill(node: Node) -> None:
    """Injected fault: the process dies. Whatever the log writer has not picked up is lost;
    the batch it is writing completes (as an fsync in progress would), and so does nothing else
    (a snapshot in flight is lost with its child)."""
    node.snapshotter.close()
    c = node.committer
    with c._cond:  # noqa: SLF001
        c._pending.clear()  # noqa: SLF001
        c._closed = True  # noqa: SLF001
        c._cond.notify()  # noqa: SLF001
    c._thread.join()  # noqa: SLF001
    node.db.close()


class NodeModel(RuleBasedStateMachine):
    """Drives one node; `accepted` is what it acknowledged, in log order, as replayable steps."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="optrollup-model-"))
        self.cfg = node_config(block_time=10**9, snapshot_every_records=7)
        self.clock = Clock(T0)
        self.node = Node(self.dir / "live", self.cfg, clock=self.clock)
        self.accepted: list[tuple[str, Any]] = []
        self.deposits = 0
        self.nonce = 0
        self.total = 0  # Σ deposits − Σ withdrawals
        self.sent: list[tuple[Order, bytes]] = []
        self.cancel_all_ts: dict[bytes, int] = {}
        self.frozen_positions: dict[bytes, dict[str, int]] = {}  # |position| while frozen

    def teardown(self) -> None:
        try:
            self.check_fresh_replay()
        finally:
            self.node.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- plumbing -----------------------------------------------------------------------------

    def sign(self, key: Key, msg: Any) -> bytes:
        from sequencer.core.eip712 import digest, order_digest
        dom = self.cfg.genesis.config.domain
        return key.sign(order_digest(dom, msg) if isinstance(msg, Order) else digest(dom, msg))

    def send(self, msg: Any, sig: bytes) -> Any:
        """One signed request, acknowledged (durable) before we go on."""
        node = self.node
        d, s = node.verify([(msg, sig)])
        [(value, fut)] = node.process([(msg, sig)], d, s)
        if isinstance(value, OptrollupError):
            assert fut is None
            event(f"rejected {value.code}")
            return value
        fut.result(timeout=10)
        self.accepted.append(("signed", (msg, sig)))
        if getattr(value, "fills", None):
            event("order with fills")
        return value

    def order(self, key: Key, **kw: Any) -> Order:
        self.nonce += 1
        now = int(self.clock())
        return Order(key.address, kw.get("instrument", CALL), kw.get("is_buy", True),
                     kw.get("price", 370 * U), kw.get("amount", 10_000), self.nonce,
                     now + kw.get("ttl", 3600), kw.get("tif", 0), kw.get("post_only", False),
                     kw.get("reduce_only", False))

    def l1_message(self, kind: int, account: bytes, counterparty: bytes, amount: int) -> bool:
        """Process the next L1 message; True iff it emitted a withdrawal leaf (a refunded
        deposit, a paid forced withdrawal)."""
        m = SeenMessage(self.deposits, kind, account, counterparty, amount, 1)
        leaves = len(self.node.core.engine.state.withdrawal_leaves)
        f = self.node.process_l1_message(m)
        assert f is not None
        f.result(timeout=10)
        self.accepted.append(("l1", m))
        self.deposits += 1
        return len(self.node.core.engine.state.withdrawal_leaves) > leaves

    def deposit(self, key: Key, amount: int, depositor: bytes | None = None) -> None:
        refunded = self.l1_message(DEPOSIT, key.address, depositor or key.address, amount)
        event("deposit refunded" if refunded else "deposit credited")
        if not refunded:
            self.total += amount

    def feeds(self, spot: int) -> None:
        ts = self.feed_ts = int(self.clock())
        for k in ORACLES:
            f = Feed("ETH", spot, ts, (EXPIRY - 86400 * 30, EXPIRY), (800_000, 800_000))
            r = self.send(f, self.sign(k, f))
            assert not isinstance(r, OptrollupError), r

    # -- set-up -------------------------------------------------------------------------------

    @initialize()
    def fund(self) -> None:
        self.seal(0)
        for key, amount in zip(TRADERS, FUNDS):
            self.deposit(key, amount)
        self.spot = 3000 * U
        self.feeds(self.spot)
        for who in TRADERS[:2]:  # a two-sided book to take from
            for ins in (CALL, PUT):
                for is_buy, price in ((True, 340 * U), (True, 360 * U), (False, 380 * U), (False, 400 * U)):
                    o = self.order(who, instrument=ins, is_buy=is_buy, price=price, amount=200_000)
                    r = self.send(o, self.sign(who, o))
                    assert not isinstance(r, OptrollupError), r
                    self.sent.append((o, self.sign(who, o)))
        for ins in (CALL, PUT):  # the poor trader's best ask: what a self-cross meets first
            o = self.order(TRADERS[3], instrument=ins, is_buy=False, price=370 * U, amount=10_000)
            assert not isinstance(self.send(o, self.sign(TRADERS[3], o)), OptrollupError)

    # -- requests -----------------------------------------------------------------------------

    @rule(who=st.sampled_from(TRADERS), instrument=st.sampled_from([CALL, PUT]),
          is_buy=st.booleans(), price=st.sampled_from(PRICES), amount=st.sampled_from(AMOUNTS),
          tif=st.sampled_from([0, 0, 0, 1, 2]), post_only=st.booleans(),
          reduce_only=st.sampled_from([False, False, True]), ttl=st.sampled_from([3, 30, 3600]))
    def place(self, who: Key, instrument: str, is_buy: bool, price: int, amount: int, tif: int,
              post_only: bool, reduce_only: bool, ttl: int) -> None:
        o = self.order(who, instrument=instrument, is_buy=is_buy, price=price, amount=amount,
                       tif=tif, post_only=post_only and tif == 0, reduce_only=reduce_only, ttl=ttl)
        sig = self.sign(who, o)
        if not isinstance(self.send(o, sig), OptrollupError):
            self.sent.append((o, sig))

    @rule(who=st.sampled_from(TRADERS), ttl=st.sampled_from([0, 2, 3600]), by_key=st.booleans())
    def session_key(self, who: Key, ttl: int, by_key: bool) -> None:
        """Register (or, ttl 0, revoke) the trader's session key; only the account may do it."""
        sk = SessionKey(who.address, SESSION[who.address].address, int(self.clock()) + ttl)
        r = self.send(sk, self.sign(SESSION[who.address] if by_key else who, sk))
        if by_key:
            assert isinstance(r, OptrollupError) and r.code == "signer_mismatch", r
        else:  # the same message twice is a replay
            assert not isinstance(r, OptrollupError) or r.code == "session_key_replayed", r

    @rule(who=st.sampled_from(TRADERS), is_buy=st.booleans(), price=st.sampled_from(PRICES),
          tif=st.sampled_from([0, 1]))
    def place_with_session_key(self, who: Key, is_buy: bool, price: int, tif: int) -> None:
        """Signed by the trader's session key: accepted while it is registered and live."""
        o = self.order(who, is_buy=is_buy, price=price, tif=tif)
        sig = self.sign(SESSION[who.address], o)
        if not isinstance(self.send(o, sig), OptrollupError):
            self.sent.append((o, sig))

    @rule(who=st.sampled_from(TRADERS), instrument=st.sampled_from([CALL, PUT]),
          is_buy=st.booleans(), levels=st.integers(min_value=1, max_value=4),
          amount=st.sampled_from(AMOUNTS), tif=st.sampled_from([0, 1, 2]),
          reduce_only=st.sampled_from([False, False, True]))
    def cross(self, who: Key, instrument: str, is_buy: bool, levels: int, amount: int, tif: int,
              reduce_only: bool) -> None:
        """Take liquidity: an order priced through `levels` levels of the other side."""
        book = self.node.core.engine.books[instrument]
        side = book.asks if is_buy else book.bids
        prices = list(side.keys()) if is_buy else list(reversed(side.keys()))
        if not prices:
            return
        price = prices[min(levels, len(prices)) - 1]
        o = self.order(who, instrument=instrument, is_buy=is_buy, price=price,
                       amount=amount * levels, tif=tif, reduce_only=reduce_only)
        sig = self.sign(who, o)
        r = self.send(o, sig)
        event(f"cross -> {getattr(r, 'code', None) or r.status}")
        if not isinstance(r, OptrollupError):
            self.sent.append((o, sig))

    @rule(who=st.sampled_from(TRADERS), instrument=st.sampled_from([CALL, PUT]),
          is_buy=st.booleans(), n=st.integers(min_value=2, max_value=6),
          first=st.integers(min_value=0, max_value=7), reduce_only=st.booleans())
    def ladder(self, who: Key, instrument: str, is_buy: bool, n: int, first: int,
               reduce_only: bool) -> None:
        """A market maker's ladder in one batch (each item accepted or rejected on its own)."""
        items = []
        for i in range(n):
            price = PRICES[(first + (-i if is_buy else i)) % len(PRICES)]
            o = self.order(who, instrument=instrument, is_buy=is_buy, price=price,
                           amount=AMOUNTS[i % len(AMOUNTS)], reduce_only=reduce_only and i % 2 == 0)
            items.append((o, self.sign(who, o)))
        d, s = self.node.verify(items)
        done = self.node.process(items, d, s)
        for item, (v, f) in zip(items, done):
            if f is None:
                event(f"rejected {v.code}")
                continue
            f.result(timeout=10)
            self.accepted.append(("signed", item))
            self.sent.append(item)

    @rule(who=st.sampled_from(TRADERS), is_buy=st.booleans(), price=st.sampled_from(PRICES))
    def place_foreign_signature(self, who: Key, is_buy: bool, price: int) -> None:
        o = self.order(who, is_buy=is_buy, price=price)
        r = self.send(o, self.sign(STRANGER, o))
        assert isinstance(r, OptrollupError) and r.code == "signer_mismatch"

    @rule(who=st.sampled_from(TRADERS), garbage=st.binary(min_size=65, max_size=65))
    def place_garbage_signature(self, who: Key, garbage: bytes) -> None:
        r = self.send(self.order(who), garbage)
        assert isinstance(r, OptrollupError) and r.code in ("bad_signature", "signer_mismatch")

    @precondition(lambda self: self.sent)
    @rule(i=st.integers(min_value=0))
    def replay_order(self, i: int) -> None:
        o, sig = self.sent[i % len(self.sent)]
        r = self.send(o, sig)
        assert isinstance(r, OptrollupError), "an order was accepted twice"
        assert r.code in ("duplicate_order", "order_expired"), r.code

    @rule(who=st.sampled_from(TRADERS), bad=st.sampled_from(["tick", "instrument", "expiry", "step"]))
    def place_malformed(self, who: Key, bad: str) -> None:
        kw = {"tick": {"price": 370 * U + 1}, "instrument": {"instrument": "ETH-27DEC26-9999-C"},
              "expiry": {"ttl": 0}, "step": {"amount": 10_001}}[bad]
        r = self.send(self.order(who, **kw), b"\0" * 65)
        assert isinstance(r, OptrollupError)

    @precondition(lambda self: self.node.core.engine.open)
    @rule(i=st.integers(min_value=0), by_owner=st.booleans())
    def cancel(self, i: int, by_owner: bool) -> None:
        opens = sorted(self.node.core.engine.open.values(), key=lambda r: r.digest)
        r = opens[i % len(opens)]
        owner = next(k for k in TRADERS if k.address == r.order.account)
        c = Cancel(owner.address, r.digest)
        got = self.send(c, self.sign(owner if by_owner else STRANGER, c))
        assert isinstance(got, OptrollupError) != by_owner

    @rule(who=st.sampled_from(TRADERS), h=st.binary(min_size=32, max_size=32))
    def cancel_unknown(self, who: Key, h: bytes) -> None:
        c = Cancel(who.address, h)
        r = self.send(c, self.sign(who, c))
        assert isinstance(r, OptrollupError) and r.code == "unknown_order"

    @rule(who=st.sampled_from(TRADERS), instrument=st.sampled_from(["", CALL, PUT]),
          skew=st.sampled_from([0, 0, -1, 1, 100_000]))
    def cancel_all(self, who: Key, instrument: str, skew: int) -> None:
        ts = int(self.clock()) + skew
        ca = CancelAll(who.address, instrument, ts)
        self.send(ca, self.sign(who, ca))  # stale, replayed or fine: the node decides

    @rule(who=st.sampled_from(TRADERS[:2] * 2 + TRADERS),  # mostly the makers of the first book
          interval=st.sampled_from([0, 1000, 5000, 60_000]),
          frozen=st.sampled_from([0, 2000, 10_000]), amount=st.sampled_from([0, 10_000, 30_000, 100_000]),
          delta=st.sampled_from([0, 10_000]), vega=st.sampled_from([0, 50_000]),
          signer=st.sampled_from(["owner", "owner", "session", "stranger"]))
    def mmp_config(self, who: Key, interval: int, frozen: int, amount: int, delta: int, vega: int,
                   signer: str) -> None:
        """Market-maker protection of a trader in ETH; its freezes cancel and refuse orders."""
        self.nonce += 1
        msg = MmpConfig(who.address, "ETH", interval, frozen, amount, delta, vega, self.nonce)
        key = {"owner": who, "session": SESSION[who.address], "stranger": STRANGER}[signer]
        r = self.send(msg, self.sign(key, msg))
        if signer == "stranger":
            assert isinstance(r, OptrollupError) and r.code == "signer_mismatch", r
        elif signer == "owner":
            assert not isinstance(r, OptrollupError), r

    @rule(maker=st.sampled_from(TRADERS[:2]), taker=st.sampled_from(TRADERS[2:]),
          instrument=st.sampled_from([CALL, PUT]), is_buy=st.booleans(),
          frozen=st.sampled_from([0, 2000]), levels=st.integers(min_value=1, max_value=3))
    def mmp_sweep(self, maker: Key, taker: Key, instrument: str, is_buy: bool, frozen: int,
                  levels: int) -> None:
        """A maker sets a tight limit, then a taker sweeps its side: a likely freeze."""
        self.mmp_config(maker, 5000, frozen, 10_000, 0, 0, "owner")
        self.cross(taker, instrument, is_buy, levels, 20_000, 1, False)

    @rule(who=st.sampled_from(TRADERS), skew=st.sampled_from([0, 0, 1, -1000]))
    def mmp_reset(self, who: Key, skew: int) -> None:
        msg = MmpReset(who.address, "ETH", int(self.clock()) + skew)
        r = self.send(msg, self.sign(who, msg))  # stale or replayed: the node decides
        if not isinstance(r, OptrollupError):
            event("mmp reset lifted a freeze" if r.lifted else "mmp reset")

    @rule(seller=st.sampled_from(TRADERS[1:]), instrument=st.sampled_from([CALL, PUT]),
          amount=st.sampled_from([100_000, 1_000_000, 5_000_000, 10_000_000]))
    def short_sale(self, seller: Key, instrument: str, amount: int) -> None:
        """A thinner trader sells at the mark to the rich one: the shorts that moves liquidate."""
        m = self.node.core.engine.ctx.marks(self.node.core.engine.state).mark(instrument)
        if m is None:
            return
        price = max(U // 10, -(-m.mark_hi // (U // 10)) * (U // 10))
        o = self.order(seller, instrument=instrument, is_buy=False, price=price, amount=amount)
        r = self.send(o, self.sign(seller, o))
        event(f"short sale -> {getattr(r, 'code', None) or r.status}")
        if not isinstance(r, OptrollupError):
            self.sent.append((o, self.sign(seller, o)))
            t = self.order(TRADERS[0], instrument=instrument, is_buy=True, price=price,
                           amount=amount, tif=1)
            if not isinstance(self.send(t, self.sign(TRADERS[0], t)), OptrollupError):
                self.sent.append((t, self.sign(TRADERS[0], t)))

    @rule(seller=st.sampled_from(TRADERS[1:3]), instrument=st.sampled_from([CALL, PUT]),
          amount=st.sampled_from([1_000_000, 5_000_000, 10_000_000]),
          pct=st.sampled_from([10, 20, 30]), bid=st.sampled_from([None, 250_000, 1_000_000]))
    def squeeze(self, seller: Key, instrument: str, amount: int, pct: int,
                bid: int | None) -> None:
        """A short sale, then a gap against it: an auction or a takeover at the next block,
        and maybe a bid by the rich trader."""
        self.short_sale(seller, instrument, amount)
        self.oracle_gap(pct if instrument == CALL else -pct)
        if bid is not None and self.node.core.engine.state.auctions:
            self.liquidate(TRADERS[0], bid, 10**15, False)

    @rule(who=st.sampled_from(TRADERS), fraction=st.sampled_from([1, 250_000, 1_000_000]),
          max_price=st.sampled_from([-1, 10**15, 10**15]), by_key=st.sampled_from([False, False, True]))
    def liquidate(self, who: Key, fraction: int, max_price: int, by_key: bool) -> None:
        """A bid in the oldest open auction (signed by the bidder or its session key)."""
        auctions = self.node.core.engine.state.auctions
        target = min(auctions, default=TRADERS[3].address)
        self.nonce += 1
        msg = Liquidate(who.address, target, fraction, max_price, self.nonce)
        r = self.send(msg, self.sign(SESSION[who.address] if by_key else who, msg))
        event(f"liquidate -> {getattr(r, 'code', 'taken')}")

    @rule(who=st.sampled_from(TRADERS), mode=st.sampled_from([0, 1, 1, 2]),
          nonce_off=st.sampled_from([0, 0, 0, 1]), by_key=st.sampled_from([False, False, True]))
    def margin_mode(self, who: Key, mode: int, nonce_off: int, by_key: bool) -> None:
        """Switch margin modes (portfolio mostly), with a bad mode, a wrong nonce or a session
        key's signature (refused: only the account itself may)."""
        acct = self.node.core.engine.state.accounts[who.address]
        msg = SetMarginMode(who.address, mode, acct.margin_nonce + nonce_off)
        r = self.send(msg, self.sign(SESSION[who.address] if by_key else who, msg))
        event(f"margin mode {mode} -> {getattr(r, 'code', 'accepted')}")

    @rule(who=st.sampled_from(TRADERS), kind=st.sampled_from(["freeze", "freeze", "unfreeze"]),
          signer=st.sampled_from(["operator", "operator", "operator", "stranger", "trader"]),
          nonce_off=st.sampled_from([0, 0, 0, 0, -1, 1]))
    def compliance(self, who: Key, kind: str, signer: str, nonce_off: int) -> None:
        """The operator freezes or unfreezes a trader (a Freeze cancels its orders); signed by
        another key or with another nonce than the next, it is refused with its code."""
        state = self.node.core.engine.state
        n = state.compliance_nonce + nonce_off
        if n < 0:
            return
        msg = (FreezeAccount if kind == "freeze" else UnfreezeAccount)(who.address, n)
        key = {"operator": OPERATOR, "stranger": STRANGER, "trader": who}[signer]
        was = who.address in state.frozen
        r = self.send(msg, self.sign(key, msg))
        event(f"{kind} -> {getattr(r, 'code', 'accepted')}")
        if signer != "operator":
            assert isinstance(r, OptrollupError) and r.code == "signer_mismatch", r
        elif nonce_off:
            assert isinstance(r, OptrollupError) and r.code == "bad_compliance_nonce", r
        elif kind == "freeze" and was:
            assert isinstance(r, OptrollupError) and r.code == "account_already_frozen", r
        elif kind == "unfreeze" and not was:
            assert isinstance(r, OptrollupError) and r.code == "account_not_frozen", r
        else:
            assert not isinstance(r, OptrollupError), r
            assert (who.address in state.frozen) == (kind == "freeze")
            if kind == "freeze":
                assert not self.node.core.engine.by_account.get(who.address)

    @rule(address=st.sampled_from([STRANGER, *TRADERS[2:]]), denied=st.booleans(),
          signer=st.sampled_from(["operator", "operator", "stranger"]))
    def deny_l1(self, address: Key, denied: bool, signer: str) -> None:
        """Put an L1 address on the deny list or take it off (STRANGER is the depositor of the
        oversize deposits, traders withdraw to themselves)."""
        state = self.node.core.engine.state
        msg = DenyL1(address.address, denied, state.compliance_nonce)
        was = address.address in state.denied
        r = self.send(msg, self.sign(OPERATOR if signer == "operator" else STRANGER, msg))
        event(f"deny {denied} -> {getattr(r, 'code', 'accepted')}")
        if signer != "operator":
            assert isinstance(r, OptrollupError) and r.code == "signer_mismatch", r
        elif was != denied:
            assert not isinstance(r, OptrollupError), r
        else:
            assert isinstance(r, OptrollupError) and r.code == "deny_list_unchanged", r

    @rule(who=st.sampled_from(TRADERS), amount=st.sampled_from([U, 50 * U]))
    def deposit_from_stranger(self, who: Key, amount: int) -> None:
        """A deposit paid from STRANGER's L1 address: refunded iff it is denied."""
        state = self.node.core.engine.state
        denied, leaves = STRANGER.address in state.denied, len(state.withdrawal_leaves)
        self.deposit(who, amount, depositor=STRANGER.address)
        if denied:  # the outcome until the block is sealed (then GET /v1/l1-messages says it)
            m = self.node._l1_pending[self.deposits - 1]  # noqa: SLF001
            assert m.status == "refunded" and m.reason == "depositor_denied", m
            assert len(state.withdrawal_leaves) == leaves + 1
            assert state.withdrawal_leaves[-1].recipient == STRANGER.address

    @rule(who=st.sampled_from(TRADERS))
    def operator_cancel(self, who: Key) -> None:
        f = self.node.operator_cancel_all(who.address, "model")
        if f is not None:
            f.result(timeout=10)
            self.accepted.append(("opcancel", who.address))

    @rule(who=st.sampled_from(TRADERS), amount=st.sampled_from([U, 1_000 * U, 10**6 * U]),
          nonce_off=st.sampled_from([0, 0, 1]))
    def withdraw(self, who: Key, amount: int, nonce_off: int) -> None:
        state = self.node.core.engine.state
        acct = state.accounts[who.address]
        w = Withdraw(who.address, who.address, amount, acct.withdrawal_nonce + nonce_off)
        r = self.send(w, self.sign(who, w))
        if not isinstance(r, OptrollupError):
            assert who.address not in state.frozen and who.address not in state.denied
            self.total -= amount
        elif not nonce_off and who.address in state.frozen:
            assert r.code == "account_frozen", r

    @rule(who=st.sampled_from(TRADERS), amount=st.sampled_from([U, 500 * U]))
    def top_up(self, who: Key, amount: int) -> None:
        self.deposit(who, amount)

    @rule(who=st.sampled_from(TRADERS), short=st.sampled_from([0, 1, 10**12]))
    def oversize_deposit(self, who: Key, short: int) -> None:
        """A deposit that would take the account past MAX_COLLATERAL: refunded to the depositor
        (unless the account is empty, where the largest deposit still fits)."""
        self.deposit(who, MAX_COLLATERAL - short, depositor=STRANGER.address)

    @rule(who=st.sampled_from([*TRADERS, STRANGER]), to=st.sampled_from(["self", "other", "zero"]),
          amount=st.sampled_from([U, 1_000 * U, 10**6 * U, "all"]))
    def forced_withdrawal(self, who: Key, to: str, amount: Any) -> None:
        """A withdrawal forced from L1: the account's orders are cancelled, then it is paid or
        refused (unknown account, zero recipient, too much, margin); never rejected."""
        acct = self.node.core.engine.state.accounts.get(who.address)
        if amount == "all":
            amount = max(1, acct.collateral if acct is not None else 1)
        recipient = {"self": who.address, "other": STRANGER.address, "zero": b"\0" * 20}[to]
        paid = self.l1_message(FORCED_WITHDRAWAL, who.address, recipient, amount)
        event("forced withdrawal paid" if paid else "forced withdrawal refused")
        assert not self.node.core.engine.by_account.get(who.address)
        if paid:
            self.total -= amount

    @rule(pct=st.sampled_from(MOVES_PCT))
    def oracle_move(self, pct: int) -> None:
        self.seal(1)  # a key's feeds must be strictly newer
        self.spot = self.spot * (100 + pct) // 100 // 100_000 * 100_000
        self.feeds(self.spot)

    @rule(pct=st.sampled_from([-30, -10, 10, 30]))
    def oracle_gap(self, pct: int) -> None:
        """The feeds stop for a minute and come back far away (no deviation check against
        stale feeds); the next block's detection sees the new marks."""
        self.seal(61)
        self.spot = self.spot * (100 + pct) // 100 // 100_000 * 100_000
        self.feeds(self.spot)
        self.seal(1)
        event("oracle gap")
        for t in self.node.core.engine.txs:
            event(f"detection: {type(t).__name__}")

    @rule(stranger=st.booleans())
    def rogue_feed(self, stranger: bool) -> None:
        now = int(self.clock())
        if not stranger and now - self.feed_ts > 50:
            return  # the other keys' feeds are stale: a lone feed is no deviation
        f = Feed("ETH", self.spot * 2, now, (EXPIRY,), (800_000,))
        r = self.send(f, self.sign(STRANGER if stranger else ORACLES[0], f))
        assert isinstance(r, OptrollupError)

    @rule(full=st.booleans())
    def seal_ahead(self, full: bool) -> None:
        """The runner's calls between requests: tx leaves hashed (every tick), or the seal's
        work done ahead (touched leaves taken, the next scan's margins priced); the seals
        after it must be those of the fresh replay (which never does this) and of the
        reopened node's replay."""
        if full:
            self.node.seal_ahead()
        else:
            self.node.hash_ahead()

    @rule(dt=st.sampled_from([0, 1, 2, 5, 61]))
    def seal(self, dt: int) -> None:
        self.clock.t += dt
        ts = int(self.clock())
        self.node.seal(ts).result(timeout=10)
        self.accepted.append(("seal", ts))

    # -- faults -------------------------------------------------------------------------------

    @rule()
    def reopen(self) -> None:
        want = picture(self.node)
        self.node.close()
        self.node = Node(self.dir / "live", self.cfg, clock=self.clock)
        same(picture(self.node), want, "reopened vs served")

    @rule(n=st.integers(min_value=1, max_value=6), k=st.integers(min_value=0, max_value=6),
          who=st.sampled_from(TRADERS), price=st.sampled_from(PRICES))
    def kill_with_requests_in_flight(self, n: int, k: int, who: Key, price: int) -> None:
        """Send n orders; the first k are made durable, then the process dies with the rest
        accepted in memory but never written (so never acknowledged)."""
        before = picture(self.node)
        node = self.node
        died, gate = [False], threading.Event()
        real_write = node.log.write

        def write(*args: Any, **kw: Any) -> None:  # injected fault: the writer dies at record k
            if died[0]:
                gate.wait(10)
                raise StoreError("injected: the process died")
            real_write(*args, **kw)

        node.log.write = write  # type: ignore[method-assign]
        survivors = []
        for i in range(n):
            o = self.order(who, is_buy=bool(i % 2), price=price, amount=10_000)
            item = (o, self.sign(who, o))
            died[0] = i >= k
            d, s = node.verify([item])
            [(v, f)] = node.process([item], d, s)
            if f is not None and i < k:
                f.result(timeout=10)
                survivors.append(item)
        gate.set()
        kill(node)
        self.node = Node(self.dir / "live", self.cfg, clock=self.clock)
        self.accepted.extend(("signed", it) for it in survivors)
        self.sent.extend(survivors)
        if not survivors:
            same(picture(self.node), before, "killed before anything was durable")
        self.check_fresh_replay()  # the reopened node is the replay of what is durable

    # -- checks -------------------------------------------------------------------------------

    @invariant()
    def caches_are_exact(self) -> None:
        check_risk_caches(self.node)

    @invariant()
    def frozen_accounts_only_reduce(self) -> None:
        """While an account is frozen, no |position| of it grows (fills that add risk fail
        apply; it cannot bid as a liquidator) and it has no open order left from before."""
        state = self.node.core.engine.state
        for a in list(self.frozen_positions):
            if a not in state.frozen:
                del self.frozen_positions[a]
        for a in state.frozen:
            now = {n: abs(q) for n, q in state.accounts[a].positions.items()}
            before = self.frozen_positions.get(a)
            if before is not None:
                for n, q in now.items():
                    assert q <= before.get(n, 0), f"frozen {a.hex()} grew {n}: {before} -> {now}"
            self.frozen_positions[a] = now
            event("an account is frozen")

    @invariant()
    def note_mmp(self) -> None:
        if self.node.core.engine.mmp.frozen:
            event("an account is MMP-frozen")

    @invariant()
    def collateral_is_conserved(self) -> None:
        state = self.node.core.engine.state
        total = sum(a.collateral for a in state.accounts.values())
        assert total - state.shortfall == self.total and total == state.collateral_total
        if state.auctions:
            event("an account is in liquidation")
        if state.shortfall:
            event("a shortfall is open")

    def check_fresh_replay(self) -> None:
        """A fresh node fed only the accepted requests, in order, equals the live node."""
        want = picture(self.node)
        fresh_dir = self.dir / f"fresh-{len(self.accepted)}"
        fresh = Node(fresh_dir, self.cfg, clock=Clock(T0))
        try:
            for kind, payload in self.accepted:
                if kind == "signed":
                    d, s = fresh.verify([payload])
                    [(v, f)] = fresh.process([payload], d, s)
                    assert not isinstance(v, OptrollupError), f"replay rejected {payload[0]}: {v}"
                    f.result(timeout=10)
                elif kind == "l1":
                    fresh.process_l1_message(payload).result(timeout=10)
                elif kind == "opcancel":
                    fresh.operator_cancel_all(payload, "model").result(timeout=10)
                else:
                    fresh.seal(payload).result(timeout=10)
            got = picture(fresh)
        finally:
            fresh.close()
            shutil.rmtree(fresh_dir, ignore_errors=True)
        same(got, want, "fresh replay vs live")


NodeModel.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_node_model = NodeModel.TestCase
