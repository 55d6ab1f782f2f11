"""The replay verifier against a real anvil, on a chain with state channels: a channel opened on
L2, concluded on the L1 Adjudicator and applied as a ChannelConclude verifies; a ChannelConclude
the Adjudicator never certified is caught as forged; a conclusion left unapplied past the
deadline is reported as censored."""

from __future__ import annotations

import pytest

from prover.verifier import VerificationFailed, verify
from sequencer.core.channelmsg import (ChannelOpen, ChannelPosition, ChannelState, open_digest,
                                       state_digest)
from sequencer.core.txs import ChannelConcludeTx, ChannelOpenTx
from sequencer.l1.adjudicator import Adjudicator, Fixed
from tests.prover.conftest import World, new_world, rolled_back
from tests.prover.test_verifier import submit
from tests.sequencer.core.core_world import CALL, USERS, Key

U = 10**6
A, B = USERS[0], USERS[1]
SA, SB = Key(941), Key(942)


def opened(world: World) -> tuple[ChannelOpen, bytes]:
    ch = world.chain
    for k in (A, B):
        ch.deposit(k, 10_000 * U)
    ch.feed_all(3000 * U)
    msg = ChannelOpen(A.address, B.address, SA.address, SB.address, 1_000 * U, 1_000 * U, 1, 60)
    d = open_digest(ch.config.domain, msg)
    cid = ch.engine.channel_open(ChannelOpenTx(msg, A.sign(d), B.sign(d)))
    ch.seal()
    return msg, cid


def conclude_on_l1(world: World, msg: ChannelOpen, s: ChannelState) -> None:
    """Register `s` as final on the Adjudicator (concludes at once)."""
    sys_ = world.system
    adj = Adjudicator.at(world.client, sys_.deployment.adjudicator)
    d = state_digest(world.chain.config.domain, s)
    f = Fixed(msg.a, msg.b, msg.signerA, msg.signerB, msg.nonce, msg.challengePeriod)
    adj.challenge(f, s, SA.sign(d), SB.sign(d), sender=sys_.outsider)


def check(world: World, **kw) -> object:
    return verify(world.client, world.system.deployment.rollup,
                  adjudicator=world.system.deployment.adjudicator, **kw)


@pytest.fixture
def world(client, accounts):
    with rolled_back(client):
        yield new_world(client, accounts)


def test_an_applied_conclusion_verifies_and_a_forged_one_is_caught(world: World) -> None:
    ch = world.chain
    msg, cid = opened(world)
    s = ChannelState(cid, 7, 600 * U, 1_400 * U, (ChannelPosition(CALL, U),), True)
    conclude_on_l1(world, msg, s)
    ch.engine.channel_close(ChannelConcludeTx(s))
    ch.seal()
    submit(world, 1, ch.head())
    v = check(world)
    assert v.head == ch.header(ch.head()) and v.state.channels[cid].status == 2
    # the verifier finds the Adjudicator on L1 by itself (the Rollup created it)
    assert verify(world.client, world.system.deployment.rollup).state.channels[cid].status == 2


def test_a_forged_conclusion_is_caught(world: World) -> None:
    ch = world.chain
    msg, cid = opened(world)
    honest = ChannelState(cid, 7, 600 * U, 1_400 * U, (), True)
    conclude_on_l1(world, msg, honest)
    forged = honest._replace(balanceA=2_000 * U, balanceB=0)  # what the sequencer applies instead
    ch.engine.channel_close(ChannelConcludeTx(forged))
    n = ch.head() + 1
    ch.seal()
    submit(world, 1, ch.head())
    with pytest.raises(VerificationFailed) as e:
        check(world)
    assert e.value.block == n and e.value.tx_index == 0 and "forged" in e.value.reason


def test_an_unapplied_conclusion_is_reported_after_the_deadline(world: World) -> None:
    ch = world.chain
    msg, cid = opened(world)
    conclude_on_l1(world, msg, ChannelState(cid, 3, 1_000 * U, 1_000 * U, (), True))
    ch.seal()
    submit(world, 1, ch.head())
    check(world, conclusion_deadline=5)          # posted within the deadline: fine
    world.client.mine(6)
    ch.seal()
    submit(world, ch.head(), ch.head())           # the next batch still has it open
    with pytest.raises(VerificationFailed) as e:
        check(world, conclusion_deadline=5)
    assert "not applied in time" in e.value.reason and cid.hex() in e.value.reason
