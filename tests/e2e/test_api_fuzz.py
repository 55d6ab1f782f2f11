"""Schemathesis over the OpenAPI schema of a real `optrollup serve`: coverage and fuzzing phases,
fixed seed, bounded time; no input may produce a server error (5xx is always a bug)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.serverkit import U, Server, fund, node_config, open_limits, write_config
from tests.sequencer.core.core_world import Key

ST = Path(sys.executable).with_name("st")
SECONDS = 40  # per pass of `make test`; a longer run: OPTROLLUP_FUZZ_SECONDS=600


@pytest.mark.skipif(not ST.exists(), reason="schemathesis is not installed (pip install -e .[test])")
def test_no_input_makes_a_server_error(tmp_path: Path) -> None:
    import os
    cfg = node_config(time.time(), limits=open_limits())
    fund(tmp_path / "data", cfg, [Key(10), Key(11)], 10**6 * U)
    server = Server(tmp_path / "data", write_config(tmp_path / "cfg.json", cfg)).start()
    try:
        seconds = int(os.environ.get("OPTROLLUP_FUZZ_SECONDS", SECONDS))
        run = subprocess.run(
            [str(ST), "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error",
             "--phases", "coverage,fuzzing", "--seed", "20261128", "--max-examples", "40",
             "--max-time", str(seconds), "--request-timeout", "10", "--no-color"],
            cwd=tmp_path, capture_output=True, text=True, timeout=seconds + 120)
        out = run.stdout + run.stderr
        assert run.returncode == 0, out[-6000:] + "\n--- server log ---\n" + server.output()
        assert "Server error" not in out
        # the node is still healthy after the fuzzing
        assert httpx.get(server.url + "/health", timeout=5).status_code == 200
    finally:
        server.stop()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)
