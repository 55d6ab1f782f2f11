"""State channels on the rollup (sequencer.core.channelstate): ChannelOpen moves the deposits
into the channel, ChannelClose (co-signed final state) and ChannelConclude (L1's state) credit
the balances and merge the positions, once; every refusal with its code; conservation; the
channel leaf in the state root; replay by the verifier's code."""

from __future__ import annotations

import pytest

from sequencer.core.channelmsg import (ChannelOpen, ChannelPosition, ChannelState, open_digest,
                                       state_digest)
from sequencer.core.channelstate import CLOSED, CONCLUDED, OPEN, channel_leaf, id_of
from sequencer.core.txs import ChannelCloseTx, ChannelConcludeTx, ChannelOpenTx, decode_tx, encode_tx
from sequencer.errors import OptrollupError
from tests.sequencer.core.core_world import CALL, PUT, USERS, Key, World

A, B, C = USERS[0], USERS[1], USERS[2]
SA, SB = Key(901), Key(902)  # the channel's state signers (session-style keys)
U = 10**6


def code(fn, *a, **kw) -> str:
    with pytest.raises(OptrollupError) as e:
        fn(*a, **kw)
    return e.value.code


def opened(w: World, dep_a: int = 10_000 * U, dep_b: int = 5_000 * U, nonce: int = 1,
           period: int = 3600) -> tuple[bytes, ChannelOpen]:
    msg = ChannelOpen(A.address, B.address, SA.address, SB.address, dep_a, dep_b, nonce, period)
    d = open_digest(w.config.domain, msg)
    cid = w.engine.channel_open(ChannelOpenTx(msg, A.sign(d), B.sign(d)))
    return cid, msg


def signed_state(w: World, s: ChannelState, a: Key = SA, b: Key = SB) -> ChannelCloseTx:
    d = state_digest(w.config.domain, s)
    return ChannelCloseTx(s, a.sign(d), b.sign(d))


def total(w: World) -> int:
    """Σ account collateral + funds held by open channels."""
    held = sum(c.open.depositA + c.open.depositB for c in w.state.channels.values()
               if c.status == OPEN)
    return sum(a.collateral for a in w.state.accounts.values()) + held


def test_open_moves_deposits_and_adds_a_leaf() -> None:
    w = World()
    before = total(w)
    ca, cb = (w.state.accounts[k.address].collateral for k in (A, B))
    cid, msg = opened(w)
    assert cid == id_of(w.state, msg)
    assert w.state.accounts[A.address].collateral == ca - 10_000 * U
    assert w.state.accounts[B.address].collateral == cb - 5_000 * U
    assert total(w) == before and cid in w.state.touched
    assert w.state.collateral_total == total(w)
    ch = w.state.channels[cid]
    assert ch.status == OPEN and w.state.index[cid] == len(w.state.index) - 1
    tx = w.engine.end_block()[-1]
    assert isinstance(tx, ChannelOpenTx) and decode_tx(encode_tx(tx)) == tx
    assert len(channel_leaf(cid, ch)) == 32


def test_open_refusals() -> None:
    w = World()
    dom = w.config.domain

    def attempt(msg: ChannelOpen, ka: Key = A, kb: Key = B) -> str:
        d = open_digest(dom, msg)
        return code(w.engine.channel_open, ChannelOpenTx(msg, ka.sign(d), kb.sign(d)))

    base = ChannelOpen(A.address, B.address, SA.address, SB.address, U, U, 1, 3600)
    assert attempt(base._replace(b=A.address)) == "self_channel"
    assert attempt(base._replace(b=Key(5555).address), kb=Key(5555)) == "unknown_account"
    assert attempt(base._replace(challengePeriod=1)) == "bad_challenge_period"
    assert attempt(base._replace(depositA=0, depositB=0)) == "bad_amount"
    assert attempt(base._replace(depositA=10**18)) == "insufficient_collateral"
    assert attempt(base, kb=C) == "signer_mismatch"
    assert attempt(base._replace(signerA=b"\0" * 20)) == "bad_address"
    opened(w, U, U)
    assert attempt(base) == "channel_exists"


def test_cooperative_close_credits_balances_and_merges_positions_once() -> None:
    w = World()
    before = total(w)
    cid, msg = opened(w)
    s = ChannelState(cid, 7, 9_000 * U, 6_000 * U,
                     (ChannelPosition(CALL, 2 * U), ChannelPosition(PUT, -U)), True)
    ca, cb = (w.state.accounts[k.address].collateral for k in (A, B))
    ch = w.engine.channel_close(signed_state(w, s))
    assert ch.status == CLOSED and ch.closed_turn == 7
    assert ch.closed_hash == state_digest(w.config.domain, s)
    a, b = w.state.accounts[A.address], w.state.accounts[B.address]
    assert a.collateral == ca + 9_000 * U and b.collateral == cb + 6_000 * U
    assert a.positions == {CALL: 2 * U, PUT: -U} and b.positions == {CALL: -2 * U, PUT: U}
    assert total(w) == before
    # a second close (or a conclusion) of a closed channel
    assert code(w.engine.channel_close, signed_state(w, s)) == "channel_closed"
    assert code(w.engine.channel_close, ChannelConcludeTx(s)) == "channel_closed"


def test_close_refusals() -> None:
    w = World()
    cid, _ = opened(w)
    good = ChannelState(cid, 3, 10_000 * U, 5_000 * U, (ChannelPosition(CALL, U),), True)
    eng = w.engine
    assert code(eng.channel_close, signed_state(w, good._replace(isFinal=False))) == "state_not_final"
    assert code(eng.channel_close, signed_state(w, good._replace(balanceA=1))) == "balances_not_conserved"
    assert code(eng.channel_close, signed_state(w, good._replace(channelId=b"\1" * 32))) == "unknown_channel"
    assert code(eng.channel_close, signed_state(w, good._replace(positions=(
        ChannelPosition(PUT, U), ChannelPosition(CALL, U))))) == "positions_not_sorted"
    assert code(eng.channel_close, signed_state(w, good._replace(positions=(
        ChannelPosition("ETH-27DEC26-9999-C", U),)))) == "unknown_instrument"
    assert code(eng.channel_close, signed_state(w, good, a=A)) == "signer_mismatch"  # the account, not signerA
    e = pytest.raises(OptrollupError, eng.channel_close, signed_state(w, good, b=C))
    assert "signerB" in str(e.value)
    assert w.state.channels[cid].status == OPEN


def test_conclusion_applies_without_signatures_and_wins_once() -> None:
    w = World()
    cid, _ = opened(w)
    s = ChannelState(cid, 12, 1_000 * U, 14_000 * U, (ChannelPosition(CALL, -U),), False)
    ch = w.engine.channel_close(ChannelConcludeTx(s))
    assert ch.status == CONCLUDED and ch.closed_turn == 12
    assert w.state.accounts[A.address].positions == {CALL: -U}
    final = s._replace(turnNum=13, isFinal=True)
    assert code(w.engine.channel_close, signed_state(w, final)) == "channel_closed"


def test_channels_need_rules_version_3() -> None:
    w = World(schedule=((0, 2),))
    msg = ChannelOpen(A.address, B.address, SA.address, SB.address, U, U, 1, 3600)
    d = open_digest(w.config.domain, msg)
    assert code(w.engine.channel_open, ChannelOpenTx(msg, A.sign(d), B.sign(d))) == "channels_unavailable"


def test_replay_of_channel_blocks() -> None:
    """Open, close and a second channel's conclusion replay (the verifier's code) to the same
    accounts and channels; the state root commits to the channel leaves."""
    from tests.sequencer.core.test_liquidation import Flow
    f = Flow(schedule=((0, 3),))
    w = f.w
    cid, _ = opened(w)
    f.block(3000 * U)
    s = ChannelState(cid, 2, 8_000 * U, 7_000 * U, (ChannelPosition(CALL, U),), True)
    w.engine.channel_close(signed_state(w, s))
    cid2, _ = opened(w, U, U, nonce=2)
    f.block(3000 * U)
    w.engine.channel_close(ChannelConcludeTx(ChannelState(cid2, 5, 2 * U, 0, (), False)))
    f.replay()
    assert w.state.channels[cid2].status == CONCLUDED
