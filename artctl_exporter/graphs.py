"""The ONNX graphs of a generator: traced from PyTorch, with the pixel quantisation appended in-graph.

The float generator is exported first (output `image_float`, NCHW in [-1, 1]); the quantisation of
docs/seed-contract.md ("Pixel hash") is then appended as explicit ONNX nodes, so the pixels are
decided inside the graph and the parity gate can read the float tensor of the very graph that
ships. Inputs follow the generator: `z` always, `psi` (float32 [B], truncation) for StyleGAN-type
models, `label` (int64 [B]) for conditional ones, in that order.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from artctl.modelcard import ModelCard
from artctl_exporter import EXPORTER_VERSION
from artctl_exporter.optimize import float_probe_name, optimize_offline, to_fp16

FLOAT_OUTPUT = "image_float"
UNSNAPPED_OUTPUT = "image_unsnapped"  # the quantised pixels before the palette snap (parity probe)
SNAP_PREFIX = "palette_snap"


class ExportError(ValueError):
    """The export cannot produce a model that matches the checkpoint."""


def append_quantisation(model: onnx.ModelProto, height: int, width: int, channels: int) -> None:
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


def append_snap(model: onnx.ModelProto, colours: list[str], channels: int) -> None:
    """Snap `image` to the nearest palette colour in-graph (artctl-palette-v1; artctl.palette.snap).

    For pixel p and colour c, |p - c|^2 = |p|^2 + (|c|^2 - 2 p.c); |p|^2 is the same for every c, so
    ArgMin over K of score = |c|^2 + p.(-2c) picks the same colour, and ties at the same indices, as
    the squared distance. Every term is an integer below 2^24 in magnitude (|score| <= 4 * 255 * 510),
    so float32 MatMul and Add are exact in any summation order, with or without FMA (and under TF32,
    which keeps the 9-bit operands whole). ArgMin with select_last_index=0 sends ties to the lower
    index; Gather then picks the palette's uint8 colour. An RGB palette on an RGBA model replaces the
    colour channels and passes alpha through. Appended after fp16 conversion, so it is always fp32.
    """
    from artctl.palette import check_channels, palette_array

    check_channels(colours, channels)
    pal = palette_array(colours)
    width = pal.shape[1]
    graph = model.graph
    (producer,) = [n for n in graph.node if "image" in n.output]
    producer.output[:] = [UNSNAPPED_OUTPUT if o == "image" else o for o in producer.output]
    p = SNAP_PREFIX
    wide = pal.astype(np.int64)
    inits = {
        f"{p}_weights": (-2 * wide.T).astype(np.float32),  # [C, K]
        f"{p}_norms": (wide**2).sum(axis=1).astype(np.float32),  # [K]
        f"{p}_colours": pal,  # uint8 [K, C]
    }
    for name, value in inits.items():
        graph.initializer.append(numpy_helper.from_array(value, name))
    nodes = [
        helper.make_node("Cast", [UNSNAPPED_OUTPUT], [f"{p}_pixels"], to=TensorProto.FLOAT, name=f"{p}_cast")
    ]
    colour_in = f"{p}_pixels"
    if width < channels:  # RGB palette, RGBA model: compare and replace the first three channels only
        for name, value in {
            f"{p}_rgb_start": [0],
            f"{p}_rgb_end": [width],
            f"{p}_alpha_end": [channels],
            f"{p}_axis": [3],
        }.items():
            graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.int64), name))
        nodes.append(
            helper.make_node(
                "Slice",
                [f"{p}_pixels", f"{p}_rgb_start", f"{p}_rgb_end", f"{p}_axis"],
                [f"{p}_rgb"],
                name=f"{p}_rgb",
            )
        )
        colour_in = f"{p}_rgb"
    snapped = "image" if width == channels else f"{p}_snapped_rgb"
    nodes += [
        helper.make_node("MatMul", [colour_in, f"{p}_weights"], [f"{p}_dot"], name=f"{p}_dot"),
        helper.make_node("Add", [f"{p}_dot", f"{p}_norms"], [f"{p}_score"], name=f"{p}_score"),
        helper.make_node(
            "ArgMin",
            [f"{p}_score"],
            [f"{p}_index"],
            axis=-1,
            keepdims=0,
            select_last_index=0,
            name=f"{p}_argmin",
        ),
        helper.make_node("Gather", [f"{p}_colours", f"{p}_index"], [snapped], axis=0, name=f"{p}_gather"),
    ]
    if width < channels:
        nodes += [
            helper.make_node(
                "Slice",
                [UNSNAPPED_OUTPUT, f"{p}_rgb_end", f"{p}_alpha_end", f"{p}_axis"],
                [f"{p}_alpha"],
                name=f"{p}_alpha",
            ),
            helper.make_node("Concat", [snapped, f"{p}_alpha"], ["image"], axis=3, name=f"{p}_concat"),
        ]
    graph.node.extend(nodes)


def with_float_output(model: onnx.ModelProto, height: int, width: int, channels: int) -> onnx.ModelProto:
    """A copy of the graph that also outputs the fp32 tensor entering the quantisation, as FLOAT_OUTPUT.

    A palette-snapped graph also outputs its pixels before the snap, as UNSNAPPED_OUTPUT.
    """
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    if any(UNSNAPPED_OUTPUT in n.output for n in probe.graph.node):
        probe.graph.output.append(
            helper.make_tensor_value_info(
                UNSNAPPED_OUTPUT, TensorProto.UINT8, ["batch", height, width, channels]
            )
        )
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


class MainGraph(torch.nn.Module):
    """The generator with the ONNX input order fixed: z, then psi and label where the model has them."""

    def __init__(self, G: torch.nn.Module, has_psi: bool, has_label: bool) -> None:
        super().__init__()
        self.G, self.has_psi, self.has_label = G, has_psi, has_label

    def forward(self, z: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        psi = rest[0] if self.has_psi else None
        label = rest[-1] if self.has_label else None
        return self.G(z, label=label, psi=psi)


class MappingGraph(torch.nn.Module):
    """z, psi[, label] -> ws [B, num_ws, w_dim] (truncated), for style mixing in w space."""

    def __init__(self, G: torch.nn.Module, has_label: bool) -> None:
        super().__init__()
        self.G: Any = G
        self.has_label = has_label

    def forward(self, z: torch.Tensor, psi: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        return self.G.map(z, label=rest[0] if self.has_label else None, psi=psi)


class SynthesisGraph(torch.nn.Module):
    def __init__(self, G: torch.nn.Module) -> None:
        super().__init__()
        self.G: Any = G

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.G.synthesis(ws)


def example_inputs(names: list[str], z_dim: int) -> dict[str, torch.Tensor]:
    examples = {"z": torch.zeros(2, z_dim), "psi": torch.ones(2), "label": torch.zeros(2, dtype=torch.int64)}
    return {name: examples[name] for name in names}


def export_graph(
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


def stamp(model: onnx.ModelProto, card: ModelCard) -> bytes:
    """Write the card into metadata_props last and serialise deterministically."""
    model.producer_name = "artctl"
    model.producer_version = EXPORTER_VERSION
    del model.metadata_props[:]
    for key, value in sorted(card.to_metadata().items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString(deterministic=True)


def finish_graph(
    model: onnx.ModelProto,
    optimize: str,
    precision: str,
    palette: list[str] | None = None,
    channels: int = 3,
) -> onnx.ModelProto:
    """Offline optimisation, then reduced precision, then the palette snap, then the full ONNX checker.

    The snap comes after the fp16 conversion so its exact integer arithmetic is never halved.
    """
    model = optimize_offline(model, optimize)
    if precision == "fp16":
        model = to_fp16(model)
    if palette:
        append_snap(model, palette, channels)
    onnx.checker.check_model(model, full_check=True)
    return model
