"""The escape hatch, from L1 data alone: an account's or a state channel's claim on the last
final state.

When the rollup is frozen the sequencer may be gone, so nothing here asks it: the verifier
replays the final batches from L1 calldata, the replayed last header must hash to
`Rollup.lastFinalState()`'s header hash, and the replayed marks must hash to that batch's
`marksRoot`.

- Accounts (`escape_claim`): the claim carries the account leaf's depth-32 proof and, per open
  position, its mark and the mark's proof; `Bridge.escape` pays `max(0, collateral + Σ value(q))`
  once (contracts/README.md). `send_escape` sends it through a TxManager (anyone may send it).
- State channels still open in the final state (`channel_escape_claim`): their deposits left
  both accounts at open, so neither account leaf holds them. The claim carries the channel
  leaf's proof (same tree), the state the Rollup's Adjudicator concluded the channel with (read
  from the `challenge` calldata on L1, or given), and per position of that state its mark and
  proof, or, for an instrument with no mark in the final state (settled or delisted before it),
  the proof that it is absent (the adjacent leaves of the sorted marks tree; it counts zero).
  `Bridge.escapeChannel` pays A `balanceA + Σ value(q)` clamped to [0, depositA + depositB] and
  B the rest, once per channel. A channel not concluded yet raises `ChannelNotConcluded`, whose
  message says how to conclude it (the Adjudicator works while the rollup is frozen).
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from cext import merkle_proof, merkle_root, parse_address, to_checksum
from prover.poster import header_tuple
from prover.verifier import Verifier
from sequencer.core.chain import mark_table
from sequencer.core.channelmsg import ChannelFixed, ChannelState, fixed_of, state_digest
from sequencer.core.channelstate import OPEN, STATUS
from sequencer.core.header import ZERO32, Header, mark_leaf
from sequencer.core.margin import RiskRow, value
from sequencer.core.state import Account, positions_hash
from sequencer.errors import Conflict, InvalidRequest, NotFound, OptrollupError
from sequencer.l1 import Contract, L1Client, Receipt, TxManager, read_deployment
from sequencer.l1.adjudicator import Adjudicator, ChannelStatus
from sequencer.l1.adjudicator import State as L1State
from sequencer.l1.conclusions import ConclusionFollower
from sequencer.l1.typed import (
    BRIDGE_DOMAIN_NAME,
    BRIDGE_DOMAIN_VERSION,
    domain,
    sign_typed,
    typed_message,
)

ZERO_ADDRESS = "0x" + "00" * 20
NO_CONCLUSION_DEADLINE = 2**62
"""The escape replays the final state only: whether the sequencer applied L1 channel conclusions
in time (a verifier finding) does not change what the final state holds, so it is not checked."""
VALUE_BOUND = 2**200
"""Bridge.VALUE_BOUND: a channel position's value saturates beyond it (amounts no L2 state holds)."""
CHANNEL_ESCAPE_TO_TYPE = [{"name": "channelId", "type": "bytes32"}, {"name": "account", "type": "address"},
                          {"name": "recipient", "type": "address"}]


class EscapeError(OptrollupError):
    """The replayed final state does not match L1 (a verifier finding)."""

    code = "escape_state_mismatch"


class ChannelNotConcluded(OptrollupError):
    """The channel has no conclusion on the Adjudicator yet (the message says what to do);
    `status` is its Adjudicator status, `fixed` what `challenge`/`conclude` need."""

    code = "channel_not_concluded"

    def __init__(self, message: str, status: ChannelStatus, fixed: ChannelFixed) -> None:
        super().__init__(message)
        self.status, self.fixed = status, fixed


@dataclass(frozen=True)
class PositionClaim:
    """One open position with its mark (base units per contract) and the mark's proof."""

    instrument: str
    amount: int  # contracts x 10^6, signed
    mark_lo: int
    mark_hi: int
    mark_index: int
    mark_proof: list[bytes]

    def value(self) -> int:
        """The position's escape value, rounded against the holder (as the L2's equity)."""
        return value(self.amount, RiskRow(self.mark_lo, self.mark_hi, 0, 0))


@dataclass(frozen=True)
class EscapeClaim:
    """Arguments of `Bridge.escape` for one account, against the last final state."""

    account: bytes
    collateral: int
    positions_hash: bytes
    index: int
    proof: list[bytes]
    positions: list[PositionClaim]
    header: Header  # the last final L2 header
    marks_root: bytes
    final_batches: int

    @property
    def state_root(self) -> bytes:
        return self.header.state_root

    def value(self) -> int:
        """What the Bridge pays (before the cap by its balance): max(0, collateral + Σ value)."""
        return max(0, self.collateral + sum(p.value() for p in self.positions))

    def args(self, recipient: str | None = None, owner_signature: bytes = b"") -> tuple:
        """`Bridge.escape(lastFinalHeader, claim, recipient, ownerSignature)` arguments."""
        positions = [(p.instrument, p.amount, p.mark_lo, p.mark_hi, p.mark_index, p.mark_proof)
                     for p in self.positions]
        claim = (to_checksum(self.account), self.collateral, self.index, self.proof, positions)
        return (header_tuple(self.header), claim, recipient or ZERO_ADDRESS, owner_signature)


def final_verifier(client: L1Client, rollup: str) -> Verifier:
    """A verifier for replaying the final state: given the Rollup's Adjudicator (so that chains
    with channel conclusions replay), without the conclusion deadline (NO_CONCLUSION_DEADLINE)."""
    adjudicator = read_deployment(client, rollup).adjudicator
    return Verifier(client, rollup, adjudicator=adjudicator, conclusion_deadline=NO_CONCLUSION_DEADLINE)


@dataclass(frozen=True)
class _Final:
    """The replayed last final state: the verifier at it, the marks table and its leaves."""

    v: Verifier
    final_count: int
    marks_root: bytes
    table: list[tuple[str, int, int]]
    leaves: list[bytes]


def _replay_final(client: L1Client, rollup: str, verifier: Verifier | None) -> _Final:
    v = verifier or final_verifier(client, rollup)
    final_count, header_hash, state_root, marks_root = v.rollup.call("lastFinalState")
    v.sync(limit=int(final_count))
    if len(v.verified) != int(final_count):
        raise EscapeError(f"replayed {len(v.verified)} batches, the Rollup has {final_count} final")
    if v.tree.root() != bytes(state_root) or v.head.hash() != bytes(header_hash):
        raise EscapeError(f"replayed state root 0x{v.tree.root().hex()} / header 0x{v.head.hash().hex()} "
                          f"after {final_count} final batches != lastFinalState 0x{bytes(state_root).hex()} "
                          f"/ 0x{bytes(header_hash).hex()}")
    table = mark_table(v.state, v.head.timestamp)
    leaves = [mark_leaf(n, lo, hi) for n, lo, hi in table]
    if int(final_count) and merkle_root(leaves) != bytes(marks_root):
        raise EscapeError(f"replayed marks root 0x{merkle_root(leaves).hex()} != the final batch's "
                          f"marksRoot 0x{bytes(marks_root).hex()}")
    return _Final(v, int(final_count), bytes(marks_root), table, leaves)


def escape_claim(client: L1Client, rollup: str, account: bytes | str,
                 verifier: Verifier | None = None) -> EscapeClaim:
    """Replay the final batches from L1 and build the escape claim of `account`. A `verifier`
    already synced (e.g. by `optrollup withdraw --force`) is reused and synced further; without
    one, `final_verifier` makes one."""
    acct20 = parse_address(account, "account")
    f = _replay_final(client, rollup, verifier)
    v, table, leaves = f.v, f.table, f.leaves
    idx = v.state.index.get(acct20)
    if idx is None:
        raise NotFound(f"{to_checksum(acct20)} has no account in the last final state",
                       code="unknown_account")
    acct: Account = v.state.accounts[acct20]
    where = {n: i for i, (n, _, _) in enumerate(table)}
    positions = []
    for name, q in sorted(acct.positions.items()):
        if not q:
            continue
        i = where.get(name)
        if i is None:
            raise EscapeError(f"position in {name}, which has no mark in the final state")
        _, lo, hi = table[i]
        positions.append(PositionClaim(name, q, lo, hi, i, merkle_proof(leaves, i)))
    return EscapeClaim(acct20, acct.collateral, positions_hash(acct.positions), idx,
                       v.tree.proof(idx), positions, v.head, f.marks_root, f.final_count)


def send_escape(bridge: Contract, claim: EscapeClaim, sender: TxManager, *, recipient: str | None = None,
                owner_signature: bytes = b"") -> Receipt:
    """Send `Bridge.escape(claim)` through `sender` and wait for its confirmations."""
    return sender.transact(bridge.address, bridge.encode("escape", *claim.args(recipient, owner_signature)),
                           context="Bridge.escape")


# ----------------------------------------------------------------------------------------------
# state channels open in the final state
# ----------------------------------------------------------------------------------------------


def channel_position_value(q: int, mark_lo: int, mark_hi: int) -> int:
    """Bridge._boundedPositionValue: the account escape's value (rounded against the holder) for
    amounts and marks an L2 state holds, ±VALUE_BOUND beyond (|q| >= 2^120 or a mark > 2^96)."""
    mark = mark_lo if q >= 0 else mark_hi
    if q == 0 or mark == 0:
        return 0
    if mark <= 2**96 and -(2**120) < q < 2**120:
        return value(q, RiskRow(mark_lo, mark_hi, 0, 0))
    return VALUE_BOUND if q > 0 else -VALUE_BOUND


def channel_share_a(balance_a: int, positions_value: int, total: int) -> int:
    """Bridge._channelShareA: clamp(min(balanceA, 2^254) + Σ value, 0, total)."""
    return min(max(min(balance_a, 2**254) + positions_value, 0), total)


@dataclass(frozen=True)
class MarkNeighbour:
    """`Bridge.MarkNeighbour`: a leaf of the final marks tree next to an absent instrument (a
    mark leaf, or `padding`: the zero leaf after the last instrument), with its proof."""

    padding: bool
    instrument: str
    mark_lo: int
    mark_hi: int
    index: int
    proof: list[bytes]

    def abi(self) -> tuple:
        return (self.padding, self.instrument, self.mark_lo, self.mark_hi, self.index, self.proof)


@dataclass(frozen=True)
class ChannelPositionClaim:
    """One position of the concluded state (A's amount) with `Bridge.PositionMark`: its mark and
    proof when `listed`, else the `neighbours` proving it has no mark (it counts zero)."""

    instrument: str
    amount: int
    listed: bool
    mark_lo: int
    mark_hi: int
    mark_index: int
    mark_proof: list[bytes]
    neighbours: list[MarkNeighbour]

    def value(self) -> int:
        """A's value of the position at the final marks (0 when it has no mark)."""
        return channel_position_value(self.amount, self.mark_lo, self.mark_hi) if self.listed else 0

    def abi(self) -> tuple:
        return (self.listed, self.mark_lo, self.mark_hi, self.mark_index, self.mark_proof,
                [n.abi() for n in self.neighbours])


def position_mark(table: list[tuple[str, int, int]], leaves: list[bytes], name: str, amount: int) -> ChannelPositionClaim:
    """The mark of a position in `name` against the marks tree of `table` (sorted by name): its
    leaf and proof, or the proof of absence: the slots g-1 and g around the gap g where `name`
    would sit (slot 0 alone before the first mark; the last slot alone after the last mark of a
    full tree; a slot past the last mark is the zero padding)."""
    names = [n for n, _, _ in table]
    if name in names:
        i = names.index(name)
        _, lo, hi = table[i]
        return ChannelPositionClaim(name, amount, True, lo, hi, i, merkle_proof(leaves, i), [])
    depth = max(len(leaves) - 1, 0).bit_length()
    padded = leaves + [ZERO32] * ((1 << depth) - len(leaves))

    def slot(i: int) -> MarkNeighbour:
        proof = merkle_proof(padded, i) if len(padded) > 1 else []
        if i < len(table):
            n, lo, hi = table[i]
            return MarkNeighbour(False, n, lo, hi, i, proof)
        return MarkNeighbour(True, "", 0, 0, i, proof)

    key = name.encode()
    g = sum(1 for n in names if n.encode() < key)
    neighbours = ([slot(g - 1)] if g > 0 else []) + ([slot(g)] if g < len(padded) else [])
    return ChannelPositionClaim(name, amount, False, 0, 0, 0, [], neighbours)


@dataclass(frozen=True)
class ChannelEscapeClaim:
    """Arguments of `Bridge.escapeChannel` for one channel open in the last final state, with the
    state the Adjudicator concluded it with."""

    channel_id: bytes
    fixed: ChannelFixed  # a, b, signerA, signerB, nonce, challengePeriod (from the open on L2)
    deposit_a: int
    deposit_b: int
    index: int
    proof: list[bytes]
    state: ChannelState  # the concluded state
    state_hash: bytes  # its EIP-712 digest (= the Adjudicator's stateHash)
    positions: list[ChannelPositionClaim]  # in the state's order
    header: Header  # the last final L2 header
    marks_root: bytes
    final_batches: int

    @property
    def a(self) -> bytes:
        return self.fixed.a

    @property
    def b(self) -> bytes:
        return self.fixed.b

    @property
    def state_root(self) -> bytes:
        return self.header.state_root

    @property
    def total(self) -> int:
        return self.deposit_a + self.deposit_b

    def value_a(self) -> int:
        """A's share: clamp(balanceA + Σ value(q), 0, depositA + depositB)."""
        return channel_share_a(self.state.balanceA, sum(p.value() for p in self.positions), self.total)

    def value_b(self) -> int:
        return self.total - self.value_a()

    def args(self, recipient_a: str | None = None, signature_a: bytes = b"", recipient_b: str | None = None,
             signature_b: bytes = b"") -> tuple:
        """`Bridge.escapeChannel(lastFinalHeader, claim, state, marks, payees)` arguments."""
        claim = (self.channel_id, to_checksum(self.a), to_checksum(self.b), self.deposit_a, self.deposit_b,
                 OPEN, 0, ZERO32, self.index, self.proof)
        s = self.state
        state = L1State(s.channelId, s.turnNum, s.balanceA, s.balanceB, tuple(s.positions), s.isFinal).to_abi()
        payees = (recipient_a or ZERO_ADDRESS, signature_a, recipient_b or ZERO_ADDRESS, signature_b)
        return (header_tuple(self.header), claim, state, [p.abi() for p in self.positions], payees)


def how_to_conclude(cid: bytes, st: ChannelStatus, fixed: ChannelFixed, adjudicator: str, now: int) -> str:
    """What a party must do on the Adjudicator before `escapeChannel` can pay the channel."""
    f = (f"Fixed(a={to_checksum(fixed.a)}, b={to_checksum(fixed.b)}, signerA={to_checksum(fixed.signerA)}, "
         f"signerB={to_checksum(fixed.signerB)}, nonce={fixed.nonce}, challengePeriod={fixed.challengePeriod})")
    head = (f"channel 0x{cid.hex()} is open in the last final state but not concluded on the Adjudicator "
            f"{adjudicator}: ")
    tail = (" The Adjudicator works while the rollup is frozen; once it has concluded, run this command "
            f"again. The channel's {f}.")
    if not st.registered:
        return head + (
            "nothing is registered. Register the latest state both signers signed (your channel service "
            "has it: GET /v1/channels/{id}/state, with both signatures) with Adjudicator.challenge(fixed, "
            "state, sigA, sigB) (sequencer.l1.adjudicator.Adjudicator.challenge; a state with isFinal "
            f"concludes at once), wait the challenge period ({fixed.challengePeriod} s), refuting any older "
            "state the counterparty registers with your latest one in the meantime (your watcher does), "
            "then send Adjudicator.conclude(fixed) (anyone may)." + tail)
    if st.window_open(now):
        return head + (
            f"turn {st.turn_num} is registered and its challenge window closes at {st.finalizes_at} (in "
            f"{st.finalizes_at - now} s). If you hold a later co-signed state, refute with it before then "
            "(Adjudicator.challenge); after it, send Adjudicator.conclude(fixed) (anyone may)." + tail)
    return head + (f"turn {st.turn_num} is registered and its challenge window closed at {st.finalizes_at}: "
                   "send Adjudicator.conclude(fixed) now (anyone may; with --keystore this command "
                   "sends it)." + tail)


def concluded_state(client: L1Client, adjudicator: str, domain_sep: bytes, cid: bytes, state_hash: bytes,
                    start_block: int) -> ChannelState | None:
    """The state the Adjudicator concluded channel `cid` with, read from the calldata of the
    `challenge` that registered it (None when it went through another contract)."""
    follower = ConclusionFollower(client, adjudicator, domain_sep, start_block=start_block)
    for c in follower.poll():
        if c.channel_id == cid and c.state is not None and state_digest(domain_sep, c.state) == state_hash:
            return c.state
    return None


def channel_escape_claim(client: L1Client, rollup: str, channel_id: bytes | str,
                         verifier: Verifier | None = None, state: ChannelState | None = None,
                         now: int | None = None) -> ChannelEscapeClaim:
    """Replay the final batches from L1 and build the `escapeChannel` claim of a channel open in
    the last final state. The concluded state comes from L1 (the `challenge` calldata that
    registered it) unless `state` is given (checked against the Adjudicator's stateHash).
    Raises NotFound (no such channel in the final state), Conflict `channel_not_open` (closed or
    concluded on L2: escape the accounts), ChannelNotConcluded (with what to do)."""
    cid = bytes.fromhex(channel_id.removeprefix("0x")) if isinstance(channel_id, str) else bytes(channel_id)
    if len(cid) != 32:
        raise InvalidRequest(f"a channel id is 32 bytes, got {len(cid)}", code="bad_channel_id")
    f = _replay_final(client, rollup, verifier)
    v = f.v
    ch = v.state.channels.get(cid)
    if ch is None:
        raise NotFound(f"channel 0x{cid.hex()} is not in the last final state", code="unknown_channel")
    fixed = fixed_of(ch.open)
    if ch.status != OPEN:
        raise Conflict(f"channel 0x{cid.hex()} is {STATUS[ch.status]} on L2 in the last final state (turn "
                       f"{ch.closed_turn}): its funds are in the accounts' leaves; escape the accounts "
                       f"{to_checksum(fixed.a)} and {to_checksum(fixed.b)}", code="channel_not_open")
    adj_address = v.deployment.adjudicator
    if adj_address is None:
        raise NotFound("this deployment's Rollup has no Adjudicator", code="no_adjudicator")
    adj = Adjudicator.at(client, adj_address)
    st = adj.status(cid)
    if not st.concluded:
        t = client.get_block_timestamp() if now is None else now
        raise ChannelNotConcluded(how_to_conclude(cid, st, fixed, adj.address, t), st, fixed)
    dom = v.state.config.domain
    if state is None:
        state = concluded_state(client, adj.address, dom, cid, st.state_hash, v.deployment.deployment_block)
        if state is None:
            raise NotFound(f"channel 0x{cid.hex()} concluded on L1 with state 0x{st.state_hash.hex()} (turn "
                           f"{st.turn_num}), which no direct Adjudicator.challenge call carries: pass that "
                           "state (--state FILE, the channelState JSON)", code="state_not_on_l1")
    elif state_digest(dom, state) != st.state_hash:
        raise InvalidRequest(f"the given state (turn {state.turnNum}) has EIP-712 digest "
                             f"0x{state_digest(dom, state).hex()}, the Adjudicator concluded channel "
                             f"0x{cid.hex()} with 0x{st.state_hash.hex()} (turn {st.turn_num})",
                             code="not_the_concluded_state")
    if state.channelId != cid:
        raise InvalidRequest("the state is of another channel", code="bad_channel_id")
    positions = [position_mark(f.table, f.leaves, p.instrument, p.amount) for p in state.positions]
    idx = v.state.index[cid]
    o = ch.open
    return ChannelEscapeClaim(cid, fixed, o.depositA, o.depositB, idx, v.tree.proof(idx), state, st.state_hash,
                              positions, v.head, f.marks_root, f.final_count)


def sign_channel_escape_to(key: LocalAccount, l1_chain_id: int, bridge: str, channel_id: bytes,
                           recipient: str) -> bytes:
    """A channel party's (`key`'s) ChannelEscapeTo signature: pay its share of `channel_id` to
    `recipient` (EIP-712 domain "optrollup.bridge", version "1", the L1 chain, the Bridge)."""
    full = typed_message(domain(BRIDGE_DOMAIN_NAME, BRIDGE_DOMAIN_VERSION, l1_chain_id, bridge),
                         CHANNEL_ESCAPE_TO_TYPE, "ChannelEscapeTo",
                         {"channelId": bytes(channel_id), "account": key.address, "recipient": to_checksum(
                             parse_address(recipient, "recipient"))})
    return sign_typed(key, full)[1]


def send_escape_channel(bridge: Contract, claim: ChannelEscapeClaim, sender: TxManager, *,
                        recipient_a: str | None = None, signature_a: bytes = b"", recipient_b: str | None = None,
                        signature_b: bytes = b"") -> Receipt:
    """Send `Bridge.escapeChannel(claim)` through `sender` and wait for its confirmations."""
    data = bridge.encode("escapeChannel", *claim.args(recipient_a, signature_a, recipient_b, signature_b))
    return sender.transact(bridge.address, data, context="Bridge.escapeChannel")


def conclude_channel(client: L1Client, adjudicator: str, fixed: ChannelFixed, sender: TxManager) -> Receipt:
    """Send `Adjudicator.conclude(fixed)` (once its window has passed; anyone may)."""
    adj = Adjudicator.at(client, adjudicator)
    return sender.transact(adj.address, adj.encode_conclude(tuple(fixed)), context="Adjudicator.conclude")

