"""FastAPI's native OpenTelemetry, off on the node's hot path unless asked for."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

__all__ = ["OTEL_ENV", "telemetry_options"]

OTEL_ENV = "OPTROLLUP_OTEL"


def telemetry_options(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """FastAPI's native OpenTelemetry (FastAPI >= 0.165 asks per request whether a provider is
    configured: ~4 % of the loop under the market-maker flow) is off unless OPTROLLUP_OTEL=1;
    the node's own metrics are Prometheus (GET /metrics). {} where FastAPI has no such option."""
    if environ.get(OTEL_ENV) == "1" or "telemetry" not in inspect.signature(FastAPI).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
