"""`python -m deploy.checks`: render every target, validate schemas, apply the rules; exit 1 on a problem."""

from __future__ import annotations

import sys

from deploy.checks import dockerfile, manifests, rules


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
        checks = rules.JOB_RULES if name.startswith("mint") else rules.SERVER_RULES
        problems += [f"{name}: {p}" for check in checks for p in check(docs)]
    problems += rules.merge_covers_shards(rendered["mint"], rendered["mint-merge"])
    for problem in problems:
        print("PROBLEM", problem)
    print("deploy checks:", "FAILED" if problems else "all passed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
