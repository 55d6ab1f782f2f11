"""design.md's import rules, enforced on the source tree (static: parses imports, runs nothing)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"cext", "sequencer", "prover", "channels", "optrollup_client"}
# where each package lives (the light SDK is its own distribution, built from client/)
SOURCE = {"optrollup_client": ROOT / "client" / "optrollup_client"}

# package -> which of our packages it may import (design.md "Layout"); prover may use the
# pure state-transition code of sequencer (sequencer.core) and its L1 client (sequencer.l1, a
# recorded change to design.md: one L1 wrapper for the node and the poster), and the one
# keystore rule (sequencer.keys: neutral, eth-account only, shared with the SDK), and the
# alert format and webhook of sequencer.monitor (the L1 monitor replays L1 with the verifier). channels as
# design.md says (the pure core, sequencer.l1, the SDK) plus the same keystore rule. The SDK,
# optrollup_client (design.md's sequencer.client, now a distribution of its own), imports none
# of ours; everyone may import it.
ALLOWED: dict[str, set[str]] = {
    "optrollup_client": set(),
    "cext": set(),
    "sequencer": {"cext", "optrollup_client"},
    "prover": {"cext", "sequencer.core", "sequencer.errors", "sequencer.keys", "sequencer.l1",
               "sequencer.units", "sequencer.monitor", "optrollup_client"},
    "channels": {"cext", "sequencer.core", "sequencer.errors", "sequencer.l1", "optrollup_client",
                 "sequencer.keys", "sequencer.units"},
}

# Modules that must stay pure: no I/O, clock or randomness imports.
PURE_DIRS = ["sequencer/core"]
IMPURE = {"os", "time", "random", "socket", "asyncio", "threading", "subprocess", "datetime",
          "plyvel", "httpx", "fastapi", "uvicorn", "web3", "secrets", "uuid"}


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def allowed(name: str, rules: set[str], own: str) -> bool:
    top = name.split(".")[0]
    if top not in OURS or top == own:
        return True
    return any(name == r or name.startswith(r + ".") for r in rules)


def test_import_rules() -> None:
    bad = []
    for pkg, rules in ALLOWED.items():
        for path in SOURCE.get(pkg, ROOT / pkg).rglob("*.py"):
            for name in imports(path):
                if not allowed(name, rules, pkg):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_pure_core_has_no_io_imports() -> None:
    bad = []
    for d in PURE_DIRS:
        for path in (ROOT / d).rglob("*.py"):
            for name in imports(path):
                if name.split(".")[0] in IMPURE:
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def test_rule_checker_can_fail() -> None:
    assert not allowed("sequencer.api", ALLOWED["prover"], "prover")
    assert allowed("sequencer.core.transition", ALLOWED["prover"], "prover")
    assert not allowed("sequencer", ALLOWED["cext"], "cext")
