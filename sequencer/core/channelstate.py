"""State channels on the rollup (design.md "State channels"; docs/channels.md): opening a
channel moves both deposits out of the accounts into the channel; closing it (a co-signed final
state, ChannelClose) or concluding it (the state the L1 Adjudicator certified, ChannelConclude)
credits the balances and merges the positions into both accounts. A channel closes once:
whichever of the two the rollup applies first wins. Pure (called by `transition.apply`).

Committed: each channel is a leaf of the state tree, at the next leaf index when it opens,
`channel_leaf` below; its funds stay in `State.collateral_total` (money in a channel is still
collateral the Bridge holds).

Merging A's position q in instrument n: A's position += q and B's −= q. In an instrument
already settled (delisted at its settlement price S), the payoff moves instead: the short side
pays floor(|q|·payoff/10^6), payoff = max(S − K, 0) for calls and max(K − S, 0) for puts, to
the long side (rounded against the receiver); what the payer's
collateral cannot cover is paid by the insurance fund and then becomes shortfall, as at
settlement (rules version >= 2; before, the receiver gets what the payer has). Positions
merged into the accounts are margined like any other: an account left below maintenance is
liquidated at the next block.
"""

from __future__ import annotations

from cext import keccak256
from sequencer.core import insurance
from sequencer.core.channelmsg import (ChannelOpen, ChannelState, channel_id, open_digest,
                                       state_digest)
from sequencer.core.header import ZERO32
from sequencer.core.instruments import UNIT, parse_name
from sequencer.core.marks import Marks
from sequencer.core.state import Channel, State, set_position
from sequencer.errors import Conflict, InvalidRequest, NotFound, Rejected

CHANNEL_TAG = keccak256(b"optrollup.channel.v1")
MIN_CHALLENGE_PERIOD = 10
"""Seconds; a shorter window would leave a party no time to refute a stale state."""
MAX_CHALLENGE_PERIOD = 30 * 86_400
OPEN, CLOSED, CONCLUDED = 0, 1, 2
STATUS = {OPEN: "open", CLOSED: "closed", CONCLUDED: "concluded"}


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def channel_leaf(cid: bytes, ch: Channel) -> bytes:
    """H(abi.encode(CHANNEL_TAG, bytes32 channelId, address a, address b, uint256 depositA,
    uint256 depositB, uint256 status, uint256 closedTurnNum, bytes32 closedStateHash))
    (Encoding.channelLeaf on L1: what Bridge.escapeChannel proves)."""
    o = ch.open
    return keccak256(CHANNEL_TAG + cid + o.a.rjust(32, b"\0") + o.b.rjust(32, b"\0")
                     + _word(o.depositA) + _word(o.depositB) + _word(ch.status)
                     + _word(ch.closed_turn) + ch.closed_hash)


def id_of(state: State, msg: ChannelOpen) -> bytes:
    """The channel id of an open message on this rollup."""
    cfg = state.config
    return channel_id(cfg.chain_id, cfg.verifying_contract, msg)


def check_open(state: State, msg: ChannelOpen) -> bytes:
    """Validate an open's fields (not its signatures, not margins); returns the channel id."""
    if msg.a == msg.b:
        raise InvalidRequest("channelOpen.a and channelOpen.b must be different accounts",
                             code="self_channel")
    for name in ("a", "b"):
        if getattr(msg, name) not in state.accounts:
            raise NotFound(f"channelOpen.{name} 0x{getattr(msg, name).hex()} does not exist",
                           code="unknown_account")
    for name in ("signerA", "signerB"):
        if getattr(msg, name) == b"\0" * 20:
            raise InvalidRequest(f"channelOpen.{name} is the zero address", code="bad_address")
    if not MIN_CHALLENGE_PERIOD <= msg.challengePeriod <= MAX_CHALLENGE_PERIOD:
        raise InvalidRequest(f"channelOpen.challengePeriod must be in [{MIN_CHALLENGE_PERIOD}, "
                             f"{MAX_CHALLENGE_PERIOD}] s, got {msg.challengePeriod}",
                             code="bad_challenge_period")
    if msg.depositA + msg.depositB <= 0:
        raise InvalidRequest("a channel needs a deposit on at least one side",
                             code="bad_amount")
    for name, who, dep in (("depositA", msg.a, msg.depositA), ("depositB", msg.b, msg.depositB)):
        if who in state.auctions:
            raise Rejected(f"channelOpen.{name[-1].lower()} is in liquidation",
                           code="account_in_liquidation")
        coll = state.accounts[who].collateral
        if dep > coll:
            raise Rejected(f"channelOpen.{name} {dep} exceeds the account's collateral {coll}",
                           code="insufficient_collateral")
    cid = id_of(state, msg)
    if cid in state.channels:
        raise Conflict(f"channel 0x{cid.hex()} already exists (use another nonce)",
                       code="channel_exists")
    return cid


def open_channel(state: State, cid: bytes, msg: ChannelOpen, now: int) -> None:
    """Apply a checked open: deposits leave the accounts, the channel gets a leaf."""
    for who, dep in ((msg.a, msg.depositA), (msg.b, msg.depositB)):
        state.accounts[who].collateral -= dep
        state.touched.add(who)
    state.channels[cid] = Channel(msg, now)
    state.index[cid] = len(state.index)
    state.touched.add(cid)


def check_state(state: State, ch: Channel, s: ChannelState, cid: bytes, *,
                strict: bool) -> None:
    """Validate a closing state against its open channel: conservation and position order;
    with `strict` (a cooperative close) also isFinal and instruments the rollup knows."""
    if ch.status != OPEN:
        raise Conflict(f"channel 0x{cid.hex()} is already {STATUS[ch.status]} (turn "
                       f"{ch.closed_turn})", code="channel_closed")
    o = ch.open
    if s.balanceA + s.balanceB != o.depositA + o.depositB:
        raise InvalidRequest(f"channelState balances {s.balanceA} + {s.balanceB} differ from the "
                             f"deposits {o.depositA} + {o.depositB}", code="balances_not_conserved")
    names = [p.instrument for p in s.positions]
    if names != sorted(set(names)):
        raise InvalidRequest("channelState.positions must be sorted by instrument, each once",
                             code="positions_not_sorted")
    if any(p.amount == 0 for p in s.positions):
        raise InvalidRequest("channelState.positions must not hold a zero amount",
                             code="zero_position")
    if strict:
        if not s.isFinal:
            raise InvalidRequest("a cooperative close needs a state with isFinal = true",
                                 code="state_not_final")
        for p in s.positions:
            if p.instrument not in state.instruments and p.instrument not in state.settled:
                raise NotFound(f"channelState position {p.instrument!r} is not an instrument "
                               "of the rollup", code="unknown_instrument")


def state_hash(state: State, s: ChannelState) -> bytes:
    return state_digest(state.config.domain, s)


def close_channel(state: State, cid: bytes, s: ChannelState, marks: Marks, status: int) -> None:
    """Apply a checked closing state: balances credited, positions merged (see the module
    docstring); positions in instruments the rollup does not know are dropped (only an L1
    conclusion can carry one: both parties signed it)."""
    ch = state.channels[cid]
    o = ch.open
    a, b = state.accounts[o.a], state.accounts[o.b]
    a.collateral += s.balanceA
    b.collateral += s.balanceB
    for p in s.positions:
        name, q = p.instrument, p.amount
        if name in state.instruments:
            for who, acct, d in ((o.a, a, q), (o.b, b, -q)):
                set_position(state, who, acct, name, acct.positions.get(name, 0) + d)
        elif name in state.settled:
            _, _, strike, is_call = parse_name(name)
            price = state.settled[name]
            payoff = max(price - strike, 0) if is_call else max(strike - price, 0)
            owed = abs(q) * payoff // UNIT
            payer, receiver = (b, a) if q > 0 else (a, b)
            paid = min(owed, payer.collateral)
            payer.collateral -= paid
            receiver.collateral += owed if marks.rules.version >= 2 else paid
            if owed > paid and marks.rules.version >= 2:
                insurance.cover(state, owed - paid)
    marks.forget()  # positions moved (perhaps in an instrument without a price right now)
    ch.status, ch.closed_turn, ch.closed_hash = status, s.turnNum, state_hash(state, s)
    state.touched.update((o.a, o.b, cid))


def open_digest_of(state: State, msg: ChannelOpen) -> bytes:
    return open_digest(state.config.domain, msg)
