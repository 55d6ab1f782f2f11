"""The light SDK's venv, shared by the tests that run code the way a market maker installs it."""

from __future__ import annotations

import shutil
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv with only `pip install <copy of client/>` in it."""
    base = tmp_path_factory.mktemp("light")
    src = shutil.copytree(ROOT / "client", base / "src", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return py
