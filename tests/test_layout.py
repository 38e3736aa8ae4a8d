"""Package boundaries, the request path and generated code: what docs/architecture.md promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from artctl import protogen

REPO = Path(__file__).resolve().parent.parent


def run_python(*lines: str) -> str:
    """Run code in a fresh interpreter from the repository root; its stdout (fails on an error)."""
    out = subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_core_and_serving_never_import_torch() -> None:
    printed = run_python(
        "import sys",
        "import artctl, artctl.seeds, artctl.client, artctl.drops.mint, artctl.cli, artctl.collection",
        "import artctl_serving, artctl_serving.server, artctl_serving.runtime, artctl_serving.batcher",
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))",
        "assert not bad, bad",
        "print('ok')",
    )
    assert printed.strip() == "ok"


def test_cli_help_does_not_import_torch_or_onnxruntime() -> None:
    run_python(
        "import sys",
        "from typer.testing import CliRunner",
        "from artctl.cli import app",
        "r = CliRunner().invoke(app, ['--help'])",
        "assert r.exit_code == 0, r.output",
        "heavy = [m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules]",
        "assert not heavy, heavy",
    )


COLLIDING = ("trainer", "exporter", "serving", "bench")  # import names other PyPI distributions install


def colliding_wheel(folder: Path) -> Path:
    """A wheel whose packages take the import names above and fail when imported, as another
    distribution's would fail artctl's code (e.g. PyPI's `trainer`, installed widely)."""
    import base64
    import hashlib
    import zipfile

    name, files = "colliding_names-1.0", {}
    for package in COLLIDING:
        files[f"{package}/__init__.py"] = f"raise ImportError('{package} of another distribution')\n"
    files[f"{name}.dist-info/METADATA"] = "Metadata-Version: 2.1\nName: colliding-names\nVersion: 1.0\n"
    files[f"{name}.dist-info/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{name}.dist-info/RECORD"] = "\n".join([*record, f"{name}.dist-info/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def test_every_module_imports_beside_a_distribution_that_takes_generic_names(tmp_path: Path) -> None:
    """Installed first on the path, `trainer`, `exporter`, `serving` and `bench` of another
    distribution shadow any package of those names: artctl's own names must not be among them."""
    target = tmp_path / "site"
    wheel = colliding_wheel(tmp_path)
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    code = "\n".join(
        [
            "import importlib, pkgutil",
            "for name in " + repr(COLLIDING) + ":",
            "    try:",
            "        importlib.import_module(name)",
            "    except ImportError as exc:",
            "        assert 'another distribution' in str(exc), exc",
            "    else:",
            "        raise AssertionError(name + ' did not come from the colliding distribution')",
            "count = 0",
            "for top in ('artctl', 'artctl_serving', 'artctl_trainer', 'artctl_exporter'):",
            "    package = importlib.import_module(top)",
            "    for info in pkgutil.walk_packages(package.__path__, top + '.'):",
            "        if not info.name.endswith('__main__'):",
            "            importlib.import_module(info.name)",
            "            count += 1",
            "print(count)",
        ]
    )
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{REPO}"}
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert ran.returncode == 0, ran.stderr
    assert int(ran.stdout) > 60, "every module of the four packages was imported"


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    fresh = protogen.generate(tmp_path)
    committed = protogen.generated_files(REPO)
    assert len(fresh) == len(committed) == 9
    for new, old in zip(fresh, committed):
        assert old.is_file(), f"{old} is not committed; run `make proto`"
        assert new.read_bytes() == old.read_bytes(), f"{old.relative_to(REPO)} is stale; run `make proto`"


def test_stubs_describe_the_services_we_serve() -> None:
    from artctl.kserve.v2 import grpc_service_pb2
    from artctl.v1 import generator_pb2

    kserve = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert kserve.full_name == "inference.GRPCInferenceService"
    assert {m.name for m in kserve.methods} == {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
        "ModelStreamInfer",
        "ModelConfig",
        "ModelStatistics",
        "RepositoryIndex",
    }
    # Field numbers tritonclient relies on.
    req = grpc_service_pb2.ModelInferRequest.DESCRIPTOR
    assert req.fields_by_name["raw_input_contents"].number == 7
    assert grpc_service_pb2.ModelInferResponse.DESCRIPTOR.fields_by_name["raw_output_contents"].number == 6
    gen = generator_pb2.DESCRIPTOR.services_by_name["Generator"]
    assert {m.name for m in gen.methods} == {"Generate", "GenerateStream", "ListModels", "Mix", "Interpolate"}


# -- the dependency rules: core <- trainer / exporter / serving <- CLI (docs/architecture.md) ----------

LAYERS = ("core", "serving", "trainer", "exporter", "cli", "bench")
# Which layers each layer may import (its own always). exporter rebuilds generators from artctl_trainer.
MAY_IMPORT = {
    "core": set(),
    "serving": {"core"},
    "trainer": {"core"},
    "exporter": {"core", "trainer"},
    "cli": {"core", "serving", "trainer", "exporter"},
    "bench": {"core", "serving", "trainer", "exporter", "cli"},
}
GENERATED = ("_pb2.py", "_pb2_grpc.py")


def layer_of(module: str) -> str | None:
    top = module.split(".")[0]
    if module in ("artctl.cli", "artctl.__main__") or module.startswith("artctl.cli."):
        return "cli"  # `python -m artctl` is the command line too
    layers = {"artctl": "core", "artctl_serving": "serving", "artctl_trainer": "trainer"}
    return {**layers, "artctl_exporter": "exporter"}.get(top, "bench" if top == "bench" else None)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    """Module -> the project modules it imports, anywhere in the file (lazy imports included)."""
    import ast

    files = [
        p
        for top in ("artctl", "artctl_serving", "artctl_trainer", "artctl_exporter", "bench")
        for p in (root / top).rglob("*.py")
    ]
    modules = {module_name(p): p for p in files if not p.name.endswith(GENERATED)}
    known = set(modules) | {module_name(p) for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:  # `from pkg import module` names a module, not the package
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in known else node.module)
        graph[name] = {t for t in targets if layer_of(t) is not None and t in known and t != name}
    return graph


def wrong_direction(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        src = layer_of(module)
        assert src is not None
        for target in sorted(targets):
            dst = layer_of(target)
            if dst != src and dst not in MAY_IMPORT[src]:
                bad.append(f"{module} ({src}) imports {target} ({dst})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_and_no_import_against_the_layers() -> None:
    graph = import_graph()
    assert len(graph) > 60, "the graph should cover every module"
    assert cycles(graph) == []
    assert wrong_direction(graph) == []


def test_the_layout_checks_catch_a_cycle_and_a_wrong_direction() -> None:
    graph = {
        "artctl_serving.a": {"artctl_serving.b"},
        "artctl_serving.b": {"artctl_serving.a"},
        "artctl.seeds": {"artctl_serving.a"},
    }
    assert cycles(graph) == [["artctl_serving.a", "artctl_serving.b"]]
    assert wrong_direction(graph) == ["artctl.seeds (core) imports artctl_serving.a (serving)"]
    assert wrong_direction({"artctl_trainer.x": {"artctl_exporter.y"}}) == [
        "artctl_trainer.x (trainer) imports artctl_exporter.y (exporter)"
    ]


def test_no_hand_written_module_over_400_lines() -> None:
    long = [
        f"{p.relative_to(REPO)}: {n}"
        for top in (
            "artctl",
            "artctl_serving",
            "artctl_trainer",
            "artctl_exporter",
            "bench",
            "tests",
            "deploy",
        )
        for p in (REPO / top).rglob("*.py")
        if not p.name.endswith(GENERATED) and (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    ]
    assert long == []


def documented_path() -> tuple[list[str], list[str]]:
    """The request path docs/architecture.md lists: (the modules in order, the leaf helpers)."""
    import re

    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## The request path", 1)[1].split("\n## ", 1)[0]
    path_part, leaf_part = section.split("Leaf helpers", 1)

    def dotted(path: str) -> str:
        return path.replace("/", ".").removesuffix(".py")

    module = r"`((?:artctl_serving|artctl)/[\w/]+\.py)`"
    steps = [dotted(m) for m in re.findall(r"(?m)^\d+\. " + module, path_part)]
    leaves = [dotted(m) for m in re.findall(module, leaf_part.split("\n\n")[0])]
    return steps, leaves


def test_a_generate_call_runs_through_the_documented_modules_only(tiny_model: Path) -> None:
    """Trace one real Generate over loopback: every project module whose code runs for it."""
    import asyncio
    import threading

    import grpc

    from artctl.v1 import generator_pb2 as pb
    from artctl.v1 import generator_pb2_grpc as pb_grpc
    from tests.helpers import running_server

    seen: set[str] = set()

    def tracer(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            name = frame.f_globals.get("__name__", "")
            if name.split(".")[0] in ("artctl", "artctl_serving"):
                seen.add(name)

    async def loop_profile(on: bool) -> None:
        sys.setprofile(tracer if on else None)

    with running_server([tiny_model], watch_interval_s=0) as (server, target):
        # The inference and encoder pools start their threads on first use, so new threads are
        # profiled from birth; the event loop's thread is profiled from within it.
        assert not server.host.infer_pool._threads and not server.encode_pool._threads
        threading.setprofile(tracer)
        asyncio.run_coroutine_threadsafe(loop_profile(True), server.loop).result(10)
        try:
            with grpc.insecure_channel(target) as ch:
                reply = pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=[2, 3]))
        finally:
            asyncio.run_coroutine_threadsafe(loop_profile(False), server.loop).result(10)
            threading.setprofile(None)  # type: ignore[arg-type]
    assert len(reply.artworks) == 2
    path, leaves = documented_path()
    assert len(path) <= 7, path
    served = {m for m in seen if not m.startswith(("artctl.v1", "artctl.kserve"))}  # generated stubs
    assert {m for m in served if m.startswith("artctl_serving.")} == {
        m for m in path + leaves if m.startswith("artctl_serving.")
    }
    assert served <= set(path) | set(leaves), sorted(served - set(path) - set(leaves))
    assert set(path) <= served, sorted(set(path) - served)
