"""deploy/: the image and the Kubernetes manifests, proven offline (no container engine, no cluster).

Rendering needs kubectl (CI installs Debian's kubernetes-client when it is missing), the linters need
checkov and hadolint (`make test` installs them into .venv-tools and names it in ARTCTL_TOOLS_BIN);
without them these tests skip on a developer machine and fail in CI. Every rule, and each linter, is
also fed a broken manifest or Dockerfile, so a check that silently stopped checking would fail here.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.checks import dockerfile, linters, manifests, rules
from tests.helpers import running_server

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "artctl-dashboard.json"
DOCS = ROOT / "docs" / "deploy.md"
Docs = list[dict[str, Any]]


def _require(found: bool, in_ci: str, locally: str) -> None:
    """A missing tool skips on a developer machine and fails in CI, where it must be installed."""
    if not found:
        if os.environ.get("CI"):
            pytest.fail(in_ci)
        pytest.skip(locally)


@pytest.fixture(scope="module")
def rendered() -> dict[str, Docs]:
    _require(
        manifests.kubectl() is not None,
        "kubectl is missing: .ci/run should have installed kubernetes-client",
        "kubectl is not installed (apt-get install kubernetes-client)",
    )
    return {name: manifests.render(path) for name, path in manifests.TARGETS.items()}


@pytest.fixture(scope="module")
def tools() -> Path:
    folder = linters.tools_bin()
    _require(
        folder is not None,
        f"checkov/hadolint are missing: make test installs them and sets {linters.TOOLS_ENV}",
        "checkov and hadolint are not installed (make install puts them into .venv-tools)",
    )
    assert folder is not None
    return folder


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
    ("no /tmp", rules.writable_tmp, lambda d: _container(d)["volumeMounts"].pop()),
    (
        "policy without metrics",
        rules.network_policy_ports,
        lambda d: _get(d, "NetworkPolicy")["spec"]["ingress"][0]["ports"].pop(),
    ),
    (
        "policy admits every port",
        rules.network_policy_ports,
        lambda d: _get(d, "NetworkPolicy")["spec"]["ingress"][0].pop("ports"),
    ),
    (
        "policy behind a port move",
        rules.network_policy_ports,
        lambda d: _serve_toml(d, "metrics_port = 8002", "metrics_port = 9002"),
    ),
    (
        "policy on other pods",
        rules.network_policy_ports,
        lambda d: _get(d, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"].update(app="x"),
    ),
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


# -- the collection's salt stays secret -------------------------------------------------------------------


def _collection_text(docs: Docs) -> str:
    return base64.b64decode(_get(docs, "Secret")["data"]["collection.toml"]).decode("utf-8")


def test_collection_is_mounted_from_a_secret(rendered: dict[str, Docs], tmp_path: Path) -> None:
    """kustomize puts collection.toml (with the salt) into a Secret, and the Job finds the same file
    where its args say, so `artctl mint` runs unchanged."""
    docs = rendered["mint"]
    assert "ConfigMap" not in _kinds(docs)
    text = _collection_text(docs)
    assert text == (manifests.K8S / "mint" / "collection.toml").read_text(encoding="utf-8")
    spec = _get(docs, "Job")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == _get(docs, "Secret")["metadata"]["name"]
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert spec["containers"][0]["args"][1] == f"{mount['mountPath']}/collection.toml"
    from artctl.collection import load_collection

    (tmp_path / "collection.toml").write_text(text, encoding="utf-8")
    assert load_collection(tmp_path / "collection.toml").salt


def test_salt_rule_catches_a_configmap(rendered: dict[str, Docs]) -> None:
    leaked = copy.deepcopy(rendered["mint"])
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "artctl-collection"}}
    leaked.append({**config_map, "data": {"collection.toml": _collection_text(leaked)}})
    assert rules.salt_in_secret(leaked)
    mounted = copy.deepcopy(rendered["mint"])
    volume = next(v for v in _get(mounted, "Job")["spec"]["template"]["spec"]["volumes"] if "secret" in v)
    volume["configMap"] = {"name": volume.pop("secret")["secretName"]}
    assert rules.salt_in_secret(mounted)


def test_manifests_need_kubernetes_1_30(rendered: dict[str, Docs]) -> None:
    """docs/deploy.md's minimum, from the schemas: 1.28 has no preStop sleep action (1.29 has it behind
    an alpha gate, on by default from 1.30), 1.27 has no backoffLimitPerIndex (alpha in 1.28)."""
    server, _ = manifests.validate(rendered["gpu"], "1.28.0")
    mint, _ = manifests.validate(rendered["mint"], "1.27.0")
    assert any("'sleep' was unexpected" in p for p in server)
    assert any("backoffLimitPerIndex" in p for p in mint)
    assert manifests.OLDEST_VERSION == "1.30.0"
    assert "Kubernetes 1.30 or newer" in DOCS.read_text(encoding="utf-8")


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
        ("no user in a target", "USER 10001:10001\nENTRYPOINT", "ENTRYPOINT"),
        ("health on another port", "'127.0.0.1:8001'", "'127.0.0.1:9001'"),
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


def _health_probe(address: str) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, run here against `address` instead of the container's port."""
    command = dockerfile.healthcheck(dockerfile.DOCKERFILE.read_text(encoding="utf-8"), "gpu")
    assert command[:2] == ["python", "-c"] and "127.0.0.1:8001" in command[2]
    code = command[2].replace("127.0.0.1:8001", address)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_image_healthcheck_asks_the_grpc_health_service(tiny_model: Path) -> None:
    with running_server([tiny_model]) as (_, address):
        done = _health_probe(address)
        assert done.returncode == 0, done.stderr
    assert _health_probe(f"127.0.0.1:{_free_port()}").returncode == 1  # nobody listening: unhealthy


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
    deployment = _get(docs, "Deployment")
    breaks: dict[str, Callable[[dict[str, Any]], Any]] = {
        "intact": lambda d: None,
        "no-cpu-limit": lambda d: _container([d])["resources"]["limits"].pop("cpu"),  # CKV_K8S_11
        "uid-0": lambda d: _pod([d])["securityContext"].update(runAsUser=0),  # CKV_K8S_40
        "root-allowed": lambda d: _container([d])["securityContext"].update(runAsNonRoot=False),  # _23
        "writable-root": lambda d: _container([d])["securityContext"].pop("readOnlyRootFilesystem"),  # _22
        "if-not-present": lambda d: _container([d]).update(imagePullPolicy="IfNotPresent"),  # CKV_K8S_15
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
