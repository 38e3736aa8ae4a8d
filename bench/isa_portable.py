"""Which render path gives the same pixels on every instruction set? Pixel hashes per candidate.

`render` draws seeds 0..N-1 (labels i mod L) through every candidate and writes their pixel hashes
and the instruction set it ran on (from CPUID, so qemu-user's emulated CPU is the one named). Run it
natively and under qemu-user, then `compare` counts, per candidate, the images that differ from the
first file (a 64-seed screen of every candidate, then 512 seeds of the serving settings):

    artctl export models/nouns32-default --arithmetic float --out /tmp/isa/float.onnx
    python -m bench.isa_portable render --float /tmp/isa/float.onnx --seeds 64 --out /tmp/isa/native.json
    qemu-x86_64 -cpu Nehalem .venv/bin/python -m bench.isa_portable render --float /tmp/isa/float.onnx \
        --seeds 64 --out /tmp/isa/nehalem.json
    python -m bench.isa_portable compare /tmp/isa/native.json /tmp/isa/nehalem.json --out OUT.json
    python -m bench.isa_portable near-ties /tmp/isa/float.onnx       # the snap's fragile pixels

Candidates: the embedded default's portable graph (artctl-exact-v1: the default itself when it is
one, else artctl_exporter.exact's rewrite of it, calibrated the same on every CPU) at ORT_ENABLE_ALL and
ORT_DISABLE_ALL; the float graph (--float; the default when it is float) at ENABLE_ALL, at
DISABLE_ALL and with denormals as zero, snapped and before the snap; and the emoji model
(StyleGAN-type, no snap) at ENABLE_ALL and DISABLE_ALL. `--settings serving` keeps ENABLE_ALL only.
`--reference` writes only the portable path's hashes: the references in bench/results, one per
instruction set; `python -m bench.isa_portable references` re-makes all of them in one command
(here, then under qemu-user as Haswell, SandyBridge and Nehalem; bench.embed_default runs it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from artctl.models import embedded
from artctl.profile import cpu_isa

PORTABLE = "portable"


def _feeds(card: dict[str, str], seeds: range) -> dict[str, np.ndarray]:
    from artctl.seeds import latents

    feeds = {"z": latents(np.arange(seeds.start, seeds.stop, dtype=np.uint64), int(card["z_dim"]))}
    labels = json.loads(card.get("label_names", "[]"))
    if labels:
        feeds["label"] = (np.arange(seeds.start, seeds.stop) % len(labels)).astype(np.int64)
    if json.loads(card.get("has_psi", "false")):
        feeds["psi"] = np.full(len(seeds), float(card.get("default_psi", "1.0")), np.float32)
    return feeds


def portable_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model when it is an exact graph already, else artctl_exporter.exact's rewrite of it."""
    from artctl_exporter.exact import CALIBRATION, EXACT_CONTRACT, make_exact

    card = {p.key: p.value for p in model.metadata_props}
    if json.loads(card.get("contracts", "{}")).get("arithmetic") == EXACT_CONTRACT:
        return model
    exact, _ = make_exact(model, _feeds(card, CALIBRATION))
    return exact


def hashes(
    model: onnx.ModelProto, seeds: int, level: str, outputs: list[str], **config: str
) -> dict[str, list[str]]:
    """Pixel SHA-256 per seed for each of `outputs` (image, and image_unsnapped where there is one)."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    names = {o.name for o in probe.graph.output}
    for name in outputs:
        if name not in names:
            probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.UINT8, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    card = {p.key: p.value for p in model.metadata_props}
    found: dict[str, list[str]] = {name: [] for name in outputs}
    for start in range(0, seeds, 64):
        batch = session.run(outputs, _feeds(card, range(start, min(seeds, start + 64))))
        for name, images in zip(outputs, batch, strict=True):
            found[name] += [hashlib.sha256(image.tobytes()).hexdigest() for image in images]
    return found


def render(args: argparse.Namespace) -> dict[str, Any]:
    from artctl.modelcard import file_sha256

    path = embedded("default")
    assert path is not None, "this install ships no default model"
    default = onnx.load(str(path))
    doc: dict[str, Any] = {
        "isa": cpu_isa(),
        "default_sha256": file_sha256(path),
        "seeds": args.seeds,
        "candidates": {},
    }
    out = doc["candidates"]
    portable = portable_graph(default)
    screen = not args.reference and args.settings == "all"
    for level in ("ORT_ENABLE_ALL", "ORT_DISABLE_ALL") if screen else ("ORT_ENABLE_ALL",):
        out[f"{PORTABLE} {level}"] = hashes(portable, args.seeds, level, ["image"])["image"]
    if args.reference:
        return doc
    float_model = onnx.load(str(args.float)) if args.float else (default if portable is not default else None)
    if float_model is not None:
        snapped = any(o == "image_unsnapped" for n in float_model.graph.node for o in n.output)
        outputs = ["image", "image_unsnapped"] if snapped else ["image"]
        settings = [
            ("ORT_ENABLE_ALL", "ORT_ENABLE_ALL", {}),
            ("ORT_DISABLE_ALL", "ORT_DISABLE_ALL", {}),
            ("denormals as zero", "ORT_ENABLE_ALL", {"session.set_denormal_as_zero": "1"}),
        ]
        for label, level, config in settings if screen else settings[:1]:
            for name, found in hashes(float_model, args.seeds, level, outputs, **config).items():
                out[f"float {label}{'' if name == 'image' else ' (before the snap)'}"] = found
    if args.emoji_seeds and screen:
        emoji = onnx.load(str(embedded("emoji")))
        for level in ("ORT_ENABLE_ALL", "ORT_DISABLE_ALL"):
            out[f"emoji {level}"] = hashes(emoji, args.emoji_seeds, level, ["image"])["image"]
    return doc


def near_ties(path: Path, seeds: int) -> dict[str, Any]:
    """How often the palette snap sits one LSB from another colour: the float graph's unsnapped
    pixels whose snap changes when one channel moves by +-1 (what a CPU's rounding can do)."""
    from artctl.palette import snap

    model = onnx.load(str(path))
    card = {p.key: p.value for p in model.metadata_props}
    colours = json.loads(card.get("palette", "[]"))
    if not colours:
        return {}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_tensor_value_info("image_unsnapped", TensorProto.UINT8, None))
    import onnxruntime as ort

    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    raw = np.concatenate(
        [
            session.run(["image_unsnapped"], _feeds(card, range(s, min(seeds, s + 64))))[0]
            for s in range(0, seeds, 64)
        ]
    )
    base = snap(raw, colours)
    fragile = np.zeros(raw.shape[:-1], dtype=bool)
    for channel in range(raw.shape[-1]):
        for step in (-1, 1):
            moved = raw.astype(np.int16)
            moved[..., channel] = np.clip(moved[..., channel] + step, 0, 255)
            fragile |= (snap(moved.astype(np.uint8), colours) != base).any(axis=-1)
    return {
        "seeds": seeds,
        "pixels": int(fragile.sum()),
        "of_pixels": int(fragile.size),
        "images_with_one": int(fragile.any(axis=(1, 2)).sum()),
    }


def write_references(cpus: list[str], seeds: int = 512) -> list[Path]:
    """Re-make bench/results/isa-reference-<isa>.json: here, and under qemu-user for each CPU model
    (needs qemu-x86_64 on an x86-64 host). Stale references are removed first."""
    import shutil
    import subprocess
    import sys
    import tempfile

    results = Path(__file__).resolve().parent / "results"
    for old in results.glob("isa-reference-*.json"):
        old.unlink()
    qemu = shutil.which("qemu-x86_64")
    if cpus and qemu is None:
        raise SystemExit("qemu-x86_64 is missing (apt-get install qemu-user)")
    runs: list[list[str]] = [[]] + [[str(qemu), "-cpu", cpu] for cpu in cpus]
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for prefix in runs:
            out = Path(tmp) / "run.json"
            command = [
                sys.executable,
                "-m",
                "bench.isa_portable",
                "render",
                "--reference",
                "--seeds",
                str(seeds),
            ]
            subprocess.run([*prefix, *command, "--out", str(out)], check=True, cwd=results.parent.parent)
            doc = json.loads(out.read_text())
            path = results / f"isa-reference-{doc['isa'].replace(' ', '-')}.json"
            path.write_text(json.dumps(doc, indent=1) + "\n")
            written.append(path)
    return written


def compare(paths: list[Path]) -> dict[str, Any]:
    """Images per candidate that differ from the first run's, for every other run."""
    runs = [json.loads(p.read_text()) for p in paths]
    ref = runs[0]
    table: dict[str, dict[str, str]] = {}
    for run in runs[1:]:
        for name, found in run["candidates"].items():
            base = ref["candidates"].get(name)
            if base is None:
                continue
            n = min(len(found), len(base))
            differ = sum(a != b for a, b in zip(found[:n], base[:n], strict=True))
            table.setdefault(name, {})[run["isa"]] = f"{differ}/{n}"
    return {"reference_isa": ref["isa"], "differing_images": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("render")
    one.add_argument("--seeds", type=int, default=512)
    one.add_argument("--emoji-seeds", type=int, default=64, help="0: leave the emoji model out")
    one.add_argument("--float", type=Path, help="the default's float export (--arithmetic float)")
    one.add_argument("--reference", action="store_true", help="only the portable path, at ENABLE_ALL")
    one.add_argument(
        "--settings", choices=("all", "serving"), default="all", help="serving: ENABLE_ALL only, no emoji"
    )
    one.add_argument("--out", type=Path, required=True)
    ties = sub.add_parser("near-ties", help="pixels one LSB from another palette colour (float graph)")
    ties.add_argument("model", type=Path, help="a float export with a palette snap")
    ties.add_argument("--seeds", type=int, default=512)
    refs = sub.add_parser(
        "references", help="re-make bench/results/isa-reference-*.json, here and under qemu"
    )
    refs.add_argument("--cpus", default="Haswell,SandyBridge,Nehalem", help="qemu -cpu models ('' for none)")
    many = sub.add_parser("compare")
    many.add_argument("runs", type=Path, nargs="+", help="the reference run first")
    many.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "render":
        started = time.monotonic()
        doc = render(args)
        doc["seconds"] = round(time.monotonic() - started, 1)
        args.out.write_text(json.dumps(doc) + "\n")
        print(f"{doc['isa']}: {len(doc['candidates'])} candidates in {doc['seconds']} s -> {args.out}")
        return
    if args.command == "references":
        for path in write_references([c for c in args.cpus.split(",") if c]):
            print(f"wrote {path}")
        return
    if args.command == "near-ties":
        print(json.dumps(near_ties(args.model, args.seeds)))
        return
    result = compare(args.runs)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    isas = sorted({isa for row in result["differing_images"].values() for isa in row})
    print(f"images that differ from {result['reference_isa']}")
    print(f"{'candidate':48}" + "".join(f"{isa:>22}" for isa in isas))
    for name, row in result["differing_images"].items():
        print(f"{name:48}" + "".join(f"{row.get(isa, '-'):>22}" for isa in isas))


if __name__ == "__main__":
    main()
