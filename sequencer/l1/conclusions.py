"""Following the L1 Adjudicator: channel conclusions to apply as ChannelConclude txs
(design.md "State channels"; docs/channels.md).

`ConclusionFollower.poll()` does all RPC work (meant for a worker thread) and returns the
conclusions seen after `confirmations`, each with the full state it certifies when that state
can be read from L1: the `challenge` call that registered it (the transaction that emitted the
`ChallengeRegistered` of the concluded turn, or the `Concluded` of an isFinal challenge), whose
calldata carries the state. The state is checked against the event's `stateHash` (its EIP-712
digest in the order domain). A state registered through another contract (calldata that is not
a direct `challenge` call) cannot be read this way: `state` is then None and the conclusion
waits for someone to post the state (`POST /v1/channels/{id}/conclude`, checked against the
same stateHash).

Exactly once: the node applies a conclusion only to a channel that is still open, so re-reading
events (after a restart the tracker starts again at the deployment block) never applies one
twice; a channel closed cooperatively first stays closed (whichever the rollup applies first
wins).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sequencer.core.channelmsg import ChannelPosition, ChannelState, state_digest
from sequencer.l1.client import L1Client
from sequencer.l1.errors import L1Error
from sequencer.l1.adjudicator import Adjudicator, ChallengeRegistered, Concluded, from_event
from sequencer.l1.tracker import EventTracker

log = logging.getLogger("optrollup.l1.channels")


@dataclass(frozen=True)
class SeenConclusion:
    """Channel `channel_id` concluded on L1 at turn `turn` with the state whose EIP-712 digest is
    `state_hash`, in L1 block `l1_block`; `state` is that state when L1 calldata gave it."""

    channel_id: bytes
    turn: int
    state_hash: bytes
    l1_block: int
    state: ChannelState | None


def state_of_challenge(adjudicator: Adjudicator, calldata: bytes) -> ChannelState | None:
    """The ChannelState of a direct `challenge(f, s, sigA, sigB)` call's calldata; None for any
    other calldata."""
    try:
        args = adjudicator.contract.decode_input(calldata)
    except L1Error:
        return None
    s = args.get("s")
    if s is None:
        return None
    try:
        return ChannelState(bytes(s["channelId"]), int(s["turnNum"]), int(s["balanceA"]),
                            int(s["balanceB"]),
                            tuple(ChannelPosition(str(p["instrument"]), int(p["amount"]))
                                  for p in s["positions"]), bool(s["isFinal"]))
    except (TypeError, ValueError, KeyError):
        return None


class ConclusionFollower:
    """Reads `Concluded` (and the `ChallengeRegistered` before them) of the Adjudicator at
    `address` from `start_block` on, `confirmations` deep."""

    def __init__(self, client: L1Client, address: str, domain: bytes, *, start_block: int = 0,
                 confirmations: int = 1) -> None:
        self.client, self.domain = client, domain
        self.adjudicator = Adjudicator.at(client, address)
        self.tracker = EventTracker(client, [self.adjudicator.subscription()],
                                    start_block=start_block, confirmations=confirmations)
        # per channel, the transaction of each registered turn (to read its state)
        self._registered: dict[bytes, dict[int, tuple[str, int]]] = {}
        self._seen: dict[bytes, SeenConclusion] = {}

    def seen(self, channel_id: bytes) -> SeenConclusion | None:
        """The confirmed conclusion of a channel, if one was seen."""
        return self._seen.get(channel_id)

    def poll(self) -> list[SeenConclusion]:
        """Every conclusion seen so far (oldest first), the newly confirmed ones resolved to
        their states. Raises on an L1 error (the caller retries; nothing is lost)."""
        up = self.tracker.poll()
        if up.rewound_to is not None:
            cut = up.rewound_to
            self._seen = {c: s for c, s in self._seen.items() if s.l1_block <= cut}
            self._registered = {c: {t: x for t, x in turns.items() if x[1] <= cut}
                                for c, turns in self._registered.items()}
        for ev in up.events:
            e = from_event(ev)
            if isinstance(e, ChallengeRegistered):
                self._registered.setdefault(e.channel_id, {})[e.turn_num] = (e.tx_hash,
                                                                             e.block_number)
            elif isinstance(e, Concluded):
                self._seen[e.channel_id] = self._resolve(e)
        return sorted(self._seen.values(), key=lambda s: s.l1_block)

    def _resolve(self, e: Concluded) -> SeenConclusion:
        txs = [e.tx_hash]  # an isFinal challenge concludes in its own transaction
        reg = self._registered.get(e.channel_id, {}).get(e.turn_num)
        if reg is not None:
            txs.insert(0, reg[0])
        for h in txs:
            tx = self.client.get_transaction(h)
            if tx is None:
                continue
            s = state_of_challenge(self.adjudicator, bytes.fromhex(tx["input"][2:]))
            if s is not None and state_digest(self.domain, s) == e.state_hash:
                return SeenConclusion(e.channel_id, e.turn_num, e.state_hash, e.block_number, s)
        log.warning("conclusion of channel 0x%s (turn %d) has no readable state on L1: waiting "
                    "for it to be posted", e.channel_id.hex(), e.turn_num)
        return SeenConclusion(e.channel_id, e.turn_num, e.state_hash, e.block_number, None)
