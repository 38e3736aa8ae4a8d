"""The summary table of a GPU run (bench.gpu_serving), from its stages' JSON, against the targets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGETS = {
    "mismatches at the canonical shape": "0",
    "canonical-shape cost": "<= 10 %",
    "batched / max-batch-1 at concurrency 64": ">= 5x",
    "PNG/s at 64 px": ">= 20,000",
    "server / in-process ceiling": ">= 90 %",
    "cross-machine CPU hash mismatches": "0",
}


def _determinism(d: dict[str, Any]) -> list[str]:
    head = ("model", "prec", "shape", "seeds", "differ", "passes", "reopen", "alone", "img/s", "cost")
    lines = ["{:<12} {:<5} {:>8} {:>6} {:>7} {:>7} {:>7} {:>11} {:>10} {:>7}".format(*head)]
    for c in d.get("cells", []):
        shape = str(c["exec_batch"]) if c["exec_batch"] else "natural"
        cost = f"{c['canonical_cost']:.1%}" if "canonical_cost" in c else ""
        alone = f"{c['alone_mismatches']}/{c['alone_seeds']}"
        lines.append(
            f"{c['model']:<12} {c['precision']:<5} {shape:>8} {c['seeds']:>6} {c['mismatching_images']:>7} "
            f"{c['mixed_pass_mismatches']:>7} {c['mismatches_after_reopen']:>7} {alone:>11} "
            f"{c['images_per_s']:>10.0f} {cost:>7}"
        )
    return lines


def _cross(d: dict[str, Any]) -> list[str]:
    lines = []
    for name, site in d.get("sites", {}).items():
        if "error" in site or "skipped" in site:
            lines.append(f"{name:<14} {site.get('error') or site.get('skipped')}")
            continue
        lines.append(f"{name:<14} onnxruntime {site['onnxruntime']} on {site['machine']}")
        for against in ("vs_reference", "vs_own"):
            if against in site:
                c = site[against]
                lines.append(
                    f"  {against:<13} latents {c['latent_mismatches']}, pixels {c['pixel_mismatches']} "
                    f"of {c['seeds']} (first: {c['first_mismatching_seeds'][:4]})"
                )
    return lines


def _sweep(d: dict[str, Any]) -> list[str]:
    lines = []
    for name, entry in d.get("models", {}).items():
        for fmt, r in entry.get("ratios", {}).items():
            roof = next(c["images_per_s"] for c in entry["ceiling"] if c["format"] == fmt)
            lines.append(
                f"{name:<12} {fmt:<4} best batched {r['best_batched_images_per_s']:>9.0f} img/s, "
                f"ceiling {roof:>9.0f}, server/ceiling {r['best_batched_over_ceiling']}, "
                + ", ".join(f"{k} {v}" for k, v in r.items() if k.startswith("batched_over"))
            )
        for mode in ("batched", "batch-1"):
            for row in entry.get(mode, []):
                if "skipped" in row:
                    continue
                lines.append(
                    f"  {mode:<8} {row['format']:<4} c={row['concurrency']:<4}"
                    f" {row['images_per_s']:>9.0f} img/s"
                    f" p50 {row['p50_ms']:.1f} ms p99 {row['p99_ms']:.1f} ms busy {row['inference_busy']}"
                    f" errors {row['errors']}"
                )
    return lines


def table(summary: dict[str, Any]) -> str:
    out = []
    pre = summary.get("preflight", {})
    if pre.get("ok"):
        out.append(
            f"provider {pre['provider']} {pre['active_providers'][0]}, GPU {pre['gpu']}, {pre['versions']}"
        )
    for stage, render in (("determinism", _determinism), ("cross", _cross), ("sweep", _sweep)):
        if stage in summary:
            d = summary[stage]
            out.append(
                f"\n== {stage} ({d['seconds']} of {d['budget_s']} s)" + ("" if d["ok"] else f": {d['error']}")
            )
            out += render(d)
    out.append("\ntargets: " + "; ".join(f"{k} {v}" for k, v in TARGETS.items()))
    return "\n".join(out)


if __name__ == "__main__":  # python -m bench.gpu_report OUT: the table again, from a run's files
    folder = Path(sys.argv[1])
    print(table({p.stem: json.loads(p.read_text()) for p in folder.glob("*.json") if p.stem != "summary"}))
