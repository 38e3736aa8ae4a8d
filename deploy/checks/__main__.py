"""`python -m deploy.checks`: render every target, validate schemas, apply the rules, run checkov and
hadolint (from $ARTCTL_TOOLS_BIN or .venv-tools/bin, `make install` makes it); exit 1 on a problem."""

from __future__ import annotations

import sys

from deploy.checks import dockerfile, jobs, linters, manifests, rules


def main() -> int:
    problems = [
        f"Dockerfile: {p}" for p in dockerfile.check(dockerfile.DOCKERFILE.read_text(encoding="utf-8"))
    ]
    rendered = {name: manifests.render(path) for name, path in manifests.TARGETS.items()}
    for name, docs in rendered.items():
        for version in manifests.schema_versions():
            found, skipped = manifests.validate(docs, version)
            problems += [f"{name}: {p}" for p in found]
            note = f" (no schema, checked structurally: {', '.join(skipped)})" if skipped else ""
            valid = len(docs) - len(skipped)
            print(f"{name}: {valid} of {len(docs)} objects schema-valid for Kubernetes {version}{note}")
        checks = jobs.JOB_RULES if name.startswith("mint") else rules.SERVER_RULES
        problems += [f"{name}: {p}" for check in checks for p in check(docs)]
    problems += jobs.merge_covers_shards(rendered["mint"], rendered["mint-merge"])
    tools = linters.tools_bin()
    if tools is None:
        print("checkov and hadolint: not installed, skipped (make install puts them in .venv-tools)")
    else:
        problems += [f"hadolint: {f}" for f in linters.hadolint(linters.DOCKERFILE, tools)]
        for name, scan in linters.scan_deploy(rendered, tools).items():
            problems += [f"checkov {name}: {p}" for p in scan.problems()]
            for skip in scan.skipped:
                print(f"checkov {name}: skipped {skip}")
            print(f"checkov {name}: {scan.passed} passed, {len(scan.failed)} failed")
    for problem in problems:
        print("PROBLEM", problem)
    print("deploy checks:", "FAILED" if problems else "all passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
