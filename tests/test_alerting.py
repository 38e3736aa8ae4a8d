"""Alert rules that ship: a plain Prometheus rules file and the same groups as a PrometheusRule,
checked and unit-tested by promtool (each alert fires on its trouble, none on a healthy server)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from deploy.checks import rules
from tests.helpers import require_system

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "prometheus" / "artctl-rules.yml"
ALERTS = {
    "ArtctlDown",
    "ArtctlServerErrors",
    "ArtctlLatencyHigh",
    "ArtctlQueueSaturated",
    "ArtctlCacheThrashing",
    "ArtctlReloadFailed",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    require_system(found is not None, "promtool", "prometheus")
    assert found is not None
    return subprocess.run([found, *args], capture_output=True, text=True, cwd=RULES.parent, timeout=120)


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", RULES.name)
    assert checked.returncode == 0 and "SUCCESS: 6 rules found" in checked.stdout, (
        checked.stdout + checked.stderr
    )
    tested = promtool("test", "rules", "artctl-rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    test_doc = yaml.safe_load((RULES.parent / "artctl-rules.test.yml").read_text())
    fired = {
        case["alertname"]
        for test in test_doc["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == ALERTS  # every alert is shown to fire, not only to parse


def test_the_prometheusrule_carries_the_same_groups_and_passes_the_crd_check() -> None:
    plain = yaml.safe_load(RULES.read_text())
    crd = yaml.safe_load((REPO / "deploy" / "k8s" / "base" / "prometheusrule.yaml").read_text())
    assert crd["kind"] == "PrometheusRule" and crd["spec"]["groups"] == plain["groups"]
    assert {r["alert"] for g in plain["groups"] for r in g["rules"]} == ALERTS
    assert rules.crd_structure([crd]) == []
    broken = {**crd, "spec": {"groups": [{"name": "artctl", "rules": [{"alert": "X"}]}]}}
    assert rules.crd_structure([broken]) == [
        "PrometheusRule/artctl: every rule needs an alert (or record) name and an expr"
    ]
