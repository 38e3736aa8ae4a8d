"""Rules for the mint Jobs: Indexed shards, the merge that joins them, and the salt kept secret."""

from __future__ import annotations

import posixpath
import sys
from typing import Any

from deploy.checks.rules import (
    flag_value,
    gpu_only_in_limits,
    of_kind,
    pod_specs,
    resource_name,
    selectors_match,
    volume_at,
    writable_tmp,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Doc = dict[str, Any]


def indexed_jobs(docs: list[Doc]) -> list[str]:
    """Sharded minting: Indexed, per-index retries, restartPolicy Never, --shard i/n with n = completions."""
    problems = []
    for job in of_kind(docs, "Job"):
        spec = job["spec"]
        if spec.get("completionMode") != "Indexed":
            continue
        if spec["template"]["spec"].get("restartPolicy") != "Never":
            problems.append(
                f"{resource_name(job)}: restartPolicy must be Never (backoffLimitPerIndex needs it)"
            )
        if "backoffLimitPerIndex" not in spec:
            problems.append(
                f"{resource_name(job)}: no backoffLimitPerIndex: one flaky shard would fail them all"
            )
        args = [str(a) for a in spec["template"]["spec"]["containers"][0].get("args", [])]
        shard = flag_value(args, "--shard") or ""
        if shard != f"$(JOB_COMPLETION_INDEX)/{spec.get('completions')}":
            problems.append(
                f"{resource_name(job)}: --shard {shard!r} is not $(JOB_COMPLETION_INDEX)/completions"
            )
        if "$(JOB_COMPLETION_INDEX)" not in (flag_value(args, "--out") or ""):
            problems.append(
                f"{resource_name(job)}: --out does not depend on JOB_COMPLETION_INDEX; shards would collide"
            )
    return problems


def merge_covers_shards(mint_docs: list[Doc], merge_docs: list[Doc]) -> list[str]:
    """The merge step names every shard folder the Indexed Job writes, and nothing else."""
    job = next(j for j in of_kind(mint_docs, "Job") if j["spec"].get("completionMode") == "Indexed")
    args = [str(a) for a in job["spec"]["template"]["spec"]["containers"][0]["args"]]
    pattern = flag_value(args, "--out") or ""
    want = [pattern.replace("$(JOB_COMPLETION_INDEX)", str(i)) for i in range(job["spec"]["completions"])]
    problems = []
    for merge in of_kind(merge_docs, "Job"):
        margs = [str(a) for a in merge["spec"]["template"]["spec"]["containers"][0]["args"]]
        if margs[:1] != ["merge"] or margs[2:] != want:
            problems.append(f"{resource_name(merge)}: merges {margs[2:]}, but the shards are {want}")
    return problems


def salt_in_secret(docs: list[Doc]) -> list[str]:
    """The salt decides every token's seed and stays secret until the reveal: no ConfigMap holds a
    collection with a salt, and `artctl mint` reads its collection from a mounted Secret."""
    problems = [
        f"{resource_name(cm)}: {key} holds the collection's salt; put it in a Secret"
        for cm in of_kind(docs, "ConfigMap")
        for key, text in cm.get("data", {}).items()
        if key.endswith(".toml") and "salt" in tomllib.loads(text)
    ]
    for doc, spec in pod_specs(docs):
        for c in spec["containers"]:
            args = [str(a) for a in c.get("args", [])]
            if args[:1] != ["mint"] or len(args) < 2:
                continue
            volume = volume_at(spec, c, posixpath.dirname(args[1])) or {}
            if "secret" not in volume:
                problems.append(
                    f"{resource_name(doc)}: the collection {args[1]} is not mounted from a Secret"
                )
    return problems


JOB_RULES = (gpu_only_in_limits, writable_tmp, indexed_jobs, salt_in_secret, selectors_match)
