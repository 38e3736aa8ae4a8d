"""The render profile: what besides (model bytes, seed, psi, label) decided an image's pixels.

Every artctl image is rendered by ONNX Runtime, and some of its settings change arithmetic: the
graph optimisation level first of all (docs/seed-contract.md, "What the profile pins and why", has
the measurements). They are data here, recorded with every response and in every manifest under
ONNX Runtime's own names, so a reader can pass them straight back to onnxruntime; and
`session_options` is the one place that turns them into a session, so the server, the in-process
renderer and the companion graphs can never drift apart. onnxruntime is imported only when a
session is made: the core stays light.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artctl.seeds import LATENT_CONTRACT

# onnxruntime.GraphOptimizationLevel members, by the short names artctl's options use.
GRAPH_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
# ORT_ENABLE_ALL: batch- and thread-count-invariant on CPU with onnxruntime >= 1.21 (EXTENDED is not
# at batch 1 with 3+ threads), ~1.4x faster for StyleGAN-type graphs, and onnxruntime's own default,
# so a plain InferenceSession(model) renders a drop's pixels (docs/seed-contract.md has the numbers).
SERVING_LEVEL = "all"
# Older onnxruntime renders other pixels at every level and is not batch-invariant on CPU.
MIN_RUNTIME = (1, 21)
# Models whose graph computes in exact integers (artctl_exporter.exact): the same pixels on every CPU.
EXACT_CONTRACT = "artctl-exact-v1"
EXECUTION_MODE = "ORT_SEQUENTIAL"  # artctl never runs graphs in parallel mode
# The x86 instruction-set extensions ONNX Runtime's kernels dispatch on, best first.
X86_ISA = ("avx512f", "avx2", "avx", "sse4_1")
# Fields that decide pixels: a renderer whose profile differs in one of them may render other pixels.
# (The model's own SHA-256 is checked on its own; exec_batch decides pixels on CUDA only, where
# every call runs at it: it is part of the provider's settings there.)
PIXEL_FIELDS = ("runtime", "provider", "graph_optimization", "execution_mode", "cpu_isa", "precision")
# Fields that do not decide an exact graph's pixels (artctl-exact-v1: integer sums below 2^24 and
# single IEEE operations; measured identical on every x86-64 level and at every optimisation level).
EXACT_FREE_FIELDS = ("cpu_isa", "graph_optimization")


def check_runtime(version: str) -> None:
    """Refuse an onnxruntime older than MIN_RUNTIME: its CPU kernels change pixels with batch size."""
    try:
        found = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return  # a development build: nothing to compare
    if found < MIN_RUNTIME:
        need = ".".join(map(str, MIN_RUNTIME))
        raise RuntimeError(
            f"onnxruntime {version} renders pixels that depend on the batch they are rendered in; "
            f"artctl needs onnxruntime >= {need} (pip install 'onnxruntime>={need}')"
        )


def level_name(level: str) -> str:
    """A graph optimisation level by its short name (extended) or ONNX Runtime's (ORT_ENABLE_EXTENDED)."""
    if level in GRAPH_LEVELS:
        return GRAPH_LEVELS[level]
    if level in GRAPH_LEVELS.values():
        return level
    raise ValueError(f"unknown graph optimisation level {level!r}; choose {', '.join(GRAPH_LEVELS)}")


def _cpuid_flags() -> set[str]:
    """x86 features as the CPU's own CPUID reports them, read through numpy's dispatcher.

    Preferred to /proc/cpuinfo, which qemu-user passes through from the host: under emulation of an
    older CPU it names the host's extensions, not the ones the kernels will find.
    """
    import importlib

    features: dict[str, bool] = {}
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, 1
        try:
            features = dict(getattr(importlib.import_module(module), "__cpu_features__", {}))
            break
        except ImportError:
            continue
    names = {"AVX512F": "avx512f", "AVX2": "avx2", "AVX": "avx", "SSE41": "sse4_1", "FMA3": "fma"}
    return {names[key] for key, on in features.items() if on and key in names}


def cpu_isa() -> str:
    """The CPU's best instruction-set extension ONNX Runtime dispatches on, e.g. 'x86_64 avx2 fma'."""
    machine = platform.machine()
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        if machine not in ("x86_64", "AMD64"):
            return machine
    if machine in ("x86_64", "AMD64"):
        flags = _cpuid_flags() or flags
        best = next((isa for isa in X86_ISA if isa in flags), "")
        fma = "fma" if "fma" in flags else ""  # fused multiply-add kernels round differently
        return " ".join(part for part in (machine, best, fma) if part)
    extra = [f for f in ("sve2", "sve", "asimd") if f in flags][:1]
    return " ".join([machine, *extra])


@dataclass(frozen=True)
class RenderProfile:
    """The settings a set of pixels was rendered under (recorded, never inferred)."""

    model_sha256: str
    runtime: str
    provider: str
    device: str
    exec_batch: int
    precision: str
    latent_contract: str = LATENT_CONTRACT
    graph_optimization: str = GRAPH_LEVELS[SERVING_LEVEL]
    execution_mode: str = EXECUTION_MODE
    cpu_isa: str = ""

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def recommended_profile() -> dict[str, str]:
    """What an exported model's card recommends: the session settings artctl renders at."""
    return {"graph_optimization": GRAPH_LEVELS[SERVING_LEVEL], "execution_mode": EXECUTION_MODE}


def profile_differences(
    recorded: dict[str, Any], current: dict[str, Any], exact: bool = False
) -> dict[str, tuple[Any, Any]]:
    """The pixel-deciding fields where two profiles disagree: {field: (recorded, current)}.

    A field a profile does not record (a drop minted before it was recorded) counts as unknown and
    is listed when the other profile has it. For an exact graph (`exact`) the CPU and the
    optimisation level do not decide pixels and are not listed.
    """
    return {
        name: (recorded.get(name), current.get(name))
        for name in PIXEL_FIELDS
        if recorded.get(name) != current.get(name) and not (exact and name in EXACT_FREE_FIELDS)
    }


def session_options(threads: int = 0, level: str = SERVING_LEVEL, deterministic: bool = False) -> Any:
    """onnxruntime.SessionOptions for `level`, `threads` intra-op threads (0: onnxruntime's choice)
    and deterministic compute (the CUDA EP needs it; the CPU EP is deterministic anyway).

    Idle threads sleep instead of spinning: a server shares its cores with PNG encoders and gRPC.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level_name(level))
    options.execution_mode = getattr(ort.ExecutionMode, EXECUTION_MODE)
    options.use_deterministic_compute = deterministic
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options
