"""Deposits from a real anvil: credited once by nonce, across re-polls, restarts and RPC errors."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from cext import parse_address
from sequencer.core.chainspec import Genesis
from sequencer.devnet import faucet
from sequencer.errors import Conflict
from sequencer.l1 import Anvil, deploy
from sequencer.node import L1Settings, Node, NodeConfig
from sequencer.node.l1follower import L1Follower
from tests.sequencer.node.kit import node_config

U = 10**6


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
        genesis = Genesis.from_bytes(g.to_bytes(), base.chain_id, parse_address(dep.rollup))
        cfg = NodeConfig(base.chain_id, dep.rollup, genesis, l1=L1Settings(
            rpc=anvil.url, bridge=dep.bridge, collateral_token=dep.collateral_token,
            chain_id=dep.l1_chain_id, deployment_block=dep.deployment_block))
        yield anvil, client, dep, cfg


def credit(node: Node, follower: L1Follower) -> int:
    _, deps = follower.poll(node.core.l1_block)
    n = 0
    for d in deps:
        f = node.credit_deposit(d.account, d.amount, d.nonce, d.l1_block)
        if f is not None:
            f.result(timeout=10)
            n += 1
    return n


def collateral(node: Node, account: str) -> int:
    acct = node.core.engine.state.accounts.get(parse_address(account))
    return 0 if acct is None else acct.collateral


def test_deposits_credited_once_across_polls_restarts_and_rpc_errors(chain, tmp_path: Path) -> None:
    anvil, client, dep, cfg = chain
    alice, bob = anvil.accounts[5], anvil.accounts[6]
    faucet(client, dep, alice, 1_000)
    faucet(client, dep, bob, 250)
    faucet(client, dep, alice, 5)
    node = Node(tmp_path, cfg)
    follower = L1Follower(cfg.l1, cfg.rollup)
    assert credit(node, follower) == 3
    assert collateral(node, alice.address) == 1_005 * U and collateral(node, bob.address) == 250 * U
    assert credit(node, follower) == 0          # the same events seen again: nothing new
    node.seal().result(timeout=10)
    node.close()

    # an L1 RPC outage: poll reports it and returns nothing; nothing is credited twice after it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    dead = L1Follower(replace(cfg.l1, rpc=f"http://127.0.0.1:{dead_port}"), cfg.rollup)
    node = Node(tmp_path, cfg)                   # restart: credits come back from the log
    assert collateral(node, alice.address) == 1_005 * U
    view, deps = dead.poll(node.core.l1_block)
    assert deps == [] and view.error
    faucet(client, dep, bob, 1)
    assert credit(node, L1Follower(cfg.l1, cfg.rollup)) == 1
    assert collateral(node, bob.address) == 251 * U
    assert node.core.engine.state.deposit_cursor == 4
    node.close()


def test_out_of_order_deposit_is_refused(chain, tmp_path: Path) -> None:
    anvil, client, dep, cfg = chain
    node = Node(tmp_path, cfg)
    with pytest.raises(Conflict) as info:
        node.credit_deposit(parse_address(anvil.accounts[7].address), 5, 3, 1)
    assert info.value.code == "deposit_gap"
    node.close()
