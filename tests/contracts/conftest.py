"""Fixtures for the contract tests: one real anvil for the session, one deployed system, and
per-test isolation with evm_snapshot / evm_revert (which also restores anvil's clock)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from tests.contracts.l1_testkit import System, deploy_system
from sequencer.l1 import Anvil, AnvilError, L1Client, find_anvil


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(pytest.mark.anvil)


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    try:
        find_anvil()
    except AnvilError as exc:
        pytest.fail(f"{exc}")  # the toolchain is part of the repo: a missing binary is a failure
    with Anvil(accounts=12) as node:
        yield node


@pytest.fixture(scope="session")
def client(anvil: Anvil) -> Iterator[L1Client]:
    with anvil.client() as c:
        yield c


@pytest.fixture(scope="session")
def accounts(anvil: Anvil) -> list[LocalAccount]:
    return anvil.accounts


@pytest.fixture(scope="session")
def _system(client: L1Client, accounts: list[LocalAccount]) -> System:
    return deploy_system(client, accounts)


@pytest.fixture
def system(_system: System, client: L1Client) -> Iterator[System]:
    """The session's deployed system, rolled back after each test."""
    snap = client.snapshot()
    try:
        yield _system
    finally:
        client.revert_to(snap)


@pytest.fixture
def chain(client: L1Client) -> Iterator[L1Client]:
    """A client whose chain is rolled back after the test (for tests that deploy their own)."""
    snap = client.snapshot()
    try:
        yield client
    finally:
        client.revert_to(snap)


class GasRecorder:
    def __init__(self) -> None:
        self.rows: dict[str, int] = {}

    def record(self, label: str, gas: int) -> None:
        self.rows[label] = gas


_GAS = GasRecorder()


@pytest.fixture(scope="session")
def gas() -> GasRecorder:
    return _GAS


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("OPTROLLUP_GAS_REPORT")
    if not target or not _GAS.rows:
        return
    from tests.contracts.l1_gas_report import render

    Path(target).write_text(render(_GAS.rows))
