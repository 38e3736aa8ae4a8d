"""Does the palette snap change cross-instruction-set reproducibility? Pixel hashes per seed, to compare.

Renders seeds 0..N-1 (labels i mod L) of a palette-snapped model and of the same checkpoint exported
without the snap, at ORT_ENABLE_ALL (the server's level), and writes their pixel SHA-256s. Run it
natively and under qemu-user with an older CPU model, then compare:

    artctl export models/nouns32-default --out /tmp/nosnap/default.onnx --palette none
    python -m bench.isa_snap render --out native.json
    qemu-x86_64 -cpu Haswell .venv/bin/python -m bench.isa_snap render --out haswell.json
    qemu-x86_64 -cpu Nehalem .venv/bin/python -m bench.isa_snap render --out nehalem.json
    python -m bench.isa_snap compare native.json haswell.json nehalem.json --out bench/results/isa-snap.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

SNAPPED = Path("artctl/models/default.onnx")
UNSNAPPED = Path("/tmp/nosnap/default.onnx")


def render(path: Path, seeds: int) -> list[str]:
    import onnxruntime as ort

    from artctl.modelcard import ModelCard
    from artctl.seeds import latent

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    card = ModelCard.from_metadata(session.get_modelmeta().custom_metadata_map)
    hashes = []
    for start in range(0, seeds, 64):
        ids = range(start, min(seeds, start + 64))
        feeds = {"z": np.stack([latent(i, card.z_dim) for i in ids]).astype(np.float32)}
        if card.has_label:
            feeds["label"] = np.array([i % len(card.label_names) for i in ids], dtype=np.int64)
        for image in session.run(["image"], feeds)[0]:
            hashes.append(hashlib.sha256(image.tobytes()).hexdigest())
    return hashes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("render")
    one.add_argument("--seeds", type=int, default=512)
    one.add_argument("--snapped", type=Path, default=SNAPPED)
    one.add_argument("--unsnapped", type=Path, default=UNSNAPPED)
    one.add_argument("--out", type=Path, required=True)
    many = sub.add_parser("compare")
    many.add_argument("runs", type=Path, nargs="+", help="the reference first")
    many.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "render":
        doc = {"snapped": render(args.snapped, args.seeds), "unsnapped": render(args.unsnapped, args.seeds)}
        args.out.write_text(json.dumps(doc))
        return
    runs = {path.stem: json.loads(path.read_text()) for path in args.runs}
    reference = next(iter(runs))
    table = {
        name: {
            kind: sum(a != b for a, b in zip(doc[kind], runs[reference][kind], strict=True))
            for kind in ("snapped", "unsnapped")
        }
        for name, doc in runs.items()
        if name != reference
    }
    seeds = len(runs[reference]["snapped"])
    result = {"reference": reference, "seeds": seeds, "differing_images": table}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'against ' + reference:24} {'snapped':>8} {'unsnapped':>10}   (of {seeds} images)")
    for name, row in table.items():
        print(f"{name:24} {row['snapped']:>8} {row['unsnapped']:>10}")


if __name__ == "__main__":
    main()
