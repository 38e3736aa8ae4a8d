"""GPU evidence in one command: preflight, determinism matrix, cross-machine CPU hashes, server sweep.

Made for a GPU machine lent for minutes. Every stage has a time budget, writes its own JSON the
moment it ends (a stage that runs out of time records how far it got) and the run closes with a
summary table and summary.json. `--smoke` runs the same code on the CPU EP in seconds, so a CI test
keeps it from rotting. The run plan, with what each command brings along, is in docs/gpu.md.

    python -m bench.gpu_serving --provider cuda --out OUT \\
        --reference bench/results/cpu-reference.json --ort-site cpu-1.32.0=/tmp/ort132:/tmp/deps ...
    python -m bench.gpu_serving --smoke --out /tmp/smoke            # anywhere, in seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.determinism import hashes, mixed_render
from bench.gpu_cross import cpu_model

REPO = Path(__file__).resolve().parent.parent
STAGES = ("preflight", "models", "determinism", "cross", "sweep")
# Seconds per stage on the GPU box: 8 minutes in all, inside one 10-minute command.
BUDGETS = {"preflight": 20, "models": 90, "determinism": 150, "cross": 60, "sweep": 160}
SMOKE_BUDGETS = {"preflight": 20, "models": 120, "determinism": 60, "cross": 60, "sweep": 60}


class PreflightError(RuntimeError):
    """The GPU run would measure the wrong thing (no CUDA EP, a CPU fallback): stop everything."""


@dataclass
class Plan:
    provider: str
    out: Path
    work: Path
    seeds: int
    smoke: bool
    reference: Path | None
    ort_sites: dict[str, str]
    budgets: dict[str, float]
    models: dict[str, dict[str, Path]] = field(default_factory=dict)
    # What the running stage has measured so far: written if a timeout stops it (SIGTERM).
    partial: dict[str, Any] = field(default_factory=dict)

    def deadline(self, stage: str) -> float:
        return time.perf_counter() + self.budgets[stage]


# -- preflight --------------------------------------------------------------------------------------


def gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip() or "none"
    except (OSError, subprocess.TimeoutExpired):
        return "none (no nvidia-smi)"


def versions() -> dict[str, str]:
    import grpc
    import onnxruntime as ort

    found = {
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "onnxruntime_file": str(Path(ort.__file__).parent),
        "numpy": np.__version__,
        "grpcio": grpc.__version__,
    }
    try:
        import torch

        found["torch"] = torch.__version__
    except ImportError:
        found["torch"] = "absent"
    return found


def preflight(plan: Plan) -> dict[str, Any]:
    """The provider is really active on a real model; any fallback ends the run here."""
    import onnxruntime as ort

    from artctl.models import embedded_default
    from artctl_serving.runtime import Engine, load_model

    if plan.provider == "cuda" and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    available = ort.get_available_providers()
    model = embedded_default()
    if model is None:
        raise PreflightError("this install ships no default model")
    try:
        runtime = load_model(model, engine=Engine.choose(plan.provider))
    except Exception as exc:  # a fallback or a missing provider: say which, then stop
        raise PreflightError(f"{plan.provider} provider unusable: {exc}; available: {available}") from exc
    active = runtime.graph.session.get_providers()
    if plan.provider == "cuda" and active[0] != "CUDAExecutionProvider":
        raise PreflightError(f"asked for CUDA, the session runs on {active}")
    runtime.render(np.arange(4, dtype=np.uint64))
    return {
        "provider": plan.provider,
        "active_providers": active,
        "available_providers": available,
        "gpu": gpu_name(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "versions": versions(),
        "profile": runtime.profile.to_json() if hasattr(runtime.profile, "to_json") else str(runtime.profile),
    }


# -- models: the embedded default, a DCGAN and a StyleGAN-type generator from a fixed-seed init ------


def build_models(plan: Plan) -> dict[str, Any]:
    """fp32 and fp16 exports of a DCGAN-64 and a StyleGAN-type 256 px generator (1 step from a fixed
    seed: determinism does not need trained weights); tiny ones under --smoke."""
    from artctl.models import embedded_default
    from artctl_exporter.export import export_checkpoint
    from artctl_exporter.parity import ParityError
    from artctl_trainer.config import NetworkConfig, TrainConfig
    from artctl_trainer.training_loop import training_loop

    default = embedded_default()
    assert default is not None
    plan.models["default"] = {"fp32": default}
    small = plan.smoke
    nets = {
        "dcgan64": NetworkConfig(
            resolution=16 if small else 64, channels=4, z_dim=128, g_base=16 if small else 64
        ),
        "stylegan256": NetworkConfig(
            architecture="stylegan",
            resolution=16 if small else 256,
            channels=4,
            z_dim=128 if not small else 32,
            g_base=8 if small else 32,
            max_channels=32 if small else 256,
            mapping_layers=2 if small else 8,
        ),
    }
    info: dict[str, Any] = {"default": {"file": default.name}}
    for name, net in nets.items():
        run = plan.work / f"run-{name}"
        cfg = TrainConfig(  # on the CPU: the same models on every machine, and torch leaves the GPU alone
            network=net, steps=1, batch=4, synthetic_size=16, sample_every=1, seed=2026, device="cpu"
        )
        training_loop(cfg, run)
        fp32 = export_checkpoint(run, plan.work / f"{name}-fp32.onnx", parity_seeds=8, companions=False)
        plan.models[name] = {"fp32": fp32.path}
        fp16 = plan.work / f"{name}-fp16.onnx"
        try:
            export_checkpoint(run, fp16, parity_seeds=8, precision="fp16", companions=False)
            fp16_note = "exported, parity-checked against PyTorch"
        except ParityError as exc:  # random weights can exceed fp16's parity bound; pixels need no torch
            fp16_note = f"the parity gate refused it ({exc}); converted from the fp32 graph instead"
            fp16_from_fp32(fp32.path, fp16)
        plan.models[name]["fp16"] = fp16
        info[name] = {
            "fp16": fp16_note,
            "resolution": net.resolution,
            "architecture": net.architecture,
            "bytes_fp32": (plan.models[name]["fp32"].stat().st_size),
        }
    return info


def fp16_from_fp32(source: Path, out: Path) -> None:
    """The exporter's fp16 conversion applied to an fp32 export, its card marked fp16."""
    import onnx

    from artctl.modelcard import ModelCard
    from artctl_exporter.graphs import stamp
    from artctl_exporter.optimize import to_fp16

    model = onnx.load(str(source))
    card = ModelCard.from_metadata({p.key: p.value for p in model.metadata_props})
    out.write_bytes(stamp(to_fp16(model), ModelCard(**{**card.to_json(), "precision": "fp16"})))


# -- determinism matrix -----------------------------------------------------------------------------


def _speed(runtime: Any, max_batch: int, seconds: float) -> float:
    batch = np.arange(max_batch, dtype=np.uint64)
    runtime.render(batch)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for k in (max_batch, max_batch // 2 + 1, 7, 1):  # the natural shapes a server sees
            runtime.render(batch[:k])
            n += k
    return n / (time.perf_counter() - start)


def one_cell(path: Path, plan: Plan, exec_batch: int, seeds: list[int], stop_at: float) -> dict[str, Any]:
    """Every seed in three random mixed passes (the third on a reopened session), against each other,
    and alone (one call per seed) for as many seeds as the cell's time allows: at the canonical shape
    an alone call costs a whole padded batch, 64x a mixed one, so it is the part that is cut."""
    from artctl_serving.runtime import Engine, load_model

    engine = Engine.choose(plan.provider, exec_batch=exec_batch)
    max_batch = exec_batch or 64
    rng = random.Random(7)
    runtime = load_model(path, engine=engine)
    first = mixed_render(runtime, seeds, rng, max_batch)
    second = mixed_render(runtime, seeds, rng, max_batch)
    reopened = mixed_render(load_model(path, engine=engine), seeds, rng, max_batch)  # new session
    alone: dict[int, str] = {}
    for seed in seeds:
        if time.perf_counter() > stop_at and len(alone) >= 64:
            break
        alone[seed] = hashes(runtime, [seed])[0]
    differing = {s for s in seeds if len({first[s], second[s], reopened[s], alone.get(s, first[s])}) > 1}
    return {
        "exec_batch": exec_batch,
        "seeds": len(seeds),
        "mismatching_images": len(differing),  # any of the seed's renders differs from another
        "mixed_pass_mismatches": sum(second[s] != first[s] for s in seeds),
        "mismatches_after_reopen": sum(reopened[s] != first[s] for s in seeds),
        "alone_seeds": len(alone),
        "alone_mismatches": sum(alone[s] != first[s] for s in alone),
        "images_per_s": round(_speed(runtime, max_batch, 0.3 if plan.smoke else 2.0), 1),
        "alone": alone,
    }


def determinism(plan: Plan) -> dict[str, Any]:
    from artctl_serving.runtime import CUDA_EXEC_BATCH

    stop_at = plan.deadline("determinism")
    rng = random.Random(4096)
    seeds = [rng.randrange(2**64) for _ in range(plan.seeds)]
    canonical = 8 if plan.smoke else CUDA_EXEC_BATCH
    cells: list[dict[str, Any]] = []
    plan.partial = {"provider": plan.provider, "canonical_exec_batch": canonical, "cells": cells}
    todo = [(m, p, e) for m in plan.models for p in plan.models[m] for e in (canonical, 0)]
    for i, (model, precision, exec_batch) in enumerate(todo):
        share = (stop_at - time.perf_counter()) / (len(todo) - i)  # what is left, shared fairly
        try:
            cell = one_cell(
                plan.models[model][precision], plan, exec_batch, seeds, time.perf_counter() + share
            )
        except Exception as exc:  # one graph the EP refuses must not cost the other cells
            cell = {"exec_batch": exec_batch, "error": f"{type(exc).__name__}: {exc}"}
        cells.append({"model": model, "precision": precision, **cell})
    for cell in cells:  # does the canonical shape change pixels against natural batch-1 renders?
        if cell["exec_batch"] and "error" not in cell:
            twin = next(
                c
                for c in cells
                if (c["model"], c["precision"], c["exec_batch"]) == (cell["model"], cell["precision"], 0)
            )
            if "error" in twin:
                continue
            common = set(cell["alone"]) & set(twin["alone"])
            cell["canonical_vs_natural_alone"] = sum(cell["alone"][s] != twin["alone"][s] for s in common)
            cell["canonical_cost"] = round(1 - cell["images_per_s"] / twin["images_per_s"], 3)
    for cell in cells:
        cell.pop("alone", None)
    return {"provider": plan.provider, "canonical_exec_batch": canonical, "cells": cells}


# -- the run ----------------------------------------------------------------------------------------


def cross(plan: Plan) -> dict[str, Any]:
    from bench.gpu_cross import cross as run_cross

    stop_at = plan.deadline("cross")
    return run_cross(plan.work, plan.seeds, plan.reference, plan.ort_sites, stop_at, plan.partial)


def sweep(plan: Plan) -> dict[str, Any]:
    from bench.gpu_sweep import sweep as run_sweep

    return run_sweep(plan.models, plan.provider, plan.smoke, plan.deadline("sweep"), plan.partial)


RUNNERS: dict[str, Callable[[Plan], dict[str, Any]]] = {
    "preflight": preflight,
    "models": build_models,
    "determinism": determinism,
    "cross": cross,
    "sweep": sweep,
}


def run(plan: Plan, stages: list[str]) -> dict[str, Any]:
    plan.out.mkdir(parents=True, exist_ok=True)
    if "models" not in stages:  # the other stages then measure the embedded default alone
        from artctl.models import embedded_default

        default = embedded_default()
        assert default is not None
        plan.models = {"default": {"fp32": default}}
    summary: dict[str, Any] = {}
    spare = 0.0  # seconds earlier stages left unused: the next stage may spend them
    for stage in stages:
        plan.budgets[stage] += spare
        started = time.perf_counter()
        plan.partial = {}
        try:
            result = {"ok": True, **RUNNERS[stage](plan)}
        except PreflightError:
            raise
        except Exception as exc:  # one stage's failure must not cost the others their minutes
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", **plan.partial}
        except SystemExit:  # the command's timeout (SIGTERM): keep what this stage measured
            result = {"ok": False, "error": "stopped by the time limit", **plan.partial}
            _finish(plan, stage, result, started, summary)
            raise
        _finish(plan, stage, result, started, summary)
        spare = max(0.0, plan.budgets[stage] - result["seconds"])
        print(f"[{stage}] {'ok' if result['ok'] else result['error']} in {result['seconds']} s", flush=True)
    return summary


def _finish(plan: Plan, stage: str, result: dict[str, Any], started: float, summary: dict[str, Any]) -> None:
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["budget_s"] = round(plan.budgets[stage], 1)
    (plan.out / f"{stage}.json").write_text(json.dumps(result, indent=2) + "\n")
    summary[stage] = result
    (plan.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--provider", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--smoke", action="store_true", help="CPU EP, tiny models, seconds")
    parser.add_argument("--seeds", type=int, default=4096)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--reference", type=Path, help="hashes JSON from another machine's CPU EP")
    parser.add_argument(
        "--ort-site",
        action="append",
        default=[],
        metavar="NAME=PYTHONPATH",
        help="another onnxruntime for the cross stage: the PYTHONPATH of its process (the repo is added)",
    )
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}; choose from {', '.join(STAGES)}")
    if args.smoke:
        args.provider, args.seeds = "cpu", min(args.seeds, 32)
    sites = dict(s.split("=", 1) for s in args.ort_site)
    # A timeout's SIGTERM becomes SystemExit, so the running stage still writes what it has.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory() as work:
        plan = Plan(
            args.provider,
            args.out,
            Path(work),
            args.seeds,
            args.smoke,
            args.reference,
            sites,
            dict(SMOKE_BUDGETS if args.smoke else BUDGETS),
        )
        try:
            summary = run(plan, stages)
        except PreflightError as exc:
            (args.out / "preflight.json").write_text(json.dumps({"ok": False, "error": str(exc)}) + "\n")
            print(f"preflight failed, nothing measured: {exc}", file=sys.stderr)
            return 2
    from bench.gpu_report import table

    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(table(summary))
    return 0 if all(r["ok"] for r in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
