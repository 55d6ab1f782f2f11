"""Suite-wide fixtures. The suite runs twice in CI: accelerated, and with OPTROLLUP_PUREPYTHON=1."""

from __future__ import annotations

import os

import pytest

import cext


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run long soak/load tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: opt in with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    return f"optrollup cext: {'accelerated' if cext.ACCELERATED else 'pure-Python twin'}"


def pytest_sessionstart(session: pytest.Session) -> None:
    # CI's accelerated pass sets OPTROLLUP_REQUIRE_ACCEL=1 so that a broken build cannot hide
    # behind the pure fallback and pass as if accelerated.
    if os.environ.get("OPTROLLUP_REQUIRE_ACCEL") == "1" and not cext.ACCELERATED:
        raise pytest.UsageError("OPTROLLUP_REQUIRE_ACCEL=1 but cext fell back to the pure twin")
