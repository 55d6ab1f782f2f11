"""Fixtures for the prover's L1 tests: the contract tests' session anvil, one deployment whose
genesis is a real `Genesis`, an L2 chain produced by the trading engine whose deposits are real
Bridge deposits, and per-test rollback (evm_snapshot / evm_revert)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from sequencer.core import Withdraw, digest
from sequencer.l1 import L1Client
from tests.contracts.conftest import accounts, anvil, client  # noqa: F401 - shared session fixtures
from tests.contracts.l1_testkit import L2_CHAIN_ID, USDC, System, deploy_system
from tests.prover.l2chain import L2Chain, make_genesis, market_flow
from tests.sequencer.core.core_world import USERS

HERE = Path(__file__).parent
L1_TESTS = {"test_verifier.py", "test_poster.py", "test_escape.py", "test_verifier_liquidation.py",
            "test_verifier_channels.py", "test_poster_hsm.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        p = Path(str(item.fspath))
        if p.parent == HERE and p.name in L1_TESTS:
            item.add_marker(pytest.mark.anvil)


@dataclass
class World:
    """A deployed rollup and an L2 chain of sealed blocks for it (deposits mirrored on L1)."""

    system: System
    chain: L2Chain

    @property
    def client(self) -> L1Client:
        return self.system.client


def build_world(client: L1Client, accounts, *, trades: int = 60, per_block: int = 10) -> World:  # noqa: F811
    world = new_world(client, accounts)
    chain = world.chain
    market_flow(chain, trades, per_block, makers=2, takers=6)
    # one withdrawal, so that withdrawal roots are not all zero
    u = USERS[4 + 2]  # a taker
    w = Withdraw(u.address, u.address, 1_000 * USDC, 0)
    chain.engine.withdraw(w, u.sign(digest(chain.config.domain, w)))
    chain.seal()
    market_flow(chain, 20, per_block, makers=2, takers=6)
    return world


def new_world(client: L1Client, accounts, **overrides) -> World:  # noqa: F811
    """A fresh deployment and an L2 chain with only block 0 (deposits mirrored on L1);
    `overrides` go to the deployment (e.g. poster=ADDRESS)."""
    placeholder = make_genesis(L2_CHAIN_ID, b"\0" * 20)  # block 0 does not depend on the address
    _, _, h0 = placeholder.block0()
    system = deploy_system(client, accounts, genesis_header_hash=h0.hash(),
                           genesis_state_root=h0.state_root, genesis_config=placeholder.to_bytes(), **overrides)
    depositor = system.users[0]
    system.token.transact("mint", depositor.address, 10**9 * USDC, sender=depositor)

    def on_deposit(addr: bytes, amount: int, nonce: int) -> None:
        r = system.bridge.transact("deposit", amount, "0x" + addr.hex(), sender=depositor)
        assert system.bridge.decode_logs(r, "Deposited")[0]["nonce"] == nonce

    chain = L2Chain(L2_CHAIN_ID, bytes.fromhex(system.deployment.rollup[2:]), on_deposit,
                    depositor=bytes.fromhex(depositor.address[2:]))
    assert chain.blocks[0].header.hash() == h0.hash()
    return World(system, chain)


@pytest.fixture(scope="session")
def _world(client: L1Client, accounts) -> World:  # noqa: F811
    return build_world(client, accounts)


@contextmanager
def rolled_back(client: L1Client) -> Iterator[None]:  # noqa: F811
    """L1 as it was on entry once the block exits (automine back on, the base fee kept)."""
    snap = client.snapshot()
    try:
        yield
    finally:
        client.rpc("evm_setAutomine", [True])
        client.revert_to(snap)
        # anvil keeps the next block's base fee across a revert (a fee-spike test raised it)
        base = (client.get_block("latest") or {}).get("baseFeePerGas") or "0x0"
        client.rpc("anvil_setNextBlockBaseFeePerGas", [base])


@pytest.fixture
def world(_world: World, client: L1Client) -> Iterator[World]:  # noqa: F811
    """The session's world, with L1 rolled back after each test."""
    with rolled_back(client):
        yield _world
