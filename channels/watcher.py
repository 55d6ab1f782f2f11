"""The channel watcher (design.md "State channels", "The watcher"): it follows the L1
`Adjudicator` for the channels of this party's store and, when a registered state is older than
the latest co-signed state the store holds, refutes it with that state, within the first half of
the window, bumping fees until the refutation is included.

Two layers:

- `decide(statuses, held, now, ...)` is the whole policy, pure (no I/O, no clock): for every
  channel, given its on-chain `ChannelStatus`, what the store holds (`Held`: latest co-signed
  turn, its digest, the channel's challenge period) and the L1 time, one `Decision` with a
  `Reason`. Only `Reason.REFUTE` asks for a transaction; `late` says the first half of the
  window is over (it is still tried while the window is open).
- `Watcher` does the I/O around it. Interface (the service and `optrollup channels watch` use
  exactly this):

      w = Watcher(store, adjudicator, sender, poll_seconds=1.0, confirmations=1,
                  bump_after=24.0, state_path=Path(D) / "watcher.json")
      await w.run()        # until w.stop(); or, in tests, w.tick() and w.join()
      w.stop()             # thread-safe; run() returns soon after (a stopped Watcher stays
                           # stopped: make a new one to run again; stop it before closing the store)
      w.statuses           # {channel id: ChannelStatus} as last read
      w.refutations        # [Refutation] sent by this Watcher (outcome, tx, attempts, late)

  `store` is the party's `ChannelStore`; `adjudicator` a `sequencer.l1.adjudicator.Adjudicator`
  (its client is the L1 client used for everything); `sender` the L1 key paying for
  refutations: a `LocalAccount` (the Watcher builds its own `TxManager` with
  `resubmit_after=bump_after` and `confirmations`, and can interrupt it on `stop()`), or a
  ready `TxManager` (then its own config rules bumping). Give the watcher a key no other
  component sends from at the same time, or pass the one TxManager of that key: two managers
  of one key race for nonces (a lost race is retried, but costs time).

What one `tick()` does: reads the L1 time (latest block); picks up channels new in the store
(only those of this Adjudicator's EIP-712 domain); on the first tick reads the on-chain status
of every channel (so a restart in the middle of a window still refutes); polls the
Adjudicator's `ChallengeRegistered`/`Concluded` events from the persisted cursor
(`EventTracker`, at the latest block: reacting fast matters more than depth here, and statuses
are re-read, never inferred from events) and re-reads the status of every channel an event
touches, plus of every channel whose window is open; then `decide`s and starts one sending
thread per refutation. `run()` calls `tick()` in a worker thread every `poll_seconds` (L1
errors are logged and retried with a backoff), so it fits in the service's event loop.

Sending a refutation: `Adjudicator.challenge(fixed, latest, sigA, sigB)` through the
TxManager: gas estimated against the latest block (a refutation that would revert is never
sent), EIP-1559 fees re-signed with bumped fees every `bump_after` seconds while not mined,
until included with `confirmations`. The outcome is checked against the chain: a revert
because the channel already holds our turn (our earlier run's transaction was mined, or someone
else sent the same state) counts as done; `ChallengeWindowClosed` is lost (logged as an error);
a revert that says the stored state itself is unusable (`WrongSigner`, ...) is not retried for
that turn; anything else (L1 down, timeout, no ETH for gas) is retried with a backoff. A channel
with a refutation in flight is never sent a second one; once a turn is registered on chain,
`decide` answers REGISTERED_CURRENT and nothing is sent again. A crash with a transaction in the
mempool is safe: the next run's TxManager starts from the mined nonce and re-sends (the same
bytes are "already known"; different fees replace it).

Persistence (`state_path`, JSON written atomically): the chain id and Adjudicator it belongs
to, the tracker cursor (block + hash, so a reorg or devnet revert rewinds it), and the
refutations that were included. Without `state_path` the watcher starts at the head every time
(correct, since statuses are re-read, but it does not report what happened while it was down).

`optrollup channels watch` (`add_watch_parser`) runs a Watcher alone, for a party whose
service is stopped: LevelDB allows one process per store, so it cannot open a store a running
service holds (it fails with `data_dir_locked`); the service runs the same Watcher inside. The
store is `default_store_path(D)` = `D/db` unless the caller of `add_watch_parser` passes its own
`store_path`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from eth_account.signers.local import LocalAccount

from channels.errors import ChannelStoreLocked
from channels.rules import Channel
from channels.store import ChannelStore, Cosigned
from sequencer.core.channelmsg import fixed_of
from sequencer.errors import OptrollupError
from sequencer.l1.adjudicator import Adjudicator, ChannelStatus, from_event
from sequencer.l1.client import Receipt
from sequencer.l1.errors import ContractRevert, L1Error, L1Unavailable, NonceTaken
from sequencer.l1.tracker import Cursor, EventTracker
from sequencer.l1.txmanager import TxConfig, TxManager

logger = logging.getLogger("optrollup.channels.watcher")

__all__ = [
    "Decision", "Held", "Reason", "Refutation", "Watcher", "WatcherStopped", "add_watch_arguments",
    "add_watch_parser", "decide", "decide_one", "default_state_path", "default_store_path",
    "held_of", "run_watch", "watch_command",
]

# ----------------------------------------------------------------------------------------------
# the policy (pure)
# ----------------------------------------------------------------------------------------------


class Reason(enum.Enum):
    """Why `decide` answered what it did for one channel (checked in this order)."""

    NO_DISPUTE = "no_dispute"                  # nothing registered on L1
    CONCLUDED = "concluded"                    # the channel has concluded: nothing can change
    NOTHING_HELD = "nothing_held"              # the store has no co-signed state of it
    REGISTERED_NEWER = "registered_newer"      # the registered turn is above ours
    REGISTERED_CURRENT = "registered_current"  # our latest state is the registered one
    CONFLICT = "conflict"                      # same turn, another digest: a double signature
    WINDOW_CLOSED = "window_closed"            # ours is newer, but the window has ended
    FAILED = "failed"                          # refuting with this turn failed for good
    IN_FLIGHT = "in_flight"                    # a refutation is being sent (or waits to retry)
    REFUTE = "refute"                          # send ours now (see `late`)


class Held(NamedTuple):
    """What the store holds of a channel, as far as `decide` cares: the latest co-signed turn,
    that state's EIP-712 digest, and the channel's challenge period (seconds)."""

    turn: int
    digest: bytes
    challenge_period: int


class Decision(NamedTuple):
    """`decide`'s answer for one channel. `turn` is ours (None when nothing is held, or when
    no dispute is open and the Watcher did not look); `half_ends_at` is the first L1 second at which a refutation counts as late (None without a
    window); `late` is set on REFUTE when that second has passed."""

    channel_id: bytes
    reason: Reason
    turn: int | None = None
    registered_turn: int = 0
    finalizes_at: int = 0
    half_ends_at: int | None = None
    late: bool = False

    @property
    def refute(self) -> bool:
        return self.reason is Reason.REFUTE


def held_of(channel: Channel, latest: Cosigned | None) -> Held | None:
    """The `Held` of a channel from the store's `channel(id)` and `latest(id)`."""
    if latest is None:
        return None
    return Held(latest.state.turnNum, latest.digest, channel.open.challengePeriod)


def decide_one(channel_id: bytes, status: ChannelStatus, held: Held | None, now: int, *,
               in_flight: bool = False, failed_turn: int | None = None) -> Decision:
    """The decision for one channel at L1 time `now` (seconds). `in_flight`: a refutation of
    this channel is being sent; `failed_turn`: the highest of our turns whose refutation failed
    for good (a stored state L1 refuses). Refuting is "late" once half of the window has passed:
    2·(finalizesAt − now) ≤ challengePeriod (the window began at finalizesAt − period and a
    refutation does not extend it)."""
    reg, fin = status.turn_num, status.finalizes_at
    base = Decision(channel_id, Reason.NO_DISPUTE, None if held is None else held.turn, reg, fin)
    if not status.registered:
        return base
    if status.concluded:
        return base._replace(reason=Reason.CONCLUDED)
    if held is None:
        return base._replace(reason=Reason.NOTHING_HELD)
    half = fin - held.challenge_period // 2
    base = base._replace(half_ends_at=half)
    if held.turn < reg:
        return base._replace(reason=Reason.REGISTERED_NEWER)
    if held.turn == reg:
        same = bytes(held.digest) == bytes(status.state_hash)
        return base._replace(reason=Reason.REGISTERED_CURRENT if same else Reason.CONFLICT)
    if now >= fin:
        return base._replace(reason=Reason.WINDOW_CLOSED)
    if failed_turn is not None and failed_turn >= held.turn:
        return base._replace(reason=Reason.FAILED)
    if in_flight:
        return base._replace(reason=Reason.IN_FLIGHT)
    return base._replace(reason=Reason.REFUTE, late=2 * (fin - now) <= held.challenge_period)


def decide(statuses: Mapping[bytes, ChannelStatus], held: Mapping[bytes, Held | None], now: int, *,
           in_flight: Collection[bytes] = (), failed: Mapping[bytes, int] | None = None) -> list[Decision]:
    """One `Decision` per channel of `statuses` (a channel missing from `held` holds nothing),
    refutations first, the most urgent (earliest `finalizes_at`) first, then the rest in the
    order of `statuses`. Pure: the same inputs give the same list."""
    failed = failed or {}
    out = [decide_one(cid, st, held.get(cid), now, in_flight=cid in in_flight, failed_turn=failed.get(cid))
           for cid, st in statuses.items()]
    refute = sorted((d for d in out if d.refute), key=lambda d: (d.finalizes_at, d.channel_id))
    return refute + [d for d in out if not d.refute]


# ----------------------------------------------------------------------------------------------
# persistence
# ----------------------------------------------------------------------------------------------

STATE_VERSION = 1


def default_store_path(data_dir: str | os.PathLike[str]) -> Path:
    """Where the channel service keeps its LevelDB inside its data dir (as the node: DIR/db)."""
    return Path(data_dir) / "db"


def default_state_path(data_dir: str | os.PathLike[str]) -> Path:
    """The watcher's cursor and record of refutations inside the data dir."""
    return Path(data_dir) / "watcher.json"


@dataclass
class Refutation:
    """One refutation this Watcher sent (or tried to). `outcome`: "sending", "included",
    "already" (the chain already held our turn: mined by an earlier run or by someone else),
    "too_late", "failed" (L1 refuses the stored state: not retried for this turn), "retry"
    (a transient failure: tried again later), "stopped"."""

    channel_id: bytes
    turn: int
    registered_turn: int
    finalizes_at: int
    late: bool
    outcome: str = "sending"
    tx_hash: str | None = None
    block_number: int | None = None
    attempts: list[str] = field(default_factory=list)  # tx hash of every signed attempt
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"channelId": "0x" + self.channel_id.hex(), "turn": self.turn,
                "registeredTurn": self.registered_turn, "finalizesAt": self.finalizes_at,
                "late": self.late, "outcome": self.outcome, "txHash": self.tx_hash,
                "blockNumber": self.block_number, "attempts": list(self.attempts), "error": self.error}


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    with contextlib.suppress(OSError):
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ----------------------------------------------------------------------------------------------
# the watcher
# ----------------------------------------------------------------------------------------------


class WatcherStopped(Exception):
    """Raised inside a sending thread when the Watcher stops (its TxManager's sleep)."""


#: reverts that say the stored state itself can never be registered (not retried for its turn)
_UNUSABLE = frozenset({"ChannelIdMismatch", "InvalidSignature", "WrongSigner", "PositionsNotSorted",
                       "ZeroPositionAmount"})
_MAX_BACKOFF = 60.0


class Watcher:
    """Follows the Adjudicator for the channels of `store` and refutes stale registrations;
    see the module docstring for the interface and behaviour."""

    def __init__(
        self,
        store: ChannelStore,
        adjudicator: Adjudicator,
        sender: LocalAccount | TxManager,
        *,
        poll_seconds: float = 1.0,
        confirmations: int = 1,
        bump_after: float = 24.0,
        state_path: str | os.PathLike[str] | None = None,
        max_fee_cap: int | None = None,
    ) -> None:
        if poll_seconds <= 0 or bump_after <= 0 or confirmations < 1:
            raise ValueError("poll_seconds and bump_after must be > 0, confirmations >= 1")
        self.store = store
        self.adjudicator = adjudicator
        self.client = adjudicator.client
        self.poll_seconds = float(poll_seconds)
        self.state_path = Path(state_path) if state_path is not None else None
        self._stop = threading.Event()
        if isinstance(sender, TxManager):
            self.txm = sender
        else:
            cfg = TxConfig(confirmations=confirmations, resubmit_after=float(bump_after), timeout=600.0,
                           poll=min(1.0, max(0.05, self.poll_seconds / 4)), max_fee_cap=max_fee_cap,
                           label="watcher")
            self.txm = TxManager(self.client, sender, cfg, sleep=self._interruptible_sleep)
        self._lock = threading.RLock()
        self.statuses: dict[bytes, ChannelStatus] = {}
        self.refutations: list[Refutation] = []
        self._channels: dict[bytes, Channel] = {}
        self._foreign: set[bytes] = set()
        self._domain: bytes | None = None
        self._tracker: EventTracker | None = None
        self._start_block = 0
        self._saved_cursor: Cursor | None = None
        self._included: dict[str, dict[str, Any]] = {}  # persisted record of included refutations
        self._included_saved: dict[str, dict[str, Any]] | None = None
        self._in_flight: dict[bytes, threading.Thread] = {}
        self._retry_at: dict[bytes, float] = {}
        self._retries: dict[bytes, int] = {}
        self._failed: dict[bytes, int] = {}
        self._dirty: set[bytes] = set()
        self._noted: dict[bytes, tuple[Any, ...]] = {}
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ----------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The L1 address paying for refutations."""
        return self.txm.address

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Stop `run()` and interrupt sends in progress (thread-safe, idempotent). A refutation
        already in the mempool stays there; the next run takes it over."""
        self._stop.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(wake.set)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the sending threads started so far; True when none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._in_flight.values())
            if not threads:
                return True
            for t in threads:
                t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if deadline is not None and time.monotonic() >= deadline:
                with self._lock:
                    return not self._in_flight

    async def run(self) -> None:
        """Tick every `poll_seconds` until `stop()`. Errors of a tick (L1 unreachable, ...) are
        logged and retried with a backoff of up to a minute."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    await asyncio.to_thread(self.tick)
                    failures = 0
                    delay = self.poll_seconds
                except WatcherStopped:
                    break
                except Exception as exc:  # noqa: BLE001 - the watcher must outlive any L1 hiccup
                    failures += 1
                    delay = min(_MAX_BACKOFF, self.poll_seconds * 2 ** min(failures, 10))
                    logger.warning("watcher tick failed (%s); next try in %.1fs",
                                   exc.message if isinstance(exc, OptrollupError) else repr(exc), delay)
                if self._stop.is_set():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            self._stop.set()
            await asyncio.to_thread(self.join, 15.0)
            with contextlib.suppress(Exception):
                self._save()
            self._loop = self._wake = None

    def _interruptible_sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise WatcherStopped("the watcher is stopping")

    # -- one round ----------------------------------------------------------------------------------

    def tick(self) -> list[Decision]:
        """One round (see the module docstring); returns the decisions, refutations first.
        Refutations are sent in background threads (`join()` waits for them)."""
        if self._tracker is None:
            self._start()
        assert self._tracker is not None
        now = self.client.get_block_timestamp("latest")
        refresh: set[bytes] = set()
        for cid in self.store.channel_ids():
            if cid in self._channels or cid in self._foreign:
                continue
            ch = self.store.channel(cid)
            if ch is None:
                continue
            if ch.domain != self._domain:
                self._foreign.add(cid)
                logger.warning("channel 0x%s is not in the EIP-712 domain of the Adjudicator at %s "
                               "(another rollup or L2 chain): not watched here", cid.hex(),
                               self.adjudicator.address)
                continue
            self._channels[cid] = ch
            refresh.add(cid)
        update = self._tracker.poll()
        if update.rewound_to is not None:
            logger.warning("L1 reorg: rescanning the Adjudicator's events from block %d", update.rewound_to)
            refresh |= set(self._channels)
        for ev in update.events:
            typed = from_event(ev)
            if typed.channel_id in self._channels:
                logger.info("channel 0x%s: %s turn %d in L1 block %d (tx %s)", typed.channel_id.hex(),
                            ev.name, typed.turn_num, typed.block_number, typed.tx_hash)
                refresh.add(typed.channel_id)
        with self._lock:
            refresh |= self._dirty & set(self._channels)
            self._dirty.clear()
        refresh |= {cid for cid, st in self.statuses.items() if st.window_open(now)}
        for cid in sorted(refresh):
            self.statuses[cid] = self.adjudicator.status(cid)

        held: dict[bytes, Held | None] = {}
        latest: dict[bytes, Cosigned] = {}
        for cid, st in self.statuses.items():
            if st.registered and not st.concluded:
                co = self.store.latest(cid)
                held[cid] = held_of(self._channels[cid], co)
                if co is not None:
                    latest[cid] = co
        with self._lock:
            clock = time.monotonic()
            busy = set(self._in_flight) | {cid for cid, at in self._retry_at.items() if at > clock}
            failed = dict(self._failed)
        decisions = decide(self.statuses, held, now, in_flight=busy, failed=failed)
        for d in decisions:
            self._note(d, now)
            if d.refute and not self._stop.is_set():
                self._start_refutation(d, self._channels[d.channel_id], latest[d.channel_id])
        self._save_if_moved(update.cursor)
        return decisions

    def _start(self) -> None:
        """First tick: the domain, the persisted cursor, the tracker."""
        self._domain = self.adjudicator.domain_separator()
        head = self.client.block_number()
        start, cursor = head, None
        saved = self._load()
        if saved is not None:
            start, cursor = saved
        self._start_block = start
        self._tracker = EventTracker(self.client, [self.adjudicator.subscription()], start_block=start,
                                     confirmations=1, cursor=cursor)
        self._saved_cursor = cursor
        logger.info("watching the channels of the store at the Adjudicator %s from L1 block %d "
                    "(refutations paid by %s)", self.adjudicator.address, self._tracker.cursor.block + 1,
                    self.address)

    def _note(self, d: Decision, now: int) -> None:
        """Log a decision when it changes (not every tick)."""
        key = (d.reason, d.turn, d.registered_turn, d.finalizes_at)
        if self._noted.get(d.channel_id) == key and not d.refute:
            return
        self._noted[d.channel_id] = key
        cid = "0x" + d.channel_id.hex()
        if d.reason is Reason.REFUTE:
            if d.late:
                logger.error("channel %s: stale turn %d registered, refuting with turn %d LATE: the "
                             "first half of the window ended at %d, it closes at %d (L1 time now %d)",
                             cid, d.registered_turn, d.turn, d.half_ends_at, d.finalizes_at, now)
            else:
                logger.warning("channel %s: stale turn %d registered, refuting with turn %d (window "
                               "closes at %d, first half ends at %d, L1 time now %d)", cid,
                               d.registered_turn, d.turn, d.finalizes_at, d.half_ends_at, now)
        elif d.reason is Reason.CONFLICT:
            logger.error("channel %s: turn %d is registered with another state than the one we hold "
                         "(a second signature for one turn: investigate the signing keys)", cid, d.turn)
        elif d.reason is Reason.WINDOW_CLOSED:
            logger.error("channel %s: turn %d is registered and its window closed at %d; we hold turn "
                         "%d but can no longer refute", cid, d.registered_turn, d.finalizes_at, d.turn)
        elif d.reason is Reason.NOTHING_HELD:
            logger.warning("channel %s: turn %d is registered; we hold no co-signed state of it",
                           cid, d.registered_turn)
        elif d.reason in (Reason.REGISTERED_CURRENT, Reason.REGISTERED_NEWER, Reason.CONCLUDED):
            logger.info("channel %s: %s (registered turn %d, ours %s)", cid, d.reason.value,
                        d.registered_turn, d.turn)

    # -- sending --------------------------------------------------------------------------------------

    def _start_refutation(self, d: Decision, ch: Channel, co: Cosigned) -> None:
        rec = Refutation(d.channel_id, d.turn or 0, d.registered_turn, d.finalizes_at, d.late)
        t = threading.Thread(target=self._refute, args=(rec, ch, co), daemon=True,
                             name=f"refute-{d.channel_id.hex()[:8]}-{rec.turn}")
        with self._lock:
            self.refutations.append(rec)
            self._in_flight[d.channel_id] = t
            self._retry_at.pop(d.channel_id, None)
        t.start()

    def _refute(self, rec: Refutation, ch: Channel, co: Cosigned) -> None:
        adj, cid = self.adjudicator, rec.channel_id
        what = f"refutation of channel 0x{cid.hex()} with turn {rec.turn}"
        permanent = transient = False
        try:
            data = adj.encode_challenge(fixed_of(ch.open), co.state, co.sigA, co.sigB)
            # the watcher's time: the rest of the window plus a margin (L1 time ~ wall time)
            now = self.client.get_block_timestamp("latest")
            timeout = max(60.0, float(rec.finalizes_at - now) + 120.0)
            for tries in range(3):
                try:
                    result = self.txm.send(adj.address, data, timeout=timeout, context=what)
                    break
                except NonceTaken as exc:
                    if tries == 2:
                        raise
                    logger.info("%s: %s; sending it again", what, exc.message)
            rec.attempts = [a.tx_hash for a in result.attempts]
            self._record_included(rec, result.receipt, ch, what)
        except WatcherStopped:
            rec.outcome = "stopped"
            rec.attempts = [a.tx_hash for a in self.txm.current]
            with contextlib.suppress(OptrollupError, OSError):  # mined already? record it
                for h in reversed(rec.attempts):
                    r = self.client.get_receipt(h)
                    # (`current` is the manager's latest send: make sure it is this refutation)
                    if r is not None and r.ok and any(e.channel_id == cid and e.turn_num == rec.turn
                                                      for e in adj.decode_receipt(r)):
                        self._record_included(rec, r, ch, what)
                        break
        except ContractRevert as exc:
            rec.error = exc.message
            st = self._status_or_none(cid)
            if st is not None and st.turn_num >= rec.turn:
                rec.outcome = "already"
                logger.info("%s: the chain already holds turn %d (%s)", what, st.turn_num, exc.error)
            elif exc.error in ("ChallengeWindowClosed", "ChannelAlreadyConcluded"):
                rec.outcome = "too_late"
                logger.error("%s: the window closed before it was included", what)
            elif exc.error in _UNUSABLE:
                rec.outcome, permanent = "failed", True
                logger.error("%s: L1 refuses the stored state (%s): not retried for this turn",
                             what, exc.message)
            else:
                rec.outcome, transient = "retry", True
                logger.error("%s: %s", what, exc.message)
        except (OptrollupError, OSError) as exc:  # L1Error, L1Unavailable, SendError, ...
            rec.outcome, transient = "retry", True
            rec.error = exc.message if isinstance(exc, OptrollupError) else repr(exc)
            logger.error("%s failed: %s; retrying", what, rec.error)
        except Exception as exc:
            rec.outcome, transient = "retry", True
            rec.error = repr(exc)
            logger.exception("%s failed unexpectedly; retrying", what)
        finally:
            with self._lock:
                self._in_flight.pop(cid, None)
                self._dirty.add(cid)
                if permanent:
                    self._failed[cid] = max(self._failed.get(cid, -1), rec.turn)
                if transient:
                    k = self._retries[cid] = self._retries.get(cid, 0) + 1
                    self._retry_at[cid] = time.monotonic() + min(_MAX_BACKOFF, self.poll_seconds * 2 ** min(k, 10))
                else:
                    self._retries.pop(cid, None)
                    self._retry_at.pop(cid, None)

    def _record_included(self, rec: Refutation, r: Receipt, ch: Channel, what: str) -> None:
        rec.outcome, rec.tx_hash, rec.block_number = "included", r.tx_hash, r.block_number
        with self._lock:
            self._included["0x" + rec.channel_id.hex()] = rec.to_json()
        at = self.client.get_block_timestamp(r.block_number)
        late = at >= rec.finalizes_at - ch.open.challengePeriod // 2
        (logger.warning if late else logger.info)(
            "%s included in L1 block %d at %d (%s, %d attempt(s)%s)", what, r.block_number, at, r.tx_hash,
            len(rec.attempts), "; LATE: after the first half of the window" if late else "")

    def _status_or_none(self, cid: bytes) -> ChannelStatus | None:
        try:
            return self.adjudicator.status(cid)
        except (L1Error, L1Unavailable):
            return None

    # -- persistence ----------------------------------------------------------------------------------

    def _load(self) -> tuple[int, Cursor] | None:
        """(start block, cursor) from the state file when it is this chain's and Adjudicator's."""
        p = self.state_path
        if p is None or not p.exists():
            return None
        try:
            o = json.loads(p.read_text())
            if o.get("version") != STATE_VERSION:
                raise ValueError(f"version {o.get('version')}")
            if int(o["chainId"]) != self.client.chain_id or \
                    str(o["adjudicator"]).lower() != self.adjudicator.address.lower():
                logger.warning("%s belongs to another chain or Adjudicator: starting at the head", p)
                return None
            cur = Cursor(int(o["cursor"]["block"]), str(o["cursor"]["hash"]))
            self._included = dict(o.get("refutations") or {})
            return int(o["startBlock"]), cur
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("cannot read the watcher state %s (%s): starting at the head", p, exc)
            return None

    def _save_if_moved(self, cursor: Cursor) -> None:
        if cursor != self._saved_cursor or self._included_changed():
            self._save(cursor)

    def _included_changed(self) -> bool:
        with self._lock:
            return self._included_saved != self._included

    def _save(self, cursor: Cursor | None = None) -> None:
        if self.state_path is None or self._tracker is None:
            return
        cursor = cursor or self._tracker.cursor
        with self._lock:
            included = {k: dict(v) for k, v in self._included.items()}
        o = {"version": STATE_VERSION, "chainId": self.client.chain_id, "adjudicator": self.adjudicator.address,
             "startBlock": self._start_block, "cursor": {"block": cursor.block, "hash": cursor.block_hash},
             "refutations": included}
        _write_atomic(self.state_path, json.dumps(o, indent=1, sort_keys=True).encode())
        self._saved_cursor = cursor
        self._included_saved = included


# ----------------------------------------------------------------------------------------------
# the command: optrollup channels watch
# ----------------------------------------------------------------------------------------------

WATCH_HELP = "refute stale channel states on L1 (for a party whose channel service is stopped)"
WATCH_DESCRIPTION = (
    "Follow the L1 Adjudicator for the channels in the store of DIR and refute any registered state "
    "older than the latest co-signed one, within the first half of the challenge window, bumping "
    "fees until included. The channel service runs this same watcher inside; the store can be open "
    "in one process only, so use `watch` while the service is stopped. The key pays L1 gas (anyone "
    "may send a refutation); its password: --password-file, --password-env or $OPTROLLUP_PASSWORD.")


def add_watch_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `optrollup channels watch`."""
    from sequencer.keys import PASSWORD_ENV, refuse_raw_key_option

    p.add_argument("--data-dir", required=True, metavar="DIR", help="the channel service's data dir")
    p.add_argument("--keystore", required=True, metavar="FILE",
                   help="encrypted JSON keystore of the L1 key that pays for refutations")
    p.add_argument("--password-file", metavar="FILE",
                   help=f"keystore password: the first line of FILE (else --password-env, else ${PASSWORD_ENV})")
    p.add_argument("--password-env", metavar="NAME", help="read the keystore password from variable NAME")
    p.add_argument("--l1-rpc", required=True, metavar="URL", help="L1 JSON-RPC endpoint")
    p.add_argument("--adjudicator", required=True, metavar="ADDR", help="the L1 Adjudicator's address")
    p.add_argument("--poll-seconds", type=float, default=1.0, metavar="S", help="poll interval (default 1)")
    p.add_argument("--confirmations", type=int, default=1, metavar="N",
                   help="blocks a refutation must be deep to count as included (default 1)")
    p.add_argument("--bump-after", type=float, default=24.0, metavar="S",
                   help="re-sign a refutation with higher fees when not mined after S seconds (default 24)")
    p.add_argument("--max-fee-gwei", type=float, default=None, metavar="G",
                   help="never offer more than G gwei per gas (default: no cap; bumping goes on until included)")
    refuse_raw_key_option(p)


def add_watch_parser(subparsers: argparse._SubParsersAction, *,  # argparse has no public type for it
                     store_path: Callable[[Path], Path] = default_store_path) -> argparse.ArgumentParser:
    """Add `watch` to `subparsers` (the `channels` command's). `store_path(data_dir)` says where
    the service keeps its LevelDB (default DIR/db); the state file is DIR/watcher.json."""
    p = subparsers.add_parser("watch", help=WATCH_HELP, description=WATCH_DESCRIPTION)
    add_watch_arguments(p)
    p.set_defaults(func=lambda args: watch_command(args, store_path=store_path))
    return p


def watch_command(args: argparse.Namespace, *,
                  store_path: Callable[[Path], Path] = default_store_path) -> int:
    """Run `optrollup channels watch` until SIGINT/SIGTERM."""
    from sequencer.keys import load_key
    from sequencer.l1.client import L1Client

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per JSON-RPC call otherwise
    account = load_key(args.keystore, password_file=args.password_file, password_env=args.password_env)
    data_dir = Path(args.data_dir)
    spath = store_path(data_dir)
    if not spath.exists():
        raise OptrollupError(f"no channel store at {spath}", code="no_channel_store")
    try:
        store = ChannelStore(spath)
    except ChannelStoreLocked:
        raise ChannelStoreLocked(f"the channel store {spath} is in use (is `optrollup channels serve` "
                                 "running? it runs the same watcher inside: stop it to watch alone)") from None
    with store, L1Client(args.l1_rpc) as client:
        adj = Adjudicator.at(client, args.adjudicator)
        if not client.get_code(adj.address):
            raise L1Error(f"no contract at {adj.address} on {args.l1_rpc}")
        cap = None if args.max_fee_gwei is None else int(args.max_fee_gwei * 10**9)
        w = Watcher(store, adj, account, poll_seconds=args.poll_seconds, confirmations=args.confirmations,
                    bump_after=args.bump_after, state_path=default_state_path(data_dir), max_fee_cap=cap)
        asyncio.run(run_watch(w))
    return 0


async def run_watch(w: Watcher, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """`w.run()` with `signals` stopping it."""
    loop = asyncio.get_running_loop()
    for s in signals:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(s, w.stop)
    try:
        await w.run()
    finally:
        for s in signals:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(s)
