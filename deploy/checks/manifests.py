"""Render the kustomizations and validate them against the Kubernetes OpenAPI schemas."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

K8S = Path(__file__).resolve().parent.parent / "k8s"
# Everything a user applies: the server overlays and the two mint steps.
TARGETS = {
    "cpu": K8S / "overlays" / "cpu",
    "gpu": K8S / "overlays" / "gpu",
    "gpu-keda": K8S / "overlays" / "gpu-keda",
    "mint": K8S / "mint",
    "mint-merge": K8S / "mint-merge",
}
ADAPTER_VALUES = K8S / "prometheus-adapter" / "values.yaml"
# Custom resources: kubernetes-validate bundles no schema for them, so rules.crd_structure checks
# their shape instead. Anything else without a schema is an error (a typo in apiVersion or kind).
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}
OLDEST_VERSION = "1.30.0"

Doc = dict[str, Any]


def kubectl() -> str | None:
    """kubectl from $KUBECTL or PATH (CI installs Debian's kubernetes-client when it is missing)."""
    return os.environ.get("KUBECTL") or shutil.which("kubectl")


def render(path: Path, binary: str | None = None) -> list[Doc]:
    binary = binary or kubectl()
    if binary is None:
        raise FileNotFoundError("kubectl is not installed")
    done = subprocess.run([binary, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{done.stderr}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def schema_versions() -> list[str]:
    """The oldest Kubernetes we support and the newest the installed kubernetes-validate knows."""
    from kubernetes_validate.utils import latest_version

    return [OLDEST_VERSION, latest_version()]


def validate(docs: list[Doc], version: str) -> tuple[list[str], list[str]]:
    """Strict schema validation; returns (problems, skipped CRD objects)."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    problems: list[str] = []
    skipped: list[str] = []
    for doc in docs:
        what = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except SchemaNotFoundError:
            if (doc.get("apiVersion"), doc.get("kind")) in CRD_KINDS:
                skipped.append(what)
            else:
                problems.append(f"{what}: no schema for {doc.get('apiVersion')} in Kubernetes {version}")
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(f"{what}: {path}: {exc.message} (Kubernetes {version})")
    return problems, skipped


def load_adapter_rules(path: Path = ADAPTER_VALUES) -> list[Doc]:
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]["custom"])
