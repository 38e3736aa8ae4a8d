"""Metric names: every PromQL query of the autoscalers, the dashboard and the alert rules reads
series a real server exposes (checked against a scrape of one in tests/test_deploy_tools.py and
tests/test_observability.py)."""

from __future__ import annotations

import re
from typing import Any

from deploy.checks.rules import of_kind, resource_name

Doc = dict[str, Any]

METRIC = re.compile(r"\bartctl_[a-z0-9_]+\b")
QUANTILE = re.compile(r"histogram_quantile\([^,]+,.*?(artctl_[a-z0-9_]+)")  # the series it reads


def promql_problems(expr: str, exposed: set[str]) -> list[str]:
    """Every artctl_ series in a PromQL expression is exposed; histogram_quantile reads _bucket."""
    problems = [
        f"{name} (in {expr!r}) is not in /metrics" for name in METRIC.findall(expr) if name not in exposed
    ]
    for name in QUANTILE.findall(expr):
        if not name.endswith("_bucket"):
            problems.append(f"histogram_quantile over {name}: needs the _bucket series")
    return problems


def autoscaler_queries(docs: list[Doc], adapter_rules: list[Doc]) -> tuple[list[str], list[str]]:
    """(PromQL behind every HPA and KEDA metric, problems: an HPA metric no adapter rule provides)."""
    by_name = {r["name"]["as"]: r for r in adapter_rules}
    queries: list[str] = []
    problems: list[str] = []
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        for metric in hpa["spec"].get("metrics", []):
            if metric["type"] not in ("Pods", "Object", "External"):
                continue
            name = metric[metric["type"].lower()]["metric"]["name"]
            rule = by_name.get(name)
            if rule is None:
                problems.append(f"{resource_name(hpa)}: metric {name} has no prometheus-adapter rule")
            else:
                queries += [rule["seriesQuery"], rule["metricsQuery"]]
    for so in of_kind(docs, "ScaledObject"):
        queries += [t["metadata"]["query"] for t in so["spec"]["triggers"] if t["type"] == "prometheus"]
    return queries, problems


def dashboard_queries(dashboard: Doc) -> list[str]:
    return [t["expr"] for p in dashboard.get("panels", []) for t in p.get("targets", []) if "expr" in t]


def rule_queries(groups: list[Doc]) -> list[str]:
    """The expression of every alerting or recording rule in Prometheus rule groups."""
    return [str(r["expr"]) for g in groups for r in g.get("rules", []) if "expr" in r]


def exposed_series(metrics_text: str) -> set[str]:
    """Series names in a Prometheus text exposition (histograms as _bucket, _sum, _count)."""
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names
