"""The L1 monitor's tests run on the contract tests' session anvil, over the prover tests' world
(a deployment whose genesis is real and an L2 chain whose deposits are real Bridge deposits)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contracts.conftest import accounts, anvil, client  # noqa: F401 - shared session fixtures
from tests.prover.conftest import _world, world  # noqa: F401 - shared session fixtures

HERE = Path(__file__).parent
L1_TESTS = {"test_l1_monitor.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        p = Path(str(item.fspath))
        if p.parent == HERE and p.name in L1_TESTS:
            item.add_marker(pytest.mark.anvil)
