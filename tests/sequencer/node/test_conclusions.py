"""Channel conclusions from a real anvil (sequencer.l1.conclusions): a dispute concluded on
the L1 Adjudicator is applied on the rollup as a ChannelConclude with the state from the
challenge's calldata, exactly once across re-polls and a node restart; an isFinal challenge
concludes at once; a cooperative close applied first wins; the state can be posted by hand
when calldata does not give it, checked against the event's stateHash."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from cext import parse_address
from sequencer.core.chainspec import Genesis
from sequencer.core.channelmsg import (ChannelOpen, ChannelPosition, ChannelState, open_digest,
                                       state_digest)
from sequencer.core.channelstate import CLOSED, CONCLUDED, OPEN
from sequencer.core.txs import ChannelCloseTx, ChannelOpenTx
from sequencer.l1 import Anvil, deploy
from sequencer.l1.adjudicator import Adjudicator, Fixed
from sequencer.node import L1Settings, Node, NodeConfig
from sequencer.node.l1follower import L1Follower
from sequencer.node.runner import follow_l1_once
from tests.sequencer.core.core_world import Key
from tests.sequencer.node.kit import CALL, USERS, node_config

U = 10**6
A, B = USERS[0], USERS[1]
SA, SB = Key(931), Key(932)
PERIOD = 30


@pytest.fixture(scope="module")
def chain():
    with Anvil() as anvil:
        client = anvil.client()
        base = node_config()
        g = base.genesis
        _, _, h0 = g.block0()
        dep = deploy(client, anvil.accounts[0], poster=anvil.accounts[1].address,
                     guardians=[anvil.accounts[2].address], threshold=1, l2_chain_id=base.chain_id,
                     genesis_header_hash=h0.hash(), genesis_state_root=h0.state_root,
                     genesis_config=g.to_bytes())
        assert dep.adjudicator is not None
        genesis = Genesis.from_bytes(g.to_bytes(), base.chain_id, parse_address(dep.rollup))
        cfg = NodeConfig(base.chain_id, dep.rollup, genesis, l1=L1Settings(
            rpc=anvil.url, bridge=dep.bridge, collateral_token=dep.collateral_token,
            chain_id=dep.l1_chain_id, deployment_block=dep.deployment_block,
            adjudicator=dep.adjudicator))
        yield anvil, client, dep, cfg


class Setup:
    """A node on the anvil chain with A and B funded (credited as L1 messages would be) and a
    follower that also follows the Adjudicator."""

    def __init__(self, path: Path, chain, nonce0: int = 0) -> None:
        self.anvil, self.client, self.dep, self.cfg = chain
        self.path = path
        self.node = Node(path, self.cfg, clock=lambda: 1_793_520_000.0)
        self.follower = L1Follower(self.cfg.l1, self.cfg.rollup,
                                   domain=self.cfg.genesis.config.domain)
        self.node.l1 = self.follower
        self.dom = self.cfg.genesis.config.domain
        self.adj = Adjudicator.at(self.client, self.dep.adjudicator)

    def fund(self) -> None:
        st = self.node.core.engine.state
        for i, k in enumerate((A, B)):
            self.node.credit_deposit(k.address, 10_000 * U, st.message_cursor, 0).result(timeout=10)

    def open(self, nonce: int) -> tuple[bytes, ChannelOpen]:
        msg = ChannelOpen(A.address, B.address, SA.address, SB.address, 1_000 * U, 500 * U, nonce,
                          PERIOD)
        d = open_digest(self.dom, msg)
        cid = asyncio.run(self.node.submit_channel(ChannelOpenTx(msg, A.sign(d), B.sign(d))))
        return cid, msg

    def sigs(self, s: ChannelState) -> tuple[bytes, bytes]:
        d = state_digest(self.dom, s)
        return SA.sign(d), SB.sign(d)

    def challenge(self, msg: ChannelOpen, s: ChannelState) -> None:
        f = Fixed(msg.a, msg.b, msg.signerA, msg.signerB, msg.nonce, msg.challengePeriod)
        self.adj.challenge(f, s, *self.sigs(s), sender=self.anvil.accounts[7])

    def conclude(self, msg: ChannelOpen) -> None:
        f = Fixed(msg.a, msg.b, msg.signerA, msg.signerB, msg.nonce, msg.challengePeriod)
        self.client.increase_time(PERIOD + 1)
        self.client.rpc("evm_mine", [])
        self.adj.conclude(f, sender=self.anvil.accounts[7])

    def follow(self) -> int:
        return asyncio.run(follow_l1_once(self.node))


def test_a_dispute_concluded_on_l1_is_applied_once(chain, tmp_path: Path) -> None:
    s = Setup(tmp_path, chain)
    s.fund()
    cid, msg = s.open(1)
    st = s.node.core.engine.state
    a0, b0 = st.accounts[A.address].collateral, st.accounts[B.address].collateral
    stale = ChannelState(cid, 3, 1_000 * U, 500 * U, (), False)
    latest = ChannelState(cid, 5, 900 * U, 600 * U, (ChannelPosition(CALL, 2 * U),), False)
    s.challenge(msg, stale)
    s.challenge(msg, latest)   # refuted by the higher turn
    s.conclude(msg)
    s.follow()
    ch = st.channels[cid]
    assert ch.status == CONCLUDED and ch.closed_turn == 5
    assert ch.closed_hash == state_digest(s.dom, latest)
    assert st.accounts[A.address].collateral == a0 + 900 * U
    assert st.accounts[B.address].collateral == b0 + 600 * U
    assert st.accounts[A.address].positions == {CALL: 2 * U}
    assert st.accounts[B.address].positions == {CALL: -2 * U}
    s.follow()   # seen again: nothing new
    assert st.accounts[A.address].collateral == a0 + 900 * U
    s.node.seal().result(timeout=10)
    s.node.close()
    # a restart re-reads L1 from the deployment block: the conclusion is not applied twice
    again = Setup(tmp_path, chain)
    try:
        again.follow()
        st2 = again.node.core.engine.state
        assert st2.channels[cid].status == CONCLUDED
        assert st2.accounts[A.address].collateral == a0 + 900 * U
        assert st2.accounts[A.address].positions == {CALL: 2 * U}
    finally:
        again.node.close()


def test_final_challenge_concludes_at_once_and_a_cooperative_close_wins(chain, tmp_path: Path) -> None:
    s = Setup(tmp_path, chain)
    s.fund()
    st = s.node.core.engine.state
    cid1, m1 = s.open(11)
    s.challenge(m1, ChannelState(cid1, 9, 700 * U, 800 * U, (), True))
    cid2, m2 = s.open(12)
    final = ChannelState(cid2, 4, 1_100 * U, 400 * U, (), True)
    asyncio.run(s.node.submit_channel(ChannelCloseTx(final, *s.sigs(final))))
    assert st.channels[cid2].status == CLOSED
    # ...then a different state of channel 2 is concluded on L1: the close applied first wins
    s.challenge(m2, ChannelState(cid2, 6, 0, 1_500 * U, (), True))
    s.follow()
    assert st.channels[cid1].status == CONCLUDED and st.channels[cid1].closed_turn == 9
    assert st.channels[cid2].status == CLOSED and st.channels[cid2].closed_turn == 4
    s.node.close()


def test_a_conclusion_without_readable_calldata_waits_for_its_state(chain, tmp_path: Path) -> None:
    s = Setup(tmp_path, chain)
    s.fund()
    st = s.node.core.engine.state
    cid, msg = s.open(21)
    state = ChannelState(cid, 2, 1_200 * U, 300 * U, (), True)
    s.challenge(msg, state)
    seen = [c for c in s.follower.poll_conclusions() if c.channel_id == cid]
    assert len(seen) == 1 and seen[0].state == state
    # as if the registering call had come through a contract: no state, nothing applied
    assert s.node.process_conclusion(replace(seen[0], state=None)) is None
    assert st.channels[cid].status == OPEN
    s.node.process_conclusion(seen[0]).result(timeout=10)
    assert st.channels[cid].status == CONCLUDED
    s.node.close()
