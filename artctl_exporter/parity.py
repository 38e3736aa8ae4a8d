"""The parity gate: ONNX Runtime must compute what PyTorch computes, before anything is written.

Seeds go through the seed contract, psi and labels are cycled over them, and every batch cut is
compared, so a graph that only agrees at one batch size is refused too.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
import torch

from artctl.palette import snap
from artctl.profile import SERVING_LEVEL, session_options
from artctl.seeds import latents
from artctl_exporter.graphs import FLOAT_OUTPUT, UNSNAPPED_OUTPUT, ExportError, with_float_output
from artctl_trainer.contract import GeneratorNet
from artctl_trainer.networks_dcgan import Generator as DcganGenerator
from artctl_trainer.preview import preview_labels, quantize

FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2
TOLERANCES = {"fp32": FP32_TOLERANCE, "fp16": FP16_TOLERANCE}
# Truncation values cycled over parity seeds, so the lerp toward w_avg is checked, not just psi = 1.
PARITY_PSI = (1.0, 0.7, 0.5, 0.0, 1.3)
BATCH_SIZES = (1, 7, 64)
# Colour-slot logits closer than this are a near-tie: float summation order (ONNX Runtime's kernels
# against PyTorch's) may pick either slot, so those pixels are left out of the float comparison.
TIE_MARGIN = 1e-3


class ParityError(ExportError):
    """ONNX Runtime's output differs from PyTorch's beyond the tolerance."""


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


def torch_call(G: torch.nn.Module, feeds: dict[str, np.ndarray]) -> torch.Tensor:
    psi = feeds.get("psi")
    label = feeds.get("label")
    with torch.no_grad():
        return G(
            torch.from_numpy(feeds["z"]),
            label=None if label is None else torch.from_numpy(label),
            psi=None if psi is None else torch.from_numpy(psi),
        )


def traced_call(G: torch.nn.Module, feeds: dict[str, np.ndarray]) -> tuple[torch.Tensor, np.ndarray | None]:
    """PyTorch's output, and [B, 1, H, W]: the pixels whose colour-slot pick is a near-tie (None
    without slots), from one forward pass.

    A hard pick cannot agree to 1e-4 where two logits agree to 1e-6: either colour is the model's
    answer there. Everywhere else the pick, and so the colour, must match.
    """
    slots = G.slots if isinstance(G, DcganGenerator) else None
    if slots is None:
        return torch_call(G, feeds), None
    seen: list[torch.Tensor] = []
    handle = slots.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        output = torch_call(G, feeds)
    finally:
        handle.remove()
    top = seen[0].topk(2, dim=1).values
    return output, (top[:, 0] - top[:, 1] <= TIE_MARGIN).unsqueeze(1).numpy()


class Comparison(NamedTuple):
    max_diff: float  # max |onnx - torch| of the float output
    differing: int  # uint8 values (before any palette snap) that differ from torch's quantisation
    snap_mismatches: int  # snapped uint8 values that differ from artctl.palette.snap of the unsnapped


def compare(
    session: ort.InferenceSession,
    feeds: dict[str, np.ndarray],
    reference: np.ndarray,
    float_output: str,
    batch_sizes: tuple[int, ...],
    ref_u8: np.ndarray | None = None,
    palette: list[str] | None = None,
    ties: np.ndarray | None = None,
) -> Comparison:
    """Max |onnx - torch| over every batch cut (leaving out the `ties` pixels, see traced_call), the
    uint8 pixels that differ (when given), and, for a palette-snapped graph, how many snapped values
    differ from the numpy reference snap."""
    n = len(reference)
    names = [float_output]
    if ref_u8 is not None or palette:
        names.append(UNSNAPPED_OUTPUT if palette else "image")
    if palette:
        names.append("image")
    max_diff, differing, mismatches = 0.0, 0, 0
    for bs in batch_sizes:
        for start in range(0, n, bs):
            part = {k: v[start : start + bs] for k, v in feeds.items()}
            outputs = session.run(names, part)
            diff = np.abs(outputs[0] - reference[start : start + bs])
            if ties is not None:
                diff = np.where(ties[start : start + bs], 0.0, diff)
            max_diff = max(max_diff, float(diff.max()))
            if ref_u8 is not None:
                differing += int(np.count_nonzero(outputs[1] != ref_u8[start : start + bs]))
            if palette:
                mismatches += int(np.count_nonzero(outputs[2] != snap(outputs[1], palette)))
    return Comparison(max_diff, differing, mismatches)


def cpu_session(model: onnx.ModelProto) -> ort.InferenceSession:
    """A CPU session with the settings artctl renders at (artctl.profile), so the gate checks them."""
    options = session_options(level=SERVING_LEVEL)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def parity_check(
    G: GeneratorNet,
    model: onnx.ModelProto,
    z_dim: int,
    shape: tuple[int, int, int],
    n_seeds: int = 256,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    tolerance: float = FP32_TOLERANCE,
    palette: list[str] | None = None,
) -> dict[str, Any]:
    """Compare ONNX Runtime with PyTorch over n_seeds seeds, cut into each batch size in turn.

    The feeds (psi, label) follow the generator's has_psi and num_classes attributes. With a
    `palette`, the float and unsnapped uint8 outputs are compared with PyTorch as without one, and
    the snapped output must equal artctl.palette.snap of the unsnapped pixels exactly.
    """
    h, w, c = shape
    session = cpu_session(with_float_output(model, h, w, c))
    feeds = parity_inputs(np.arange(n_seeds, dtype=np.uint64), z_dim, G.has_psi, G.num_classes)
    ref_float, ties = traced_call(G, feeds)
    ref_u8 = quantize(ref_float).numpy()
    max_diff, differing, mismatches = compare(
        session, feeds, ref_float.numpy(), FLOAT_OUTPUT, batch_sizes, ref_u8, palette, ties
    )
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
    if ties is not None:
        report["slot_near_tie_pixels"] = int(ties.sum())  # per seed set, left out of max_abs_diff
    if palette:
        report["palette_snap_mismatches"] = mismatches
    if not max_diff <= tolerance:
        raise ParityError(
            f"ONNX output differs from PyTorch by {max_diff:.3g} (> {tolerance:g}); model not written"
        )
    check_snap("main", mismatches)
    return report


def check_snap(graph_name: str, mismatches: int) -> None:
    """The in-graph palette snap must be the reference snap exactly: any mismatch refuses the model."""
    if mismatches:
        raise ParityError(
            f"{graph_name} graph's palette snap differs from the reference snap in {mismatches} "
            "value(s); model not written"
        )
