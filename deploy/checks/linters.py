"""checkov and hadolint on deploy/: the real tools, offline, from a venv of their own.

The Makefile installs them into .venv-tools (versions in constraints-tools.txt) and passes that
folder's bin/ as $ARTCTL_TOOLS_BIN. One checkov run scans every rendered kustomize target, each in
a file of its own and scoped by a label (see _scoped), and the Dockerfile. Skips sit beside what
they skip, each with its reason: `checkov.io/skipN: ID=reason` annotations in the manifests,
`# checkov:skip=ID:reason` in the Dockerfile; hadolint reads deploy/.hadolint.yaml, so a user's own
config cannot change the result.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
HADOLINT_CONFIG = ROOT / "deploy" / ".hadolint.yaml"
TOOLS_ENV = "ARTCTL_TOOLS_BIN"
# Offline: no platform API key is passed, --skip-download skips the policy and guideline download,
# and these turn off the PyPI version check and the check-ID mapping fetch.
CHECKOV_ENV = {"CKV_SKIP_PACKAGE_UPDATE_CHECK": "true", "BC_SKIP_MAPPING": "TRUE"}

Doc = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    check: str  # CKV_K8S_11, DL4006, ...
    where: str  # the resource checkov names, or FILE:LINE
    message: str  # the check's title; for a skipped check, the reason given

    def __str__(self) -> str:
        return f"{self.check} {self.where}: {self.message}"


@dataclass
class Scan:
    failed: list[Finding] = field(default_factory=list)
    skipped: list[Finding] = field(default_factory=list)
    passed: int = 0
    resources: int = 0
    parsing_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Failed checks, files checkov could not parse, and a scan that looked at nothing."""
        problems = [str(f) for f in self.failed] + [f"cannot parse {p}" for p in self.parsing_errors]
        if not self.resources:
            problems.append("checkov scanned no resource")
        return problems


def tools_bin() -> Path | None:
    """The folder with checkov and hadolint: $ARTCTL_TOOLS_BIN, else .venv-tools/bin; None if absent."""
    # Absolute: checkov runs in a scratch directory, and the Makefile passes a relative path.
    folder = Path(os.environ.get(TOOLS_ENV) or ROOT / ".venv-tools" / "bin").absolute()
    return folder if all((folder / tool).is_file() for tool in ("checkov", "hadolint")) else None


def hadolint(dockerfile: Path, folder: Path) -> list[Finding]:
    """hadolint's findings (any level) with the checked-in config."""
    command = [str(folder / "hadolint"), "--config", str(HADOLINT_CONFIG), "--format", "json"]
    done = subprocess.run([*command, str(dockerfile)], capture_output=True, text=True, timeout=120)
    try:
        found = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"hadolint {dockerfile} failed:\n{done.stdout}{done.stderr}") from None
    return [Finding(f["code"], f"{dockerfile.name}:{f['line']}", f["message"]) for f in found]


def checkov(files: list[Path], frameworks: list[str], folder: Path) -> dict[str, Scan]:
    """One checkov run over `files`, offline: a Scan per file, by file name."""
    command = [str(folder / "checkov"), "--framework", *frameworks, "--skip-download", "--output", "json"]
    for path in files:
        command += ["--file", str(path)]
    with tempfile.TemporaryDirectory() as cwd:  # no .checkov.yaml from the caller's directory
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=600, cwd=cwd, env={**os.environ, **CHECKOV_ENV}
        )
    try:
        reports = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"checkov failed (exit {done.returncode}):\n{done.stderr[-4000:]}") from None
    scans = {path.name: Scan() for path in files}
    resources: dict[str, set[str]] = {name: set() for name in scans}
    for report in reports if isinstance(reports, list) else [reports]:
        results = report.get("results", {})  # a bare summary where a framework found nothing
        for kind in ("passed", "failed", "skipped"):
            for result in results.get(f"{kind}_checks", []):
                name = Path(result.get("file_abs_path") or result["file_path"]).name
                resources[name].add(result["resource"])
                found = Finding(result["check_id"], result["resource"], result["check_name"])
                if kind == "passed":
                    scans[name].passed += 1
                elif kind == "failed":
                    scans[name].failed.append(found)
                else:  # the reason given with the skip, in place of the title
                    reason = (result["check_result"].get("suppress_comment") or "").strip()
                    scans[name].skipped.append(Finding(found.check, found.where, reason))
        for path in results.get("parsing_errors", []):
            scans[Path(path).name].parsing_errors.append(path)
    for name, scan in scans.items():
        scan.resources = len(resources[name])
    return scans


SCOPE = "deploy-checks/target"


def _scoped(docs: list[Doc], target: str) -> list[Doc]:
    """A copy whose pod templates and NetworkPolicy selectors carry a label naming the target.

    checkov's CKV2_K8S_6 matches policies to pods by label over every file of a run, and the three
    server overlays render the same pods: the label keeps a policy in one target from covering
    another's pods, so all targets can share one checkov run (most of a run is start-up)."""
    scoped = copy.deepcopy(docs)
    for doc in scoped:
        if doc.get("kind") == "NetworkPolicy":
            selector = doc.setdefault("spec", {}).setdefault("podSelector", {})
            selector.setdefault("matchLabels", {})[SCOPE] = target
        template = doc.get("spec", {}).get("template")
        if isinstance(template, dict):
            template.setdefault("metadata", {}).setdefault("labels", {})[SCOPE] = target
    return scoped


def scan_deploy(
    rendered: dict[str, list[Doc]], folder: Path, dockerfile: Path = DOCKERFILE
) -> dict[str, Scan]:
    """One checkov run over every rendered target (each scoped, see _scoped) and the Dockerfile;
    the Scans by target name, and "Dockerfile"."""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name, docs in rendered.items():
            files.append(Path(tmp) / f"{name}.yaml")
            files[-1].write_text(yaml.safe_dump_all(_scoped(docs, name), sort_keys=False), encoding="utf-8")
        scans = checkov([*files, dockerfile], ["kubernetes", "dockerfile"], folder)
    return {name.removesuffix(".yaml"): scan for name, scan in scans.items()}
