"""FastAPI's per-request OpenTelemetry check is off on the node's app unless asked for."""

from __future__ import annotations

import inspect

import pytest
from fastapi import FastAPI

from sequencer.api.telemetry import OTEL_ENV, telemetry_options

HAS_OPTION = "telemetry" in inspect.signature(FastAPI).parameters


@pytest.mark.skipif(not HAS_OPTION, reason="this FastAPI has no native telemetry")
def test_off_by_default_and_the_app_skips_it() -> None:
    opts = telemetry_options({})
    assert opts == {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    app = FastAPI(**opts)
    assert app._native_telemetry.enabled() is False  # the per-request check short-circuits


def test_opt_in_keeps_fastapis_default() -> None:
    assert telemetry_options({OTEL_ENV: "1"}) == {}
    assert telemetry_options({OTEL_ENV: "0"}) == ({"telemetry": {"tracing": False, "metrics": False,
                                                                  "logs": False}} if HAS_OPTION else {})
