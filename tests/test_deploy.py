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
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy.checks import dockerfile, jobs, manifests, rules
from tests.helpers import container_of, find_doc, free_port, pod_of, running_server

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "artctl-dashboard.json"
DOCS = ROOT / "docs" / "deploy.md"
Docs = list[dict[str, Any]]


def _kinds(docs: Docs) -> list[str]:
    return sorted(d["kind"] for d in docs)


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
    find_doc(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
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
    for check in jobs.JOB_RULES:
        assert check(rendered[target]) == [], check.__name__
    assert jobs.merge_covers_shards(rendered["mint"], rendered["mint-merge"]) == []


def test_gpu_overlay_targets_gpu_nodes(rendered: dict[str, Docs]) -> None:
    spec = find_doc(rendered["gpu"], "Deployment")["spec"]["template"]["spec"]
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in spec["tolerations"])
    assert "--provider=cuda" in spec["containers"][0]["args"]
    cpu = find_doc(rendered["cpu"], "Deployment")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in json.dumps(cpu) and "--provider=cpu" in cpu["containers"][0]["args"]


# -- rules: each one fails on a broken manifest ----------------------------------------------------------


def _serve_toml(docs: Docs, old: str, new: str) -> None:
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and "serve.toml" in d.get("data", {}))
    assert old in cm["data"]["serve.toml"]
    cm["data"]["serve.toml"] = cm["data"]["serve.toml"].replace(old, new)


BREAKS: list[tuple[str, Callable[[Docs], Any], Callable[[Docs], Any]]] = [
    (
        "gpu in requests",
        rules.gpu_only_in_limits,
        lambda d: container_of(d)["resources"]["requests"].update({"nvidia.com/gpu": 1}),
    ),
    (
        "named probe port",
        rules.probes_match_ports,
        lambda d: container_of(d)["livenessProbe"]["grpc"].update(port="grpc"),
    ),
    (
        "probe on wrong port",
        rules.probes_match_ports,
        lambda d: container_of(d)["readinessProbe"]["grpc"].update(port=8002),
    ),
    ("server port moved", rules.probes_match_ports, lambda d: _serve_toml(d, "port = 8001", "port = 9001")),
    ("server on loopback", rules.probes_match_ports, lambda d: _serve_toml(d, '"0.0.0.0"', '"127.0.0.1"')),
    (
        "http port not a container port",
        rules.probes_match_ports,
        lambda d: container_of(d)["args"].extend(["--http-port", "9000"]),
    ),
    (
        "flag overrides port",
        rules.probes_match_ports,
        lambda d: container_of(d)["args"].extend(["--port", "9001"]),
    ),
    (
        "deployment selector",
        rules.selectors_match,
        lambda d: find_doc(d, "Deployment")["spec"]["selector"]["matchLabels"].update(app="x"),
    ),
    (
        "service selector",
        rules.selectors_match,
        lambda d: find_doc(d, "Service", "artctl-server")["spec"]["selector"].update(app="x"),
    ),
    (
        "service targetPort",
        rules.selectors_match,
        lambda d: find_doc(d, "Service", "artctl-server")["spec"]["ports"][0].update(targetPort=9),
    ),
    (
        "pdb selector",
        rules.selectors_match,
        lambda d: find_doc(d, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].update(app="x"),
    ),
    (
        "servicemonitor selector",
        rules.selectors_match,
        lambda d: find_doc(d, "ServiceMonitor")["spec"]["selector"]["matchLabels"].update(app="x"),
    ),
    (
        "servicemonitor port",
        rules.selectors_match,
        lambda d: find_doc(d, "ServiceMonitor")["spec"]["endpoints"][0].update(port="grpc2"),
    ),
    (
        "hpa target",
        rules.selectors_match,
        lambda d: find_doc(d, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].update(name="nope"),
    ),
    (
        "short grace period",
        rules.grace_period_covers_drain,
        lambda d: pod_of(d).update(terminationGracePeriodSeconds=35),
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
    ("no /tmp", rules.writable_tmp, lambda d: container_of(d)["volumeMounts"].pop()),
    (
        "policy without metrics",
        rules.network_policy_ports,
        lambda d: find_doc(d, "NetworkPolicy")["spec"]["ingress"][0]["ports"].pop(),
    ),
    (
        "policy admits every port",
        rules.network_policy_ports,
        lambda d: find_doc(d, "NetworkPolicy")["spec"]["ingress"][0].pop("ports"),
    ),
    (
        "policy behind a port move",
        rules.network_policy_ports,
        lambda d: _serve_toml(d, "metrics_port = 8002", "metrics_port = 9002"),
    ),
    (
        "policy behind an http port move",
        rules.network_policy_ports,
        lambda d: _serve_toml(d, "http_port = 8000", "http_port = 9000"),
    ),
    (
        "policy on other pods",
        rules.network_policy_ports,
        lambda d: find_doc(d, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"].update(app="x"),
    ),
    ("both autoscalers", rules.one_autoscaler, lambda d: d.append(_keda_object())),
    ("keda numeric metadata", rules.crd_structure, lambda d: d.append(_keda_object(threshold=0.05))),
    (
        "servicemonitor no endpoints",
        rules.crd_structure,
        lambda d: find_doc(d, "ServiceMonitor")["spec"].pop("endpoints"),
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
    breakage(find_doc(docs, "Job"))
    assert jobs.indexed_jobs(docs), what


def test_merge_rule_catches_a_missing_shard(rendered: dict[str, Docs]) -> None:
    merge = copy.deepcopy(rendered["mint-merge"])
    find_doc(merge, "Job")["spec"]["template"]["spec"]["containers"][0]["args"].pop()
    assert jobs.merge_covers_shards(rendered["mint"], merge)


# -- the collection's salt stays secret -------------------------------------------------------------------


def _collection_text(docs: Docs) -> str:
    return base64.b64decode(find_doc(docs, "Secret")["data"]["collection.toml"]).decode("utf-8")


def test_collection_is_mounted_from_a_secret(rendered: dict[str, Docs], tmp_path: Path) -> None:
    """kustomize puts collection.toml (with the salt) into a Secret, and the Job finds the same file
    where its args say, so `artctl mint` runs unchanged."""
    docs = rendered["mint"]
    assert "ConfigMap" not in _kinds(docs)
    text = _collection_text(docs)
    assert text == (manifests.K8S / "mint" / "collection.toml").read_text(encoding="utf-8")
    spec = find_doc(docs, "Job")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if "secret" in v)
    assert volume["secret"]["secretName"] == find_doc(docs, "Secret")["metadata"]["name"]
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert spec["containers"][0]["args"][1] == f"{mount['mountPath']}/collection.toml"
    from artctl.collection import load_collection

    (tmp_path / "collection.toml").write_text(text, encoding="utf-8")
    assert load_collection(tmp_path / "collection.toml").salt


def test_salt_rule_catches_a_configmap(rendered: dict[str, Docs]) -> None:
    leaked = copy.deepcopy(rendered["mint"])
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "artctl-collection"}}
    leaked.append({**config_map, "data": {"collection.toml": _collection_text(leaked)}})
    assert jobs.salt_in_secret(leaked)
    mounted = copy.deepcopy(rendered["mint"])
    volume = next(v for v in find_doc(mounted, "Job")["spec"]["template"]["spec"]["volumes"] if "secret" in v)
    volume["configMap"] = {"name": volume.pop("secret")["secretName"]}
    assert jobs.salt_in_secret(mounted)


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
        "import artctl_serving.server\n"
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
    assert _health_probe(f"127.0.0.1:{free_port()}").returncode == 1  # nobody listening: unhealthy
