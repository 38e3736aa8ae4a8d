"""Export a trained generator to one self-describing ONNX file that is provably the same function.

The float generator is exported first (output `image_float`, NCHW in [-1, 1]); the quantisation
DESIGN.md §3 fixes is then appended as explicit ONNX nodes, so the pixels are decided inside the
graph and the parity gate can read the float tensor of the very graph that ships.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from artctl.modelcard import ModelCard, file_sha256, sidecar_path
from artctl.seeds import CONTRACTS, latents
from exporter import EXPORTER_VERSION
from trainer.checkpoint import CheckpointError, load_checkpoint
from trainer.networks import build_generator
from trainer.training_loop import quantize

FLOAT_OUTPUT = "image_float"
SUPPORTED_OPSETS = range(13, 21)
FP32_TOLERANCE = 1e-4


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
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(
        helper.make_tensor_value_info(FLOAT_OUTPUT, TensorProto.FLOAT, ["batch", channels, height, width])
    )
    return probe


def parity_check(
    G: torch.nn.Module,
    model: onnx.ModelProto,
    z_dim: int,
    shape: tuple[int, int, int],
    n_seeds: int = 256,
    batch_sizes: tuple[int, ...] = (1, 7, 64),
    tolerance: float = FP32_TOLERANCE,
) -> dict[str, Any]:
    """Compare ONNX Runtime with PyTorch over n_seeds seeds, cut into each batch size in turn."""
    h, w, c = shape
    session = ort.InferenceSession(
        _with_float_output(model, h, w, c).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    seeds = np.arange(n_seeds, dtype=np.uint64)
    z_all = latents(seeds, z_dim)
    with torch.no_grad():
        ref_float = G(torch.from_numpy(z_all))
        ref_u8 = quantize(ref_float).numpy()
    ref_float_np = ref_float.numpy()
    max_diff = 0.0
    differing = 0
    for bs in batch_sizes:
        for start in range(0, n_seeds, bs):
            z = z_all[start : start + bs]
            image_u8, image_float = session.run(["image", FLOAT_OUTPUT], {"z": z})
            max_diff = max(max_diff, float(np.abs(image_float - ref_float_np[start : start + bs]).max()))
            differing += int(np.count_nonzero(image_u8 != ref_u8[start : start + bs]))
    total = n_seeds * len(batch_sizes) * h * w * c
    report = {
        "seeds": n_seeds,
        "batch_sizes": list(batch_sizes),
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


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _export_float(G: torch.nn.Module, z_dim: int, opset: int, buf: io.BytesIO) -> None:
    torch.onnx.export(
        G,
        (torch.zeros(2, z_dim),),
        buf,  # type: ignore[arg-type]  # a BytesIO is accepted at run time
        input_names=["z"],
        output_names=[FLOAT_OUTPUT],
        dynamic_axes={"z": {0: "batch"}, FLOAT_OUTPUT: {0: "batch"}},
        opset_version=opset,
        do_constant_folding=True,
        dynamo=False,
    )


def export_checkpoint(
    checkpoint: Path,
    out: Path,
    *,
    use_ema: bool = True,
    opset: int = 17,
    name: str | None = None,
    parity_seeds: int = 256,
) -> ExportResult:
    """Export a checkpoint (or a run's latest) to `out`, plus the sidecar model.json."""
    if opset not in SUPPORTED_OPSETS:
        raise ExportError(
            f"unsupported opset {opset}; choose {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}"
        )
    out = Path(out)
    if out.suffix != ".onnx":
        raise ExportError(f"output must end in .onnx, got {out}")
    ck = load_checkpoint(checkpoint)
    net = ck.config.network
    G = build_generator(net)
    weights = ck.tensors("G_ema.safetensors" if use_ema else "G.safetensors")
    try:
        G.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{ck.path}: weights do not fit the {net.architecture} config ({exc})") from exc
    G.eval()

    buf = io.BytesIO()
    # The TorchScript exporter is chosen on purpose: ~10x faster than the dynamo path and stable
    # serialisation (re-export gives the same bytes). It warns that it is deprecated; we know.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _export_float(G, net.z_dim, opset, buf)
    model = onnx.load_from_string(buf.getvalue())
    shape = (net.resolution, net.resolution, net.channels)
    _append_quantisation(model, *shape)
    onnx.checker.check_model(model, full_check=True)
    parity = parity_check(G, model, net.z_dim, shape, n_seeds=parity_seeds)

    card = ModelCard(
        name=name or Path(out).stem,
        architecture=net.architecture,
        resolution=net.resolution,
        channels=net.channels,
        z_dim=net.z_dim,
        label_names=[],
        default_psi=1.0,
        has_psi=False,
        has_label=False,
        contracts=dict(CONTRACTS),
        data_fingerprint=str(ck.meta.get("data_fingerprint", "")),
        exporter_version=EXPORTER_VERSION,
        torch_version=torch.__version__.split("+")[0],
        precision="fp32",
        extra={"checkpoint": ck.path.name, "weights": "G_ema" if use_ema else "G"},
    )
    model.producer_name = "artctl"
    model.producer_version = EXPORTER_VERSION
    del model.metadata_props[:]
    for key, value in sorted(card.to_metadata().items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    data = model.SerializeToString(deterministic=True)
    _write_atomic(out, data)
    sha = file_sha256(out)
    sidecar = {"card": card.to_json(), "sha256": sha, "file": out.name, "parity": parity}
    _write_atomic(sidecar_path(out), (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
    return ExportResult(path=out, sha256=sha, card=card, parity=parity)
