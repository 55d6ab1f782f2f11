"""Fixtures of the trading-core tests (helpers live in core_world.py)."""

from __future__ import annotations

import pytest

from tests.sequencer.core.core_world import World


@pytest.fixture
def world() -> World:
    return World()
