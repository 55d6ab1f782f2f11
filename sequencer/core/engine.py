"""The matching engine: processes input-log requests (orders, cancels, cancel-alls, withdrawals,
feeds, session keys, listings, L1 deposits and forced withdrawals, MMP configs and resets) at a
block time and proposes block transactions.

Every state change goes through `transition.apply`; a resting order whose fill would fail apply
is cancelled instead. Every order is a transaction (`_Txn`): its cancels of resting orders are
staged and its state changes journalled, so it either commits all of its effects or, when it
raises, none: a rejected request leaves books, state and caches exactly as they were, which is
what lets the input log (accepted requests only) replay to the same node. Signatures are
recovered in batches (`recover`) before processing. The engine's own data (books, open orders, seen digests, last cancel-all) is rebuilt by replaying
the input log, market-maker protection included (`self.mmp`, sequencer.core.mmp); only `state`
is committed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from cext import Order, recover_addresses, to_checksum
from sequencer.core import compliance, eip712, insurance, liquidation, portfolio
from sequencer.core.book import Book, Resting
from sequencer.core.eip712 import (Cancel, CancelAll, Feed, Liquidate, Listing, MmpConfig,
                                   MmpReset, SessionKey, SetMarginMode, Withdraw)
from sequencer.core.margin import RiskRow, im_of, mm_of, value
from sequencer.core.mmp import MS, Mmp, MmpView, ResetResult, Stage, check_config
from sequencer.core.openorders import OrderTotals, requirement
from sequencer.core.marks import Marks
from sequencer.core.portfolio import PORTFOLIO, UnderlyingMargin
from sequencer.core.pricing import Mark
from sequencer.core.state import Channel, State, set_position
from sequencer.core.transition import (BlockContext, apply, check_l1_message, check_liquidate,
                                       check_channel_open, check_margin_mode, check_order,
                                       forced_withdrawal_refusal,
                                       require_signer)
from sequencer.core.txs import (AuctionStartTx, ChannelCloseTx, ChannelConcludeTx, ChannelOpenTx,
                                DenyL1Tx, DepositTx, FillTx, ForcedWithdrawTx, FreezeTx, UnfreezeTx,
                                LiquidateTx, ListTx, MarginModeTx, OracleTx, SessionKeyTx, SettleTx,
                                SignedOrder, TakeoverTx, Tx, WithdrawTx)
from sequencer.errors import Conflict, InvalidRequest, NotFound, OptrollupError, Rejected

GTC, IOC, FOK = 0, 1, 2


class OrderResult(NamedTuple):
    """Answer to an order: status open|filled|partially_filled|cancelled, `filledAmount`
    contracts x 10^6, and the Fill transactions it produced."""

    orderHash: bytes
    status: str
    filledAmount: int
    fills: list[FillTx]


class ForcedResult(NamedTuple):
    """A processed forced withdrawal: its tx, the account's resting orders it cancelled, and
    `refusal`, None if it was paid (a leaf was emitted), else why not (a stable code)."""

    tx: ForcedWithdrawTx
    cancelled: list[Resting]
    refusal: str | None


class PositionView(NamedTuple):
    """A position: signed `amount` and its Mark (None while the oracle is stale)."""

    instrument: str
    amount: int
    mark: Mark | None


class OpenOrderView(NamedTuple):
    """An open order and what is left of it."""

    orderHash: bytes
    order: Order
    remaining: int


class AccountView(NamedTuple):
    """Account figures in base units, in the account's margin mode (`marginMode` 0 standard, 1
    portfolio). `initialMargin` includes open orders (as if filled at their limits, with no
    credit for gains; in portfolio mode what they add to the standard requirement); `available` = min(collateral, equity − IM), ≥ 0;
    `halted` lists instruments without a valid oracle price (left out of the figures);
    `liquidationStart` is the block time its liquidation auction started (None: not in one);
    `liquidateNonce` its smallest acceptable next Liquidate nonce (as a liquidator)."""

    collateral: int
    equity: int
    initialMargin: int
    maintenanceMargin: int
    available: int
    positions: list[PositionView]
    openOrders: list[OpenOrderView]
    withdrawalNonce: int
    halted: list[str]
    liquidationStart: int | None = None
    liquidateNonce: int = 0
    marginMode: int = 0
    marginNonce: int = 0
    portfolio: tuple[UnderlyingMargin, ...] = ()
    """Portfolio mode: each underlying's worst scenario, IM and MM (positions only)."""
    frozenAt: int | None = None
    """Block time the operator froze the account (None: not frozen; docs/compliance.md)."""


class _Risk:
    """Per-account cache of per-instrument (value, requirement) at one Marks."""

    __slots__ = ("marks", "parts", "value", "req", "dirty")

    def __init__(self, marks: Marks) -> None:
        self.marks = marks
        self.parts: dict[str, tuple[int, int]] = {}
        self.value = self.req = 0
        self.dirty: set[str] = set()


_NO_ORDERS = OrderTotals()  # what an account without open orders in an instrument has (never mutated)
_TOTALS_FROM = 16  # open orders of one account in one instrument from which totals are kept
MAX_FILLS_PER_ORDER = 64  # makers one order may fill; the rest of it is cancelled (FOK: refused).
# It bounds the block bytes one request adds (64 fills <= ~26 KB), so a block sealed at
# NodeConfig.max_block_bytes always fits one L1 batch (prover/plan.py); a matching rule, not
# consensus: the verifier checks fills, not how they were matched.


class Engine:
    """Matching engine over a committed `state`. Call `begin_block(t)`, then requests, then
    `end_block()` to take the block's transactions."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.books: dict[str, Book] = {n: Book() for n in state.instruments}
        self.open: dict[bytes, Resting] = {}
        self.by_account: dict[bytes, dict[str, dict[bytes, Resting]]] = {}
        self.seen: set[bytes] = set()
        self.expiring: list[tuple[int, bytes]] = []
        self.last_cancel_all: dict[bytes, int] = {}
        self.mmp = Mmp()  # market-maker protection: configs, windows, freezes (sequencer.core.mmp)
        self.ctx = BlockContext(0)
        self.txs: list[Tx] = []
        self._risk: dict[bytes, _Risk] = {}
        # open-order totals per (account, instrument), built on first use from by_account and
        # kept up to date by _rest/_drop/_commit (derived: not in snapshots)
        self._open_totals: dict[tuple[bytes, str], OrderTotals] = {}
        self._txn: _Txn | None = None  # the request in progress, if any
        self._next_marks: Marks | None = None  # computed ahead for a later block (prepare_marks)
        # margins the next block's liquidation scan needs, priced at `_next_marks` (prepare_scan)
        self._next_scan: tuple[Marks, liquidation.Scanned] | None = None

    # -- blocks -------------------------------------------------------------------------------

    @property
    def now(self) -> int:
        """Block time, unix s."""
        return self.ctx.timestamp

    def begin_block(self, timestamp: int) -> list[Tx]:
        """Start a block at `timestamp` (non-decreasing): drop expired orders and digests, cancel
        the orders of expired instruments and settle those that can be, then run the block's
        liquidation detection (`liquidation.scan`; an account whose auction starts loses its
        open orders). Returns the Settle txs and the liquidation status txs, in block order."""
        if timestamp < self.ctx.timestamp:
            raise InvalidRequest(f"block time {timestamp} before {self.ctx.timestamp}",
                                 code="time_went_backwards")
        self.ctx = BlockContext(timestamp)
        ahead, self._next_marks = self._next_marks, None
        scanned, self._next_scan = self._next_scan, None
        if ahead is not None and ahead.current(self.state, timestamp):
            self.ctx._marks = ahead
        self.txs = []
        self.mmp.begin_block(timestamp * MS)
        while self.expiring and self.expiring[0][0] <= timestamp:
            _, d = heapq.heappop(self.expiring)
            self.seen.discard(d)
            r = self.open.get(d)
            if r is not None:
                self._drop(r)
        settled: list[Tx] = []
        for name, ins in list(self.state.instruments.items()):
            if ins.expiry <= timestamp:
                for r in [r for lvl in (*self.books[name].bids.values(),
                                        *self.books[name].asks.values()) for r in lvl.values()]:
                    self._drop(r)
                try:
                    settled.append(self.submit(SettleTx(name)))
                except Rejected:
                    continue
        known = None
        if scanned is not None and scanned[0] is self.ctx.marks(self.state):  # else other marks
            known = scanned[1]
            for a in self.state.touched:  # what the expiries just settled changed
                known.pop(a, None)
        return settled + self._detect(known)

    def prepare_marks(self, timestamp: int, limit: int) -> bool:
        """Compute up to `limit` instrument rows of the marks a block at `timestamp` will use,
        ahead of it; `begin_block(timestamp)` starts from them if the oracle has not changed in
        between (otherwise they are dropped). Rows are pure functions of the oracle state and
        the time, so this only moves work out of the block boundary, where every request
        waiting behind it pays for it (the liquidation scan prices every position there).
        True when every listed, unexpired instrument has its row."""
        m = self._next_marks = Marks.refreshed(self._next_marks, self.state, timestamp)
        for name, ins in self.state.instruments.items():
            if ins.expiry > timestamp and not m.has_row(name):
                if limit <= 0:
                    return False
                m.row(name)
                limit -= 1
        return True

    def prepare_scan(self, timestamp: int) -> bool:
        """Price, at the marks `prepare_marks(timestamp, ...)` made, the margin of every account
        the liquidation scan of a block at `timestamp` prices (`liquidation.scan_margins`), so
        the seal does not. The caller must `forget_scanned` every account touched after this
        call and before that block begins (the node passes the seal's `touched`); begin_block
        drops them all if the marks it uses are not those. False if the marks are not ready."""
        m = self._next_marks
        self._next_scan = None
        if m is None or not m.current(self.state, timestamp) or not liquidation.risk_on(m):
            return False
        self._next_scan = (m, liquidation.scan_margins(self.state, m))
        return True

    def forget_scanned(self, accounts: Iterable[bytes]) -> None:
        """Accounts changed since `prepare_scan`: their margins are priced again by the scan."""
        if self._next_scan is not None:
            known = self._next_scan[1]
            for a in accounts:
                known.pop(a, None)

    def _detect(self, known: liquidation.Scanned | None = None) -> list[Tx]:
        """Submit the liquidation status txs due at the block's marks (`known`: margins priced
        ahead, see `prepare_scan`); an account whose auction starts has its open orders
        cancelled; every position moved leaves the risk caches."""
        st = self.state
        txs = liquidation.scan(st, self.ctx.marks(st), known)
        for tx in txs:
            moved = list(st.accounts[tx.account].positions) if isinstance(tx, TakeoverTx) else ()
            self.submit(tx)
            if isinstance(tx, (AuctionStartTx, TakeoverTx)):  # (reducing orders rest meanwhile)
                self.drop_account_orders(tx.account)
            for name in moved:
                self._touch(tx.account, name)
                self._touch(st.config.insurance_fund, name)
        return txs

    def liquidate(self, msg: Liquidate, signature: bytes) -> liquidation.Take:
        """A liquidator's bid (design.md "Risk"): validated and applied as a LiquidateTx;
        returns what it took and paid."""
        tx = LiquidateTx(msg, signature)
        take = check_liquidate(self.state, tx, self.ctx)
        self.submit(tx)
        for name, _ in take.positions:
            self._touch(take.account, name)
            self._touch(take.liquidator, name)
        return take

    def end_block(self) -> list[Tx]:
        """The block transactions proposed since begin_block, in apply order."""
        txs, self.txs = self.txs, []
        return txs

    def recover(self, items: Sequence[tuple[Order | eip712.Message, bytes]]) -> list[bytes]:
        """Digest every (message, signature) and recover all signers in one batch into the block
        context; returns the digests. Call before processing the requests."""
        ds = eip712.digests(self.state.config.domain, [m for m, _ in items])
        self.ctx.digests.update(zip([m for m, _ in items], ds))
        sigs = [s for _, s in items]
        self.ctx.signers.update(zip(zip(ds, sigs), recover_addresses(ds, sigs)))
        return ds

    def submit(self, tx: Tx) -> Tx:
        """Apply a block transaction that needs no matching (Deposit, ForcedWithdraw, Oracle,
        SessionKey, List, Settle, Withdraw) and record it."""
        if isinstance(tx, WithdrawTx):
            self._check_withdraw(tx.withdraw)
        apply(self.state, tx, self.ctx)
        self.txs.append(tx)
        if isinstance(tx, ListTx):
            self.books[tx.listing.instrument] = Book()
        elif isinstance(tx, SettleTx):
            self.books.pop(tx.instrument, None)
            for risk in self._risk.values():
                risk.marks = None  # type: ignore[assignment]
        return tx

    def deposit(self, account: bytes, amount: int, l1_nonce: int,
                depositor: bytes | None = None) -> Tx:
        """Process L1 deposit `l1_nonce` of `amount` base units: credited to `account`, or
        refunded to the L1 `depositor` (default: the account itself) if it does not fit."""
        return self.submit(DepositTx(account, amount, l1_nonce,
                                     account if depositor is None else depositor))

    def forced_withdraw(self, account: bytes, recipient: bytes, amount: int,
                        l1_nonce: int) -> ForcedResult:
        """Process L1 forced withdrawal `l1_nonce` of `amount` base units: cancel every resting
        order of `account` (off-chain, not consensus), then apply the ForcedWithdrawTx, which
        pays or refuses it. Raises (and cancels nothing) only if the tx is invalid (a nonce other
        than the message cursor, a zero amount)."""
        tx = ForcedWithdrawTx(account, recipient, amount, l1_nonce)
        check_l1_message(self.state, tx)
        cancelled = self.drop_account_orders(account)
        refusal = forced_withdrawal_refusal(self.state, tx, self.ctx)
        self.submit(tx)
        return ForcedResult(tx, cancelled, refusal)

    def feed(self, feed: Feed, signature: bytes) -> Tx:
        """Accept a signed oracle feed."""
        return self.submit(OracleTx(feed, signature))

    def session_key(self, msg: SessionKey, signature: bytes) -> Tx:
        """Register or revoke a session key."""
        return self.submit(SessionKeyTx(msg, signature))

    def list_instrument(self, msg: Listing, signature: bytes) -> Tx:
        """List an instrument (operator-signed)."""
        return self.submit(ListTx(msg, signature))

    def withdraw(self, msg: Withdraw, signature: bytes) -> Tx:
        """Withdraw collateral; with open orders counted, as for a new order."""
        return self.submit(WithdrawTx(msg, signature))

    def compliance(self, tx: FreezeTx | UnfreezeTx | DenyL1Tx) -> list[Resting]:
        """Apply an operator-signed compliance action (sequencer.core.compliance); a Freeze
        also cancels every open order of the account (engine-level, like the start of a
        liquidation). Returns the orders cancelled."""
        self.submit(tx)
        if isinstance(tx, FreezeTx):
            return self.drop_account_orders(tx.freeze.account)
        return []

    # -- state channels (sequencer.core.channelstate) -------------------------------------------

    def channel_open(self, tx: ChannelOpenTx) -> bytes:
        """Open a channel: both deposits are checked like withdrawals, with each account's open
        orders counted. Returns the channel id."""
        msg = tx.channelOpen
        cid = check_channel_open(self.state, tx, self.ctx)
        for who, dep in ((msg.a, msg.depositA), (msg.b, msg.depositB)):
            if dep and self.by_account.get(who):
                self._check_margin(who, "", None, withdraw=dep)
        self.submit(tx)
        return cid

    def channel_close(self, tx: ChannelCloseTx | ChannelConcludeTx) -> Channel:
        """Close a channel with a co-signed final state (ChannelCloseTx) or the state L1
        concluded it with (ChannelConcludeTx); returns the closed channel."""
        s = tx.channelState
        self.submit(tx)
        ch = self.state.channels[s.channelId]
        for p in s.positions:
            if p.instrument in self.state.instruments:
                self._touch(ch.open.a, p.instrument)
                self._touch(ch.open.b, p.instrument)
        return ch

    def set_margin_mode(self, msg: SetMarginMode, signature: bytes) -> Tx:
        """Switch an account's margin mode (sequencer.core.portfolio): refused unless its equity
        covers the initial margin of the new mode with its open orders counted."""
        tx = MarginModeTx(msg, signature)
        acct = check_margin_mode(self.state, tx, self.ctx)
        old = acct.margin_mode
        if msg.mode != old and self.by_account.get(msg.account):
            self._risk.pop(msg.account, None)
            acct.margin_mode = msg.mode
            try:
                self._check_margin(msg.account, "", None)
            finally:
                acct.margin_mode = old
                self._risk.pop(msg.account, None)
        self.submit(tx)
        self._risk.pop(msg.account, None)
        return tx

    # -- orders -------------------------------------------------------------------------------

    def place_order(self, order: Order, signature: bytes, *, logged: bool = False) -> OrderResult:
        """Validate, margin-check and match one order; raises OptrollupError (with a code) if it is
        rejected, and then nothing of it remains (see `_Txn`). `logged`: the order was accepted
        before and is replayed from the log: the open-order margin check, an admission rule that
        changes nothing when it passes (sequencer.core.openorders), is not done again; every
        fill is still checked by the state transition."""
        txn = self._begin()
        try:
            result = self._place(order, signature, txn, logged)
        except BaseException:
            self._rollback(txn)
            raise
        self._commit(txn)
        return result

    def _place(self, order: Order, signature: bytes, txn: _Txn, logged: bool = False) -> OrderResult:
        st, now = self.state, self.ctx.timestamp
        ins = check_order(st, order, now)
        d = self.ctx.digest(st.config.domain, order)
        acct = st.accounts[order.account]
        require_signer(acct, order.account, self.ctx.signer(d, signature), now, "order")
        if d in self.seen or d in st.orders:
            raise Conflict(f"order {d.hex()} was already submitted", code="duplicate_order")
        if self.mmp.frozen:
            self.mmp.check_open(order.account, ins.underlying, now * MS)
        marks = self.ctx.marks(st)
        if marks.row(ins.name) is None:
            raise Rejected(f"trading in {ins.underlying} is halted: no valid oracle price",
                           code="oracle_stale")
        name, is_buy, amount = ins.name, order.isBuy, order.amount
        q = acct.positions.get(name, 0)
        # besides reduce-only sizing, the same side's total only decides the margin check
        same_side = (self._side_total(order.account, name, is_buy)
                     if order.reduceOnly or not logged else 0)
        closing = -q if is_buy else q
        if order.reduceOnly:
            room = max(0, closing - same_side)
            amount = min(amount, room - room % ins.amount_step)
            if amount <= 0:
                raise Rejected("reduce-only order has no position left to reduce",
                               code="reduce_only_nothing")
        book = self.books[name]
        if order.postOnly and book.crosses(is_buy, order.price):
            raise Rejected("post-only order would cross the book", code="post_only_would_cross")
        post_check = False
        if amount + same_side > closing:
            if order.account in st.frozen:
                raise compliance.frozen_error(order.account, "only orders that reduce its "
                                              "positions")
            if order.account in st.auctions:
                raise Rejected("the account is in liquidation: only orders that reduce its "
                               "positions", code="account_in_liquidation")
            if logged:
                pass  # passed when it was accepted (the same state: the log is replayed in order)
            elif acct.margin_mode == PORTFOLIO:
                # what fills is margined as positions (portfolio), what rests as an open order
                # (standard add-on): checked once the match is known (a failure rolls it back)
                post_check = True
            else:
                self._check_margin(order.account, name, (is_buy, order.price, amount))
        if order.timeInForce == FOK:
            avail = 0
            for r in book.matches(is_buy, order.price):
                if r.order.account != order.account:
                    avail += r.remaining
                    if avail >= amount:
                        break
            if avail < amount:
                raise Rejected(f"FOK order for {amount} can fill only {avail}", code="fok_unfilled")
        taker = Resting(d, order, signature, amount)
        fills, stopped = self._match(taker, book, txn)
        filled = amount - taker.remaining
        if order.timeInForce == FOK and taker.remaining:
            cap = (f" within {MAX_FILLS_PER_ORDER} maker orders"
                   if len(fills) >= MAX_FILLS_PER_ORDER else "")
            raise Rejected(f"FOK order for {amount} could fill only {filled}{cap}",
                           code="fok_unfilled")
        txn.seen = (order.expiry, d)
        rests = bool(taker.remaining and order.timeInForce == GTC and not stopped)
        if post_check:
            if rests:
                self._check_margin(order.account, name, (is_buy, order.price, taker.remaining))
            else:
                self._check_margin(order.account, "", None)
        if rests:
            txn.rest = taker
            return OrderResult(d, "partially_filled" if filled else "open", filled, fills)
        return OrderResult(d, "filled" if not taker.remaining else "cancelled", filled, fills)

    def _match(self, taker: Resting, book: Book, txn: _Txn) -> tuple[list[FillTx], bool]:
        """Fill `taker` against the book into `txn`; (fills, stopped early by a taker-side
        failure or after MAX_FILLS_PER_ORDER fills). Resting orders met that cannot trade
        (self-trade prevention, a reduce-only maker with nothing left to reduce, a maker whose
        fill fails apply) are cancelled when, and only when, the request commits."""
        st, o = self.state, taker.order
        fills: list[FillTx] = []
        stopped = False
        mmp = bool(self.mmp.configs)
        und = st.instruments[o.instrument].underlying if mmp else ""
        for maker in book.matches(o.isBuy, o.price):
            if not taker.remaining:
                break
            if len(fills) >= MAX_FILLS_PER_ORDER:
                stopped = True  # the rest is cancelled, as after a taker-side failure
                break
            mo = maker.order
            if txn.mmp is not None and (mo.account, und) in txn.mmp.trips:
                continue  # frozen by MMP earlier in this request: cancelled at commit
            if mo.account == o.account:
                txn.drops.append(maker)  # self-trade prevention: cancel the resting order
                continue
            amt = min(taker.remaining, maker.remaining)
            if mo.reduceOnly:
                q = st.accounts[mo.account].positions.get(mo.instrument, 0)
                room = max(0, -q if mo.isBuy else q)
                amt = min(amt, room)
                if amt <= 0:
                    txn.drops.append(maker)
                    continue
            fill = FillTx(SignedOrder(mo, maker.signature) if maker.digest not in st.orders
                          else maker.digest,
                          SignedOrder(o, taker.signature) if taker.digest not in st.orders
                          else taker.digest, amt, mo.price)
            txn.journal.save(o.instrument, mo.account, o.account, maker.digest, taker.digest)
            try:
                apply(st, fill, self.ctx)
            except OptrollupError as exc:
                if getattr(exc, "party", None) == "maker":
                    txn.drops.append(maker)
                    continue
                if not fills:
                    raise
                stopped = True
                break
            fills.append(fill)
            txn.filled.append((maker, amt))
            taker.remaining -= amt
            self._touch(o.account, o.instrument)
            self._touch(mo.account, mo.instrument)
            if mmp:
                self._mmp_fill(txn, maker, amt, und)
        txn.txs.extend(fills)
        return fills, stopped

    def _mmp_fill(self, txn: _Txn, maker: Resting, amt: int, underlying: str) -> None:
        """Count a maker fill of `amt` for MMP (sequencer.core.mmp) at the block's marks; on a
        breach, stage the freeze and the cancel of what the maker has left resting in the
        underlying."""
        mo, st = maker.order, self.state
        key = (mo.account, underlying)
        cfg = self.mmp.watched(key)
        if cfg is None:
            return
        if txn.mmp is None:
            txn.mmp = Stage()
        m = self.ctx.marks(st).mark(mo.instrument)
        s = amt if mo.isBuy else -amt
        greeks = (s * m.delta, s * m.vega) if m is not None else (0, 0)
        freeze = self.mmp.count(txn.mmp, key, cfg, amt, *greeks, self.now * MS)
        if freeze is None:
            return
        taken: dict[bytes, int] = {}
        for r, a in txn.filled:
            if r.order.account == mo.account:
                taken[r.digest] = taken.get(r.digest, 0) + a
        victims = [r for name, per in self.by_account.get(mo.account, {}).items()
                   if name in st.instruments and st.instruments[name].underlying == underlying
                   for r in per.values() if r.remaining > taken.get(r.digest, 0)]
        txn.drops.extend(victims)
        txn.mmp.trips[key] = (freeze, tuple(r.digest for r in victims),
                              tuple(sorted({r.order.instrument for r in victims})))

    # -- requests as transactions --------------------------------------------------------------

    def _begin(self) -> _Txn:
        if self._txn is not None:
            raise RuntimeError("a request is already in progress")  # a bug, never user input
        txn = self._txn = _Txn(self.state)
        return txn

    def _commit(self, txn: _Txn) -> None:
        """Make a request's staged effects real (nothing here can fail)."""
        self._txn = None
        self.txs.extend(txn.txs)
        for maker, amt in txn.filled:
            mo = maker.order
            ot = self._open_totals.get((mo.account, mo.instrument))
            if ot is not None:
                ot.remove(mo.isBuy, mo.price, amt)
            maker.remaining -= amt
            if not maker.remaining:
                self._drop(maker)
        for r in txn.drops:
            self._drop(r)
        if txn.mmp is not None:
            self.mmp.commit(txn.mmp, self.now * MS)
        if txn.seen is not None:
            self.seen.add(txn.seen[1])
            heapq.heappush(self.expiring, txn.seen)
        if txn.rest is not None:
            self._rest(txn.rest, self.books[txn.rest.order.instrument])

    def _rollback(self, txn: _Txn) -> None:
        """Undo a request that raised: state back from the journal, caches invalidated."""
        self._txn = None
        changed = txn.journal.restore()
        if changed:
            self.ctx.marks(self.state).forget()
            for a, name in changed:
                self._touch(a, name)

    def cancel(self, msg: Cancel, signature: bytes) -> OpenOrderView:
        """Cancel one open order of the signing account."""
        r = self._cancellable(msg, signature)
        self._drop(r)
        return OpenOrderView(r.digest, r.order, r.remaining)

    def _cancellable(self, msg: Cancel, signature: bytes) -> Resting:
        """The open order a signed Cancel names, or raise (bad signature, unknown_order)."""
        st = self.state
        d = self.ctx.digest(st.config.domain, msg)
        require_signer(st.accounts.get(msg.account), msg.account, self.ctx.signer(d, signature),
                       self.now, "cancel")
        r = self.open.get(msg.orderHash)
        if r is None or r.order.account != msg.account:
            raise NotFound(f"no open order {msg.orderHash.hex()} of this account",
                           code="unknown_order")
        return r

    def replace_order(self, cancel: Cancel, cancel_signature: bytes, order: Order,
                      order_signature: bytes, *, logged: bool = False) -> OrderResult:
        """Amend (design.md): cancel `cancel.orderHash` and place `order`, both or neither. The
        new order is margin-checked without the cancelled one and gets no time priority from
        it. If either is rejected, nothing changes (the old order keeps its place in the
        queue) and the error says which part failed (`party` "cancel" or "order")."""
        try:
            r = self._cancellable(cancel, cancel_signature)
            if order.account != cancel.account:
                raise InvalidRequest("the replacing order's account is not the cancel's",
                                     code="replace_account_mismatch")
        except OptrollupError as exc:
            exc.party = "cancel"  # type: ignore[attr-defined]
            raise
        book = self.books[r.order.instrument]
        queue = list((book.bids if r.order.isBuy else book.asks)[r.order.price])  # its level, in order
        self._drop(r)
        try:
            return self.place_order(order, order_signature, logged=logged)
        except BaseException as exc:
            self._rest(r, book)
            queue_pos = queue.index(r.digest)  # searched only here: a level may hold hundreds
            level = (book.bids if r.order.isBuy else book.asks)[r.order.price]
            if queue_pos < len(level) - 1:  # back to its place in the time-priority queue
                items = list(level.items())
                items.insert(queue_pos, items.pop())
                level.clear()
                level.update(items)
            if isinstance(exc, OptrollupError) and getattr(exc, "party", None) is None:
                exc.party = "order"  # type: ignore[attr-defined]
            raise

    def cancel_all(self, msg: CancelAll, signature: bytes) -> int:
        """Cancel the account's open orders in `msg.instrument` ("" = all); returns how many."""
        st, now = self.state, self.now
        d = self.ctx.digest(st.config.domain, msg)
        require_signer(st.accounts.get(msg.account), msg.account, self.ctx.signer(d, signature),
                       now, "cancel-all")
        if abs(msg.timestamp - now) > st.config.cancel_all_window:
            raise Rejected(f"cancel-all timestamp {msg.timestamp} not within "
                           f"{st.config.cancel_all_window}s of {now}", code="cancel_all_stale")
        last = self.last_cancel_all.get(msg.account)
        if last is not None and msg.timestamp <= last:
            raise Conflict(f"cancel-all timestamp {msg.timestamp} not after the last {last}",
                           code="cancel_all_replayed")
        self.last_cancel_all[msg.account] = msg.timestamp
        per = self.by_account.get(msg.account, {})
        names = [msg.instrument] if msg.instrument else list(per)
        victims = [r for n in names for r in per.get(n, {}).values()]
        for r in victims:
            self._drop(r)
        return len(victims)

    # -- market-maker protection (sequencer.core.mmp) -------------------------------------------

    def mmp_config(self, msg: MmpConfig, signature: bytes) -> MmpView:
        """Set the MMP config of (account, underlying); signed by the account or a live
        session key. Returns the pair as it now stands."""
        self._mmp_signer(msg, signature, "mmpConfig")
        check_config(msg, self.state.config.underlyings)
        self.mmp.configure(msg)
        return self.mmp.view((msg.account, msg.underlying))

    def mmp_reset(self, msg: MmpReset, signature: bytes) -> ResetResult:
        """Lift the MMP freeze of (account, underlying) and empty its window; signed like
        `mmp_config`. Returns the freeze lifted (None if there was none) and the pair."""
        self._mmp_signer(msg, signature, "mmpReset")
        if msg.underlying not in self.state.config.underlyings:
            raise NotFound(f"mmpReset.underlying {msg.underlying!r} is not configured",
                           code="unknown_underlying")
        lifted = self.mmp.reset(msg, self.now, self.state.config.cancel_all_window)
        return ResetResult(lifted, self.mmp.view((msg.account, msg.underlying)))

    def _mmp_signer(self, msg: MmpConfig | MmpReset, signature: bytes, what: str) -> None:
        st = self.state
        d = self.ctx.digest(st.config.domain, msg)
        acct = st.accounts.get(msg.account)
        require_signer(acct, msg.account, self.ctx.signer(d, signature), self.now, what)
        if acct is None:
            raise NotFound(f"account {to_checksum(msg.account)} does not exist (no deposit yet)",
                           code="unknown_account")

    # -- risk ---------------------------------------------------------------------------------

    def _rest(self, r: Resting, book: Book) -> None:
        book.add(r)
        self.open[r.digest] = r
        a, n = r.order.account, r.order.instrument
        self.by_account.setdefault(a, {}).setdefault(n, {})[r.digest] = r
        ot = self._open_totals.get((a, n))
        if ot is not None:
            ot.add(r.order.isBuy, r.order.price, r.remaining)
        self._touch(a, n)

    def drop_account_orders(self, account: bytes) -> list[Resting]:
        """Remove every open order of `account` (an operator action, e.g. cancel-on-disconnect);
        returns what was removed."""
        victims = [r for per in self.by_account.get(account, {}).values() for r in list(per.values())]
        for r in victims:
            self._drop(r)
        return victims

    def _drop(self, r: Resting) -> None:
        """Remove an open order from the book and indexes (cancel, expiry, full fill)."""
        if self.open.pop(r.digest, None) is None:
            return
        a, n = r.order.account, r.order.instrument
        book = self.books.get(n)
        if book is not None:
            book.remove(r)
        per = self.by_account[a]
        del per[n][r.digest]
        if not per[n]:
            del per[n]
            self._open_totals.pop((a, n), None)
        elif r.remaining:  # a maker filled to zero was taken out of the totals by _commit
            ot = self._open_totals.get((a, n))
            if ot is not None:
                ot.remove(r.order.isBuy, r.order.price, r.remaining)
        self._touch(a, n)

    def _touch(self, account: bytes, name: str) -> None:
        risk = self._risk.get(account)
        if risk is not None:
            part = risk.parts.pop(name, None)
            if part is not None:
                risk.value -= part[0]
                risk.req -= part[1]
            risk.dirty.add(name)

    def _part(self, account: bytes, name: str, marks: Marks,
              extra: tuple[bool, int, int] | None = None) -> tuple[int, int]:
        """(value, requirement) of the account's position and open orders in `name`: the
        standard requirement, or in portfolio mode what the orders add to it (the positions'
        portfolio IM is added by `_requirement`)."""
        v, req = self._std_part(account, name, marks, extra)
        acct = self.state.accounts[account]
        if acct.margin_mode == PORTFOLIO:
            q = acct.positions.get(name, 0)
            if q < 0:
                req -= im_of(q, marks.row(name))  # type: ignore[arg-type]
        return v, req

    def _pm_im(self, account: bytes, marks: Marks) -> int:
        """Portfolio IM of the account's positions (0 in standard mode)."""
        acct = self.state.accounts[account]
        if acct.margin_mode != PORTFOLIO:
            return 0
        return portfolio.total_im(marks, marks.exposures(account, acct).items())

    def _std_part(self, account: bytes, name: str, marks: Marks,
                  extra: tuple[bool, int, int] | None = None) -> tuple[int, int]:
        row: RiskRow | None = marks.row(name)
        if row is None:
            raise Rejected(f"no valid oracle price for {name}", code="oracle_stale")
        q = self.state.accounts[account].positions.get(name, 0)
        ot = self._open_totals.get((account, name))
        if ot is None:
            per = self.by_account.get(account)
            orders = per.get(name) if per else None
            if not orders:
                if extra is None:  # a position alone (= with no orders)
                    return value(q, row), im_of(q, row)
                return value(q, row), requirement(q, (extra,), row)
            if len(orders) < _TOTALS_FROM:  # a few orders: walking them is cheaper
                its = [(r.order.isBuy, r.order.price, r.remaining) for r in orders.values()]
                if extra is not None:
                    its.append(extra)
                return value(q, row), requirement(q, its, row)
            ot = self._orders_of(account, name)
        return value(q, row), ot.requirement(q, row, extra)

    def _side_total(self, account: bytes, name: str, is_buy: bool) -> int:
        """Σ remaining of the account's open orders in `name` on one side."""
        ot = self._open_totals.get((account, name))
        if ot is not None:
            return ot.side_total(is_buy)
        per = self.by_account.get(account)
        orders = per.get(name) if per else None
        if not orders:
            return 0
        if len(orders) < _TOTALS_FROM:
            return sum(r.remaining for r in orders.values() if r.order.isBuy == is_buy)
        return self._orders_of(account, name).side_total(is_buy)

    def _orders_of(self, account: bytes, name: str) -> OrderTotals:
        """Open-order totals of `account` in `name` (empty if it has none; built and then kept
        up to date from the first use)."""
        key = (account, name)
        ot = self._open_totals.get(key)
        if ot is None:
            per = self.by_account.get(account)
            orders = per.get(name) if per else None
            if not orders:
                return _NO_ORDERS
            ot = self._open_totals[key] = OrderTotals(
                (r.order.isBuy, r.order.price, r.remaining) for r in orders.values())
        return ot

    def _totals(self, account: bytes, skip: str = "") -> _Risk:
        """Risk sums of `account` at the current marks, every instrument but `skip` up to date."""
        marks = self.ctx.marks(self.state)
        risk = self._risk.get(account)
        if risk is None or risk.marks is not marks:
            risk = self._risk[account] = _Risk(marks)
            names: Iterable[str] = {*self.state.accounts[account].positions,
                                    *self.by_account.get(account, ())}
        else:
            names, risk.dirty = risk.dirty, set()
        try:
            for n in names:
                if n == skip:
                    risk.dirty.add(n)
                elif n not in risk.parts:
                    part = risk.parts[n] = self._part(account, n, marks)
                    risk.value += part[0]
                    risk.req += part[1]
        except BaseException:
            # A part that cannot be priced (oracle_stale) must not leave a half-built cache
            # behind: the next check would count only the parts that were priced (found by the
            # model test: a withdrawal refused once was then accepted without its open orders).
            del self._risk[account]
            raise
        return risk

    def _check_margin(self, account: bytes, name: str, extra: tuple[bool, int, int] | None,
                      withdraw: int = 0) -> None:
        risk = self._totals(account, skip=name)
        old = risk.parts.get(name, (0, 0))
        new = self._part(account, name, risk.marks, extra) if extra is not None else old
        equity = self.state.accounts[account].collateral - withdraw + risk.value - old[0] + new[0]
        req = risk.req - old[1] + new[1] + self._pm_im(account, risk.marks)
        if equity < req:
            raise Rejected(f"equity {equity} below initial margin {req} with open orders",
                           code="insufficient_margin")

    def _check_withdraw(self, w: Withdraw) -> None:
        if w.account in self.state.frozen:
            return  # apply refuses it (account_frozen), after checking its signature
        if w.account in self.state.accounts and self.by_account.get(w.account):
            self._check_margin(w.account, "", None,
                               withdraw=insurance.withdrawal_debit(self.state, w.amount))

    # -- views --------------------------------------------------------------------------------

    def account_view(self, address: bytes) -> AccountView:
        """Equity, margins, positions with marks and greeks, and open orders of an account."""
        acct = self.state.accounts.get(address)
        if acct is None:
            raise NotFound("unknown account", code="unknown_account")
        marks = self.ctx.marks(self.state)
        per = self.by_account.get(address, {})
        equity, im, mm, halted = acct.collateral, 0, 0, []
        for n in dict.fromkeys([*acct.positions, *per]):
            row = marks.row(n)
            if row is None:
                halted.append(n)
                continue
            v, req = self._part(address, n, marks)
            q = acct.positions.get(n, 0)
            equity += v
            im += req
            mm += mm_of(q, row)
        pm: tuple[UnderlyingMargin, ...] = ()
        if acct.margin_mode == PORTFOLIO and not halted:
            f = portfolio.of_exposures(marks, 0, marks.exposures(address, acct))
            im, mm, pm = im + f.im, f.mm, f.underlyings
        positions = [PositionView(n, q, marks.mark(n)) for n, q in sorted(acct.positions.items())]
        orders = [OpenOrderView(r.digest, r.order, r.remaining) for o in per.values()
                  for r in o.values()]
        return AccountView(acct.collateral, equity, im, mm,
                           max(0, min(acct.collateral, equity - im)), positions, orders,
                           acct.withdrawal_nonce, halted, self.state.auctions.get(address),
                           self.state.liquidate_nonces.get(address, 0), acct.margin_mode,
                           acct.margin_nonce, pm, self.state.frozen.get(address))


class _Journal:
    """Before-images of what the fills of a request change (collateral and one position per
    account, cumulative fills per order), to roll the state back if the request is rejected."""

    __slots__ = ("state", "accounts", "orders", "leaves", "shortfall", "total")

    def __init__(self, state: State) -> None:
        self.state = state
        self.leaves = len(state.withdrawal_leaves)  # withdrawal leaves of the open block before
        self.shortfall, self.total = state.shortfall, state.collateral_total  # fees repay it
        self.accounts: dict[tuple[bytes, str], tuple[int, int]] = {}
        self.orders: dict[bytes, int | None] = {}

    def save(self, name: str, maker: bytes, taker: bytes, maker_order: bytes,
             taker_order: bytes) -> None:
        """Remember the accounts (and the fee account and the insurance fund, if it exists) and
        orders a fill in `name` may change."""
        st, accounts = self.state, self.accounts
        for a in (maker, taker, st.config.fee_account, st.config.insurance_fund):
            if (a, name) not in accounts:
                acct = st.accounts.get(a)
                if acct is None:  # no fund: rules without the risk rules
                    continue
                accounts[(a, name)] = (acct.collateral, acct.positions.get(name, 0))
        for d in (maker_order, taker_order):
            if d not in self.orders:
                fo = st.orders.get(d)
                self.orders[d] = None if fo is None else fo.filled

    def restore(self) -> list[tuple[bytes, str]]:
        """Put every saved value back; returns the (account, instrument) pairs saved."""
        st = self.state
        del st.withdrawal_leaves[self.leaves:]  # fills emit none today; a rollback keeps none
        st.shortfall, st.collateral_total = self.shortfall, self.total
        for (a, name), (c, q) in self.accounts.items():
            acct = st.accounts[a]
            acct.collateral = c
            if acct.positions.get(name, 0) != q:
                set_position(st, a, acct, name, q)
        for d, f in self.orders.items():
            if f is None:
                st.orders.pop(d, None)
            else:
                st.orders[d].filled = f
        return list(self.accounts)


class _Txn:
    """One request in progress: its journal, the block txs it proposes, the resting orders it
    fills (maker, amount) or cancels, what it adds (digest to `seen`, an order to rest) and its
    MMP effects.
    Nothing outside `state` changes until `Engine._commit`."""

    __slots__ = ("journal", "txs", "filled", "drops", "seen", "rest", "mmp")

    def __init__(self, state: State) -> None:
        self.mmp: Stage | None = None  # MMP fills counted and freezes, if any
        self.journal = _Journal(state)
        self.txs: list[Tx] = []
        self.filled: list[tuple[Resting, int]] = []
        self.drops: list[Resting] = []
        self.seen: tuple[int, bytes] | None = None
        self.rest: Resting | None = None
