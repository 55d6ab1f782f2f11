"""Following L1: the L1 messages to process (deposits and forced withdrawals, one nonce space,
after N confirmations) and the batches posted so far.

`poll()` does all RPC work and is meant for a worker thread; it returns what it saw and never
touches the node. The caller processes the messages on the node's thread, in nonce order. RPC
errors are logged and retried on the next poll: a message is processed once, by nonce, whatever
happens.

L1 is read by a `sequencer.l1.RollupTracker` (the same reader as the replay verifier's): each
poll reads only the blocks not read yet, in bounded ranges, up to `confirmations` deep; an L1
reorg deeper than that voids what was read from the dropped blocks and they are read again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cext import merkle_proof, merkle_root, parse_address
from sequencer.l1 import Contract, L1Client, L1Error, L1Unavailable, RollupTracker, SubmittedBatch
from sequencer.l1.conclusions import ConclusionFollower, SeenConclusion
from sequencer.node.config import L1Settings

log = logging.getLogger("optrollup.l1")


DEPOSIT, FORCED_WITHDRAWAL = 0, 1
"""The kinds of L1 message (docs/encoding.md; the Bridge's commitment uses the same numbers)."""


@dataclass(frozen=True)
class SeenMessage:
    """L1 message `nonce`, seen in L1 block `l1_block`: a deposit (kind DEPOSIT) of `amount`
    base units from L1 address `counterparty` (the depositor) to L2 `account`, or a forced
    withdrawal (kind FORCED_WITHDRAWAL) of `amount` from L2 `account` to L1 `counterparty`
    (the recipient)."""

    nonce: int
    kind: int
    account: bytes
    counterparty: bytes
    amount: int
    l1_block: int

    @property
    def kind_name(self) -> str:
        return "deposit" if self.kind == DEPOSIT else "forced_withdrawal"


@dataclass(frozen=True)
class Batch:
    """A batch on L1 (not rejected): L2 blocks first..last and its per-block withdrawal roots."""

    index: int
    first_block: int
    last_block: int
    withdrawal_roots: tuple[bytes, ...]
    l1_block: int


@dataclass
class L1View:
    """What the follower knows of L1 (replaced wholesale by each poll)."""

    head: int = 0
    batches: list[Batch] = field(default_factory=list)
    final_count: int = 0
    error: str | None = None

    def batch_of(self, l2_block: int) -> Batch | None:
        for b in self.batches:
            if b.first_block <= l2_block <= b.last_block:
                return b
        return None


class L1Follower:
    """The node's view of L1: confirmed L1 messages not yet processed, live batches, finality."""

    def __init__(self, settings: L1Settings, rollup: str, *, client: L1Client | None = None,
                 domain: bytes | None = None) -> None:
        """`domain`: the L2 EIP-712 domain separator, needed to follow the Adjudicator's
        channel conclusions (settings.adjudicator)."""
        self.settings = settings
        self.client = client or L1Client(settings.rpc)
        self.rollup = Contract.at(self.client, "Rollup", rollup)
        self.bridge = Contract.at(self.client, "Bridge", settings.bridge)
        self.tracker = RollupTracker(self.client, self.rollup, self.bridge,
                                     start_block=settings.deployment_block,
                                     confirmations=settings.confirmations)
        self.view = L1View()
        self._messages: dict[int, SeenMessage] = {}  # seen, maybe not processed yet, by nonce
        self._roots: dict[str, tuple[bytes, ...]] = {}  # withdrawal roots by batch tx hash
        self.conclusions: ConclusionFollower | None = None
        if settings.adjudicator and domain is not None:
            self.conclusions = ConclusionFollower(
                self.client, settings.adjudicator, domain, start_block=settings.deployment_block,
                confirmations=settings.confirmations)

    def poll_conclusions(self) -> list[SeenConclusion]:
        """The channel conclusions seen on L1 (sequencer.l1.conclusions); [] without an
        Adjudicator or on an L1 error (logged; the next poll retries)."""
        if self.conclusions is None:
            return []
        try:
            return self.conclusions.poll()
        except (L1Error, L1Unavailable, OSError) as exc:
            log.warning("L1 conclusions poll failed (will retry): %s", exc)
            return []

    def safe_head(self) -> int:
        """The newest L1 block with `confirmations` confirmations."""
        return self.tracker.events.safe_head()

    def poll(self, messages_from: int) -> tuple[L1View, list[SeenMessage]]:
        """One round: the confirmed L1 messages (deposits and forced withdrawals) from L1 block
        `messages_from` on (the block of the last processed one; earlier ones are processed and
        forgotten) in nonce order, the live batches and how many are final. On an L1 error: the
        previous view with `error` set, and no messages."""
        try:
            up = self.tracker.poll()
            if up.rewound_to is not None:
                self._messages = {n: m for n, m in self._messages.items()
                                  if m.l1_block <= up.rewound_to}
            seen = self._messages  # kept even if the rest of the round fails: reported once
            for d in up.deposits:
                seen[d.nonce] = SeenMessage(d.nonce, DEPOSIT, d.account, parse_address(d.depositor),
                                            d.amount, d.l1_block)
            for r in up.withdrawal_requests:
                seen[r.nonce] = SeenMessage(r.nonce, FORCED_WITHDRAWAL, r.account, r.recipient,
                                            r.amount, r.l1_block)
            self._messages = {n: m for n, m in seen.items() if m.l1_block >= messages_from}
            batches = [self._batch(b) for b in self.tracker.live_batches() if b is not None]
            final = int(self.rollup.call("finalizedBatchCount"))
            self.view = L1View(up.scanned_to, batches, final)
            return self.view, sorted(self._messages.values(), key=lambda m: m.nonce)
        except (L1Error, L1Unavailable, OSError) as exc:
            log.warning("L1 poll failed (will retry): %s", exc)
            self.view = L1View(self.view.head, self.view.batches, self.view.final_count, str(exc))
            return self.view, []

    def _batch(self, b: SubmittedBatch) -> Batch:
        roots = self._roots.get(b.tx_hash)
        if roots is None:
            tx = self.client.get_transaction(b.tx_hash)
            if tx is None:
                raise L1Error(f"L1 transaction {b.tx_hash} of batch {b.index} not found")
            args = self.rollup.decode_input(bytes.fromhex(tx["input"][2:]))
            roots = self._roots[b.tx_hash] = tuple(bytes(r) for r in args["withdrawalRoots"])
        return Batch(b.index, b.first_block, b.last_block, roots, b.l1_block)

    def is_paid(self, account: bytes, nonce: int) -> bool:
        return bool(self.bridge.call("isWithdrawalPaid", "0x" + account.hex(), nonce))


def withdrawal_proof(batch: Batch, block_offset: int, block_leaves: list[bytes],
                     leaf_index: int) -> dict:
    """The Bridge's WithdrawalProof for leaf `leaf_index` of block `first + block_offset`."""
    return {
        "batchIndex": batch.index,
        "blockOffset": block_offset,
        "blockWithdrawalRoot": merkle_root(block_leaves),
        "blockProof": merkle_proof(list(batch.withdrawal_roots), block_offset),
        "leafIndex": leaf_index,
        "leafProof": merkle_proof(block_leaves, leaf_index),
    }
