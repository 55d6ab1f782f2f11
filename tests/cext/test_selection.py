"""Which twin is active, and that the public API is the documented one."""

from __future__ import annotations

import os
import subprocess
import sys

import cext

PUBLIC = {"keccak256", "keccak256_many", "merkle_root", "merkle_proof", "merkle_verify",
          "recover_addresses", "order_digests", "untrack", "ACCELERATED"}


def test_public_api_present() -> None:
    assert PUBLIC <= set(cext.__all__)
    for name in PUBLIC:
        assert hasattr(cext, name)


def test_env_var_forces_pure_twin() -> None:
    env = dict(os.environ, OPTROLLUP_PUREPYTHON="1")
    out = subprocess.run(
        [sys.executable, "-c", "import cext; print(cext.ACCELERATED, cext.keccak256.__module__)"],
        env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "cext._pure"]


def test_active_twin_matches_flag() -> None:
    mod = cext.keccak256.__module__
    assert (mod == "cext._accel") == cext.ACCELERATED
