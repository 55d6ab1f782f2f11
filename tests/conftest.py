"""Suite-wide fixtures. The suite runs twice in CI: accelerated, and with OPTROLLUP_PUREPYTHON=1."""

from __future__ import annotations

import os

import pytest

import cext


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="run long soak/load tests")


def this_pass() -> str:
    """The pass of `make test` this run is ("accel" or "pure"): OPTROLLUP_TEST_PASS, set by
    scripts/test.sh, else from OPTROLLUP_PUREPYTHON."""
    return os.environ.get("OPTROLLUP_TEST_PASS") or (
        "pure" if os.environ.get("OPTROLLUP_PUREPYTHON") == "1" else "accel")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test marked one_pass never touches cext, so one of the two passes runs it: the one its
    # `run_in` names ("accel" by default) when scripts/test.sh runs both (it sets
    # OPTROLLUP_TEST_PASS; moving long ones to the pure pass evens out the two passes, which run
    # side by side); run on its own, pytest runs it unless the pure twin is forced.
    scripted = "OPTROLLUP_TEST_PASS" in os.environ
    now = this_pass()
    for item in items:
        mark = item.get_closest_marker("one_pass")
        if mark is None:
            continue
        want = mark.kwargs.get("run_in", "accel") if scripted else "accel"
        if want != now:
            item.add_marker(pytest.mark.skip(
                reason=f"never touches cext: run once, in the {want} pass"))
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
