"""The one L1 event reader: chunked, incremental, resumable, reorg-aware.

`EventTracker` follows chosen events of chosen contracts with `eth_getLogs`:

- in block ranges of at most `chunk` blocks (one request per range for every contract and event;
  a range the node refuses as too large is halved and tried again);
- only up to the safe head, `head - confirmations + 1`, so what it reports has that depth;
- incrementally: each poll starts after the last block scanned. `cursor` (block and hash) says
  where it is; a tracker built with a saved cursor resumes there;
- reorg-aware: it keeps the hash of each range's last block (a checkpoint). When the cursor's
  block is no longer canonical (a reorg deeper than `confirmations`, or a devnet snapshot
  revert) it rewinds to the newest checkpoint still on the chain (or to its start), reports that
  block as `rewound_to`, and scans again from there; events from later blocks that it reported
  before are void;
- failure-safe: a poll that fails part-way (L1 unreachable) raises, and what it read by then is
  reported by the next poll; nothing is skipped or reported twice.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sequencer.l1.client import L1Client
from sequencer.l1.contracts import Contract, Event
from sequencer.l1.errors import RpcError

log = logging.getLogger("optrollup.l1.tracker")

DEFAULT_CHUNK = 5_000
#: how nodes and providers say a log query spans too much (the range is halved and retried)
_RANGE_REFUSALS = ("range", "limit", "too many", "too large", "exceed", "more than", "response size")


@dataclass(frozen=True)
class Cursor:
    """The last L1 block scanned and its hash at the time ("": not checked for reorgs)."""

    block: int
    block_hash: str = ""


@dataclass(frozen=True)
class TrackerUpdate:
    """What one poll found. When `rewound_to` is set, events from blocks after it that earlier
    polls reported are void (they are reported again if they are still on the chain)."""

    events: list[Event]
    rewound_to: int | None
    cursor: Cursor


class EventTracker:
    """Follows `subscriptions` (contract, event names) from L1 block `start_block` on."""

    def __init__(
        self,
        client: L1Client,
        subscriptions: Sequence[tuple[Contract, Sequence[str]]],
        *,
        start_block: int,
        confirmations: int = 1,
        chunk: int = DEFAULT_CHUNK,
        cursor: Cursor | None = None,
        keep: int = 256,
    ) -> None:
        if confirmations < 1 or chunk < 1:
            raise ValueError("confirmations and chunk must be >= 1")
        self.client = client
        self.start_block = max(0, start_block)
        self.confirmations = confirmations
        self.chunk = chunk
        self._subs: dict[str, tuple[Contract, frozenset[str]]] = {}
        topics: set[bytes] = set()
        for contract, names in subscriptions:
            prev = self._subs.get(contract.address, (contract, frozenset()))[1]
            self._subs[contract.address] = (contract, prev | frozenset(names))
            topics.update(contract.abi.event(n).topic0 for n in names)
        self._topics = sorted(topics)
        self._checkpoints: deque[Cursor] = deque(maxlen=keep)
        if cursor is not None and cursor.block >= self.start_block:
            self._checkpoints.append(cursor)
        self._scanned = self.cursor.block
        # read but not reported yet (a poll that fails part-way keeps its progress for the next)
        self._pending: list[Event] = []
        self._pending_rewind: int | None = None

    @property
    def cursor(self) -> Cursor:
        """Where the next poll continues from (save it to resume in another tracker)."""
        return self._checkpoints[-1] if self._checkpoints else Cursor(self.start_block - 1)

    def safe_head(self) -> int:
        """The newest L1 block with `confirmations` confirmations."""
        return self.client.block_number() - (self.confirmations - 1)

    def poll(self, to_block: int | None = None) -> TrackerUpdate:
        """Scan from the cursor to the safe head (or `to_block` if lower). If it fails part-way
        (L1 unreachable) it raises; what it read by then is reported by the next poll."""
        target = self.safe_head()
        if to_block is not None:
            target = min(target, to_block)
        self._check_reorg()
        start = self._scanned + 1
        while start <= target:
            end = min(target, start + self.chunk - 1)
            end_hash = self._hash(end)  # before the logs: a reorg in between shows up next poll
            if end_hash is None:
                break  # the chain got shorter under us; the next poll sorts it out
            try:
                logs = self.client.get_logs(address=list(self._subs), topics=[self._topics],
                                            from_block=start, to_block=end)
            except RpcError as exc:
                if end == start or not any(m in exc.rpc_message.lower() for m in _RANGE_REFUSALS):
                    raise
                self.chunk = max(1, (end - start + 1) // 2)
                log.info("eth_getLogs refused blocks %d..%d (%s); ranges of %d blocks from now on",
                         start, end, exc.rpc_message, self.chunk)
                continue
            found = []
            for lg in logs:
                sub = self._subs.get(lg.address)
                if sub is None or lg.removed:
                    continue
                ev = sub[0].decode_log(lg)
                if ev is not None and ev.name in sub[1]:
                    found.append(ev)
            found.sort(key=lambda e: (e.block_number, e.log_index))
            self._pending += found
            self._scanned = end
            self._checkpoints.append(Cursor(end, end_hash))
            start = end + 1
        events, self._pending = self._pending, []
        rewound, self._pending_rewind = self._pending_rewind, None
        return TrackerUpdate(events, rewound, self.cursor)

    # -- internals --------------------------------------------------------------------------------

    def _hash(self, block: int) -> str | None:
        b = self.client.get_block(block)
        return None if b is None else str(b.get("hash"))

    def _canonical(self, cp: Cursor) -> bool:
        return not cp.block_hash or self._hash(cp.block) == cp.block_hash  # no hash: trusted

    def _check_reorg(self) -> None:
        """Rewind while the cursor's block is no longer canonical (to the newest checkpoint that
        is, or to the start)."""
        if not self._checkpoints or self._canonical(self._checkpoints[-1]):
            return
        gone = self._checkpoints[-1]
        while self._checkpoints and not self._canonical(self._checkpoints[-1]):
            self._checkpoints.pop()
            self._rewind(self.cursor.block)
        log.warning("L1 block %d (%s) is no longer canonical: rescanning from block %d",
                    gone.block, gone.block_hash, self._scanned + 1)

    def _rewind(self, block: int) -> None:
        self._scanned = block
        self._pending = [e for e in self._pending if e.block_number <= block]
        self._pending_rewind = block if self._pending_rewind is None else min(self._pending_rewind, block)
