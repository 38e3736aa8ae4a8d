"""Embed a new default model and rewrite everything committed that is derived from its pixels.

    python -m bench.embed_default RUN_DIR

Why one command: the Nouns default is replaced whenever a better run finishes, and every committed
file below must move with it or a test (or a GPU check) compares against the old model's pixels.
It lives in bench/ beside bench/gpu_cross.py, whose reference it rewrites: a maintainer's tool run in
a checkout, not a product command an install needs. It rewrites, in this order:

  artctl/models/default.onnx             the export of RUN_DIR (--palette auto), parity-checked
  artctl/models/default.json             its sidecar (card, SHA-256, parity)
  artctl/models/default.directions.json  its latent directions (z, for a DCGAN)
  bench/results/cpu-reference.json       bench.gpu_cross's CPU pixel hashes of seeds 0..4095
  docs/sample-grid.png                   8 labels x 8 seeds at scale 4, nearest neighbour
  docs/demo-contact-sheet.png            the contact sheet of the drop `make demo` mints
  bench/results/isa-reference-*.json     the exact graph's pixel hashes here and under qemu-user
                                         (bench.isa_portable references; tests/test_exact.py)

The emoji model beside it (artctl/models/emoji.*) is never touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "artctl" / "models"
REFERENCE = REPO / "bench" / "results" / "cpu-reference.json"
SAMPLE_GRID = REPO / "docs" / "sample-grid.png"
DEMO_SHEET = REPO / "docs" / "demo-contact-sheet.png"
GRID = 8  # labels (rows) x seeds (columns)
GRID_SCALE = 4
REFERENCE_SEEDS = 4096
DEMO_TOKENS = 16  # as `make demo` mints


def export_default(run: Path) -> Path:
    """Export `run` to artctl/models/default.onnx with its recorded palette snapped in the graph."""
    from artctl_exporter.export import export_checkpoint

    out = MODELS / "default.onnx"
    result = export_checkpoint(
        run, out, palette="auto", on_step=lambda m: print(f"export: {m}", file=sys.stderr)
    )
    print(f"model:   {out} (sha256 {result.sha256}, {result.palette_note})")
    return out


def sample_grid(model: Path) -> npt.NDArray[np.uint8]:
    """Rows: 8 labels spread over the model's labels; columns: seeds 0..7. Nearest-neighbour zoom and
    no gaps, so every pixel shown is a rendered pixel."""
    from artctl_serving.runtime import Engine, load_model

    runtime = load_model(model, engine=Engine.choose("cpu"))
    card = runtime.card
    count = len(card.label_names) if card.has_label else 1
    rows = [round(i * (count - 1) / (GRID - 1)) for i in range(GRID)] if count > 1 else [0] * GRID
    seeds = np.arange(GRID, dtype=np.uint64)
    psi = np.full(GRID, card.default_psi, np.float32) if card.has_psi else None
    lines = []
    for label in rows:
        labels = np.full(GRID, label, np.int64) if card.has_label else None
        images = runtime.render(seeds, psi, labels)  # [8, H, W, C]
        lines.append(np.concatenate(list(images), axis=1))
    grid = np.concatenate(lines, axis=0)
    return np.repeat(np.repeat(grid, GRID_SCALE, axis=0), GRID_SCALE, axis=1)


def demo_sheet(model: Path, work: Path) -> Path:
    """The drop `make demo` mints (its own collection config), rendered in this process: the same
    pixels and files a CPU server gives."""
    from artctl.cli.demo import demo_collection
    from artctl.collection import parse_collection
    from artctl.drops.mint import mint
    from artctl_serving.local import LocalRenderer

    renderer = LocalRenderer(model)
    raw = demo_collection(renderer.runtime.card, DEMO_TOKENS, "Noggles")
    mint(parse_collection(raw, "demo"), work / "drop", renderer)
    return work / "drop" / "contact-sheet.png"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a training run directory (its latest checkpoint)")
    args = parser.parse_args(argv)
    if not (args.run / "latest").is_file() and not (args.run / "config.json").is_file():
        print(f"embed_default: {args.run} is not a training run or checkpoint", file=sys.stderr)
        return 2
    from PIL import Image

    from bench.gpu_cross import cpu_hashes

    model = export_default(args.run)
    REFERENCE.write_text(json.dumps(cpu_hashes(REFERENCE_SEEDS)) + "\n")
    print(f"wrote {REFERENCE.relative_to(REPO)}")
    Image.fromarray(sample_grid(model)).save(SAMPLE_GRID, optimize=True)
    print(f"wrote {SAMPLE_GRID.relative_to(REPO)}")
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(demo_sheet(model, Path(tmp)), DEMO_SHEET)
    print(f"wrote {DEMO_SHEET.relative_to(REPO)}")
    from bench.isa_portable import write_references

    for path in write_references(["Haswell", "SandyBridge", "Nehalem"]):
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
