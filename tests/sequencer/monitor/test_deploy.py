"""The shipped Prometheus rules and Grafana dashboard: they parse, are well-formed, and only
name metrics a node actually exports (promtool checks the rules too, where it is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from sequencer.api.app import create_app
from tests.sequencer.node.kit import Kit

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "optrollup.json"
METRIC = re.compile(r"\boptrollup_[a-z0-9_]+")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name a node's /metrics can carry (histograms with their suffixes)."""
    k = Kit(tmp_path_factory.mktemp("node"))
    app = create_app(k.node)  # registers what the app adds (the L1 follower gauges)
    text = generate_latest(app.state.api.node.metrics.registry).decode()
    k.node.close()
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(name)
        if kind == "histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
        if kind == "counter":
            names |= {name + "_total", name + "_created"}
    return names


def test_rules_parse_and_are_well_formed(exported: set[str]) -> None:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(RULES.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert {g["name"] for g in doc["groups"]} >= {"optrollup-detectors", "optrollup-node",
                                                   "optrollup-l1", "optrollup-snapshots"}
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r["alert"]
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"], r["alert"]
        used = set(METRIC.findall(r["expr"]))
        assert used <= exported, (r["alert"], used - exported)
    text = " ".join(r["expr"] for r in rules)
    for needed in ("optrollup_alerts_total", "optrollup_l1_follower_error", "optrollup_node_failed",
                   "optrollup_shortfall", "optrollup_snapshots_total", "optrollup_log_fsync_seconds_bucket"):
        assert needed in text, needed


def test_promtool_accepts_the_rules() -> None:
    """Only where promtool is installed (Debian `prometheus`); the YAML checks above run always."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    r = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # the rules' unit tests: they fire on synthetic series, and not before they should
    r = subprocess.run([promtool, "test", "rules", str(RULES.parent / "alerts_test.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboard_is_valid_json_over_exported_metrics(exported: set[str]) -> None:
    d = json.loads(DASHBOARD.read_text())
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 30
    panels = [p for p in d["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in d["panels"]}) == len(d["panels"])
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    assert exprs and all(t["refId"] for p in panels for t in p["targets"])
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert used <= exported, used - exported
    assert "optrollup_alerts_total" in used
    for p in panels:  # inside the 24-column grid
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0
