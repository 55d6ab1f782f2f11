"""L1 messages from a real anvil: deposits credited once by nonce, across re-polls, restarts and
RPC errors; forced withdrawals (`Bridge.requestWithdrawal`) processed in the same nonce order;
and the follower merging both kinds on the in-memory JSON-RPC node."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cext import parse_address
from sequencer.core.chainspec import Genesis
from sequencer.devnet import faucet
from sequencer.errors import Conflict
from sequencer.l1 import Anvil, L1Client, deploy
from sequencer.node import L1Settings, Node, NodeConfig
from sequencer.node.l1follower import DEPOSIT, FORCED_WITHDRAWAL, L1Follower, SeenMessage
from tests.sequencer.l1.fake_l1 import URL, FakeL1
from tests.sequencer.l1.test_l1_messages import ALICE, BOB, BRIDGE, CAROL, ROLLUP, deposited, requested
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
    _, msgs = follower.poll(node.core.l1_block)
    n = 0
    for m in msgs:
        f = node.process_l1_message(m)
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
    assert node.core.engine.state.message_cursor == 4
    node.close()


def test_out_of_order_deposit_is_refused(chain, tmp_path: Path) -> None:
    anvil, client, dep, cfg = chain
    node = Node(tmp_path, cfg)
    with pytest.raises(Conflict) as info:
        node.credit_deposit(parse_address(anvil.accounts[7].address), 5, 3, 1)
    assert info.value.code == "deposit_gap"
    node.close()


def test_forced_withdrawals_share_the_deposit_queue(chain, tmp_path: Path) -> None:
    """`Bridge.requestWithdrawal` from the L2 account itself: processed in the one nonce order
    with the deposits, paid when affordable (a leaf for the recipient), refused otherwise, and
    replayed to the same outcome after a restart."""
    anvil, client, dep, cfg = chain
    dave, erin = anvil.accounts[3], anvil.accounts[4]
    bridge = dep.bridge_contract(client)
    faucet(client, dep, dave, 100)
    bridge.transact("requestWithdrawal", 30 * U, erin.address, sender=dave)
    bridge.transact("requestWithdrawal", 1_000 * U, erin.address, sender=dave)  # more than he has
    bridge.transact("requestWithdrawal", 5 * U, dave.address, sender=erin)      # no L2 account
    faucet(client, dep, dave, 1)
    node = Node(tmp_path, cfg)
    follower = L1Follower(cfg.l1, cfg.rollup)
    _, msgs = follower.poll(0)
    mine = [m for m in msgs if parse_address(dave.address) in (m.account, m.counterparty)]
    assert [(m.kind, m.amount) for m in mine] == [(DEPOSIT, 100 * U), (FORCED_WITHDRAWAL, 30 * U),
                                                  (FORCED_WITHDRAWAL, 1_000 * U),
                                                  (FORCED_WITHDRAWAL, 5 * U), (DEPOSIT, U)]
    assert [m.nonce for m in msgs] == list(range(len(msgs)))      # one queue, no gaps
    assert int(bridge.call("messageCount")) == len(msgs)
    assert credit(node, follower) == len(msgs)
    assert collateral(node, dave.address) == 71 * U
    node.seal().result(timeout=10)
    outcomes = [(node.l1_message(m.nonce).status, node.l1_message(m.nonce).reason) for m in mine]
    assert outcomes == [("credited", None), ("paid_out", None),
                        ("refused", "insufficient_collateral"), ("refused", "unknown_account"),
                        ("credited", None)]
    paid = node.l1_message(mine[1].nonce).withdrawal
    assert (paid.account, paid.recipient, paid.amount, paid.nonce) == (
        parse_address(dave.address), parse_address(erin.address), 30 * U, 2**63 + mine[1].nonce)
    head = node.core.head
    node.close()
    node = Node(tmp_path, cfg)                   # restart: the same outcomes from the log
    assert node.core.head == head and collateral(node, dave.address) == 71 * U
    assert [(node.l1_message(m.nonce).status, node.l1_message(m.nonce).reason) for m in mine] == outcomes
    node.close()


def test_poll_reads_l1_incrementally_and_survives_a_reorg(chain) -> None:
    """Each poll reads only new L1 blocks (bounded ranges); a deposit whose block a reorg takes
    away is no longer reported, and the one that replaces it is."""
    anvil, client, dep, cfg = chain
    follower = L1Follower(cfg.l1, cfg.rollup)
    follower.poll(0)
    start = client.block_number() + 1     # deposits from here on
    snap = client.snapshot()
    faucet(client, dep, anvil.accounts[8], 7)
    view, deps = follower.poll(start)
    assert [d.amount for d in deps] == [7 * U] and view.head == client.block_number()
    assert follower.tracker.scanned_to == client.block_number()

    client.revert_to(snap)                  # an L1 reorg: the deposit's blocks are gone
    client.mine(5)
    view, deps = follower.poll(start)
    assert deps == [] and view.error is None
    faucet(client, dep, anvil.accounts[9], 3)  # the new chain has another deposit, same nonce
    _, deps = follower.poll(start)
    assert [(d.account, d.amount) for d in deps] == [(parse_address(anvil.accounts[9].address), 3 * U)]


def test_faucet_command_takes_a_keystore(chain, tmp_path: Path, capsys) -> None:
    """`optrollup faucet` (devnet only): a keystore, or a raw dev key with `--key`."""
    import json

    from eth_account import Account

    from sequencer.cli import main

    anvil, client, dep, cfg = chain
    dep.save(tmp_path / "deployment.json")
    who = anvil.accounts[7]
    ks, pw = tmp_path / "k.json", tmp_path / "pw"
    ks.write_text(json.dumps(Account.encrypt(who.key, "pw", kdf="pbkdf2", iterations=2)))
    pw.write_text("pw\n")
    base = ["faucet", "--data-dir", str(tmp_path), "--l1-rpc", anvil.url, "--amount", "2"]
    assert main([*base, "--keystore", str(ks), "--password-file", str(pw)]) == 0
    assert main([*base, "--key", "0x" + bytes(who.key).hex()]) == 0
    assert capsys.readouterr().out.count(f"minted and deposited 2 USDC for {who.address}") == 2
    follower = L1Follower(cfg.l1, cfg.rollup)
    _, deps = follower.poll(client.block_number() - 5)
    assert [d.amount for d in deps if d.account == parse_address(who.address)] == [2 * U, 2 * U]


def test_the_node_follows_l1_without_the_http_app(chain, tmp_path: Path) -> None:
    """Deposits are the node's business: NodeRunner credits them with no HTTP app running."""
    import asyncio

    from sequencer.node.runner import NodeRunner
    anvil, client, dep, cfg = chain
    carol = anvil.accounts[8]
    faucet(client, dep, carol, 7)
    settings = replace(cfg.l1, poll_seconds=0.05)
    node = Node(tmp_path, cfg, l1=L1Follower(settings, cfg.rollup))

    async def run() -> None:
        async with NodeRunner(node, tick_seconds=0.05):
            for _ in range(400):
                if collateral(node, carol.address) == 7 * U:
                    return
                await asyncio.sleep(0.05)

    asyncio.run(run())
    assert collateral(node, carol.address) == 7 * U
    node.close()


def test_health_reports_the_nodes_l1_view(chain, tmp_path: Path) -> None:
    """`optrollup serve` gives the follower to the Node; /health must still show L1."""
    import time

    from fastapi.testclient import TestClient

    from sequencer.api.app import create_app
    anvil, client, dep, cfg = chain
    node = Node(tmp_path, cfg, l1=L1Follower(replace(cfg.l1, poll_seconds=0.05), cfg.rollup))
    with TestClient(create_app(node, tick_seconds=0.05)) as http:
        deadline = time.monotonic() + 10
        while ((got := http.get("/health").json())["l1"] is None
               or got["l1"]["head"] < dep.deployment_block):
            assert time.monotonic() < deadline, got
            time.sleep(0.05)
        assert got["l1"]["head"] >= dep.deployment_block and got["l1"]["error"] is None


class QuietRollup(FakeL1):
    """Answers the Rollup's `finalizedBatchCount` with 0 (the follower asks every poll)."""

    def rpc_eth_call(self, tx: dict[str, Any], tag: str = "latest") -> str:
        return "0x" + "00" * 32


def test_the_follower_merges_them_in_nonce_order_across_polls_and_reorgs() -> None:
    node = QuietRollup()
    client = L1Client(URL, transport=node.transport(), retries=0)
    settings = L1Settings(rpc=URL, bridge=BRIDGE, collateral_token="0x" + "cc" * 20, chain_id=31337,
                          deployment_block=1)
    f = L1Follower(settings, ROLLUP, client=client)
    node.mine()
    requested(node, 1, BOB, CAROL, 3)
    deposited(node, 0, ALICE, BOB, 5)
    node.mine()                                                   # block 2
    view, msgs = f.poll(0)
    assert view.error is None and view.head == 2
    assert msgs == [SeenMessage(0, DEPOSIT, BOB, ALICE, 5, 2),
                    SeenMessage(1, FORCED_WITHDRAWAL, BOB, CAROL, 3, 2)]
    assert [m.kind_name for m in msgs] == ["deposit", "forced_withdrawal"]
    requested(node, 2, ALICE, BOB, 1)
    node.mine()                                                   # block 3
    _, msgs = f.poll(2)                                           # the node is at L1 block 2
    assert [m.nonce for m in msgs] == [0, 1, 2]                   # not yet forgotten
    _, msgs = f.poll(3)                                           # processed up to block 3
    assert [m.nonce for m in msgs] == [2]
    node.reorg(1)                                                 # block 3 replaced: no request
    _, msgs = f.poll(3)
    assert msgs == []
    deposited(node, 2, CAROL, ALICE, 4)                           # the new chain's nonce 2
    node.mine()
    _, msgs = f.poll(3)
    assert msgs == [SeenMessage(2, DEPOSIT, ALICE, CAROL, 4, 4)]
