"""Export a trained generator to one self-describing ONNX file that is provably the same function.

The graphs come from artctl_exporter.graphs and pass artctl_exporter.parity before a byte is written;
the model card goes into the file's metadata and a sidecar (NAME.json) beside it. StyleGAN-type
models also get two companion graphs beside the main file, for style mixing and interpolation in w
space:
`NAME.mapping.onnx` (z, psi[, label] -> ws [B, num_ws, w_dim]) and `NAME.synthesis.onnx`
(ws -> image uint8), each parity-checked like the main graph before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from artctl.directions import directions_path
from artctl.directions import to_json as directions_json
from artctl.fileio import write_bytes_atomic
from artctl.modelcard import ModelCard, file_sha256, sidecar_path
from artctl.palette import (
    PALETTE_CONTRACT,
    PaletteError,
    check_channels,
    load_palette,
    palette_sha256,
    parse_colours,
)
from artctl.profile import recommended_profile
from artctl.seeds import CONTRACTS
from artctl_exporter import EXPORTER_VERSION
from artctl_exporter.directions import sefa
from artctl_exporter.exact import CALIBRATION, EXACT_CONTRACT, ExactError, check_exact, make_exact
from artctl_exporter.graphs import (
    FLOAT_OUTPUT,
    ExportError,
    MainGraph,
    MappingGraph,
    SynthesisGraph,
    append_quantisation,
    example_inputs,
    export_graph,
    finish_graph,
    stamp,
    with_float_output,
)
from artctl_exporter.parity import (
    BATCH_SIZES,
    FP32_TOLERANCE,
    TOLERANCES,
    ParityError,
    check_snap,
    compare,
    cpu_session,
    parity_check,
    parity_inputs,
)
from artctl_trainer.checkpoint import CheckpointError, load_checkpoint
from artctl_trainer.contract import StyleGeneratorNet, capabilities
from artctl_trainer.networks import build_generator
from artctl_trainer.preview import SERVED_PSI, quantize

SUPPORTED_OPSETS = range(13, 21)
DEFAULT_PSI = SERVED_PSI  # the psi training grids show
ARITHMETIC = ("auto", "exact", "float")

__all__ = [
    "ExportError",
    "ExportResult",
    "PaletteError",
    "ParityError",
    "companion_path",
    "export_checkpoint",
    "parity_check",
]


@dataclass
class ExportResult:
    path: Path
    sha256: str
    card: ModelCard
    parity: dict[str, Any] = field(default_factory=dict)
    palette_note: str = "none"  # what --palette resolved to, in words, for the CLI's output line


def _companions(
    G: StyleGeneratorNet,
    inputs: list[str],
    z_dim: int,
    shape: tuple[int, int, int],
    opset: int,
    n_seeds: int,
    optimize: str = "basic",
    precision: str = "fp32",
    palette: list[str] | None = None,
) -> tuple[dict[str, onnx.ModelProto], dict[str, Any]]:
    """Mapping and synthesis graphs of a StyleGAN-type generator, each parity-checked.

    The mapping graph stays fp32 (it is tiny, and w feeds style mixing); synthesis follows `precision`
    and ends with the same palette snap as the main graph, so creative tools give palette colours too.
    """
    has_label = "label" in inputs
    mapping = export_graph(MappingGraph(G, has_label), example_inputs(inputs, z_dim), "ws", opset)
    ws_example = torch.zeros(2, G.num_ws, G.w_dim)
    synthesis = export_graph(SynthesisGraph(G), {"ws": ws_example}, FLOAT_OUTPUT, opset)
    append_quantisation(synthesis, *shape)
    mapping = finish_graph(mapping, optimize, "fp32")
    synthesis = finish_graph(synthesis, optimize, precision, palette, shape[2])
    tolerance = TOLERANCES[precision]

    feeds = parity_inputs(np.arange(n_seeds, dtype=np.uint64), z_dim, True, G.num_classes)
    with torch.no_grad():
        label = torch.from_numpy(feeds["label"]) if has_label else None
        ws = G.map(torch.from_numpy(feeds["z"]), label=label, psi=torch.from_numpy(feeds["psi"]))
        images = G.synthesis(ws)
    batch_sizes = BATCH_SIZES
    map_diff = compare(cpu_session(mapping), feeds, ws.numpy(), "ws", batch_sizes).max_diff
    h, w, c = shape
    syn_session = cpu_session(with_float_output(synthesis, h, w, c))
    syn_diff, _, syn_mismatches = compare(
        syn_session,
        {"ws": ws.numpy()},
        images.numpy(),
        FLOAT_OUTPUT,
        batch_sizes,
        quantize(images).numpy(),
        palette,
    )
    for graph_name, diff, bound in (
        ("mapping", map_diff, FP32_TOLERANCE),
        ("synthesis", syn_diff, tolerance),
    ):
        if not diff <= bound:
            raise ParityError(
                f"{graph_name} graph differs from PyTorch by {diff:.3g} (> {bound:g}); model not written"
            )
    check_snap("synthesis", syn_mismatches)
    report: dict[str, Any] = {"mapping_max_abs_diff": map_diff, "synthesis_max_abs_diff": syn_diff}
    if palette:
        report["synthesis_palette_snap_mismatches"] = syn_mismatches
    return {"mapping": mapping, "synthesis": synthesis}, report


def _exact(
    model: onnx.ModelProto, z_dim: int, num_classes: int, required: bool, step: Callable[[str], None]
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The integer-exact graph (and its gate's report), or the float graph and {} where the
    generator has none and it was not required."""
    step(f"rewriting into the exact graph ({EXACT_CONTRACT}), calibrated on {len(CALIBRATION)} seeds")
    try:
        exact, chosen = make_exact(
            model, parity_inputs(np.arange(CALIBRATION.start, CALIBRATION.stop), z_dim, False, num_classes)
        )
    except ExactError as error:
        if required:
            raise
        step(f"no exact graph ({error}): the float graph is written")
        return model, {}
    step("checking the exact graph (batch cuts, optimisation levels, onnx's reference evaluator)")
    report = check_exact(exact, parity_inputs(np.arange(64), z_dim, False, num_classes))
    return exact, {**report, "exact_layers": chosen["layers"]}


def companion_path(out: Path, graph: str) -> Path:
    """model.onnx -> model.mapping.onnx / model.synthesis.onnx."""
    return Path(out).with_name(f"{Path(out).stem}.{graph}.onnx")


def resolve_palette(choice: str | Path | list[str], meta: dict[str, Any]) -> tuple[list[str] | None, str]:
    """--palette auto|FILE|none -> (the colours or None, what that means in words).

    auto is the palette the checkpoint recorded at training time (meta["palette"]), or no snap when it
    recorded none; FILE is a palette.json (artctl-palette-v1); none is no snap.
    """
    if isinstance(choice, list):
        colours = parse_colours(choice)
        return colours, f"{len(colours)} colours (given)"
    if str(choice) == "none":
        return None, "none (no snap)"
    if str(choice) == "auto":
        recorded = meta.get("palette")
        if not recorded:
            return None, "auto: the checkpoint records no palette, so no snap"
        colours = parse_colours(recorded, "the checkpoint's recorded palette")
        return colours, f"auto: {len(colours)} colours recorded in the checkpoint"
    colours = load_palette(Path(choice))
    return colours, f"{len(colours)} colours from {choice}"


def export_checkpoint(
    checkpoint: Path,
    out: Path,
    *,
    use_ema: bool = True,
    opset: int = 17,
    name: str | None = None,
    parity_seeds: int = 256,
    default_psi: float | None = None,
    companions: bool = True,
    precision: str = "fp32",
    optimize: str = "basic",
    palette: str | Path | list[str] = "auto",
    arithmetic: str = "auto",
    on_step: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export a checkpoint (or a run's latest) to `out`, plus the sidecar NAME.json.

    StyleGAN-type models get a `psi` input (default_psi in the card, 0.7 unless given) and, with
    `companions`, the mapping and synthesis graphs beside `out`. `palette` (auto, a palette.json
    path, none, or a list of colours) snaps every output pixel to its nearest palette colour.
    """
    if opset not in SUPPORTED_OPSETS:
        raise ExportError(
            f"unsupported opset {opset}; choose {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}"
        )
    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"output must end in .onnx, got {out}")
    if default_psi is not None and not 0.0 <= default_psi <= 2.0:
        raise ExportError(f"default psi must be in [0, 2], got {default_psi}")
    if precision not in TOLERANCES:
        raise ExportError(f"unknown precision {precision!r}; choose {' or '.join(TOLERANCES)}")
    if arithmetic not in ARITHMETIC:
        raise ExportError(f"unknown arithmetic {arithmetic!r}; choose {', '.join(ARITHMETIC)}")
    if optimize not in ("none", "basic", "extended"):
        raise ExportError(f"unknown optimisation level {optimize!r}; choose none, basic or extended")

    def step(message: str) -> None:
        if on_step is not None:
            on_step(message)

    # The usual mistakes end here, before any step is reported; only the weights exported must exist.
    ck = load_checkpoint(checkpoint, require=("G_ema.safetensors" if use_ema else "G.safetensors",))
    net = ck.config.network
    G = build_generator(net)
    weights_file = ck.generator_file if use_ema else "G.safetensors"
    weights = ck.tensors(weights_file)
    try:
        G.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{ck.path}: weights do not fit the {net.architecture} config ({exc})") from exc
    G.eval()
    colours, palette_note = resolve_palette(palette, ck.meta)
    if colours:
        check_channels(colours, net.channels)
    if net.output == "snap" and colours != net.palette:
        raise ValueError(
            "this generator was trained through the snap to its own palette, so its graph must end with "
            "that snap: export it with --palette auto"
        )
    psi = DEFAULT_PSI if default_psi is None else float(default_psi)
    caps = capabilities(G, net, colours, psi)
    has_psi, has_label = caps.psi, caps.conditional
    inputs = list(caps.inputs)

    step("tracing the generator into ONNX")
    model = export_graph(
        MainGraph(G, has_psi, has_label), example_inputs(inputs, net.z_dim), FLOAT_OUTPUT, opset
    )
    shape = (net.resolution, net.resolution, net.channels)
    append_quantisation(model, *shape)
    model = finish_graph(model, optimize, precision, colours, net.channels)
    step(f"checking parity with PyTorch ({parity_seeds} seeds, batches 1, 7 and 64)")
    parity = parity_check(
        G, model, net.z_dim, shape, n_seeds=parity_seeds, tolerance=TOLERANCES[precision], palette=colours
    )
    parity.update(precision=precision, optimization=optimize)
    exact = arithmetic != "float" and not has_psi and precision == "fp32"
    if arithmetic == "exact" and not exact:
        raise ExportError("--arithmetic exact needs an fp32 DCGAN-type generator")
    if exact:
        model, exact_report = _exact(model, net.z_dim, net.num_classes, arithmetic == "exact", step)
        parity.update(exact_report)
        exact = bool(exact_report)
    extra_graphs: dict[str, onnx.ModelProto] = {}
    style = G if isinstance(G, StyleGeneratorNet) else None
    if style is not None and companions:
        step("exporting and checking the mapping and synthesis graphs")
        extra_graphs, companion_parity = _companions(
            style, inputs, net.z_dim, shape, opset, parity_seeds, optimize, precision, colours
        )
        parity.update(companion_parity)

    extra = {
        "checkpoint": ck.path.name,
        "weights": weights_file.removesuffix(".safetensors"),
        "graph": "generator",
        # The settings this file is meant to be rendered under (the parity gate ran at them).
        "recommended_profile": json.dumps(recommended_profile(), sort_keys=True),
    }
    extra.update(caps.card_extra())
    for graph_name in extra_graphs:
        extra[f"{graph_name}_file"] = companion_path(out, graph_name).name
    card = ModelCard(
        name=name or Path(out).stem,
        **caps.card_fields(),
        contracts={
            **CONTRACTS,
            **({"palette": PALETTE_CONTRACT} if colours else {}),
            **({"arithmetic": EXACT_CONTRACT} if exact else {}),
        },
        data_fingerprint=str(ck.meta.get("data_fingerprint", "")),
        exporter_version=EXPORTER_VERSION,
        torch_version=torch.__version__.split("+")[0],
        precision=precision,
        palette_sha256=palette_sha256(colours) if colours else "",
        extra=extra,
    )
    # Every graph is serialised before anything is written; the main model goes first, the sidecar
    # (which names the set) last, and companions of an earlier export that this one lacks are removed.
    main_bytes = stamp(model, card)
    companion_bytes = {
        graph_name: stamp(graph, ModelCard(**{**card.to_json(), "extra": {**extra, "graph": graph_name}}))
        for graph_name, graph in extra_graphs.items()
    }
    step(f"writing {out}")
    write_bytes_atomic(out, main_bytes, fsync=True)
    sha = file_sha256(out)
    companion_files: dict[str, dict[str, str]] = {}
    for graph_name, data in companion_bytes.items():
        path = companion_path(out, graph_name)
        write_bytes_atomic(path, data, fsync=True)
        companion_files[graph_name] = {"file": path.name, "sha256": file_sha256(path)}
    for graph_name in ("mapping", "synthesis"):
        if graph_name not in companion_bytes:
            companion_path(out, graph_name).unlink(missing_ok=True)
    sidecar: dict[str, Any] = {"card": card.to_json(), "sha256": sha, "file": out.name, "parity": parity}
    if companion_files:
        sidecar["companions"] = companion_files
    # Directions in w need the style graphs to be applied; without them a stale file would mislead.
    where = directions_path(out)
    if caps.directions_space == "z" or companion_files:
        step("finding latent directions (SeFa)")
        space, vectors, values = sefa(G)
        write_bytes_atomic(where, directions_json(space, vectors, values, sha), fsync=True)
        sidecar["directions"] = {
            "file": where.name,
            "sha256": file_sha256(where),
            "space": space,
            "count": len(vectors),
        }
    else:
        where.unlink(missing_ok=True)
    sidecar_bytes = (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode()
    write_bytes_atomic(sidecar_path(out), sidecar_bytes, fsync=True)
    return ExportResult(path=out, sha256=sha, card=card, parity=parity, palette_note=palette_note)
