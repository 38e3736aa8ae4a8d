"""deploy/ with the real tools: checkov and hadolint find nothing unexplained (and do find what is
wrong), and every query of the autoscalers and the dashboard reads series a real server exposes."""

from __future__ import annotations

import copy
import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.checks import linters, manifests, metrics
from tests.helpers import container_of, find_doc, free_port, pod_of, running_server

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "artctl-dashboard.json"
DOCS = ROOT / "docs" / "deploy.md"
Docs = list[dict[str, Any]]


# -- checkov and hadolint: zero findings on deploy/, and they do find what is wrong --------------------


def test_hadolint_passes(tools: Path) -> None:
    assert linters.hadolint(linters.DOCKERFILE, tools) == []


@pytest.fixture(scope="module")
def checkov_scans(rendered: dict[str, Docs], tools: Path) -> dict[str, linters.Scan]:
    return linters.scan_deploy(rendered, tools)


@pytest.mark.parametrize("target", [*manifests.TARGETS, "Dockerfile"])
def test_checkov_passes(checkov_scans: dict[str, linters.Scan], target: str) -> None:
    scan = checkov_scans[target]
    assert scan.problems() == []
    assert scan.passed > 50, "checkov ran almost no check"


def test_every_skipped_check_is_explained(checkov_scans: dict[str, linters.Scan]) -> None:
    """Each skip carries its reason inline, and docs/deploy.md lists it."""
    docs = DOCS.read_text(encoding="utf-8")
    skipped = {(target, s.check): s.message for target, scan in checkov_scans.items() for s in scan.skipped}
    assert {check for _, check in skipped} == {"CKV_K8S_43", "CKV_DOCKER_7"}
    for (target, check), reason in skipped.items():
        assert len(reason) > 20, f"{target}: {check} is skipped without a reason"
        assert f"`{check}`" in docs, f"{check} is skipped but docs/deploy.md does not explain it"
    ignores = re.findall(r"hadolint ignore=(\S+)", linters.DOCKERFILE.read_text(encoding="utf-8"))
    assert yaml.safe_load(linters.HADOLINT_CONFIG.read_text(encoding="utf-8"))["ignored"] == []
    assert ignores == []  # none needed today; one added later belongs in the docs' table too


def _broken_dockerfile() -> str:
    """deploy/Dockerfile with one mistake per linter rule the hand-written checks used to cover."""
    text = linters.DOCKERFILE.read_text(encoding="utf-8")
    breaks = [
        ('SHELL ["/bin/bash", "-o", "pipefail", "-c"]\n', ""),  # hadolint DL4006
        ('ENTRYPOINT ["artctl"]', "ENTRYPOINT artctl"),  # hadolint DL3025 (the cpu stage)
        ("USER 10001:10001", "USER artctl"),  # hadolint DL3066 (the cpu stage)
        ("# checkov:skip=CKV_DOCKER_7", "# no skip"),  # checkov CKV_DOCKER_7: the skip is what silences it
    ]
    for old, new in breaks:
        assert old in text, old
        text = text.replace(old, new, 1)
    text, healthchecks = re.subn(r"HEALTHCHECK .*?\]\n", "", text, flags=re.DOTALL)  # checkov CKV_DOCKER_2
    assert healthchecks == 1
    # The gpu stage (last) runs as root: hadolint DL3002, checkov CKV_DOCKER_8.
    head, user, tail = text.rpartition("USER 10001:10001")
    assert user
    return f"{head}USER root{tail}"


def test_hadolint_catches(tmp_path: Path, tools: Path) -> None:
    (tmp_path / "Dockerfile").write_text(_broken_dockerfile(), encoding="utf-8")
    found = {f.check for f in linters.hadolint(tmp_path / "Dockerfile", tools)}
    assert {"DL4006", "DL3025", "DL3066", "DL3002"} <= found


def _broken_server(docs: Docs) -> Docs:
    """The gpu render with its Deployment copied once per mistake, each copy named after its mistake."""
    deployment = find_doc(docs, "Deployment")
    breaks: dict[str, Callable[[dict[str, Any]], Any]] = {
        "intact": lambda d: None,
        "no-cpu-limit": lambda d: container_of([d])["resources"]["limits"].pop("cpu"),  # CKV_K8S_11
        "uid-0": lambda d: pod_of([d])["securityContext"].update(runAsUser=0),  # CKV_K8S_40
        "root-allowed": lambda d: container_of([d])["securityContext"].update(runAsNonRoot=False),  # _23
        "writable-root": lambda d: container_of([d])["securityContext"].pop("readOnlyRootFilesystem"),  # _22
        "if-not-present": lambda d: container_of([d]).update(imagePullPolicy="IfNotPresent"),  # CKV_K8S_15
        "unskipped": lambda d: d["metadata"].pop("annotations"),  # CKV_K8S_43, once the skip is gone
        # Pods no NetworkPolicy selects: CKV2_K8S_6.
        "no-policy": lambda d: d["spec"]["template"]["metadata"]["labels"].update(
            {"app.kubernetes.io/component": "unguarded"}
        ),
    }
    copies = []
    for name, breakage in breaks.items():
        copy_ = copy.deepcopy(deployment)
        copy_["metadata"]["name"] = name
        breakage(copy_)
        copies.append(copy_)
    return [d for d in docs if d is not deployment] + copies


def test_checkov_catches(rendered: dict[str, Docs], tmp_path: Path, tools: Path) -> None:
    """One checkov run as scan_deploy makes it: each mistake in the broken Dockerfile and the broken
    server copies is found, and a target without a NetworkPolicy is not covered by another's."""
    (tmp_path / "Dockerfile").write_text(_broken_dockerfile(), encoding="utf-8")
    unguarded = [d for d in rendered["cpu"] if d["kind"] != "NetworkPolicy"]
    targets = {"broken": _broken_server(rendered["gpu"]), "cpu-without-policy": unguarded}
    scans = linters.scan_deploy(targets, tools, dockerfile=tmp_path / "Dockerfile")
    assert {"CKV_DOCKER_2", "CKV_DOCKER_7", "CKV_DOCKER_8"} <= {f.check for f in scans["Dockerfile"].failed}
    found = {(f.check, f.where.split(".")[2]) for f in scans["broken"].failed}
    assert {
        ("CKV_K8S_11", "no-cpu-limit"),
        ("CKV_K8S_40", "uid-0"),
        ("CKV_K8S_23", "root-allowed"),
        ("CKV_K8S_22", "writable-root"),
        ("CKV_K8S_15", "if-not-present"),
        ("CKV_K8S_43", "unskipped"),
        ("CKV2_K8S_6", "no-policy"),
    } <= found
    assert not [f for f in scans["broken"].failed if f.where.split(".")[2] == "intact"], "intact must pass"
    assert [f.check for f in scans["cpu-without-policy"].failed] == ["CKV2_K8S_6"]


# -- metric names: every query reads series a real server exposes ----------------------------------------


@pytest.fixture(scope="module")
def exposed(tiny_model: Path) -> set[str]:
    """Series names scraped from a real server's /metrics after one Generate call and two fetches of
    one image URL (labelled series only appear once observed: the HTTP front, a cache miss and hit)."""
    from artctl.client import GeneratorClient

    port = free_port()
    options = {"metrics_port": port, "http_port": free_port()}
    with running_server([tiny_model], **options) as (server, address), GeneratorClient(address) as client:
        client.generate([1, 2, 3])
        for _ in range(2):
            urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/v1/models/tiny/images/3.png").read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    return metrics.exposed_series(text)


def test_scrape_has_the_histograms(exposed: set[str]) -> None:
    for name in ("artctl_queue_wait_seconds", "artctl_request_duration_seconds", "artctl_batch_size"):
        assert {f"{name}_bucket", f"{name}_sum", f"{name}_count"} <= exposed


def test_autoscaler_metrics_exist(rendered: dict[str, Docs], exposed: set[str]) -> None:
    adapter = manifests.load_adapter_rules()
    for target in ("cpu", "gpu", "gpu-keda"):
        queries, problems = metrics.autoscaler_queries(rendered[target], adapter)
        assert queries and problems == [], target
        assert [p for q in queries for p in metrics.promql_problems(q, exposed)] == [], target


def test_dashboard_metrics_exist(exposed: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = metrics.dashboard_queries(dashboard)
    text = json.dumps(dashboard)
    for topic in ("images_total", "request_duration_seconds_bucket", "batch_size", "queue_depth"):
        assert f"artctl_{topic}" in text
    assert "histogram_quantile(0.5" in text and "histogram_quantile(0.99" in text
    assert [p for q in queries for p in metrics.promql_problems(q, exposed)] == []


def test_metric_checks_catch_bad_names(rendered: dict[str, Docs], exposed: set[str]) -> None:
    assert metrics.promql_problems("sum(rate(artctl_queue_wait_seconds_total[1m]))", exposed)
    assert metrics.promql_problems(
        "histogram_quantile(0.9, sum by (le) (rate(artctl_batch_size_sum[1m])))", exposed
    )
    docs = copy.deepcopy(rendered["gpu"])
    find_doc(docs, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["pods"]["metric"]["name"] = "artctl_nope"
    assert metrics.autoscaler_queries(docs, manifests.load_adapter_rules())[1]


def test_adapter_values_are_helm_values() -> None:
    values = yaml.safe_load(manifests.ADAPTER_VALUES.read_text(encoding="utf-8"))
    for rule in values["rules"]["custom"]:
        assert set(rule) == {"seriesQuery", "resources", "name", "metricsQuery"}
        assert "<<.LabelMatchers>>" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]
