"""What L1 says about one rollup: its live batches and the L1 messages to its Bridge.

`RollupTracker` reads `BatchSubmitted`, `BatchesRejected`, `RollupFrozen` (Rollup) and the two
kinds of L1 message, `Deposited` and `WithdrawalRequested` (Bridge, one nonce space,
docs/encoding.md) through one `EventTracker` (chunked, incremental, reorg-aware), and folds the batch
events into the live batches: batch `i` is the latest `BatchSubmitted` with index `i` while
`i < batchCount` (a guardian rejection or the freeze lowers `batchCount`, and a later batch
reuses the index). Used by the node's L1 follower and by the replay verifier / escape hatch.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

from cext import keccak256, parse_address
from sequencer.l1.abi import ContractAbi
from sequencer.l1.client import L1Client
from sequencer.l1.contracts import Contract, Event
from sequencer.l1.errors import L1Error
from sequencer.l1.tracker import DEFAULT_CHUNK, Cursor, EventTracker

BATCH_EVENTS = ("BatchSubmitted", "BatchesRejected", "RollupFrozen")
MESSAGE_EVENTS = ("Deposited", "WithdrawalRequested")

WITHDRAWAL_REQUESTED_TOPIC = keccak256(b"WithdrawalRequested(uint256,address,address,uint256)")
_WITHDRAWAL_REQUESTED_ABI = {
    "type": "event", "name": "WithdrawalRequested", "anonymous": False,
    "inputs": [{"name": "nonce", "type": "uint256", "indexed": True},
               {"name": "account", "type": "address", "indexed": True},
               {"name": "recipient", "type": "address", "indexed": True},
               {"name": "amount", "type": "uint256", "indexed": False}]}


def with_message_events(bridge: Contract) -> Contract:
    """`bridge`, with `WithdrawalRequested` added to its ABI if its artifact predates it (the
    event as docs/encoding.md fixes it). L1Error if the artifact has the event with another
    signature: its logs would go unseen."""
    ev = bridge.abi.events.get("WithdrawalRequested")
    if ev is not None:
        if ev.topic0 != WITHDRAWAL_REQUESTED_TOPIC:
            raise L1Error(f"the Bridge ABI has {ev.signature}, not WithdrawalRequested(uint256,"
                          "address,address,uint256) as docs/encoding.md fixes it")
        return bridge
    abi = ContractAbi.from_abi([*bridge.abi.items, _WITHDRAWAL_REQUESTED_ABI])
    return Contract(bridge.client, abi, bridge.address, bridge.name)


@dataclass(frozen=True)
class SubmittedBatch:
    """A batch as its `BatchSubmitted` event has it."""

    index: int
    first_block: int
    last_block: int
    last_header_hash: bytes
    state_root: bytes
    withdrawals_root: bytes
    data_hash: bytes
    tx_hash: str
    l1_block: int
    message_cursor: int = 0  # L1 messages the batch's last header has processed
    marks_root: bytes = b"\0" * 32  # consensus marks after the last block (escape valuation)

    @classmethod
    def from_event(cls, ev: Event) -> SubmittedBatch:
        return cls(int(ev["batchIndex"]), int(ev["firstBlock"]), int(ev["lastBlock"]),
                   bytes(ev["lastHeaderHash"]), bytes(ev["stateRoot"]), bytes(ev["withdrawalsRoot"]),
                   bytes(ev["dataHash"]), ev.tx_hash, ev.block_number, int(ev["messageCursor"]),
                   bytes(ev["marksRoot"]))


@dataclass(frozen=True)
class DepositEvent:
    """A `Deposited` event of the Bridge (`account`: the L2 account, 20 bytes)."""

    nonce: int
    depositor: str
    account: bytes
    amount: int
    l1_block: int
    tx_hash: str

    @classmethod
    def from_event(cls, ev: Event) -> DepositEvent:
        return cls(int(ev["nonce"]), str(ev["depositor"]), parse_address(ev["l2Account"]),
                   int(ev["amount"]), ev.block_number, ev.tx_hash)


@dataclass(frozen=True)
class WithdrawalRequestEvent:
    """A `WithdrawalRequested` event of the Bridge: L2 `account` forces the withdrawal of
    `amount` base units to L1 `recipient` (both 20 bytes). Read by position, so the ABI's
    parameter names do not matter."""

    nonce: int
    account: bytes
    recipient: bytes
    amount: int
    l1_block: int
    tx_hash: str

    @classmethod
    def from_event(cls, ev: Event) -> WithdrawalRequestEvent:
        nonce, account, recipient, amount = ev.args.values()
        return cls(int(nonce), parse_address(account), parse_address(recipient), int(amount),
                   ev.block_number, ev.tx_hash)


@dataclass(frozen=True)
class RollupUpdate:
    """One poll: the deposits and the forced withdrawal requests first seen (each in nonce
    order), and the block rewound to after a reorg (messages reported earlier from later blocks
    are void; see EventTracker)."""

    deposits: list[DepositEvent]
    rewound_to: int | None
    scanned_to: int
    withdrawal_requests: list[WithdrawalRequestEvent] = field(default_factory=list)


def fold_batches(events: Sequence[Event]) -> list[SubmittedBatch | None]:
    """The live batches after `events` (batch events in chain order); None marks an index that
    is live but whose BatchSubmitted was not among the events."""
    live: dict[int, SubmittedBatch] = {}
    count = 0
    for ev in events:
        if ev.name == "BatchSubmitted":
            b = SubmittedBatch.from_event(ev)
            live[b.index] = b
            count = b.index + 1
            continue
        count = min(count, int(ev["fromBatchIndex"] if ev.name == "BatchesRejected" else ev["finalBatchCount"]))
        for i in [i for i in live if i >= count]:
            del live[i]
    return [live.get(i) for i in range(count)]


class RollupTracker:
    """Live batches of the Rollup at `rollup` and L1 messages (deposits, forced withdrawal
    requests) to its `bridge`, from L1 block `start_block` (the deployment block) on. With a
    saved `cursor` it resumes there: messages continue where they were, but the live batches
    only know batch events after the cursor."""

    def __init__(
        self,
        client: L1Client,
        rollup: Contract | str,
        bridge: Contract | str,
        *,
        start_block: int,
        confirmations: int = 1,
        chunk: int = DEFAULT_CHUNK,
        cursor: Cursor | None = None,
    ) -> None:
        self.rollup = rollup if isinstance(rollup, Contract) else Contract.at(client, "Rollup", rollup)
        self.bridge = with_message_events(
            bridge if isinstance(bridge, Contract) else Contract.at(client, "Bridge", bridge))
        self.events = EventTracker(client, [(self.rollup, BATCH_EVENTS), (self.bridge, MESSAGE_EVENTS)],
                                   start_block=start_block, confirmations=confirmations, chunk=chunk,
                                   cursor=cursor)
        self._batch_events: list[Event] = []
        self._live: list[SubmittedBatch | None] = []
        self._scanned_to = self.events.cursor.block

    @property
    def scanned_to(self) -> int:
        """The last L1 block whose events the batches and deposits reflect."""
        return self._scanned_to

    def poll(self, to_block: int | None = None) -> RollupUpdate:
        """Read L1 up to the safe head (or `to_block`); returns the new L1 messages."""
        up = self.events.poll(to_block)
        changed = up.rewound_to is not None
        if changed:
            self._batch_events = [e for e in self._batch_events if e.block_number <= up.rewound_to]
        deposits, requests = [], []
        for ev in up.events:
            if ev.name == "Deposited":
                deposits.append(DepositEvent.from_event(ev))
            elif ev.name == "WithdrawalRequested":
                requests.append(WithdrawalRequestEvent.from_event(ev))
            else:
                self._batch_events.append(ev)
                changed = True
        if changed:
            self._live = fold_batches(self._batch_events)
        deposits.sort(key=lambda d: d.nonce)
        requests.sort(key=lambda r: r.nonce)
        self._scanned_to = up.cursor.block
        return RollupUpdate(deposits, up.rewound_to, up.cursor.block, requests)

    def live_batches(self, at: int | None = None) -> list[SubmittedBatch | None]:
        """The live batches as of L1 block `at` (default: the last block scanned), by index."""
        if at is None or at >= self.scanned_to:
            return list(self._live)
        k = bisect_right([e.block_number for e in self._batch_events], at)
        return fold_batches(self._batch_events[:k])
