"""deploy/: the image and the Kubernetes manifests, proven offline (no container engine, no cluster).

Rendering needs kubectl (CI installs Debian's kubernetes-client when it is missing); without it these
tests skip on a developer machine and fail in CI. Every rule is also fed a broken manifest, so a rule
that silently stopped checking would fail here.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.checks import dockerfile, manifests, rules
from tests.conftest import running_server

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "artctl-dashboard.json"
Docs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def rendered() -> dict[str, Docs]:
    if manifests.kubectl() is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is missing: .ci/run should have installed kubernetes-client")
        pytest.skip("kubectl is not installed (apt-get install kubernetes-client)")
    return {name: manifests.render(path) for name, path in manifests.TARGETS.items()}


def _kinds(docs: Docs) -> list[str]:
    return sorted(d["kind"] for d in docs)


def _get(docs: Docs, kind: str, name: str | None = None) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))


# -- rendering and schemas ----------------------------------------------------------------------------


def test_every_target_renders_with_one_autoscaler(rendered: dict[str, Docs]) -> None:
    for name in ("cpu", "gpu"):
        assert "HorizontalPodAutoscaler" in _kinds(rendered[name])
        assert "ScaledObject" not in _kinds(rendered[name])
    assert "ScaledObject" in _kinds(rendered["gpu-keda"])
    assert "HorizontalPodAutoscaler" not in _kinds(rendered["gpu-keda"])
    assert _kinds(rendered["mint"]) == ["Job", "NetworkPolicy", "PersistentVolumeClaim", "Secret"]
    assert _kinds(rendered["mint-merge"]) == ["Job", "NetworkPolicy"]


@pytest.mark.parametrize("version", manifests.schema_versions())
def test_schemas_strict(rendered: dict[str, Docs], version: str) -> None:
    """kubernetes-validate --strict; the CRDs it has no schema for are exactly the ones we expect."""
    for name, docs in rendered.items():
        problems, skipped = manifests.validate(docs, version)
        assert problems == [], name
        crds = sorted(
            f"{d['kind']}/{d['metadata']['name']}"
            for d in docs
            if d["kind"] in {k for _, k in manifests.CRD_KINDS}
        )
        assert sorted(skipped) == crds, name


def test_schema_validation_rejects_unknown_fields(rendered: dict[str, Docs]) -> None:
    docs = copy.deepcopy(rendered["gpu"])
    _get(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    problems, _ = manifests.validate(docs, manifests.OLDEST_VERSION)
    assert any("readinessprobe" in p for p in problems)
    typo = [{"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitr", "metadata": {"name": "x"}}]
    assert manifests.validate(typo, manifests.OLDEST_VERSION)[0], "an unknown kind must not be skipped"


# -- rules: pass on the real manifests ----------------------------------------------------------------


@pytest.mark.parametrize("target", ["cpu", "gpu", "gpu-keda"])
def test_server_rules(rendered: dict[str, Docs], target: str) -> None:
    for check in rules.SERVER_RULES:
        assert check(rendered[target]) == [], check.__name__


@pytest.mark.parametrize("target", ["mint", "mint-merge"])
def test_job_rules(rendered: dict[str, Docs], target: str) -> None:
    for check in rules.JOB_RULES:
        assert check(rendered[target]) == [], check.__name__
    assert rules.merge_covers_shards(rendered["mint"], rendered["mint-merge"]) == []


def test_gpu_overlay_targets_gpu_nodes(rendered: dict[str, Docs]) -> None:
    spec = _get(rendered["gpu"], "Deployment")["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert "--provider=cuda" in spec["containers"][0]["args"]
    cpu = _get(rendered["cpu"], "Deployment")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in json.dumps(cpu) and "--provider=cpu" in cpu["containers"][0]["args"]


# -- rules: each one fails on a broken manifest ----------------------------------------------------------


def _container(docs: Docs) -> dict[str, Any]:
    return _get(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def _serve_toml(docs: Docs, old: str, new: str) -> None:
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and "serve.toml" in d.get("data", {}))
    assert old in cm["data"]["serve.toml"]
    cm["data"]["serve.toml"] = cm["data"]["serve.toml"].replace(old, new)


def _pod(docs: Docs) -> dict[str, Any]:
    return _get(docs, "Deployment")["spec"]["template"]["spec"]


BREAKS: list[tuple[str, Callable[[Docs], Any], Callable[[Docs], Any]]] = [
    (
        "gpu in requests",
        rules.gpu_only_in_limits,
        lambda d: _container(d)["resources"]["requests"].update({"nvidia.com/gpu": 1}),
    ),
    (
        "named probe port",
        rules.probes_match_ports,
        lambda d: _container(d)["livenessProbe"]["grpc"].update(port="grpc"),
    ),
    (
        "probe on wrong port",
        rules.probes_match_ports,
        lambda d: _container(d)["readinessProbe"]["grpc"].update(port=8002),
    ),
    ("server port moved", rules.probes_match_ports, lambda d: _serve_toml(d, "port = 8001", "port = 9001")),
    ("server on loopback", rules.probes_match_ports, lambda d: _serve_toml(d, '"0.0.0.0"', '"127.0.0.1"')),
    (
        "flag overrides port",
        rules.probes_match_ports,
        lambda d: _container(d)["args"].extend(["--port", "9001"]),
    ),
    (
        "deployment selector",
        rules.selectors_match,
        lambda d: _get(d, "Deployment")["spec"]["selector"]["matchLabels"].update(app="x"),
    ),
    (
        "service selector",
        rules.selectors_match,
        lambda d: _get(d, "Service", "artctl-server")["spec"]["selector"].update(app="x"),
    ),
    (
        "service targetPort",
        rules.selectors_match,
        lambda d: _get(d, "Service", "artctl-server")["spec"]["ports"][0].update(targetPort=9),
    ),
    (
        "pdb selector",
        rules.selectors_match,
        lambda d: _get(d, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].update(app="x"),
    ),
    (
        "servicemonitor selector",
        rules.selectors_match,
        lambda d: _get(d, "ServiceMonitor")["spec"]["selector"]["matchLabels"].update(app="x"),
    ),
    (
        "servicemonitor port",
        rules.selectors_match,
        lambda d: _get(d, "ServiceMonitor")["spec"]["endpoints"][0].update(port="grpc2"),
    ),
    (
        "hpa target",
        rules.selectors_match,
        lambda d: _get(d, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].update(name="nope"),
    ),
    (
        "short grace period",
        rules.grace_period_covers_drain,
        lambda d: _pod(d).update(terminationGracePeriodSeconds=35),
    ),
    (
        "longer drain",
        rules.grace_period_covers_drain,
        lambda d: _serve_toml(d, "grace_s = 30", "grace_s = 55"),
    ),
    (
        "no connection age",
        rules.connection_age_set,
        lambda d: _serve_toml(d, "max_connection_age_s = 300", ""),
    ),
    ("runs as root", rules.runs_as_non_root, lambda d: _pod(d)["securityContext"].update(runAsUser=0)),
    ("user by name", rules.runs_as_non_root, lambda d: _pod(d)["securityContext"].update(runAsUser="artctl")),
    ("no runAsNonRoot", rules.runs_as_non_root, lambda d: _pod(d)["securityContext"].pop("runAsNonRoot")),
    (
        "container overrides",
        rules.runs_as_non_root,
        lambda d: _container(d)["securityContext"].update(runAsNonRoot=False),
    ),
    (
        "writable root",
        rules.runs_as_non_root,
        lambda d: _container(d)["securityContext"].pop("readOnlyRootFilesystem"),
    ),
    ("no /tmp", rules.runs_as_non_root, lambda d: _container(d)["volumeMounts"].pop()),
    ("both autoscalers", rules.one_autoscaler, lambda d: d.append(_keda_object())),
    ("keda numeric metadata", rules.crd_structure, lambda d: d.append(_keda_object(threshold=0.05))),
    (
        "servicemonitor no endpoints",
        rules.crd_structure,
        lambda d: _get(d, "ServiceMonitor")["spec"].pop("endpoints"),
    ),
]


def _keda_object(threshold: Any = "0.05") -> dict[str, Any]:
    trigger = {"type": "prometheus", "metadata": {"query": "1", "threshold": threshold}}
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "artctl-server"},
        "spec": {"scaleTargetRef": {"name": "artctl-server"}, "triggers": [trigger]},
    }


@pytest.mark.parametrize(("what", "check", "breakage"), BREAKS, ids=[b[0] for b in BREAKS])
def test_rule_catches(
    rendered: dict[str, Docs], what: str, check: Callable[[Docs], list[str]], breakage: Callable[[Docs], Any]
) -> None:
    docs = copy.deepcopy(rendered["gpu"])
    assert check(docs) == []
    breakage(docs)
    assert check(docs), f"{check.__name__} missed: {what}"


JOB_BREAKS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("restartPolicy", lambda job: job["spec"]["template"]["spec"].update(restartPolicy="OnFailure")),
    ("no backoffLimitPerIndex", lambda job: job["spec"].pop("backoffLimitPerIndex")),
    ("shard count", lambda job: job["spec"].update(completions=4)),
    (
        "fixed --out",
        lambda job: job["spec"]["template"]["spec"]["containers"][0]["args"].__setitem__(3, "/drop/out"),
    ),
]


@pytest.mark.parametrize(("what", "breakage"), JOB_BREAKS, ids=[b[0] for b in JOB_BREAKS])
def test_indexed_job_rule_catches(
    rendered: dict[str, Docs], what: str, breakage: Callable[[dict[str, Any]], Any]
) -> None:
    docs = copy.deepcopy(rendered["mint"])
    breakage(_get(docs, "Job"))
    assert rules.indexed_jobs(docs), what


def test_merge_rule_catches_a_missing_shard(rendered: dict[str, Docs]) -> None:
    merge = copy.deepcopy(rendered["mint-merge"])
    _get(merge, "Job")["spec"]["template"]["spec"]["containers"][0]["args"].pop()
    assert rules.merge_covers_shards(rendered["mint"], merge)


# -- the CLI accepts what the manifests and the image run ---------------------------------------------


def _cli_help(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `artctl ARGS --help` in a fresh interpreter: unknown flags fail; report if torch got imported."""
    code = (
        "import sys\n"
        "from artctl.cli import main\n"
        f"sys.argv = ['artctl', *{args!r}, '--help']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code or 0\n"
        "import serving.server\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n"
        "sys.exit(code)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_manifest_command_lines_parse(rendered: dict[str, Docs]) -> None:
    for target in ("cpu", "gpu", "mint", "mint-merge"):
        for doc, spec in rules.pod_specs(rendered[target]):
            args = spec["containers"][0]["args"]
            done = _cli_help(args)
            assert done.returncode == 0, f"{target} {doc['kind']}: artctl {args}: {done.stdout}{done.stderr}"


# -- the image --------------------------------------------------------------------------------------------


def test_dockerfile_rules() -> None:
    assert dockerfile.check(dockerfile.DOCKERFILE.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("what", "old", "new"),
    [
        ("single stage", None, 'FROM python:3.12-slim\nUSER 10001\nENTRYPOINT ["artctl"]\nCMD ["serve"]\n'),
        ("named user", "USER 10001:10001\nENTRYPOINT", "USER artctl\nENTRYPOINT"),
        ("root user", "USER 10001:10001\nENTRYPOINT", "USER 0\nENTRYPOINT"),
        ("shell entrypoint", 'ENTRYPOINT ["artctl"]', "ENTRYPOINT artctl"),
        ("torch extra", '".[serve]"', '".[serve,train]"'),
        ("torch package", '".[gpu]"', '".[gpu]" torch'),
    ],
)
def test_dockerfile_rules_catch(what: str, old: str | None, new: str) -> None:
    text = dockerfile.DOCKERFILE.read_text(encoding="utf-8")
    assert old is None or old in text
    broken = new if old is None else text.replace(old, new, 1)
    assert dockerfile.check(broken), what


@pytest.mark.parametrize("target", dockerfile.FINAL_TARGETS)
def test_image_entrypoint_imports_without_torch(target: str) -> None:
    """The image's ENTRYPOINT + CMD parse, and the server imports without pulling torch in (torch is
    installed in this dev environment, so an accidental import would show)."""
    command = dockerfile.entrypoint(dockerfile.DOCKERFILE.read_text(encoding="utf-8"), target)
    assert command[:2] == ["artctl", "serve"]
    done = _cli_help(command[1:])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("NO-TORCH")


# -- metric names: every query reads series a real server exposes ----------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def exposed(tiny_model: Path) -> set[str]:
    """Series names scraped from a real server's /metrics after one Generate call (labelled histograms
    only appear once observed)."""
    from artctl.client import GeneratorClient

    port = _free_port()
    with running_server([tiny_model], metrics_port=port) as (_, address), GeneratorClient(address) as client:
        client.generate([1, 2, 3])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    return rules.exposed_series(text)


def test_scrape_has_the_histograms(exposed: set[str]) -> None:
    for name in ("artctl_queue_wait_seconds", "artctl_request_duration_seconds", "artctl_batch_size"):
        assert {f"{name}_bucket", f"{name}_sum", f"{name}_count"} <= exposed


def test_autoscaler_metrics_exist(rendered: dict[str, Docs], exposed: set[str]) -> None:
    adapter = manifests.load_adapter_rules()
    for target in ("cpu", "gpu", "gpu-keda"):
        queries, problems = rules.autoscaler_queries(rendered[target], adapter)
        assert queries and problems == [], target
        assert [p for q in queries for p in rules.promql_problems(q, exposed)] == [], target


def test_dashboard_metrics_exist(exposed: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = rules.dashboard_queries(dashboard)
    text = json.dumps(dashboard)
    for topic in ("images_total", "request_duration_seconds_bucket", "batch_size", "queue_depth"):
        assert f"artctl_{topic}" in text
    assert "histogram_quantile(0.5" in text and "histogram_quantile(0.99" in text
    assert [p for q in queries for p in rules.promql_problems(q, exposed)] == []


def test_metric_checks_catch_bad_names(rendered: dict[str, Docs], exposed: set[str]) -> None:
    assert rules.promql_problems("sum(rate(artctl_queue_wait_seconds_total[1m]))", exposed)
    assert rules.promql_problems(
        "histogram_quantile(0.9, sum by (le) (rate(artctl_batch_size_sum[1m])))", exposed
    )
    docs = copy.deepcopy(rendered["gpu"])
    _get(docs, "HorizontalPodAutoscaler")["spec"]["metrics"][0]["pods"]["metric"]["name"] = "artctl_nope"
    assert rules.autoscaler_queries(docs, manifests.load_adapter_rules())[1]


def test_adapter_values_are_helm_values() -> None:
    values = yaml.safe_load(manifests.ADAPTER_VALUES.read_text(encoding="utf-8"))
    for rule in values["rules"]["custom"]:
        assert set(rule) == {"seriesQuery", "resources", "name", "metricsQuery"}
        assert "<<.LabelMatchers>>" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]
