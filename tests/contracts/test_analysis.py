"""Static analysis and proofs of the L1 contracts (contracts/analysis/README.md).

* Slither over contracts/src; a High or Medium finding missing from
  contracts/analysis/slither-triage.md fails the test.
* forge (contracts/forge): build, scripted handler tests, the handler-based invariant suite, and
  the canaries, which MUST fail (they show that the fuzzer reaches every payout and the freeze,
  and that planted bugs are caught, for the right reason).
* halmos: MerkleLib, Rollup finality and Rollup freeze proofs must pass with every path
  explored; their controls MUST fail with a counterexample (the proofs are not vacuous).

The tools are subprocesses with timeouts; they compile with the pinned solc-js behind
scripts/solc-shim, offline. slither and halmos live in .venv/analysis, forge in node_modules (both
installed by scripts/bootstrap.sh). Nothing here touches cext: skipped in the pure-Python pass.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "contracts"
FORGE_ROOT = CONTRACTS / "forge"
TRIAGE = CONTRACTS / "analysis" / "slither-triage.md"
SHIM = REPO / "scripts" / "solc-shim"
TOOLS = REPO / ".venv" / "analysis" / "bin"
# A fixed seed keeps the suite deterministic; set OPTROLLUP_FUZZ_SEED to explore other ones.
FUZZ_SEED = os.environ.get("OPTROLLUP_FUZZ_SEED", "0x6f707472")
GATED = ("High", "Medium")

# the contract analysers do not depend on cext: one pass of make test runs them (halmos, the
# longest, in the pure pass: the two passes run side by side and take about as long then)
pytestmark = [pytest.mark.one_pass(), pytest.mark.timeout(900)]
HALMOS_PASS = pytest.mark.one_pass(run_in="pure")


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _forge_bin_dir() -> Path:
    """The platform package's directory holding the forge binary. Not node_modules/.bin/forge:
    that npm wrapper (1.7.1) exits 0 even when forge fails, which would hide a failed build from
    halmos (it runs `forge build` from PATH) and failing tests from us."""
    for d in sorted((REPO / "node_modules" / "@foundry-rs").glob("forge-*/bin")):
        if (d / "forge").exists():
            return d
    return REPO / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOUNDRY_")}
    env["PATH"] = f"{_forge_bin_dir()}{os.pathsep}{TOOLS}{os.pathsep}{env.get('PATH', '')}"  # halmos runs `forge`
    env["FOUNDRY_SOLC"] = str(SHIM)  # foundry.toml's relative path, made independent of the cwd
    env["NO_COLOR"] = "1"
    return env


def _tool(path: Path) -> str:
    if not path.exists():
        pytest.fail(f"{path.relative_to(REPO)} is missing: run scripts/bootstrap.sh (make setup)")
    return str(path)


def _run(
    cmd: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    start = time.monotonic()
    try:
        r = subprocess.run(cmd, check=False, cwd=cwd, env=env or _env(), capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")[-4000:]
        pytest.fail(f"{Path(cmd[0]).name} timed out after {timeout:.0f}s: {' '.join(cmd[1:])}\n{out!r}")
    print(f"[{time.monotonic() - start:6.1f}s] {Path(cmd[0]).name} {' '.join(cmd[1:])}")
    return r


def _tail(r: subprocess.CompletedProcess, n: int = 6000) -> str:
    return f"--- stdout ---\n{r.stdout[-n:]}\n--- stderr ---\n{r.stderr[-n:]}"


# ----------------------------------------------------------------------------------------------
# the compiler shim
# ----------------------------------------------------------------------------------------------


def _solc_version() -> str:
    return json.loads((REPO / "package-lock.json").read_text())["packages"]["node_modules/solc"]["version"]


def test_solc_shim_reports_the_pinned_version_as_native_solc_does():
    r = _run([str(SHIM), "--version"], cwd=REPO, timeout=60)
    assert r.returncode == 0, _tail(r)
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "solc, the solidity compiler commandline interface"
    assert re.fullmatch(rf"Version: {re.escape(_solc_version())}\+commit\.[0-9a-f]{{8}}\.Linux\.g\+\+", lines[-1])


def test_solc_shim_compiles_like_the_artifact_build():
    """Standard JSON through the shim (sources read by its import callback) gives the committed
    artifacts' bytecode; a read outside the allowed paths is refused."""
    settings = {
        "evmVersion": "prague",
        "optimizer": {"enabled": True, "runs": 200},
        "metadata": {"bytecodeHash": "none"},
        "outputSelection": {"*": {"*": ["evm.deployedBytecode.object"]}},
    }
    sources = {
        "src/Rollup.sol": {"urls": ["src/Rollup.sol"]},  # imports Bridge.sol etc. through the callback
        "x/Evil.sol": {"content": 'import "/etc/hostname";'},
    }
    inp = json.dumps({"language": "Solidity", "sources": sources, "settings": settings})
    r = subprocess.run([str(SHIM), "--standard-json", "--base-path", "."], check=False, cwd=CONTRACTS, input=inp,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    errors = [e for e in out.get("errors", []) if e["severity"] == "error"]
    assert [e["sourceLocation"]["file"] for e in errors] == ["x/Evil.sol"], errors
    assert "outside of allowed directories" in errors[0]["message"]

    sources.pop("x/Evil.sol")
    r = subprocess.run([str(SHIM), "--standard-json", "--base-path", "."], check=False, cwd=CONTRACTS,
                       input=json.dumps({"language": "Solidity", "sources": sources, "settings": settings}),
                       capture_output=True, text=True, timeout=120)
    out = json.loads(r.stdout)
    assert not [e for e in out.get("errors", []) if e["severity"] == "error"], out["errors"]
    for name in ("Bridge", "Rollup"):
        artifact = json.loads((CONTRACTS / "artifacts" / f"{name}.json").read_text())
        compiled = out["contracts"][f"src/{name}.sol"][name]["evm"]["deployedBytecode"]["object"]
        assert f"0x{compiled}" == artifact["deployedBytecode"], f"{name}: shim output differs from the artifact"


# ----------------------------------------------------------------------------------------------
# Slither
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    detector: str
    impact: str
    confidence: str
    location: str  # "Contract.function", or "Contract" for contract-level findings
    where: str  # file#lines, for the reader
    description: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.detector, self.location)


def _location(element: dict) -> str:
    """Contract.function holding a Slither result element (walks up the parents)."""
    contract = function = None
    node: dict | None = element
    while node is not None:
        kind = node.get("type")
        if kind == "function" and function is None:
            function = node["name"]
        elif kind == "contract":
            contract = node["name"]
            break
        node = node.get("type_specific_fields", {}).get("parent")
    if contract is None:
        return element.get("name", "?")
    return f"{contract}.{function}" if function else contract


def _findings(report: dict) -> list[Finding]:
    out = []
    for d in report["results"].get("detectors", []):
        elements = d.get("elements") or [{}]
        out.append(Finding(
            detector=d["check"],
            impact=d["impact"],
            confidence=d["confidence"],
            location=_location(elements[0]),
            where=d.get("first_markdown_element", ""),
            description=d["description"].strip(),
        ))
    return out


_ROW = re.compile(
    r"^\|\s*`?(?P<detector>[a-z0-9-]+)`?\s*"
    r"\|\s*`?(?P<location>[A-Za-z_$][\w$]*(?:\.[\w$]+)?)`?\s*"
    r"\|(?P<reason>.*)\|\s*$"
)


def _triage() -> dict[tuple[str, str], str]:
    accepted: dict[tuple[str, str], str] = {}
    for line in TRIAGE.read_text().splitlines():
        m = _ROW.match(line)
        if not m or m["detector"] == "detector":
            continue
        reason = m["reason"].strip()
        assert len(reason) >= 10, f"slither-triage.md: no reason given for {m['detector']} {m['location']}"
        key = (m["detector"], m["location"])
        assert key not in accepted, f"slither-triage.md: {key} listed twice"
        accepted[key] = reason
    return accepted


def test_slither_triage_file_parses():
    accepted = _triage()
    assert accepted, "no rows found in contracts/analysis/slither-triage.md"


def test_slither_has_no_untriaged_finding(tmp_path):
    out = tmp_path / "slither.json"
    cmd = [_tool(TOOLS / "slither"), "contracts/src", "--solc", str(SHIM), "--solc-standard-json",
           "--solc-args=--optimize", "--json", str(out)]
    r = _run(cmd, cwd=REPO, timeout=300)
    assert out.exists(), _tail(r)
    report = json.loads(out.read_text())
    assert report.get("success"), f"slither failed: {report.get('error')}\n{_tail(r)}"
    findings = _findings(report)
    accepted = _triage()
    gated = [f for f in findings if f.impact in GATED]
    new = [f for f in gated if f.key not in accepted]
    stale = sorted(set(accepted) - {f.key for f in gated})

    by_impact: dict[str, int] = {}
    for f in findings:
        by_impact[f.impact] = by_impact.get(f.impact, 0) + 1
    print(f"slither: {len(findings)} findings {by_impact}; {len(gated) - len(new)} High/Medium triaged")
    for key in stale:
        warnings.warn(f"slither-triage.md: no longer reported, delete the row | {key[0]} | {key[1]} |", stacklevel=1)
    if new:
        header = ("NEW Slither finding(s) not in contracts/analysis/slither-triage.md "
                  "(fix the code, or add a row `| detector | location | reason |`):")
        lines = [header]
        for f in new:
            lines.append(f"\n  [{f.impact}/{f.confidence}] | {f.detector} | {f.location} |   ({f.where})")
            lines.extend(f"      {line}" for line in f.description.splitlines()[:12])
        pytest.fail("\n".join(lines), pytrace=False)


# ----------------------------------------------------------------------------------------------
# forge
# ----------------------------------------------------------------------------------------------


def test_forge_pinned_with_linux_x64_binary_in_lockfile():
    lock = json.loads((REPO / "package-lock.json").read_text())["packages"]
    v = json.loads((REPO / "package.json").read_text())["devDependencies"]["@foundry-rs/forge"]
    assert lock["node_modules/@foundry-rs/forge"]["version"] == v
    plat = lock["node_modules/@foundry-rs/forge-linux-amd64"]
    assert plat["version"] == v and plat["cpu"] == ["x64"] and plat["os"] == ["linux"] and plat["integrity"]
    r = _run([_tool(_forge_bin_dir() / "forge"), "--version"], cwd=REPO, timeout=60)
    assert f"forge Version: {v}" in r.stdout, _tail(r)


@pytest.fixture(scope="module")
def forge_build() -> str:
    forge = _tool(_forge_bin_dir() / "forge")
    r = _run([forge, "build"], cwd=FORGE_ROOT, timeout=600)
    assert r.returncode == 0, "forge build failed\n" + _tail(r)
    return forge


def _forge_test(
    forge: str, match_contract: str, env_extra: dict[str, str] | None = None
) -> tuple[dict, subprocess.CompletedProcess]:
    env = _env() | (env_extra or {})
    cmd = [forge, "test", "--match-contract", match_contract, "--fuzz-seed", FUZZ_SEED, "--json"]
    r = _run(cmd, cwd=FORGE_ROOT, timeout=600, env=env)
    try:
        suites = json.loads(r.stdout)
    except json.JSONDecodeError:
        pytest.fail("forge test printed no JSON\n" + _tail(r))
    results = {}
    for suite, body in suites.items():
        contract = suite.rsplit(":", 1)[-1]
        for test, res in body["test_results"].items():
            results[f"{contract}.{test.split('(')[0]}"] = res
    return results, r


def _describe(results: dict, names) -> str:
    out = []
    for name in names:
        res = results[name]
        out.append(f"  {name}: {res['status']} {res.get('reason') or ''}")
        seq = (res.get("counterexample") or {}).get("Sequence") if isinstance(res.get("counterexample"), dict) else None
        for call in (seq or [])[:20]:
            out.append(f"      {call.get('signature') or ''} {call.get('args') or ''}")
    return "\n".join(out)


# BridgePayoutInvariants (the first four are what the forgotten-paid-flag canary must break) ...
PAYOUT_INVARIANTS = ["invariant_withdrawalPaidAtMostOnce", "invariant_bridgeCoversWhatItOwes",
                     "invariant_noUnexpectedPayout", "invariant_accountingCloses", "invariant_modelInSync"]
# ... and the Rollup's finality and freeze as the Bridge relies on them (BridgeInvariants only)
FINALITY_INVARIANTS = ["invariant_payoutsOnlyFromFinalBatches", "invariant_finalityIsAMonotonePrefix",
                       "invariant_freezeKeepsExactlyTheFinalPrefix", "invariant_refundNeverCoversACreditedDeposit"]
INVARIANTS = PAYOUT_INVARIANTS + FINALITY_INVARIANTS
PROBES = ("WithdrawalNeverPaid", "ForcedWithdrawalNeverPaid", "NoEscape", "NoRefund", "NoReject", "NoFreeze",
          "NoFreezeDroppingBatches", "NoRefundAboveCreditedDeposits")


def test_forge_handler_and_invariants(forge_build):
    results, r = _forge_test(forge_build, "^(BridgeHandlerTest|BridgeInvariants)$")
    expected = {f"BridgeInvariants.{n}" for n in INVARIANTS} | {
        "BridgeHandlerTest.test_withdrawalIsPaidOnce",
        "BridgeHandlerTest.test_forcedWithdrawalIsProcessedAndPaid",
        "BridgeHandlerTest.test_rejectRollsBackAndEscapeAndRefundPayEverything",
        "BridgeHandlerTest.test_freezeKeepsTheFinalPrefixAndRefundsOnlyUncredited",
    }
    assert expected <= results.keys(), f"missing tests: {sorted(expected - results.keys())}"
    failed = [n for n, res in results.items() if res["status"] != "Success"]
    assert not failed and r.returncode == 0, (
        f"forge (seed {FUZZ_SEED}):\n{_describe(results, failed)}\n{r.stderr[-3000:]}"
    )


def test_forge_canaries_are_caught(forge_build):
    """The planted bugs must be caught, each by the invariant written for it: the Bridge
    forgetting a withdrawal was paid breaks the payout invariants; a Rollup answering
    `finalWithdrawalsRoot` for non-final batches breaks "payouts only from final batches". Every
    reachability probe must fail: the fuzzer pays withdrawals (signed and forced), escapes,
    refunds, rejects and freezes (also dropping non-final batches, and refunding past credited
    deposits) with the configured runs/depth."""
    # profile "canary" (foundry.toml): the default profile leaves the canaries out
    env = {"FOUNDRY_PROFILE": "canary", "FOUNDRY_INVARIANT_SHRINK_RUN_LIMIT": "0"}
    results, r = _forge_test(forge_build, "Canary$", env)
    must_fail = {f"BridgeInvariantsCanary.{n}" for n in PAYOUT_INVARIANTS[:4]} | {
        f"BridgeReachabilityCanary.invariant_probe{p}" for p in PROBES
    } | {"BridgeFinalityCanary.invariant_payoutsOnlyFromFinalBatches"}
    assert must_fail <= results.keys(), f"missing canaries: {sorted(must_fail - results.keys())}\n{_tail(r)}"
    not_caught = sorted(n for n in must_fail if results[n]["status"] != "Failure")
    assert not not_caught, (
        f"canaries NOT caught (seed {FUZZ_SEED}): the invariant runs do not reach these states; raise "
        f"[invariant] runs/depth in contracts/forge/foundry.toml or steer the handler:\n  " + "\n  ".join(not_caught)
    )
    # for the right reason: the payout from a non-final batch, not another check of the invariant
    reason = results["BridgeFinalityCanary.invariant_payoutsOnlyFromFinalBatches"].get("reason") or ""
    assert "a withdrawal was paid from a non-final batch" in reason, reason
    # the bug is in the Bridge, not in the model: the model still follows the Rollup
    assert results["BridgeInvariantsCanary.invariant_modelInSync"]["status"] == "Success"
    assert r.returncode != 0, "forge exited 0 with failing tests"


# ----------------------------------------------------------------------------------------------
# halmos
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def halmos_results(forge_build, tmp_path_factory) -> dict[str, dict[str, dict]]:
    out = tmp_path_factory.mktemp("halmos") / "halmos.json"
    cmd = [_tool(TOOLS / "halmos"), "--root", str(FORGE_ROOT),
           "--match-contract", "^(MerkleLib|RollupFinality|RollupFreeze)(Proofs|Controls)$",
           "--function", "check_", "--loop", "32", "--solver-timeout-assertion", "300s",
           "--json-output", str(out)]
    r = _run(cmd, cwd=FORGE_ROOT, timeout=900)
    if not out.exists():
        pytest.fail("halmos wrote no results\n" + _tail(r))
    report = json.loads(out.read_text())
    results: dict[str, dict[str, dict]] = {}
    for suite, tests in report["test_results"].items():
        results[suite.rsplit(":", 1)[-1]] = {t["name"].split("(")[0]: t for t in tests}
    return results


def _assert_proved(results: dict[str, dict], contract: str, expected: set[str]) -> None:
    tests = results.get(contract, {})
    assert expected <= tests.keys(), f"{contract}: missing {sorted(expected - tests.keys())}"
    bad = [f"{n}: exitcode {t['exitcode']}, counterexamples {t.get('num_models')}, paths {t.get('num_paths')}"
           for n, t in sorted(tests.items()) if t["exitcode"] != 0]
    assert not bad, f"{contract}: not proved:\n  " + "\n  ".join(bad)
    partial = [n for n, t in sorted(tests.items()) if t.get("num_bounded_loops")]
    assert not partial, f"{contract}: paths cut by the loop bound (raise --loop): {partial}"


@HALMOS_PASS
def test_halmos_merkle_lib_proofs(halmos_results):
    _assert_proved(halmos_results, "MerkleLibProofs", {
        "check_root_equals_spec_1to8", "check_complete_2", "check_complete_4", "check_complete_8",
        "check_complete_3_5", "check_sound_2", "check_sound_3", "check_sound_4", "check_sound_8",
        "check_tagged_exact_height", "check_tagged_shorter_proof_fails", "check_tagged_longer_proof_fails",
    })


@HALMOS_PASS
def test_halmos_rollup_finality_proofs(halmos_results):
    _assert_proved(halmos_results, "RollupFinalityProofs", {
        "check_final_batches_are_a_prefix", "check_final_exactly_after_the_window", "check_pause_gives_time_back",
    })


@HALMOS_PASS
def test_halmos_rollup_freeze_proofs(halmos_results):
    _assert_proved(halmos_results, "RollupFreezeProofs", {
        "check_freeze_iff_spec_and_keeps_exactly_the_final_prefix",
        "check_pause_longer_than_escape_delay_allows_freeze", "check_pauses_delay_the_escape_by_at_most_escape_delay",
        "check_batch_submitted_before_a_pause_cannot_become_final_during_it",
    })


@HALMOS_PASS
def test_halmos_controls_fail_with_a_counterexample(halmos_results):
    for contract, expected in {
        "MerkleLibControls": 4,
        "RollupFinalityControls": 2,
        "RollupFreezeControls": 4,
    }.items():
        tests = halmos_results.get(contract, {})
        assert len(tests) == expected, f"{contract}: {sorted(tests)}"
        vacuous = [n for n, t in sorted(tests.items()) if t["exitcode"] == 0 or not t.get("num_models")]
        assert not vacuous, (
            f"{contract}: these controls found no counterexample, so the proofs may be vacuous: {vacuous}"
        )
