"""Following L1: deposits to credit (after N confirmations) and the batches posted so far.

`poll()` does all RPC work and is meant for a worker thread; it returns what it saw and never
touches the node. The caller credits deposits on the node's thread. RPC errors are logged and
retried on the next poll: a deposit is credited once, by nonce, whatever happens.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cext import merkle_proof, merkle_root, parse_address
from sequencer.l1 import Contract, L1Client, L1Error, L1Unavailable
from sequencer.node.config import L1Settings

log = logging.getLogger("optrollup.l1")

CHUNK = 5_000  # L1 blocks per eth_getLogs


@dataclass(frozen=True)
class SeenDeposit:
    nonce: int
    account: bytes
    amount: int
    l1_block: int


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
    def __init__(self, settings: L1Settings, rollup: str) -> None:
        self.settings = settings
        self.client = L1Client(settings.rpc)
        self.rollup = Contract.at(self.client, "Rollup", rollup)
        self.bridge = Contract.at(self.client, "Bridge", settings.bridge)
        self.view = L1View()
        self._batches: dict[int, Batch] = {}
        self._batch_scan = settings.deployment_block

    def safe_head(self) -> int:
        return self.client.block_number() - (self.settings.confirmations - 1)

    def deposits(self, from_block: int, to_block: int) -> list[SeenDeposit]:
        """Deposited events in [from_block, to_block], by nonce."""
        out = []
        start = max(from_block, self.settings.deployment_block)
        while start <= to_block:
            end = min(to_block, start + CHUNK - 1)
            for ev in self.bridge.events("Deposited", from_block=start, to_block=end):
                out.append(SeenDeposit(int(ev.args["nonce"]), parse_address(ev.args["l2Account"]),
                                       int(ev.args["amount"]), ev.block_number))
            start = end + 1
        return sorted(out, key=lambda d: d.nonce)

    def scan_batches(self, to_block: int) -> None:
        """Add BatchSubmitted and drop rejected batches up to `to_block` (uses getBatch for roots)."""
        start = self._batch_scan
        while start <= to_block:
            end = min(to_block, start + CHUNK - 1)
            events = (self.rollup.events("BatchSubmitted", from_block=start, to_block=end)
                      + self.rollup.events("BatchesRejected", from_block=start, to_block=end))
            events.sort(key=lambda e: (e.block_number, e.log_index))
            for ev in events:
                if ev.name == "BatchesRejected":
                    first = int(ev.args["fromBatchIndex"])
                    for i in [i for i in self._batches if i >= first]:
                        del self._batches[i]
                else:
                    self._batches[int(ev.args["batchIndex"])] = self._batch_from_event(ev)
            start = end + 1
        self._batch_scan = to_block + 1

    def _batch_from_event(self, ev) -> Batch:  # noqa: ANN001
        tx = self.client.get_transaction(ev.tx_hash)
        args = self.rollup.decode_input(bytes.fromhex(tx["input"][2:]))
        roots = tuple(bytes(r) for r in args["withdrawalRoots"])
        return Batch(int(ev.args["batchIndex"]), int(ev.args["firstBlock"]),
                     int(ev.args["lastBlock"]), roots, ev.block_number)

    def poll(self, deposits_from: int) -> tuple[L1View, list[SeenDeposit]]:
        """One round: new confirmed deposits from `deposits_from`, batches, finality."""
        try:
            head = self.safe_head()
            deps = self.deposits(deposits_from, head)
            self.scan_batches(head)
            final = int(self.rollup.call("finalizedBatchCount"))
            self.view = L1View(head, sorted(self._batches.values(), key=lambda b: b.index), final)
            return self.view, deps
        except (L1Error, L1Unavailable, OSError) as exc:
            log.warning("L1 poll failed (will retry): %s", exc)
            self.view = L1View(self.view.head, self.view.batches, self.view.final_count, str(exc))
            return self.view, []

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
