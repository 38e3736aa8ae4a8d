"""Export a trained generator to one self-describing ONNX file that is provably the same function.

The float generator is exported first (output `image_float`, NCHW in [-1, 1]); the quantisation
DESIGN.md §3 fixes is then appended as explicit ONNX nodes, so the pixels are decided inside the
graph and the parity gate can read the float tensor of the very graph that ships.

Inputs follow the generator: `z` always, `psi` (float32 [B], truncation) for StyleGAN-type models,
`label` (int64 [B]) for conditional ones, in that order. StyleGAN-type models also get two companion
graphs beside the main file, for style mixing and interpolation in w space:
`NAME.mapping.onnx` (z, psi[, label] -> ws [B, num_ws, w_dim]) and `NAME.synthesis.onnx`
(ws -> image uint8), each parity-checked like the main graph before anything is written.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from artctl.fileio import write_bytes_atomic
from artctl.modelcard import ModelCard, file_sha256, sidecar_path
from artctl.seeds import CONTRACTS, latents
from exporter import EXPORTER_VERSION
from exporter.optimize import float_probe_name, optimize_offline, to_fp16
from trainer.checkpoint import CheckpointError, load_checkpoint
from trainer.networks import build_generator
from trainer.training_loop import preview_labels, quantize

FLOAT_OUTPUT = "image_float"
SUPPORTED_OPSETS = range(13, 21)
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2
TOLERANCES = {"fp32": FP32_TOLERANCE, "fp16": FP16_TOLERANCE}
# Truncation values cycled over parity seeds, so the lerp toward w_avg is checked, not just psi = 1.
PARITY_PSI = (1.0, 0.7, 0.5, 0.0, 1.3)
DEFAULT_PSI = 0.7


class ExportError(ValueError):
    """The export cannot produce a model that matches the checkpoint."""


class ParityError(ExportError):
    """ONNX Runtime's output differs from PyTorch's beyond the tolerance."""


@dataclass
class ExportResult:
    path: Path
    sha256: str
    card: ModelCard
    parity: dict[str, Any] = field(default_factory=dict)


def _append_quantisation(model: onnx.ModelProto, height: int, width: int, channels: int) -> None:
    """uint8 NHWC = Transpose(Cast(Round(Clip((x + 1) * 127.5, 0, 255)))); Round is half-to-even."""
    graph = model.graph
    consts = {"q_one": 1.0, "q_scale": 127.5, "q_lo": 0.0, "q_hi": 255.0}
    for name, value in consts.items():
        graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.float32), name))
    graph.node.extend(
        [
            helper.make_node("Add", [FLOAT_OUTPUT, "q_one"], ["q_shifted"], name="quantize_shift"),
            helper.make_node("Mul", ["q_shifted", "q_scale"], ["q_scaled"], name="quantize_scale"),
            helper.make_node("Clip", ["q_scaled", "q_lo", "q_hi"], ["q_clipped"], name="quantize_clip"),
            helper.make_node("Round", ["q_clipped"], ["q_rounded"], name="quantize_round"),
            helper.make_node("Cast", ["q_rounded"], ["q_uint8"], to=TensorProto.UINT8, name="quantize_cast"),
            helper.make_node("Transpose", ["q_uint8"], ["image"], perm=[0, 2, 3, 1], name="to_nhwc"),
        ]
    )
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", height, width, channels])
    )


def _with_float_output(model: onnx.ModelProto, height: int, width: int, channels: int) -> onnx.ModelProto:
    """A copy of the graph that also outputs the fp32 tensor entering the quantisation, as FLOAT_OUTPUT."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    source = float_probe_name(probe, FLOAT_OUTPUT)
    if source != FLOAT_OUTPUT:
        # After fp16 conversion FLOAT_OUTPUT names the half-precision tensor; free the name and point
        # it at the fp32 tensor the quantisation actually reads.
        for node in probe.graph.node:
            node.input[:] = [f"{FLOAT_OUTPUT}_fp16" if n == FLOAT_OUTPUT else n for n in node.input]
            node.output[:] = [f"{FLOAT_OUTPUT}_fp16" if n == FLOAT_OUTPUT else n for n in node.output]
        probe.graph.node.append(helper.make_node("Identity", [source], [FLOAT_OUTPUT], name="parity_probe"))
    probe.graph.output.append(
        helper.make_tensor_value_info(FLOAT_OUTPUT, TensorProto.FLOAT, ["batch", channels, height, width])
    )
    return probe


def parity_inputs(
    seeds: np.ndarray, z_dim: int, has_psi: bool = False, num_classes: int = 0
) -> dict[str, np.ndarray]:
    """The ONNX feeds for parity checks: z from the seed contract, psi and label cycled by seed."""
    seeds = np.asarray(seeds, dtype=np.uint64)
    feeds = {"z": latents(seeds, z_dim)}
    if has_psi:
        feeds["psi"] = np.array([PARITY_PSI[int(s) % len(PARITY_PSI)] for s in seeds], dtype=np.float32)
    labels = preview_labels([int(s) for s in seeds], num_classes)
    if labels is not None:
        feeds["label"] = labels.numpy()
    return feeds


def _torch_call(G: torch.nn.Module, feeds: dict[str, np.ndarray]) -> torch.Tensor:
    psi = feeds.get("psi")
    label = feeds.get("label")
    with torch.no_grad():
        return G(
            torch.from_numpy(feeds["z"]),
            label=None if label is None else torch.from_numpy(label),
            psi=None if psi is None else torch.from_numpy(psi),
        )


def _compare(
    session: ort.InferenceSession,
    feeds: dict[str, np.ndarray],
    reference: np.ndarray,
    float_output: str,
    batch_sizes: tuple[int, ...],
    ref_u8: np.ndarray | None = None,
) -> tuple[float, int]:
    """Max |onnx - torch| over every batch cut, and the uint8 pixels that differ (when given)."""
    n = len(reference)
    names = [float_output] if ref_u8 is None else [float_output, "image"]
    max_diff, differing = 0.0, 0
    for bs in batch_sizes:
        for start in range(0, n, bs):
            part = {k: v[start : start + bs] for k, v in feeds.items()}
            outputs = session.run(names, part)
            max_diff = max(max_diff, float(np.abs(outputs[0] - reference[start : start + bs]).max()))
            if ref_u8 is not None:
                differing += int(np.count_nonzero(outputs[1] != ref_u8[start : start + bs]))
    return max_diff, differing


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def parity_check(
    G: torch.nn.Module,
    model: onnx.ModelProto,
    z_dim: int,
    shape: tuple[int, int, int],
    n_seeds: int = 256,
    batch_sizes: tuple[int, ...] = (1, 7, 64),
    tolerance: float = FP32_TOLERANCE,
) -> dict[str, Any]:
    """Compare ONNX Runtime with PyTorch over n_seeds seeds, cut into each batch size in turn.

    The feeds (psi, label) follow the generator's has_psi and num_classes attributes.
    """
    h, w, c = shape
    session = _session(_with_float_output(model, h, w, c))
    feeds = parity_inputs(
        np.arange(n_seeds, dtype=np.uint64), z_dim, getattr(G, "has_psi", False), getattr(G, "num_classes", 0)
    )
    ref_float = _torch_call(G, feeds)
    ref_u8 = quantize(ref_float).numpy()
    max_diff, differing = _compare(session, feeds, ref_float.numpy(), FLOAT_OUTPUT, batch_sizes, ref_u8)
    total = n_seeds * len(batch_sizes) * h * w * c
    report = {
        "seeds": n_seeds,
        "batch_sizes": list(batch_sizes),
        "inputs": sorted(feeds),
        "max_abs_diff": max_diff,
        "tolerance": tolerance,
        "uint8_pixels_differing": differing,
        "uint8_pixels_differing_share": differing / total,
    }
    if not max_diff <= tolerance:
        raise ParityError(
            f"ONNX output differs from PyTorch by {max_diff:.3g} (> {tolerance:g}); model not written"
        )
    return report


class _Main(torch.nn.Module):
    """The generator with the ONNX input order fixed: z, then psi and label where the model has them."""

    def __init__(self, G: torch.nn.Module, has_psi: bool, has_label: bool) -> None:
        super().__init__()
        self.G, self.has_psi, self.has_label = G, has_psi, has_label

    def forward(self, z: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        psi = rest[0] if self.has_psi else None
        label = rest[-1] if self.has_label else None
        return self.G(z, label=label, psi=psi)


class _Mapping(torch.nn.Module):
    """z, psi[, label] -> ws [B, num_ws, w_dim] (truncated), for style mixing in w space."""

    def __init__(self, G: torch.nn.Module, has_label: bool) -> None:
        super().__init__()
        self.G: Any = G
        self.has_label = has_label

    def forward(self, z: torch.Tensor, psi: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        return self.G.map(z, label=rest[0] if self.has_label else None, psi=psi)


class _Synthesis(torch.nn.Module):
    def __init__(self, G: torch.nn.Module) -> None:
        super().__init__()
        self.G: Any = G

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.G.synthesis(ws)


def _example_inputs(names: list[str], z_dim: int) -> dict[str, torch.Tensor]:
    examples = {"z": torch.zeros(2, z_dim), "psi": torch.ones(2), "label": torch.zeros(2, dtype=torch.int64)}
    return {name: examples[name] for name in names}


def _export_graph(
    module: torch.nn.Module, inputs: dict[str, torch.Tensor], output: str, opset: int
) -> onnx.ModelProto:
    """Trace `module` with the TorchScript exporter; batch (axis 0) dynamic on every input and output."""
    module.eval()  # the exporter restores the wrapper's mode afterwards, and with it the generator's
    buf = io.BytesIO()
    # The TorchScript exporter is chosen on purpose: ~10x faster than the dynamo path and stable
    # serialisation (re-export gives the same bytes). It warns that it is deprecated; we know.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            tuple(inputs.values()),
            buf,  # type: ignore[arg-type]  # a BytesIO is accepted at run time
            input_names=list(inputs),
            output_names=[output],
            dynamic_axes={name: {0: "batch"} for name in [*inputs, output]},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    return onnx.load_from_string(buf.getvalue())


def _stamp(model: onnx.ModelProto, card: ModelCard) -> bytes:
    """Write the card into metadata_props last and serialise deterministically."""
    model.producer_name = "artctl"
    model.producer_version = EXPORTER_VERSION
    del model.metadata_props[:]
    for key, value in sorted(card.to_metadata().items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString(deterministic=True)


def _companions(
    G: Any,
    inputs: list[str],
    z_dim: int,
    shape: tuple[int, int, int],
    opset: int,
    n_seeds: int,
    optimize: str = "basic",
    precision: str = "fp32",
) -> tuple[dict[str, onnx.ModelProto], dict[str, Any]]:
    """Mapping and synthesis graphs of a StyleGAN-type generator, each parity-checked.

    The mapping graph stays fp32 (it is tiny, and w feeds style mixing); synthesis follows `precision`.
    """
    has_label = "label" in inputs
    mapping = _export_graph(_Mapping(G, has_label), _example_inputs(inputs, z_dim), "ws", opset)
    ws_example = torch.zeros(2, G.num_ws, G.w_dim)
    synthesis = _export_graph(_Synthesis(G), {"ws": ws_example}, FLOAT_OUTPUT, opset)
    _append_quantisation(synthesis, *shape)
    mapping = _finish_graph(mapping, optimize, "fp32")
    synthesis = _finish_graph(synthesis, optimize, precision)
    tolerance = TOLERANCES[precision]

    feeds = parity_inputs(np.arange(n_seeds, dtype=np.uint64), z_dim, True, G.num_classes)
    with torch.no_grad():
        label = torch.from_numpy(feeds["label"]) if has_label else None
        ws = G.map(torch.from_numpy(feeds["z"]), label=label, psi=torch.from_numpy(feeds["psi"]))
        images = G.synthesis(ws)
    batch_sizes = (1, 7, 64)
    map_diff, _ = _compare(_session(mapping), feeds, ws.numpy(), "ws", batch_sizes)
    h, w, c = shape
    syn_session = _session(_with_float_output(synthesis, h, w, c))
    syn_diff, _ = _compare(
        syn_session, {"ws": ws.numpy()}, images.numpy(), FLOAT_OUTPUT, batch_sizes, quantize(images).numpy()
    )
    for graph_name, diff, bound in (
        ("mapping", map_diff, FP32_TOLERANCE),
        ("synthesis", syn_diff, tolerance),
    ):
        if not diff <= bound:
            raise ParityError(
                f"{graph_name} graph differs from PyTorch by {diff:.3g} (> {bound:g}); model not written"
            )
    report = {"mapping_max_abs_diff": map_diff, "synthesis_max_abs_diff": syn_diff}
    return {"mapping": mapping, "synthesis": synthesis}, report


def _finish_graph(model: onnx.ModelProto, optimize: str, precision: str) -> onnx.ModelProto:
    """Offline optimisation, then reduced precision, then the full ONNX checker."""
    model = optimize_offline(model, optimize)
    if precision == "fp16":
        model = to_fp16(model)
    onnx.checker.check_model(model, full_check=True)
    return model


def companion_path(out: Path, graph: str) -> Path:
    """model.onnx -> model.mapping.onnx / model.synthesis.onnx."""
    return Path(out).with_name(f"{Path(out).stem}.{graph}.onnx")


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
) -> ExportResult:
    """Export a checkpoint (or a run's latest) to `out`, plus the sidecar model.json.

    StyleGAN-type models get a `psi` input (default_psi in the card, 0.7 unless given) and, with
    `companions`, the mapping and synthesis graphs beside `out`.
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
    if optimize not in ("none", "basic", "extended"):
        raise ExportError(f"unknown optimisation level {optimize!r}; choose none, basic or extended")
    ck = load_checkpoint(checkpoint)
    net = ck.config.network
    G = build_generator(net)
    weights = ck.tensors("G_ema.safetensors" if use_ema else "G.safetensors")
    try:
        G.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{ck.path}: weights do not fit the {net.architecture} config ({exc})") from exc
    G.eval()
    has_psi = bool(getattr(G, "has_psi", False))
    has_label = net.num_classes > 0
    inputs = ["z"] + (["psi"] if has_psi else []) + (["label"] if has_label else [])

    model = _export_graph(
        _Main(G, has_psi, has_label), _example_inputs(inputs, net.z_dim), FLOAT_OUTPUT, opset
    )
    shape = (net.resolution, net.resolution, net.channels)
    _append_quantisation(model, *shape)
    model = _finish_graph(model, optimize, precision)
    parity = parity_check(G, model, net.z_dim, shape, n_seeds=parity_seeds, tolerance=TOLERANCES[precision])
    parity.update(precision=precision, optimization=optimize)
    extra_graphs: dict[str, onnx.ModelProto] = {}
    if has_psi and companions and hasattr(G, "map"):
        extra_graphs, companion_parity = _companions(
            G, inputs, net.z_dim, shape, opset, parity_seeds, optimize, precision
        )
        parity.update(companion_parity)

    extra = {"checkpoint": ck.path.name, "weights": "G_ema" if use_ema else "G", "graph": "generator"}
    if hasattr(G, "num_ws"):
        extra.update(num_ws=str(G.num_ws), w_dim=str(G.w_dim))
    for graph_name in extra_graphs:
        extra[f"{graph_name}_file"] = companion_path(out, graph_name).name
    card = ModelCard(
        name=name or Path(out).stem,
        architecture=net.architecture,
        resolution=net.resolution,
        channels=net.channels,
        z_dim=net.z_dim,
        label_names=list(net.label_names) if has_label else [],
        default_psi=(DEFAULT_PSI if default_psi is None else float(default_psi)) if has_psi else 1.0,
        has_psi=has_psi,
        has_label=has_label,
        contracts=dict(CONTRACTS),
        data_fingerprint=str(ck.meta.get("data_fingerprint", "")),
        exporter_version=EXPORTER_VERSION,
        torch_version=torch.__version__.split("+")[0],
        precision=precision,
        extra=extra,
    )
    # Every graph is serialised before anything is written; the main model goes first, the sidecar
    # (which names the set) last, and companions of an earlier export that this one lacks are removed.
    main_bytes = _stamp(model, card)
    companion_bytes = {
        graph_name: _stamp(graph, ModelCard(**{**card.to_json(), "extra": {**extra, "graph": graph_name}}))
        for graph_name, graph in extra_graphs.items()
    }
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
    sidecar_bytes = (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode()
    write_bytes_atomic(sidecar_path(out), sidecar_bytes, fsync=True)
    return ExportResult(path=out, sha256=sha, card=card, parity=parity)
