"""Colour slots in the exact graph (artctl-exact-v1): the slot picks and the slot colours in integers.

A slot model (artctl_trainer.networks_dcgan.ColourSlots) draws each pixel in the colour of the slot
whose logit is highest, from colours a linear head makes from the latent. Here the slot logits are
the last layer's integer accumulators, quantised with one scale for all of them so that ArgMax
compares like with like; the colour head runs on the fixed-point latent with integer weights under
the 2^24 bound and its tanh is read from the same uint8 table as a figure's, so the picks and the
colours, and the pixels they make, are the same on every CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from artctl_exporter.exact_base import INPUT_BITS, INPUT_CLIP, PREFIX, ExactError, quantise_linear
from artctl_exporter.exact_base import add_constant as _const


@dataclass
class SlotNodes:
    """The colour head (a Gemm on the latent, then Tanh) as the float graph holds it."""

    gemm: onnx.NodeProto
    weight: np.ndarray  # float [count * C, c_z]
    bias: np.ndarray  # float [count * C]
    count: int  # slots
    channels: int
    side: int  # the image's height and width


SLOT_OPS = {"Slice", "ArgMax", "OneHot", "Transpose", "Cast", "Einsum", "Gemm", "Reshape"}


def find_slots(model: onnx.ModelProto, tail: list[onnx.NodeProto]) -> SlotNodes | None:
    """The float graph's colour slots (an Einsum of colours by one-hot picks), if it has them."""
    if not any(n.op_type == "Einsum" for n in tail):
        return None
    image = next(o for o in model.graph.output if o.name in ("image", "image_unsnapped"))
    _, side, _, channels = (d.dim_value for d in image.type.tensor_type.shape.dim)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = {o: n for n in tail for o in n.output}
    heads = [
        producers[n.input[0]]
        for n in tail
        if n.op_type == "Tanh" and n.input[0] in producers and producers[n.input[0]].op_type == "Gemm"
    ]
    if len(heads) != 1 or heads[0].input[1] not in inits or heads[0].input[2] not in inits:
        raise ExactError("colour slots without one linear colour head")
    gemm = heads[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    weight = inits[gemm.input[1]].astype(np.float64)
    weight = weight if attrs.get("transB", 0) else weight.T
    if attrs.get("transA", 0) or weight.shape[0] % channels:
        raise ExactError("a colour head that is not [slots * channels, latent]")
    bias = inits[gemm.input[2]].astype(np.float64)
    return SlotNodes(gemm, weight, bias, weight.shape[0] // channels, channels, side)


def slot_nodes(
    graph: onnx.GraphProto, slots: SlotNodes, acc: str, steps: int, half: int, table: str
) -> list[onnx.NodeProto]:
    """The figure in uint8: per pixel, the ArgMax of the slot accumulators (one scale, so exact and
    comparable; the first on a tie), gathered from the colours the integer head makes, each read
    from the tanh `table` (uint8 pixels of tanh(i / steps) for i in [-half, half])."""
    p, count, channels, side = f"{PREFIX}_slots", slots.count, slots.channels, slots.side
    w_q, b_q, scale = quantise_linear(slots.weight, slots.bias, INPUT_CLIP, shared=False)
    mult = (scale * 2.0**-INPUT_BITS * steps).astype(np.float32)
    i64 = np.int64
    return [
        helper.make_node(
            "Slice",
            [
                acc,
                _const(graph, f"{p}_s0", [0], i64),
                _const(graph, f"{p}_s1", [count], i64),
                _const(graph, f"{p}_axis", [1], i64),
            ],
            [f"{p}_logits"],
            name=f"{p}_logits",
        ),
        helper.make_node("ArgMax", [f"{p}_logits"], [f"{p}_pick"], axis=1, keepdims=0, name=f"{p}_pick"),
        helper.make_node(
            "Reshape",
            [f"{p}_pick", _const(graph, f"{p}_pick_shape", [0, side * side, 1], i64)],
            [f"{p}_pick_flat"],
            name=f"{p}_pick_flat",
        ),
        helper.make_node("Flatten", [f"{PREFIX}_x0"], [f"{p}_latent"], axis=1, name=f"{p}_latent"),
        helper.make_node(
            "MatMul", [f"{p}_latent", _const(graph, f"{p}_w", w_q)], [f"{p}_dot"], name=f"{p}_dot"
        ),
        helper.make_node("Add", [f"{p}_dot", _const(graph, f"{p}_b", b_q)], [f"{p}_acc"], name=f"{p}_acc"),
        helper.make_node("Mul", [f"{p}_acc", _const(graph, f"{p}_m", mult)], [f"{p}_r"], name=f"{p}_requant"),
        helper.make_node("Round", [f"{p}_r"], [f"{p}_q"], name=f"{p}_round"),
        helper.make_node(
            "Clip",
            [f"{p}_q", _const(graph, f"{p}_lo", -half), _const(graph, f"{p}_hi", half)],
            [f"{p}_qc"],
            name=f"{p}_clip",
        ),
        helper.make_node(
            "Add", [f"{p}_qc", _const(graph, f"{p}_half", half)], [f"{p}_if"], name=f"{p}_offset"
        ),
        helper.make_node("Cast", [f"{p}_if"], [f"{p}_index"], to=TensorProto.INT64, name=f"{p}_index"),
        helper.make_node("Gather", [table, f"{p}_index"], [f"{p}_flat_colours"], axis=0, name=f"{p}_tanh"),
        helper.make_node(
            "Reshape",
            [f"{p}_flat_colours", _const(graph, f"{p}_colour_shape", [0, count, channels], i64)],
            [f"{p}_colours"],
            name=f"{p}_colours",
        ),
        helper.make_node(
            "GatherND", [f"{p}_colours", f"{p}_pick_flat"], [f"{p}_drawn"], batch_dims=1, name=f"{p}_draw"
        ),
        helper.make_node(
            "Reshape",
            [f"{p}_drawn", _const(graph, f"{p}_image_shape", [0, side, side, channels], i64)],
            [f"{p}_nhwc"],
            name=f"{p}_nhwc",
        ),
        helper.make_node(
            "Transpose", [f"{p}_nhwc"], [f"{PREFIX}_pixels"], perm=[0, 3, 1, 2], name=f"{p}_nchw"
        ),
    ]
