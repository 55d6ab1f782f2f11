"""The sequencer node: the trading engine behind a durable input log, sealing blocks.

Threading: every method that touches `core` runs on one thread (the asyncio loop); signature
recovery runs in an executor (cext releases the GIL). Durability: a request is processed, its
record submitted to the group-committed log in processing order, and the caller answers only
once the record's future resolves. A `Seal` record closes the open block (if it has txs) and
opens the next; the block (with its marks root and withdrawal leaves), its withdrawal index
(signed withdrawals by digest, every leaf by (account, nonce)) and the outcomes of the L1
messages it processed are written atomically with it. Periodically
a snapshot of `core` as it is right after a seal record S is written once record S is durable,
so snapshot S is exactly the state after record S and intake never waits for it: by default a
snapshot worker process keeps its own replica of `core` from the records it is streamed and
encodes that (`sequencer.node.snapshotworker`); OPTROLLUP_SNAPSHOT_MODE=fork|inline selects the
forked or inline writer (`sequencer.node.snapshotter`). `CoreApplier` is the one DB-free path
that applies a record to a `Core`: live requests, replay and the worker's replica all use it.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import math
import os
import threading
import time
from collections import deque
from itertools import islice
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from cext import Order, parse_address, recover_addresses, to_checksum
from sequencer.core import eip712
from sequencer.core.accounttree import AccountTree
from sequencer.core.chain import marks_root, seal_header, touched_leaves
from sequencer.core.eip712 import (Cancel, CancelAll, DenyL1, Feed, FreezeAccount, Liquidate,
                                   Listing, MmpConfig, MmpReset, SessionKey, SetMarginMode,
                                   UnfreezeAccount, Withdraw)
from sequencer.core.engine import Engine
from sequencer.core.header import Block, Header, WithdrawalLeaf, tx_leaves
from sequencer.core.compliance import DEPOSITOR_DENIED
from sequencer.core.transition import FORCED_NONCE_BASE
from sequencer.core.txs import (AuctionEndTx, AuctionStartTx, ChannelCloseTx, ChannelConcludeTx,
                                ChannelOpenTx, DenyL1Tx, FillTx, FreezeTx, SignedOrder,
                                TakeoverTx, Tx, UnfreezeTx, decode_tx, encode_tx)
from sequencer.errors import Conflict, InvalidRequest, OptrollupError, StoreUnavailable
from sequencer.l1.conclusions import SeenConclusion
from sequencer.node.config import NodeConfig
from sequencer.node.l1follower import DEPOSIT, FORCED_WITHDRAWAL, L1Follower, SeenMessage
from sequencer.node.metrics import Metrics
from sequencer.node import requesttrace
from sequencer.node.reads import L1MessageView, NodeReads
from sequencer.node.requesttrace import RequestStages
from sequencer.node.records import (ChannelRecord, Deposit, ForcedWithdrawal, OperatorCancel,
                                    Record, Replace, Seal, Signed, decode_record, encode_record)
from sequencer.node.snapshot import decode_core, encode_core
from sequencer.node.snapshotter import SnapshotMetrics, Snapshotter, snapshot_mode
from sequencer.node.snapshotworker import WorkerSnapshotter
from sequencer.store import BlockStore, GroupCommitter, InputLog, StoreError, block_puts, open_db
from sequencer.store.snapshots import SnapshotFiles, newest_first

log = logging.getLogger("optrollup.node")

WITHDRAWAL = b"wd/"  # signed withdrawals by EIP-712 digest
WITHDRAWAL_BY_NONCE = b"wdn/"  # every withdrawal leaf by account (20 bytes) ‖ nonce (8 bytes)
L1_MESSAGE = b"l1m/"  # processed L1 messages by nonce (8 bytes), once their block is sealed
ORDER = b"ord/"  # every accepted order by digest (written with its log record; not in memory)
SNAPSHOTS_KEPT = 2  # the newest, and one to fall back on
_STEPS = {AuctionStartTx: "start", TakeoverTx: "takeover", AuctionEndTx: "end"}
_COMPLIANCE_TX = {FreezeAccount: FreezeTx, UnfreezeAccount: UnfreezeTx, DenyL1: DenyL1Tx}
INLINE_VERIFY = int(os.environ.get("OPTROLLUP_INLINE_VERIFY", 2))  # signatures verified on the loop


@dataclass
class Core:
    """Everything replay rebuilds: the engine (committed state inside), the account tree, the
    head header and the read-side indexes. Snapshots encode it whole (sequencer.node.snapshot)."""

    engine: Engine
    tree: AccountTree
    head: Header
    trades: deque = field(default_factory=lambda: deque(maxlen=1000))
    book_seq: dict[str, int] = field(default_factory=dict)
    l1_block: int = 0                                        # L1 block of the last L1 message
    pending_withdrawals: dict[bytes, Withdraw] = field(default_factory=dict)  # accepted, unsealed


def genesis_core(cfg: NodeConfig) -> tuple[Core, Block]:
    state, tree, header0 = cfg.genesis.block0()
    state.touched.clear()
    engine = Engine(state)
    engine.begin_block(cfg.genesis.timestamp)
    return Core(engine, tree, header0), Block(header0, (cfg.genesis.to_bytes(),))


class OpenBlockBytes:
    """Canonical bytes of the open block's txs, encoded once as they come and reused by the
    seal: how big the block is so far (`Node._block_full`); and their tx leaves, hashed
    between requests (`hash`) so that the seal hashes only the newest."""

    __slots__ = ("of", "encoded", "total", "leaves")

    def __init__(self) -> None:
        self.of: list[Tx] | None = None  # the engine's list of the open block's txs
        self.encoded: list[bytes] = []
        self.total = 0
        self.leaves: list[bytes] = []  # tx_leaf of encoded[:len(leaves)]

    def update(self, txs: list[Tx]) -> int:
        """Encode the txs added since the last call (a block's list of txs only ever grows;
        each block has its own list); the block's bytes so far."""
        if txs is not self.of:
            self.of, self.encoded, self.total, self.leaves = txs, [], 0, []
        done = self.encoded
        for t in txs[len(done):]:
            raw = encode_tx(t)
            done.append(raw)
            self.total += len(raw)
        return self.total

    def hash(self, txs: list[Tx]) -> list[bytes]:
        """Encode and hash the txs added since the last call; the leaves of all of `txs`."""
        self.update(txs)
        if len(self.leaves) < len(self.encoded):
            self.leaves += tx_leaves(self.encoded[len(self.leaves):])
        return self.leaves

    def take(self, txs: list[Tx]) -> tuple[list[bytes], list[bytes]]:
        """All of `txs` encoded, and their tx leaves (the block being sealed); empties the
        cache."""
        leaves = self.hash(txs)
        out = self.encoded
        self.of, self.encoded, self.total, self.leaves = None, [], 0, []
        return out, leaves


class CoreApplier:
    """Applies input-log records to `self.core`, touching no database: the one path for live
    requests, for replay, and for the snapshot worker's replica (sequencer.node.snapshotworker),
    so all three stay bit-identical. What only the node does (events, the L1 message index,
    checking and storing sealed blocks, the recipient check of live withdrawals) is in hooks
    that do nothing here and that `Node` overrides. A pending withdrawal is dropped at a seal
    once `_withdrawal_durable` says so: here at the first seal after it was accepted (every
    accepted withdrawal is sealed by then), as replay over a synced log does."""

    core: Core
    domain: bytes

    def _open_bytes(self) -> OpenBlockBytes:
        cache = self.__dict__.get("_open_block_bytes")
        if cache is None:
            cache = self.__dict__["_open_block_bytes"] = OpenBlockBytes()
        return cache

    def _apply(self, rec: Record, *, replay: bool = False) -> Any:
        """Apply one record to `core`; raises OptrollupError if the request is rejected (live
        only: a logged record never fails on replay). `replay`: the record is from the log
        (recipient checks and the open-order margin check are skipped, a re-sealed block is
        checked against the stored one)."""
        core, eng = self.core, self.core.engine
        if isinstance(rec, Seal):
            return self._seal(rec.next_timestamp, replay=replay)
        if isinstance(rec, OperatorCancel):
            victims = eng.drop_account_orders(rec.account)
            for name in sorted({r.order.instrument for r in victims}):
                self._bump(name)
            return len(victims)
        if isinstance(rec, ChannelRecord):
            tx = decode_tx(rec.tx)
            if isinstance(tx, ChannelOpenTx):
                return eng.channel_open(tx)
            if isinstance(tx, (ChannelCloseTx, ChannelConcludeTx)):
                ch = eng.channel_close(tx)
                for p in tx.channelState.positions:
                    if p.instrument in eng.state.instruments:
                        self._bump(p.instrument)
                return ch
            raise TypeError(f"not a channel transaction: {type(tx).__name__}")
        if isinstance(rec, Deposit):
            leaves = len(eng.state.withdrawal_leaves)
            tx = eng.deposit(rec.account, rec.amount, rec.l1_nonce, rec.depositor)
            core.l1_block = max(core.l1_block, rec.l1_block)
            refunded = len(eng.state.withdrawal_leaves) > leaves
            self._l1_processed(L1MessageView(
                rec.l1_nonce, DEPOSIT, rec.account, rec.depositor, rec.amount, rec.l1_block,
                "refunded" if refunded else "credited",
                DEPOSITOR_DENIED if refunded and rec.depositor in eng.state.denied else None, None,
                eng.state.withdrawal_leaves[-1] if refunded else None,
                leaves if refunded else None))
            return tx
        if isinstance(rec, ForcedWithdrawal):
            leaves = len(eng.state.withdrawal_leaves)
            res = eng.forced_withdraw(rec.account, rec.recipient, rec.amount, rec.l1_nonce)
            for name in sorted({r.order.instrument for r in res.cancelled}):
                self._bump(name)
            core.l1_block = max(core.l1_block, rec.l1_block)
            paid = res.refusal is None
            self._l1_processed(L1MessageView(
                rec.l1_nonce, FORCED_WITHDRAWAL, rec.account, rec.recipient, rec.amount,
                rec.l1_block, "paid_out" if paid else "refused", res.refusal, None,
                eng.state.withdrawal_leaves[-1] if paid else None, leaves if paid else None))
            return res
        if isinstance(rec, Replace):
            for part in rec:
                eng.ctx.digests[part.msg] = part.digest
                eng.ctx.signers[(part.digest, part.signature)] = part.signer
            old = eng.open.get(rec.cancel.msg.orderHash)
            result = eng.replace_order(rec.cancel.msg, rec.cancel.signature, rec.order.msg,
                                       rec.order.signature, logged=replay)
            for name in sorted({rec.order.msg.instrument} | ({old.order.instrument} if old else set())):
                self._bump(name)
            for fill in result.fills:
                self._record_trade(fill, rec.order.msg)
            self._mmp_events(rec.order.msg.instrument)
            return result
        msg = rec.msg
        eng.ctx.digests[msg] = rec.digest
        eng.ctx.signers[(rec.digest, rec.signature)] = rec.signer
        if isinstance(msg, Order):
            result = eng.place_order(msg, rec.signature, logged=replay)
            self._bump(msg.instrument)
            for fill in result.fills:
                self._record_trade(fill, msg)
            self._mmp_events(msg.instrument)
            return result
        if isinstance(msg, Cancel):
            view = eng.cancel(msg, rec.signature)
            self._bump(view.order.instrument)
            return view
        if isinstance(msg, CancelAll):
            n = eng.cancel_all(msg, rec.signature)
            for name in ([msg.instrument] if msg.instrument else list(core.book_seq)):
                self._bump(name)
            return n
        if isinstance(msg, Withdraw):
            if not replay:
                self._check_recipient(msg.recipient)
            tx = eng.withdraw(msg, rec.signature)
            core.pending_withdrawals[rec.digest] = msg
            return tx
        if isinstance(msg, SessionKey):
            return eng.session_key(msg, rec.signature)
        if isinstance(msg, Feed):
            return eng.feed(msg, rec.signature)
        if isinstance(msg, Listing):
            tx = eng.list_instrument(msg, rec.signature)
            self._bump(msg.instrument)
            return tx
        if isinstance(msg, MmpConfig):
            return eng.mmp_config(msg, rec.signature)
        if isinstance(msg, MmpReset):
            reset = eng.mmp_reset(msg, rec.signature)
            self._mmp_events()
            return reset
        if isinstance(msg, SetMarginMode):
            return eng.set_margin_mode(msg, rec.signature)
        if isinstance(msg, Liquidate):
            take = eng.liquidate(msg, rec.signature)
            self._emit("liquidation", take)
            return take
        if isinstance(msg, (FreezeAccount, UnfreezeAccount, DenyL1)):  # docs/compliance.md
            tx = _COMPLIANCE_TX[type(msg)](msg, rec.signature)
            cancelled = eng.compliance(tx)
            for name in sorted({r.order.instrument for r in cancelled}):
                self._bump(name)
            return tx, [r.digest for r in cancelled]
        raise TypeError(f"unknown record message {type(msg).__name__}")

    # -- hooks (Node overrides them) --------------------------------------------------------------

    def _l1_processed(self, m: L1MessageView) -> None:
        """An L1 message was processed with outcome `m`."""

    def _check_recipient(self, recipient: bytes) -> None:
        """Live withdrawals only: refuse a recipient (raise OptrollupError)."""

    def _emit(self, kind: str, payload: Any) -> None:
        """An event for listeners, once the record that caused it is durable."""

    def _sealed(self, block: Block, leaves: list[WithdrawalLeaf], *,
                replay: bool) -> list[tuple[bytes, bytes]]:
        """`block` was just sealed (with these withdrawal leaves); the DB puts to write with
        its seal record."""
        return []

    def _withdrawal_durable(self, digest: bytes) -> bool:
        """May the pending (accepted, unsealed or not yet durable) withdrawal go at this seal?"""
        return True

    def _prune_sealed(self, block: Block | None) -> None:
        """At a seal, before the next block opens: drop what the DB now answers for."""

    def _block_done(self, header: Header) -> None:
        """A block was sealed and the next one opened."""

    def _block_opened(self) -> None:
        """A block was opened (its Settle and liquidation status txs are in `engine.txs`)."""

    # -- shared -----------------------------------------------------------------------------------

    def _bump(self, instrument: str) -> None:
        seq = self.core.book_seq
        seq[instrument] = seq.get(instrument, 0) + 1
        self._emit("book", instrument)

    def _mmp_events(self, bumped: str = "") -> None:
        """Announce the engine's MMP events (sequencer.core.mmp); the books a trigger cancelled
        orders in change (`bumped` already did)."""
        for ev in self.core.engine.mmp.take_events():
            for name in ev.instruments:
                if name != bumped:
                    self._bump(name)
            self._emit("mmp", ev)

    def _record_trade(self, fill: FillTx, taker: Order) -> None:
        eng = self.core.engine
        maker = fill.maker
        maker_hash = eng.ctx.digest(self.domain, maker.order) if isinstance(maker, SignedOrder) else maker
        taker_hash = eng.ctx.digest(self.domain, taker)
        trade = {"instrument": taker.instrument, "price": fill.price, "amount": fill.amount,
                 "takerSide": "buy" if taker.isBuy else "sell", "timestamp": eng.now,
                 "makerOrder": maker_hash, "takerOrder": taker_hash}
        self.core.trades.append(trade)
        self._emit("trade", trade)

    def _seal(self, next_ts: int, *, replay: bool) -> tuple[Block | None, list[tuple[bytes, bytes]]]:
        """Close the open block (if it has txs) and open the next at `next_ts`; (block or
        None, the puts `_sealed` returned)."""
        core, eng = self.core, self.core.engine
        txs = eng.end_block()
        block, puts = None, []
        tx_bytes, tx_hashes = self._open_bytes().take(txs)
        ahead = self.__dict__.pop("_leaves_ahead", None)  # Node.seal_ahead
        if ahead and not txs:  # no header to take them: touched again, as if never taken
            eng.state.touched.update(ahead)
        eng.forget_scanned(eng.state.touched)  # changed since Node.seal_ahead priced them
        if txs:
            leaves = list(eng.state.withdrawal_leaves)  # seal_header empties the list
            header = seal_header(eng.state, core.tree, core.head, eng.now, txs, tx_bytes,
                                 ahead=ahead, tx_hashes=tx_hashes)
            block = Block(header, tuple(tx_bytes))
            core.head = header
            puts = self._sealed(block, leaves, replay=replay)
        for d in [d for d in core.pending_withdrawals if self._withdrawal_durable(d)]:
            del core.pending_withdrawals[d]
        self._prune_sealed(block)
        open_before = len(eng.open)
        eng.begin_block(next_ts)
        self._block_opened()
        self._mmp_events()  # freezes that ended
        if len(eng.open) != open_before:  # orders expired: every book may have changed
            for name in sorted(eng.books):
                self._bump(name)
        if block is not None:
            self._block_done(block.header)
        return block, puts


class _ApplyBroke(StoreUnavailable):
    """Applying a request raised something other than a refusal: a bug; the node has stopped."""


class Node(NodeReads, CoreApplier):
    """One node over one data dir (LevelDB's lock makes it the only one). Writes go through
    `submit`/`process`, `process_l1_message`, `operator_cancel_all` and `seal`; reads through
    the `NodeReads` interface."""

    def __init__(self, data_dir: str | Path, cfg: NodeConfig, *,
                 clock: Callable[[], float] = time.time, l1: L1Follower | None = None,
                 snapshots: str | None = None) -> None:
        """`snapshots`: how snapshots are taken, worker | fork | inline (default: the
        OPTROLLUP_SNAPSHOT_MODE environment variable, else worker; see `snapshot_mode`)."""
        self.cfg = cfg
        self.l1 = l1  # follows the L1 contracts (deposits, batches); run by NodeRunner
        self._own_contracts = {parse_address(a): what for what, a in (
            ("the Rollup", cfg.rollup),
            *(() if cfg.l1 is None else (("the Bridge", cfg.l1.bridge),
                                         ("the collateral token", cfg.l1.collateral_token))))}
        self.clock = clock
        self.domain = cfg.genesis.config.domain
        self.metrics = Metrics()
        # where write requests' time goes, by stage (sequencer.node.requesttrace): off unless
        # OPTROLLUP_REQUEST_STAGES=1 (on, the 400 single orders/s benchmark's p99 was 2-3x
        # worse on a 2-vCPU VM: benchmarks/README.md, session 13)
        self.stages = (RequestStages(self.metrics.registry,
                                     float(os.environ.get("OPTROLLUP_SLOW_REQUEST_MS", "10")) / 1e3)
                       if os.environ.get("OPTROLLUP_REQUEST_STAGES") == "1" else None)
        # the newest synced batches (last seq, write start, write end; perf_counter s), for
        # the stages of a slow request (sequencer.node.requesttrace)
        self._batches: deque[tuple[int, float, float]] = deque(maxlen=256)
        self._synced = (0.0, 0.0)  # the latest synced write (start, end), log-writer thread
        self.listeners: list[Callable[[str, Any], None]] = []
        self._last_shortfall = 2**256  # the shortfall last announced (none while recovering)
        self._events: list[tuple[str, Any]] = []  # fired once the record that caused them is durable
        self._held: deque[tuple[int, list[tuple[str, Any]]]] = deque()  # (seq, its events)
        self._durable_upto = -1  # the newest seq the log writer reported durable
        self._slow_sync_logged = 0.0  # monotonic time of the last slow-sync warning
        self._logged_seq = -1    # the newest seq submitted to the log writer
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()  # (seq, request)
        self._fire_lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None  # where listeners run (bind_loop)
        self.failed: str | None = None  # set once the node may hold state that is not durable
        # L1 messages processed whose outcome is not durable in the DB yet: those of the open
        # block (block None) and of sealed blocks whose write may not be synced. Rebuilt by
        # replay (a snapshot follows a seal, whose open block holds no L1 message).
        self._l1_pending: dict[int, L1MessageView] = {}
        # the snapshot worker's feed: called with every record's bytes once it is submitted
        self._stream: Callable[[bytes], None] | None = None
        self._base: tuple[int, bytes] | None = None  # the snapshot recovery started from
        self.db = open_db(Path(data_dir) / "db")
        try:
            self.store = BlockStore(self.db)
            self.log = InputLog(self.db)
            self.snapshot_files = SnapshotFiles(Path(data_dir) / "snapshots")
            self._since_snapshot = 0
            self.core = self._recover()
            self._last_shortfall = self.core.engine.state.shortfall
            self.committer = GroupCommitter(self.log, on_sync=self._on_sync,
                                            on_queue=self.metrics.log_queue.observe,
                                            on_durable=self._on_durable,
                                            on_error=self._on_log_error)
            mode = snapshot_mode(snapshots)
            smetrics = SnapshotMetrics(self.metrics.registry)
            writer = Snapshotter(self.snapshot_files, self.db, keep=SNAPSHOTS_KEPT,  # fork if it can
                                 metrics=smetrics,
                                 inline=mode == "inline" or snapshot_mode("fork") == "inline")
            if mode == "worker":  # the forked (or inline) writer stays as its fallback
                self.snapshotter = WorkerSnapshotter(
                    self.snapshot_files, self.db, self.log, cfg, keep=SNAPSHOTS_KEPT,
                    base=self._base,
                    start_seq=self.log.next_seq, fallback=writer, metrics=smetrics,
                    tmp_dir=Path(data_dir) / "snapshot-worker")
                self._stream = self.snapshotter.feed
            else:
                self.snapshotter = writer
            self._base = None  # the worker holds the bytes until it has them
        except BaseException:
            self.db.close()
            raise
        self.metrics.height.set(self.core.head.number)
        self._risk_gauges()

    # -- start-up ---------------------------------------------------------------------------

    def _recover(self) -> Core:
        """The newest snapshot that loads plus the log after it; checks every re-sealed block.
        The cyclic GC is paused meanwhile: unpickling and replay allocate ~10^6 long-lived
        objects, and full collections rescanning them cost seconds of a restart."""
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._load_and_replay()
        finally:
            if gc_was_enabled:
                gc.enable()

    def _load_and_replay(self) -> Core:
        start, core = 0, None
        for seq, value in newest_first(self.snapshot_files, self.db):  # the newest that decodes
            if seq >= self.log.next_seq:  # never ahead of the log (a data dir put together by hand)
                log.warning("snapshot at record %d is ahead of the log (next record %d); skipped",
                            seq, self.log.next_seq)
                continue
            try:
                if isinstance(value, Exception):
                    raise value
                core = decode_core(value, self.cfg)
            except Exception as exc:  # a snapshot from other code: the log is the truth
                log.warning("snapshot at record %d unusable (%s); trying an older one, or the "
                            "whole log", seq, exc)
                continue
            start, self._base = seq + 1, (seq, value)
            break
        if core is None:
            core, block0 = genesis_core(self.cfg)
            stored = self.store.get(0)
            if stored is None:
                mroot = marks_root(core.engine.state, block0.header.timestamp)
                with self.db.write_batch(sync=True) as wb:
                    for k, v in block_puts(block0, marks_root=mroot):
                        wb.put(k, v)
            elif stored[0].header != block0.header:
                raise StoreError("data dir belongs to another chain: stored genesis header "
                                 f"{stored[0].header.hash().hex()} != {block0.header.hash().hex()}")
        self.core = core
        t0, n = time.perf_counter(), 0
        for _, raw in self.log.read(start):
            self._apply(decode_record(raw), replay=True)
            n += 1
        log.info("recovered: %d records replayed after record %d in %.2fs; head block %d",
                 n, start - 1, time.perf_counter() - t0, core.head.number)
        return core

    def close(self) -> None:
        self.snapshotter.close()
        self.committer.close()
        self.db.close()

    def _l1_processed(self, m: L1MessageView) -> None:
        """Remember an L1 message's outcome until its block's write is durable."""
        self._l1_pending[m.nonce] = m

    def _check_recipient(self, recipient: bytes) -> None:
        """Refuse paying out to our own L1 contracts: tokens sent to the Bridge, the Rollup or
        the token contract itself are lost (the state transition refuses address zero)."""
        what = self._own_contracts.get(recipient)
        if what is not None:
            raise InvalidRequest(f"withdraw recipient {to_checksum(recipient)} is {what}: "
                                 "funds sent there are lost", code="bad_recipient")

    def _emit(self, kind: str, payload: Any) -> None:
        if self.listeners:
            self._events.append((kind, payload))

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run listeners on `loop` (the thread that owns `core`), one callback per durable record."""
        self.loop = loop

    SLOW_SYNC = 0.03  # seconds: a synced log write this slow is logged (at most once a second)

    def _on_sync(self, seconds: float, records: int) -> None:
        """Log-writer thread, once per synced write: metrics, and a warning with the time for
        a slow one (to set against what else wrote to the disk then: LevelDB's own LOG, a
        snapshot being stored, other processes)."""
        self.metrics.on_sync(seconds, records)
        if self.stages is not None:
            end = time.perf_counter()
            self._synced = (end - seconds, end)  # read by _on_durable, next on this thread
        if seconds >= self.SLOW_SYNC:
            now = time.monotonic()
            if now - self._slow_sync_logged >= 1.0:
                self._slow_sync_logged = now
                log.warning("slow synced log write: %.1f ms for %d records", seconds * 1e3, records)

    def _on_durable(self, last: int) -> None:
        """Log-writer thread, once per synced batch: fire the events of the records up to
        `last` and wake the requests waiting for them, with one wake-up of the loop per
        batch, not one per record or per request."""
        self._durable_upto = last
        if self.stages is not None:
            self._batches.append((last, *self._synced))
        if self._waiters:
            self._schedule_fire(last)
            return
        try:
            if self._held[0][0] > last:
                return
        except IndexError:  # nothing held (or the loop just fired it)
            return
        self._schedule_fire(last)

    def _schedule_fire(self, last: int) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._fire_woken, last, time.perf_counter())
        else:
            self._fire(last)

    def _fire_woken(self, last: int, durable_at: float) -> None:
        self.metrics.durable_wake.observe(time.perf_counter() - durable_at)
        self._fire(last)

    def _fire(self, last: int) -> None:
        """Everything up to record `last` is durable: listeners get its events, then the
        requests waiting for it (`_durable_results`, loop thread only) are answered."""
        self._fire_events(last)
        waiters = self._waiters
        while waiters and waiters[0][0] <= last:
            fut = waiters.popleft()[1]
            if not fut.done():
                fut.set_result(None)

    def _fire_events(self, last: int) -> None:
        held, ready = self._held, []
        with self._fire_lock:  # without a loop, the writer and the caller's thread both fire
            while held and held[0][0] <= last:
                ready.append(held.popleft()[1])
        for events in ready:
            for kind, payload in events:
                for cb in self.listeners:
                    try:
                        cb(kind, payload)
                    except Exception:  # noqa: BLE001 - a listener must not break the log writer
                        log.exception("listener failed on %s", kind)

    # -- CoreApplier hooks: what the node does beside the core ---------------------------------

    def _sealed(self, block: Block, leaves: list[WithdrawalLeaf], *,
                replay: bool) -> list[tuple[bytes, bytes]]:
        """Replay: check the re-sealed block against the stored one. Live: the puts that store
        it (marks root, withdrawal index, L1 message outcomes) with its seal record."""
        eng, header = self.core.engine, block.header
        sealed = [m._replace(block=header.number) for m in self._l1_pending.values()
                  if m.block is None]
        if replay:
            stored = self.store.get(header.number)
            if stored is None or stored[0] != block:
                raise StoreError(f"replay diverged at block {header.number}: the stored block "
                                 "differs from the re-sealed one (corrupt data dir or changed code)")
            for m in sealed:  # written with the stored block
                del self._l1_pending[m.nonce]
            return []
        mroot = marks_root(eng.state, eng.now, eng.ctx.marks(eng.state))
        puts = (block_puts(block, marks_root=mroot, withdrawals=leaves)
                + self._withdrawal_puts(header.number, leaves)
                + [(L1_MESSAGE + m.nonce.to_bytes(8, "big"), _pack_l1(m)) for m in sealed])
        self._l1_pending.update((m.nonce, m) for m in sealed)
        return puts

    def _withdrawal_durable(self, digest: bytes) -> bool:
        # A sealed withdrawal (or L1 message outcome) is findable in the DB only once its seal's
        # write is synced: until then it stays pending, so a lookup never falls into the gap.
        return self.db.get(WITHDRAWAL + digest) is not None

    def _prune_sealed(self, block: Block | None) -> None:
        for n in [n for n, m in self._l1_pending.items() if m.block is not None
                  and (block is None or m.block != block.header.number)
                  and self.db.get(L1_MESSAGE + n.to_bytes(8, "big")) is not None]:
            del self._l1_pending[n]

    def _block_done(self, header: Header) -> None:
        self.metrics.height.set(header.number)
        self._emit("block", header)

    def _block_opened(self) -> None:
        """Liquidation metrics and events (the steps the block's detection took, the fund, the
        shortfall); a shortfall that grew is logged as an error and announced."""
        eng = self.core.engine
        for tx in eng.txs:
            step = _STEPS.get(type(tx))
            if step is not None:
                self.metrics.liquidation_steps.labels(step).inc()
                self._emit("auction", (step, tx.account, eng.now))
        self._risk_gauges()
        shortfall = eng.state.shortfall
        if shortfall > self._last_shortfall:
            log.error("SHORTFALL: the insurance fund could not absorb a loss; open shortfall "
                      "now %d base units (+%d); withdrawals are haircut pro rata until it is "
                      "recovered", shortfall, shortfall - self._last_shortfall)
            self._emit("shortfall", (shortfall, shortfall - self._last_shortfall))
        self._last_shortfall = shortfall

    def _risk_gauges(self) -> None:
        m, st = self.metrics, self.core.engine.state
        fund = st.accounts.get(st.config.insurance_fund)
        m.insurance_fund.set(fund.collateral if fund is not None else 0)
        m.shortfall.set(st.shortfall)
        m.auctions.set(len(st.auctions))

    def _withdrawal_puts(self, number: int,
                         leaves: Sequence[WithdrawalLeaf]) -> list[tuple[bytes, bytes]]:
        """Index block `number`'s withdrawal leaves: every one by (account, nonce), a signed
        Withdraw's also by its digest (the leaf's fields are the Withdraw message's)."""
        puts = []
        for i, w in enumerate(leaves):
            value = msgpack.packb([number, i, w.account, w.recipient, w.amount, w.nonce])
            puts.append((WITHDRAWAL_BY_NONCE + w.account + w.nonce.to_bytes(8, "big"), value))
            if w.nonce < FORCED_NONCE_BASE:
                puts.append((WITHDRAWAL + eip712.digest(self.domain, Withdraw(*w)), value))
        return puts

    # -- failing safe -------------------------------------------------------------------------

    def fail(self, reason: str) -> None:
        """Stop for good: from now on every write and read is refused (`store_unavailable`)
        until an operator restarts the node, which recovers the durable state from the log. Called
        when a log write fails (memory is then ahead of disk) or applying a request broke in a way
        that is not a rejection (memory may be inconsistent). Thread-safe, idempotent."""
        if self.failed is None:
            self.failed = reason
            log.critical("node failed, refusing all requests until restarted: %s", reason)
            self.metrics.failed.set(1)

    def check_alive(self) -> None:
        """StoreUnavailable if the node has failed (see `fail`)."""
        if self.failed is not None:
            raise StoreUnavailable(f"the node stopped serving after a storage fault ({self.failed}); "
                                   "an operator must restart it")

    # -- live: time, sealing, logging ---------------------------------------------------------

    def _log(self, rec: Record, extra: list[tuple[bytes, bytes]] = (),
             raw: bytes | None = None, future: bool = True) -> Future[int] | int:
        """Submit `rec` (already encoded as `raw`, if given); the events its processing produced
        fire once it is durable. An accepted order is indexed by digest in the same write.
        Returns a Future of its seq, or (`future` False: for `_durable_results`, which waits on
        the per-batch wake-up) the seq itself."""
        self._since_snapshot += 1
        placed = rec.order if isinstance(rec, Replace) else rec
        if isinstance(placed, Signed) and type(placed.msg) is Order:
            extra = [*extra, (ORDER + placed.digest, msgpack.packb(list(placed.msg), use_bin_type=True))]
        if raw is None:
            raw = encode_record(rec)
        try:
            if future:
                seq, fut = self.committer.submit_seq(raw, extra)
            else:
                seq = fut = self.committer.append(raw, extra)
        except StoreError as exc:
            self.fail(str(exc))
            raise StoreUnavailable(f"could not log the request: {exc}") from exc
        self._logged_seq = seq
        if self._stream is not None:  # the snapshot worker applies it too (a deque append)
            self._stream(raw)
        if self._events:  # fired by `_on_durable`, or here if its batch was already synced
            self._held.append((seq, self._events))
            self._events = []
            if seq <= self._durable_upto:
                self._schedule_fire(seq)
        return fut

    def _on_log_error(self, exc: BaseException) -> None:
        self.fail(f"input log write failed: {exc}")
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._fail_waiters, exc)

    def _fail_waiters(self, exc: BaseException) -> None:
        while self._waiters:
            fut = self._waiters.popleft()[1]
            if not fut.done():
                fut.set_exception(StoreError(f"input log write failed: {exc}"))

    def seal(self, next_ts: int | None = None) -> Future[int]:
        """Close the open block (if it has txs) and open the next at `next_ts` (default now)."""
        self.check_alive()
        eng = self.core.engine
        ts = max(int(self.clock()), eng.now) if next_ts is None else max(next_ts, eng.now)
        seq = self.committer.next_seq
        t0 = time.perf_counter()
        try:
            _, puts = self._seal(ts, replay=False)
        except Exception as exc:
            self.fail(f"sealing raised {exc!r}")
            raise StoreUnavailable("internal error while sealing; the node stopped") from exc
        self.metrics.seal.observe(time.perf_counter() - t0)
        due = (self._since_snapshot + 1 >= self.cfg.snapshot_every_records
               and not self.snapshotter.busy)
        if due:
            self._since_snapshot = -1  # this seal record itself
        fut = self._log(Seal(ts), puts)
        if due:  # the state right after this seal, written once the seal is durable
            core, cfg = self.core, self.cfg
            self.snapshotter.take(seq, lambda: encode_core(core, cfg), fut, core)
        return fut

    def tick(self) -> Future[int] | None:
        """Keep block time fresh: seal (or re-time an empty block) once `block_time` has passed."""
        if self.failed is not None:
            return None
        eng = self.core.engine
        now = int(self.clock())
        if now - eng.now >= max(1.0, self.cfg.block_time) or self._block_full():
            return self.seal(now)
        return None

    MARKS_AHEAD_SECONDS = 0.002
    """Loop time one `prepare_next_block` call may spend pricing the next block's marks."""

    def prepare_next_block(self) -> bool:
        """Between seals (NodeRunner calls it after each timed tick), price the next block's
        marks a few rows at a time, at most MARKS_AHEAD_SECONDS per call, so the seal's
        liquidation scan finds them ready instead of stalling every waiting request for them
        (~85 µs per instrument on a slow core; Engine.prepare_marks). True once all are."""
        if self.failed is not None:
            return False
        eng = self.core.engine
        ts = self._next_block_time()
        end = time.perf_counter() + self.MARKS_AHEAD_SECONDS
        while not eng.prepare_marks(ts, 4):
            if time.perf_counter() >= end:
                return False
        return True

    def hash_ahead(self) -> None:
        """Between requests (NodeRunner, every tick): encode and hash the open block's new txs,
        so the seal hashes only those that came after."""
        if self.failed is None:
            self._open_bytes().hash(self.core.engine.txs)

    def seal_due(self) -> float | None:
        """Clock time (unix s) from which `tick` seals the open block (None once failed)."""
        return None if self.failed is not None else self._due()

    def _due(self) -> int:
        return self.core.engine.now + math.ceil(max(1.0, self.cfg.block_time))

    def _next_block_time(self) -> int:
        """The block time (unix s) the next block will most likely get: when the open one is
        due, or the next whole second if that has passed (what work done ahead prices for)."""
        return max(self._due(), int(self.clock()) + 1)

    def seal_ahead(self) -> None:
        """Just before a seal (NodeRunner calls it `SEAL_AHEAD_SECONDS` before `seal_due`), do
        what the seal would, so that the seal, which every waiting request waits for, does it
        only for what changes in between: the open block's tx leaves (`hash_ahead`), the leaves
        of the accounts touched so far (`chain.touched_leaves`), and the margins the next
        block's liquidation scan prices (`Engine.prepare_scan`, at the marks priced ahead). The
        seal takes the leaves, and forgets the margins of the accounts touched since. Called
        too early it only wastes work: an account touched again is hashed and priced again.
        (Until that seal `state.touched` lacks the accounts whose leaves are held here: the
        node encodes its core for a snapshot only right after a seal, when none are.)"""
        if self.failed is not None:
            return
        t0 = time.perf_counter()
        eng = self.core.engine
        self.hash_ahead()
        if eng.txs:
            ahead = self.__dict__.setdefault("_leaves_ahead", {})
            ahead.update(touched_leaves(eng.state))
        ts = self._next_block_time()
        if eng.prepare_marks(ts, 10**6):
            eng.prepare_scan(ts)
        self.metrics.seal_ahead.observe(time.perf_counter() - t0)

    def _block_full(self) -> bool:
        """The open block has `max_block_txs` txs or `max_block_bytes` of them: seal it."""
        return (len(self.core.engine.txs) >= self.cfg.max_block_txs
                or self._open_bytes().update(self.core.engine.txs) >= self.cfg.max_block_bytes)

    # -- live: requests -----------------------------------------------------------------------

    def verify(self, items: Sequence[tuple[Any, bytes]], *, release_gil: bool | None = None,
               ) -> tuple[list[bytes], list[bytes | None]]:
        """Digests and recovered signers of (message, signature) pairs. Thread-safe; the
        recovery runs without the GIL when `release_gil` (see cext.recover_addresses)."""
        digests = eip712.digests(self.domain, [m for m, _ in items])
        return digests, recover_addresses(digests, [s for _, s in items], release_gil=release_gil)

    def process(self, items: Sequence[tuple[Any, bytes]], digests: Sequence[bytes],
                signers: Sequence[bytes | None],
                admit: Callable[[Any, bytes | None], OptrollupError | None] | None = None,
                *, futures: bool = True) -> list[tuple[Any, Future[int] | int | None]]:
        """Apply verified requests in order; each result is (value or OptrollupError, future;
        with `futures` False the seq instead, see `_log`). `admit(msg, signer)`, if given, may
        refuse an item before it is applied (e.g. a rate limit charged to the recovered
        signer) by returning the error to answer."""
        return self._process([Signed(msg, sig, d, signer)
                              for (msg, sig), d, signer in zip(items, digests, signers)], admit,
                             futures=futures)

    def process_replaces(self, pairs: Sequence[tuple[tuple[Cancel, bytes], tuple[Order, bytes]]],
                         digests: Sequence[bytes], signers: Sequence[bytes | None],
                         admit: Callable[[Any, bytes | None], OptrollupError | None] | None = None,
                         *, futures: bool = True) -> list[tuple[Any, Future[int] | int | None]]:
        """Apply verified amends (cancel + order, both or neither) in order, like `process`;
        `digests`/`signers` are those of the flattened [cancel, order, cancel, order, ...]."""
        return self._process([Replace(Signed(c, cs, digests[2 * i], signers[2 * i]),
                                      Signed(o, os_, digests[2 * i + 1], signers[2 * i + 1]))
                              for i, ((c, cs), (o, os_)) in enumerate(pairs)], admit, futures=futures)

    def _process(self, records: Sequence[Signed | Replace],
                 admit: Callable[[Any, bytes | None], OptrollupError | None] | None,
                 raws: Sequence[bytes] | None = None, futures: bool = True,
                 ) -> list[tuple[Any, Future[int] | int | None]]:
        """`raws`, if given, are the records' log bytes already (`decode_record` of each is
        the record): they are logged as they are, not encoded again. `futures` False: each
        accepted record comes with its seq instead of a Future (see `_log`)."""
        self.check_alive()
        self.tick()
        requesttrace.mark("tick")
        out: list[tuple[Any, Future[int] | int | None]] = []
        for i, rec in enumerate(records):
            head = rec.order if isinstance(rec, Replace) else rec  # charged to the order's signer
            kind = "Replace" if isinstance(rec, Replace) else type(rec.msg).__name__
            try:  # before applying: what cannot be logged never applies
                raw = encode_record(rec) if raws is None else raws[i]
            except (OverflowError, TypeError, ValueError) as exc:
                out.append((InvalidRequest(f"request cannot be recorded: {exc}", code="unencodable"), None))
                continue
            if admit is not None:
                refused = admit(head.msg, head.signer)
                if refused is not None:
                    self.metrics.rejected.labels(kind, refused.code).inc()
                    out.append((refused, None))
                    continue
            try:
                value = self._apply_counted(rec, kind)
            except _ApplyBroke:
                raise
            except OptrollupError as exc:
                out.append((exc, None))
                continue
            out.append((value, self._log(rec, raw=raw, future=futures)))
            if self._block_full():
                self.seal()
        return out

    def _apply_counted(self, rec: Record, kind: str) -> Any:
        """Apply a request's record, counted in the metrics: a refusal (OptrollupError) changes
        nothing; any other exception is a bug after which memory may differ from any replay of
        the log, so the node stops (StoreUnavailable)."""
        try:
            value = self._apply(rec)
        except OptrollupError as exc:
            self._events.clear()  # nothing happened
            self.metrics.rejected.labels(kind, exc.code).inc()
            raise
        except Exception as exc:
            self._events.clear()
            log.exception("applying a %s broke", kind)
            self.fail(f"applying a {kind} raised {exc!r}")
            raise _ApplyBroke("internal error while applying the request; the node "
                              "stopped to keep its state equal to its log") from exc
        self.metrics.accepted_kind(kind).inc()
        return value

    async def submit(self, items: Sequence[tuple[Any, bytes]],
                     admit: Callable[[Any, bytes | None], OptrollupError | None] | None = None,
                     ) -> list[Any]:
        """Verify off-thread, process in order (see `process` for `admit`), and return once
        every accepted one is durable. Each result is the engine's answer or the
        OptrollupError that rejected it."""
        self.check_alive()
        requesttrace.mark("decode")
        digests, signers = await self._verify(items)
        requesttrace.mark("verify")
        done = self.process(items, digests, signers, admit, futures=False)
        requesttrace.mark("apply")
        return await self._durable_results(done)

    async def _verify(self, items: Sequence[tuple[Any, bytes]]) -> tuple[list[bytes], list[bytes | None]]:
        """`verify`: on the loop for up to INLINE_VERIFY signatures (~50 µs each: less than
        a hop to an executor thread and back costs the loop), else off-thread."""
        if len(items) <= INLINE_VERIFY:
            return self.verify(items, release_gil=False)
        return await asyncio.get_running_loop().run_in_executor(
            None, functools.partial(self.verify, items, release_gil=True))

    async def submit_replaces(self, pairs: Sequence[tuple[tuple[Cancel, bytes], tuple[Order, bytes]]],
                              admit: Callable[[Any, bytes | None], OptrollupError | None] | None = None,
                              ) -> list[Any]:
        """`submit` for amends: each pair ((cancel, sig), (order, sig)) is done whole or not at
        all; one result per pair (an OrderResult or the OptrollupError, with `party`)."""
        self.check_alive()
        requesttrace.mark("decode")
        flat = [part for pair in pairs for part in pair]
        digests, signers = await self._verify(flat)
        requesttrace.mark("verify")
        done = self.process_replaces(pairs, digests, signers, admit, futures=False)
        requesttrace.mark("apply")
        return await self._durable_results(done)

    async def submit_verified(self, raws: Sequence[bytes],
                              admit: Callable[[Any, bytes | None], OptrollupError | None] | None = None,
                              ) -> tuple[list[Signed | Replace], list[Any]]:
        """`submit` for requests whose digests and signers were computed elsewhere (an ingress
        worker of this node, sequencer/ingress), sent as their log records' bytes: decoded,
        processed in order and logged as they came; (the records, their results) once durable.
        ValueError if one is not a signed request or an amend."""
        self.check_alive()
        records = [decode_record(raw) for raw in raws]
        if any(not isinstance(r, (Signed, Replace)) for r in records):
            raise ValueError("an ingress record must be a signed request or an amend")
        return records, await self._durable_results(self._process(records, admit, raws, futures=False))

    async def _durable_results(self, done: list[tuple[Any, Future[int] | int | None]]) -> list[Any]:
        # Records become durable in log order and a failed write fails every later one, so
        # the last accepted record's future (or seq: a future is then made only if needed)
        # stands for all of them.
        last = next((f for _, f in reversed(done) if f is not None), None)
        if last is not None:
            try:
                if self.loop is asyncio.get_running_loop() and self.failed is None:
                    # the newest logged seq is this request's last record (or a seal after
                    # it): wait for it with the node's per-batch wake-up (`_fire`)
                    seq = self._logged_seq
                    if seq > self._durable_upto:
                        waiter = self.loop.create_future()
                        self._waiters.append((seq, waiter))
                        if seq <= self._durable_upto:  # the writer got there in between
                            self._fire(self._durable_upto)
                        await waiter
                        if requesttrace.active():
                            self._trace_batch(seq)
                else:
                    if isinstance(last, int):
                        last = self.committer.when_durable(last)
                    await asyncio.wrap_future(last)
            except StoreError as exc:
                raise StoreUnavailable(f"could not make the request durable: {exc}") from exc
        return [v for v, _ in done]

    def _trace_batch(self, seq: int) -> None:
        """Mark, on the open request trace, when the synced batch holding `seq` started and
        ended its write, and that the loop is back on the request."""
        # newest first (the request's batch is one of the last few); copied in C, since the
        # log writer appends meanwhile. Walking all 256 oldest-first cost ~60 us a request.
        found = None
        for batch in list(islice(reversed(self._batches), 64)):
            if batch[0] < seq:  # the batch before the request's: `found` holds seq
                if found is not None:
                    requesttrace.mark("queue", found[1])
                    requesttrace.mark("fsync", found[2])
                break
            found = batch
        requesttrace.mark("wake")

    def process_l1_message(self, m: SeenMessage) -> Future[int] | None:
        """Process L1 message `m` (a deposit or a forced withdrawal) once, in nonce order:
        earlier nonces are ignored (None), a later one than the message cursor is refused
        (Conflict deposit_gap / l1_message_gap). The outcome (credited, refunded, paid out,
        refused) is the state transition's; `l1_message(nonce)` reports it."""
        self.check_alive()
        cursor = self.core.engine.state.message_cursor
        if m.nonce < cursor:
            return None
        if m.nonce > cursor:
            raise Conflict(f"L1 message nonce {m.nonce} ({m.kind_name}) arrived before the "
                           f"message cursor {cursor}",
                           code="deposit_gap" if m.kind == DEPOSIT else "l1_message_gap")
        if m.kind not in (DEPOSIT, FORCED_WITHDRAWAL):
            raise InvalidRequest(f"L1 message {m.nonce} has unknown kind {m.kind}",
                                 code="unknown_l1_message_kind")
        self.tick()
        rec: Record = (Deposit(m.account, m.amount, m.nonce, m.l1_block, m.counterparty)
                       if m.kind == DEPOSIT else
                       ForcedWithdrawal(m.account, m.counterparty, m.amount, m.nonce, m.l1_block))
        self._apply(rec)
        outcome = self._l1_pending[m.nonce].status
        self.metrics.l1_messages.labels(m.kind_name, outcome).inc()
        if outcome == "credited":
            self.metrics.l1_deposits.inc()
        return self._log(rec)

    def credit_deposit(self, account: bytes, amount: int, l1_nonce: int, l1_block: int,
                       depositor: bytes | None = None) -> Future[int] | None:
        """Process L1 deposit `l1_nonce` (see `process_l1_message`); `depositor` (the L1
        address a refund pays) defaults to the account itself."""
        return self.process_l1_message(SeenMessage(l1_nonce, DEPOSIT, account,
                                                   account if depositor is None else depositor,
                                                   amount, l1_block))

    async def submit_channel(self, tx: ChannelOpenTx | ChannelCloseTx | ChannelConcludeTx) -> Any:
        """Apply and log a state-channel transaction; its result (the channel id of an open,
        the closed Channel) once durable. OptrollupError if it is refused (nothing logged)."""
        self.check_alive()
        self.tick()
        rec = ChannelRecord(encode_tx(tx))
        value = self._apply_counted(rec, type(tx).__name__)
        return (await self._durable_results([(value, self._log(rec))]))[0]

    def process_conclusion(self, c: SeenConclusion) -> Future[int] | None:
        """Apply an L1 channel conclusion (sequencer.l1.conclusions) as a ChannelConclude, once:
        None (nothing to do) when the channel is unknown here or already closed, or while the
        conclusion's state is not known yet. Loop thread only."""
        self.check_alive()
        ch = self.core.engine.state.channels.get(c.channel_id)
        if ch is None or ch.status != 0 or c.state is None:
            return None
        self.tick()
        rec = ChannelRecord(encode_tx(ChannelConcludeTx(c.state)))
        self._apply(rec)
        self.metrics.accepted_kind("ChannelConcludeTx").inc()
        log.info("channel 0x%s concluded on L1 at turn %d: applied", c.channel_id.hex(), c.turn)
        return self._log(rec)

    def operator_cancel_all(self, account: bytes, reason: str) -> Future[int] | None:
        """Cancel every open order of `account` without its signature (an operator action,
        logged so replay repeats it); None when it has no open orders. Loop thread only."""
        self.check_alive()
        if not self.core.engine.by_account.get(account):
            return None
        self.tick()
        rec = OperatorCancel(account, reason)
        n = self._apply(rec)
        log.info("operator cancel of %d open orders of 0x%s (%s)", n, account.hex(), reason)
        return self._log(rec)

    # -- reads --------------------------------------------------------------------------------

    def withdrawal(self, digest: bytes) -> tuple[int, int, bytes, bytes, int, int] | None:
        """(block, leaf index, account, recipient, amount, nonce) of a sealed withdrawal."""
        raw = self.db.get(WITHDRAWAL + digest)
        return None if raw is None else tuple(msgpack.unpackb(raw))  # type: ignore[return-value]

    def withdrawal_by_nonce(self, account: bytes,
                            nonce: int) -> tuple[int, int, bytes, bytes, int, int] | None:
        """(block, leaf index, account, recipient, amount, nonce) of the sealed withdrawal leaf
        with this (account, nonce): a signed withdrawal, a deposit refund or a forced withdrawal
        (nonce = FORCED_NONCE_BASE + L1 message nonce)."""
        if not 0 <= nonce < 2**64:
            return None
        raw = self.db.get(WITHDRAWAL_BY_NONCE + account + nonce.to_bytes(8, "big"))
        return None if raw is None else tuple(msgpack.unpackb(raw))  # type: ignore[return-value]

    def block_withdrawal_leaves(self, number: int) -> list[bytes]:
        """The withdrawal leaves of durable block `number`, in leaf order (its withdrawalRoot)."""
        got = self.store.sealed(number)
        if got is None:
            return []
        return [w.leaf() for w in got.withdrawals or ()]

    def l1_message(self, nonce: int) -> L1MessageView | None:
        """How this node processed L1 message `nonce`; None if it has not processed it. Pending
        (no block, no outcome) until the block that processed it is sealed and durable."""
        if not 0 <= nonce < 2**64:
            return None
        m = self._l1_pending.get(nonce)
        if m is None or m.block is not None:  # sealed: answered from the DB once durable
            raw = self.db.get(L1_MESSAGE + nonce.to_bytes(8, "big"))
            if raw is not None:
                return _unpack_l1(nonce, raw)
        if m is None:
            return None
        return m._replace(status="pending", reason=None, block=None, withdrawal=None,
                          leaf_index=None)

    def order(self, digest: bytes) -> Order | None:
        """An order this node accepted (open ones from the book, others from the DB index)."""
        r = self.core.engine.open.get(digest)
        if r is not None:
            return r.order
        raw = self.db.get(ORDER + digest)
        return None if raw is None else Order(*msgpack.unpackb(raw, raw=False))

    def accepted_order_hashes(self) -> Iterator[bytes]:
        """Digests of every order this node accepted and made durable."""
        for key in self.db.iterator(prefix=ORDER, include_value=False):
            yield key[len(ORDER):]

    def order_status(self, digest: bytes) -> tuple[Order, str, int] | None:
        """(order, status, filled amount) of an order this node accepted."""
        order = self.order(digest)
        if order is None:
            return None
        fo = self.core.engine.state.orders.get(digest)
        filled = fo.filled if fo is not None else 0
        if digest in self.core.engine.open:
            status = "partially_filled" if filled else "open"
        else:
            status = "filled" if filled >= order.amount else "cancelled"
        return order, status, filled


def _pack_l1(m: L1MessageView) -> bytes:
    return msgpack.packb([m.kind, m.account, m.counterparty, m.amount, m.l1_block, m.status,
                          m.reason, m.block, None if m.withdrawal is None else list(m.withdrawal),
                          m.leaf_index], use_bin_type=True)


def _unpack_l1(nonce: int, raw: bytes) -> L1MessageView:
    kind, account, counterparty, amount, l1_block, status, reason, block, w, leaf_index = \
        msgpack.unpackb(raw, raw=False)
    return L1MessageView(nonce, kind, account, counterparty, amount, l1_block, status, reason,
                         block, None if w is None else WithdrawalLeaf(*w), leaf_index)
