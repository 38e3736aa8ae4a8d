"""Rules that schemas, checkov and hadolint miss. Each takes rendered objects, returns problems.

checkov (deploy/checks/linters.py) covers the generic hardening: non-root (CKV_K8S_23, high uid
CKV_K8S_40), read-only root filesystem (CKV_K8S_22), privilege escalation, capabilities, seccomp,
probes present, CPU and memory limits, NetworkPolicy present, image digest and pull policy. So the
old runs_as_non_root rule is gone but for its /tmp part. What stays here is what only this project
knows, rule by rule:

- gpu_only_in_limits: nvidia.com/gpu is an extended resource; no linter knows the GPU overlay.
- probes_match_ports: probes hit a container port and the server's port from serve.toml + flags.
- network_policy_ports: the server's NetworkPolicy admits exactly serve.toml's two ports (checkov
  only checks that some policy selects the pods).
- selectors_match: Services, PDB, ServiceMonitor and autoscalers point at objects in the render.
- grace_period_covers_drain, connection_age_set: timings from serve.toml (artctl's graceful drain).
- writable_tmp: a read-only root needs an emptyDir at /tmp (Python's tempfile, multiprocessing).
- the mint Jobs' rules (Indexed shards, the merge's list, the salt in a Secret): deploy.checks.jobs.
- one_autoscaler, crd_structure: HPA vs KEDA, and the CRDs that have no schema (ServiceMonitor,
  PrometheusRule, ScaledObject).
- metric names: in deploy.checks.metrics (queries read series a real server exposes).
"""

from __future__ import annotations

import posixpath
import sys
from collections.abc import Iterator
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Doc = dict[str, Any]
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
GPU = "nvidia.com/gpu"


def resource_name(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def pod_specs(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, its pod spec) for every workload."""
    for doc in docs:
        if doc.get("kind") in WORKLOADS:
            yield doc, doc["spec"]["template"]["spec"]


def _containers(spec: Doc) -> list[Doc]:
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def flag_value(args: list[str], flag: str) -> str | None:
    """The value of `--flag V` or `--flag=V` (the last one wins, as on the command line)."""
    value = None
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


# -- the server's effective options -------------------------------------------------------------------

FLAG_KEYS = {
    "--port": ("port", int),
    "--metrics-port": ("metrics_port", int),
    "--http-port": ("http_port", int),
    "--max-connection-age": ("max_connection_age_s", float),
    "--host": ("host", str),
}


def volume_at(spec: Doc, container: Doc, folder: str) -> Doc | None:
    """The pod volume a container mounts at `folder`."""
    mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"] == folder), None)
    return next((v for v in spec.get("volumes", []) if mount and v["name"] == mount["name"]), None)


def serve_options(docs: list[Doc], deployment: Doc) -> dict[str, Any]:
    """serve.toml from the ConfigMap mounted at --config, overridden by flags (as `artctl serve` does)."""
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    args = [str(a) for a in container.get("args", [])]
    options: dict[str, Any] = {}
    config = flag_value(args, "--config")
    if config:
        folder, filename = posixpath.split(config)
        volume = volume_at(spec, container, folder) or {}
        cm = next(
            c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == volume["configMap"]["name"]
        )
        options = tomllib.loads(cm["data"][filename])
    for flag, (key, kind) in FLAG_KEYS.items():
        value = flag_value(args, flag)
        if value is not None:
            options[key] = kind(value)
    return options


def _servers(docs: list[Doc]) -> list[Doc]:
    return [
        d
        for d in of_kind(docs, "Deployment")
        if d["spec"]["template"]["spec"]["containers"][0].get("args", [None])[0] == "serve"
    ]


# -- rules ------------------------------------------------------------------------------------------


def gpu_only_in_limits(docs: list[Doc]) -> list[str]:
    """Extended resources cannot be overcommitted: nvidia.com/gpu belongs in limits only."""
    problems = []
    for doc, spec in pod_specs(docs):
        for c in _containers(spec):
            if GPU in c.get("resources", {}).get("requests", {}):
                problems.append(
                    f"{resource_name(doc)}: container {c['name']} requests {GPU}; set it in limits only"
                )
    return problems


def probes_match_ports(docs: list[Doc]) -> list[str]:
    """Probe ports are numbers, are container ports, and the gRPC probe hits the server's port."""
    problems = []
    for doc, spec in pod_specs(docs):
        for c in spec["containers"]:
            ports = {p["containerPort"] for p in c.get("ports", [])}
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = c.get(kind)
                if probe is None:
                    continue
                action: Doc = next((probe[a] for a in ("grpc", "httpGet", "tcpSocket") if a in probe), {})
                port = action.get("port")
                if not isinstance(port, int):
                    problems.append(f"{resource_name(doc)}: {kind} port {port!r} is not a number")
                elif port not in ports:
                    problems.append(
                        f"{resource_name(doc)}: {kind} port {port} is not a container port {sorted(ports)}"
                    )
    for dep in _servers(docs):
        opts = serve_options(docs, dep)
        c = dep["spec"]["template"]["spec"]["containers"][0]
        ports = {p["containerPort"] for p in c.get("ports", [])}
        for key in ("port", "metrics_port", "http_port"):
            if key in opts and opts[key] not in ports:
                problems.append(f"{resource_name(dep)}: server {key} {opts.get(key)} is not a container port")
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if c.get(kind, {}).get("grpc", {}).get("port") != opts.get("port"):
                problems.append(
                    f"{resource_name(dep)}: {kind} is not a gRPC probe on the server port {opts.get('port')}"
                )
        if opts.get("host") != "0.0.0.0":
            problems.append(f"{resource_name(dep)}: server binds {opts.get('host')!r}; probes need 0.0.0.0")
    return problems


def network_policy_ports(docs: list[Doc]) -> list[str]:
    """The NetworkPolicies over the server pods admit the ports it listens on, and nothing else."""
    problems = []
    for dep in _servers(docs):
        labels = dep["spec"]["template"]["metadata"].get("labels", {})
        container = dep["spec"]["template"]["spec"]["containers"][0]
        named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        opts = serve_options(docs, dep)
        want = {opts.get(key) for key in ("port", "metrics_port", "http_port") if opts.get(key)}
        admitted: set[Any] = set()
        for policy in of_kind(docs, "NetworkPolicy"):
            selector = policy["spec"].get("podSelector", {}).get("matchLabels", {})
            if not all(labels.get(k) == v for k, v in selector.items()):
                continue
            for rule in policy["spec"].get("ingress", []):
                if not rule.get("ports"):
                    problems.append(
                        f"{resource_name(policy)}: an ingress rule without ports admits every port"
                    )
                admitted |= {named.get(p.get("port"), p.get("port")) for p in rule.get("ports", [])}
        if admitted != want:
            problems.append(
                f"{resource_name(dep)}: NetworkPolicies admit ports {sorted(admitted, key=str)}, "
                f"the server listens on {sorted(want, key=str)}"
            )
    return problems


def selectors_match(docs: list[Doc]) -> list[str]:
    """Deployment, Services, PDB, ServiceMonitor and autoscaler targets all point at real objects."""
    problems = []
    pods = [d["spec"]["template"]["metadata"].get("labels", {}) for d in of_kind(docs, "Deployment")]
    container_ports = {
        p["containerPort"]
        for d in of_kind(docs, "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
    }
    for dep in of_kind(docs, "Deployment"):
        selector = dep["spec"]["selector"].get("matchLabels", {})
        if not _matches(selector, dep["spec"]["template"]["metadata"].get("labels", {})):
            problems.append(f"{resource_name(dep)}: selector {selector} does not match its pod labels")
    for svc in of_kind(docs, "Service"):
        selector = svc["spec"].get("selector", {})
        if not any(_matches(selector, labels) for labels in pods):
            problems.append(f"{resource_name(svc)}: selector {selector} matches no pod template")
        for port in svc["spec"].get("ports", []):
            if port.get("targetPort", port["port"]) not in container_ports:
                problems.append(
                    f"{resource_name(svc)}: targetPort {port.get('targetPort')} is no container port"
                )
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"].get("matchLabels", {})
        if not any(_matches(selector, labels) for labels in pods):
            problems.append(f"{resource_name(pdb)}: selector {selector} matches no pod template")
    for sm in of_kind(docs, "ServiceMonitor"):
        selector = sm["spec"].get("selector", {}).get("matchLabels", {})
        services = [
            s for s in of_kind(docs, "Service") if _matches(selector, s["metadata"].get("labels", {}))
        ]
        if not services:
            problems.append(f"{resource_name(sm)}: selector {selector} matches no Service")
        names = {p.get("name") for s in services for p in s["spec"]["ports"]}
        for endpoint in sm["spec"].get("endpoints", []):
            if endpoint.get("port") not in names:
                problems.append(
                    f"{resource_name(sm)}: endpoint port {endpoint.get('port')!r} not in {sorted(names)}"
                )
    deployments = {d["metadata"]["name"] for d in of_kind(docs, "Deployment")}
    for scaler in of_kind(docs, "HorizontalPodAutoscaler") + of_kind(docs, "ScaledObject"):
        target = scaler["spec"]["scaleTargetRef"]
        if target.get("kind", "Deployment") != "Deployment" or target.get("name") not in deployments:
            problems.append(f"{resource_name(scaler)}: target {target} is not a Deployment in this render")
    return problems


def _prestop_seconds(container: Doc) -> float:
    pre = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre:
        return float(pre["sleep"]["seconds"])
    command = pre.get("exec", {}).get("command", [])
    if len(command) == 2 and command[0].endswith("sleep"):
        return float(command[1])
    return 0.0


def grace_period_covers_drain(docs: list[Doc]) -> list[str]:
    """Kubelet kills at terminationGracePeriodSeconds: it must outlast preStop + the server's drain."""
    from artctl_serving.config import ServerOptions

    problems = []
    for dep in _servers(docs):
        spec = dep["spec"]["template"]["spec"]
        period = spec.get("terminationGracePeriodSeconds", 30)
        drain = float(serve_options(docs, dep).get("grace_s", ServerOptions().grace_s))
        need = _prestop_seconds(spec["containers"][0]) + drain
        if period < need:
            problems.append(
                f"{resource_name(dep)}: terminationGracePeriodSeconds {period} < preStop + drain {need:g}"
            )
    return problems


def connection_age_set(docs: list[Doc]) -> list[str]:
    """Without max_connection_age, clients keep their first connections forever and never re-balance."""
    return [
        f"{resource_name(dep)}: max_connection_age_s is not set"
        for dep in _servers(docs)
        if not serve_options(docs, dep).get("max_connection_age_s")
    ]


def writable_tmp(docs: list[Doc]) -> list[str]:
    """The root filesystem is read-only (checkov CKV_K8S_22), so /tmp must be an emptyDir."""
    problems = []
    for doc, spec in pod_specs(docs):
        empty = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in _containers(spec):
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            if mounts.get("/tmp") not in empty:
                problems.append(f"{resource_name(doc)}: container {c['name']} has no emptyDir at /tmp")
    return problems


def one_autoscaler(docs: list[Doc]) -> list[str]:
    """HPA and KEDA on one Deployment fight each other (KEDA makes its own HPA)."""
    hpa = {d["spec"]["scaleTargetRef"]["name"] for d in of_kind(docs, "HorizontalPodAutoscaler")}
    keda = {d["spec"]["scaleTargetRef"]["name"] for d in of_kind(docs, "ScaledObject")}
    return [
        f"Deployment/{name}: scaled by both an HPA and a KEDA ScaledObject" for name in sorted(hpa & keda)
    ]


def crd_structure(docs: list[Doc]) -> list[str]:
    """Shape checks for the custom resources kubernetes-validate has no schema for."""
    problems = []
    for sm in of_kind(docs, "ServiceMonitor"):
        spec = sm.get("spec", {})
        if sm.get("apiVersion") != "monitoring.coreos.com/v1":
            problems.append(f"{resource_name(sm)}: apiVersion {sm.get('apiVersion')}")
        if not isinstance(spec.get("selector", {}).get("matchLabels"), dict):
            problems.append(f"{resource_name(sm)}: spec.selector.matchLabels missing")
        endpoints = spec.get("endpoints")
        if not endpoints or not all(
            isinstance(e, dict) and isinstance(e.get("port"), str) for e in endpoints
        ):
            problems.append(f"{resource_name(sm)}: spec.endpoints must list named ports")
        extra = set(spec) - {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels"}
        if extra:
            problems.append(f"{resource_name(sm)}: unexpected spec fields {sorted(extra)}")
    for pr in of_kind(docs, "PrometheusRule"):
        groups = pr.get("spec", {}).get("groups")
        if not groups or not all(isinstance(g, dict) and g.get("name") and g.get("rules") for g in groups):
            problems.append(f"{resource_name(pr)}: spec.groups must be named groups of rules")
        elif any(
            not (r.get("alert") or r.get("record")) or not r.get("expr") for g in groups for r in g["rules"]
        ):
            problems.append(f"{resource_name(pr)}: every rule needs an alert (or record) name and an expr")
    for so in of_kind(docs, "ScaledObject"):
        spec = so.get("spec", {})
        if so.get("apiVersion") != "keda.sh/v1alpha1":
            problems.append(f"{resource_name(so)}: apiVersion {so.get('apiVersion')}")
        if not spec.get("scaleTargetRef", {}).get("name"):
            problems.append(f"{resource_name(so)}: spec.scaleTargetRef.name missing")
        if not spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100):
            problems.append(f"{resource_name(so)}: minReplicaCount > maxReplicaCount")
        for trigger in spec.get("triggers") or [None]:
            if not isinstance(trigger, dict) or not trigger.get("type"):
                problems.append(f"{resource_name(so)}: every trigger needs a type")
                continue
            # KEDA trigger metadata is map[string]string: a bare YAML number is rejected by the API.
            bad = [k for k, v in trigger.get("metadata", {}).items() if not isinstance(v, str)]
            if bad:
                problems.append(f"{resource_name(so)}: trigger metadata {bad} must be strings")
    return problems


SERVER_RULES = (
    gpu_only_in_limits,
    probes_match_ports,
    network_policy_ports,
    selectors_match,
    grace_period_covers_drain,
    connection_age_set,
    writable_tmp,
    one_autoscaler,
    crd_structure,
)
