"""A small Dockerfile reader (enough for deploy/Dockerfile) and the project's rules for its image.

hadolint and checkov (deploy/checks/linters.py) cover the generic rules: exec-form CMD and
ENTRYPOINT (DL3025), no root USER (DL3002, CKV_DOCKER_8), a numeric USER (DL3066), a HEALTHCHECK
(CKV_DOCKER_2), pipefail (DL4006), base image tags (DL3006, DL3007, CKV_DOCKER_7). The exec-form rule
that lived here is gone. What stays is what only this project knows:

- the targets: `cpu` and `gpu` exist, one of them last (the default), built in several stages;
- both set a numeric non-root USER, as the manifests' runAsUser expects: the linters judge a USER
  where there is one, but not a target that inherits none (checkov's CKV_DOCKER_3 asks for a USER
  anywhere in the file);
- no torch in either image, directly or through the `train`/`all` extras, in any stage they use;
- the HEALTHCHECK of both asks the port their CMD serves on (--port).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from deploy.checks.rules import flag_value

DOCKERFILE = Path(__file__).resolve().parent.parent / "Dockerfile"
FINAL_TARGETS = ("cpu", "gpu")
# A pip install that could pull torch: the package itself, or the extras that depend on it.
TORCH = re.compile(r"torch|\[[^\]]*\b(train|all)\b[^\]]*\]")
PROBE_ADDRESS = re.compile(r"127\.0\.0\.1:(\d+)")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def last(self, instruction: str) -> str | None:
        values = [v for i, v in self.instructions if i == instruction]
        return values[-1] if values else None


def parse(text: str) -> list[Stage]:
    """Stages in order; line continuations joined, comments and parser directives dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=words[0]))
        elif stages:
            stages[-1].instructions.append((instruction, args))
    return stages


def exec_form(value: str | None) -> list[str] | None:
    """The JSON array of an exec-form ENTRYPOINT/CMD, or None for shell form."""
    try:
        parsed = json.loads(value or "")
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed) else None


def _ancestry(stages: dict[str, Stage], name: str) -> list[Stage]:
    """A stage, the stages it is built FROM, and those it COPYs --from, transitively."""
    seen: list[Stage] = []
    todo = [name]
    while todo:
        stage = stages.get(todo.pop())
        if stage is None or stage in seen:
            continue
        seen.append(stage)
        todo.append(stage.base)
        todo += [
            m.group(1)
            for i, v in stage.instructions
            if i == "COPY"
            for m in [re.search(r"--from=(\S+)", v)]
            if m
        ]
    return seen


def check(text: str) -> list[str]:
    stages = parse(text)
    by_name = {s.name: s for s in stages}
    problems = []
    if len(stages) < 2:
        problems.append("not multi-stage: build tools and caches would ship in the image")
    finals = [n for n in FINAL_TARGETS if n in by_name]
    if len(finals) != len(FINAL_TARGETS) or stages[-1].name not in FINAL_TARGETS:
        problems.append(f"targets {FINAL_TARGETS} must exist and one of them must be the last stage")
    for name in finals:
        stage = by_name[name]
        user = stage.last("USER") or ""
        if not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user):
            problems.append(f"stage {name}: USER {user!r} is not a numeric non-root uid")
        port = flag_value(entrypoint(text, name), "--port")
        asked = PROBE_ADDRESS.findall(" ".join(healthcheck(text, name)))
        if port is None or asked != [port]:
            problems.append(f"stage {name}: HEALTHCHECK asks port {asked}, the CMD serves on --port {port}")
        for s in _ancestry(by_name, name):
            for i, v in s.instructions:
                if i == "RUN" and "pip install" in v and TORCH.search(v):
                    problems.append(f"stage {name} (via {s.name}): installs torch: {v}")
    return problems


def entrypoint(text: str, target: str) -> list[str]:
    """ENTRYPOINT + CMD of a target: the command line its container runs."""
    stage = {s.name: s for s in parse(text)}[target]
    return (exec_form(stage.last("ENTRYPOINT")) or []) + (exec_form(stage.last("CMD")) or [])


def healthcheck(text: str, target: str) -> list[str]:
    """The exec-form HEALTHCHECK command a target runs: its own or the nearest one it is built FROM."""
    stages = {s.name: s for s in parse(text)}
    stage = stages.get(target)
    while stage is not None:
        value = stage.last("HEALTHCHECK")
        if value is not None:
            return exec_form(value.partition(" CMD ")[2].strip()) or []
        stage = stages.get(stage.base)
    return []
