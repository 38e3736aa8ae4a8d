"""checkov as a user runs it, `checkov -d deploy` from the repository root with no flags of ours:
clean, because .checkov.yaml renders the kustomizations instead of reading patches one by one and
leaves the Python rules file out of the Dockerfile scan."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_a_plain_checkov_run_over_deploy_is_clean(tools: Path) -> None:
    done = subprocess.run(
        [str(tools / "checkov"), "-d", "deploy", "--output", "json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=1200,
    )
    reports = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    summary = {r["check_type"]: r["summary"] for r in reports}
    assert sorted(summary) == ["dockerfile", "kustomize"]
    for kind, counts in summary.items():
        assert (counts["failed"], counts["parsing_errors"]) == (0, 0), (kind, counts)
    rendered = {Path(f["file_path"]).parent.name for r in reports for f in r["results"]["passed_checks"]}
    assert {"cpu", "gpu", "gpu-keda", "mint", "mint-merge"} <= rendered  # every target, rendered
    assert summary["dockerfile"]["passed"] > 0 and summary["dockerfile"]["resource_count"] == 1
    assert done.returncode == 0
