"""The committed artifacts are exactly what the pinned compiler makes of the sources, and the
toolchain versions agree everywhere they are written down."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sequencer.l1 import artifact_names, load_artifact

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"
DEPLOYED = ["Adjudicator", "Bridge", "MockUSDC", "Rollup"]


def _lock() -> dict:
    return json.loads((REPO / "package-lock.json").read_text())


def _sources() -> dict[str, str]:
    out = {}
    for d in ("src", "test"):
        for p in sorted((CONTRACTS / d).glob("*.sol")):
            out[f"{d}/{p.name}"] = p.read_text()
    return out


def test_every_contract_has_an_artifact():
    names = artifact_names()
    assert set(DEPLOYED) | {"EncodingHarness"} == set(names)
    for n in names:
        a = load_artifact(n)
        raw = json.loads(a.path.read_text())
        assert raw["abi"] and a.bytecode and a.deployed_bytecode
        assert {"abi", "bytecode", "deployedBytecode", "compiler", "sourcesHash"} <= raw.keys()


def test_sources_hash_matches_sources():
    """Cheap staleness check without a compiler: same hash rule as scripts/compile_contracts.js."""
    src = _sources()
    lines = "".join(f"{p}\0{hashlib.sha256(c.encode()).hexdigest()}\n" for p, c in sorted(src.items()))
    expected = hashlib.sha256(lines.encode()).hexdigest()
    for n in artifact_names():
        assert load_artifact(n).sources_hash == expected, f"{n}.json is stale: run `npm run compile`"


def test_compiler_version_is_pinned_everywhere():
    lock = _lock()
    solc_version = lock["packages"]["node_modules/solc"]["version"]
    pkg = json.loads((REPO / "package.json").read_text())
    assert pkg["devDependencies"]["solc"] == solc_version  # exact pin, no range
    for n in artifact_names():
        assert load_artifact(n).compiler_version.startswith(solc_version + "+")
    for p, text in _sources().items():
        assert re.search(rf"^pragma solidity {re.escape(solc_version)};$", text, re.M), p


def test_anvil_pinned_with_linux_x64_binary_in_lockfile():
    lock = _lock()["packages"]
    pkg = json.loads((REPO / "package.json").read_text())
    v = pkg["devDependencies"]["@foundry-rs/anvil"]
    assert lock["node_modules/@foundry-rs/anvil"]["version"] == v
    plat = lock["node_modules/@foundry-rs/anvil-linux-amd64"]
    assert plat["version"] == v and plat["cpu"] == ["x64"] and plat["os"] == ["linux"] and plat["integrity"]


def test_anvil_binary_version(anvil):
    out = subprocess.run([str(anvil.binary), "--version"], capture_output=True, text=True, timeout=10, check=True)
    v = json.loads((REPO / "package.json").read_text())["devDependencies"]["@foundry-rs/anvil"]
    assert f"anvil Version: {v}" in out.stdout


def test_artifacts_match_a_fresh_compile():
    """Recompiles with the pinned solc-js and compares byte for byte (the script's --check)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is required to check the artifacts (it installs anvil and solc too)")
    r = subprocess.run([node, "scripts/compile_contracts.js", "--check"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr + r.stdout


def test_deployed_code_matches_artifact(system):
    """On-chain runtime code = artifact, except the immutable slots patched at deployment."""
    adjudicator = system.deployment.adjudicator
    for address, name in ((system.rollup.address, "Rollup"), (system.bridge.address, "Bridge"),
                          (system.token.address, "MockUSDC"), (adjudicator, "Adjudicator")):
        code = bytearray(system.client.get_code(address))
        art = load_artifact(name)
        expected = bytearray(art.deployed_bytecode)
        assert len(code) == len(expected)
        refs = json.loads(art.path.read_text())["immutableReferences"]
        assert bool(refs) == (name != "MockUSDC")
        for ref in refs:
            start, length = ref["start"], ref["length"]
            assert expected[start : start + length] == bytes(length)  # placeholder zeros
            code[start : start + length] = bytes(length)
        assert code == expected, name
