from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

from cext import _pure


def _accel() -> ModuleType | None:
    if os.environ.get("OPTROLLUP_PUREPYTHON", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module("cext._accel")
    except ImportError:
        return None


ACCEL = _accel()
TWINS = [_pure] + ([ACCEL] if ACCEL is not None else [])


@pytest.fixture(params=TWINS, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def twin(request: pytest.FixtureRequest) -> ModuleType:
    """Each available implementation in turn (pure always; accelerated when built and allowed)."""
    return request.param


needs_accel = pytest.mark.skipif(ACCEL is None, reason="accelerated twin not in use")
