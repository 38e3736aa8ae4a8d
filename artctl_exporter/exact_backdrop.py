"""The backdrop in the exact graph (artctl-exact-v1): G's alpha channel and its pick head in integers.

A backdrop model (artctl_trainer.networks_dcgan.Backdrop) draws its figure where the last layer's
alpha channel is above 0 and, elsewhere, the backdrop colour its pick head (a linear layer on the
latent) scores highest. Here the alpha test reads the last layer's exact integer accumulator, and
the pick head runs on the fixed-point latent the first layer already takes, with integer weights
scaled under the same 2^24 bound, so its logits and their ArgMax are the same on every CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from artctl_exporter.exact_base import INPUT_CLIP, PREFIX, ExactError, quantise_linear
from artctl_exporter.exact_base import add_constant as _const


@dataclass
class BackdropNodes:
    """The backdrop's pick head (a Gemm on the latent) and its colours, as the float graph holds them."""

    weight: np.ndarray  # float [K, c_z] (Gemm transB) or [c_z, K]
    bias: np.ndarray  # float [K]
    colours: np.ndarray  # uint8 [K, C]


def find_backdrop(model: onnx.ModelProto, tail: list[onnx.NodeProto]) -> BackdropNodes | None:
    """The float graph's backdrop (G's alpha channel and pick head), if it has one."""
    gemms = [n for n in tail if n.op_type == "Gemm"]
    if not gemms:
        return None
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    gemm = gemms[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in gemm.attribute}
    if len(gemms) != 1 or attrs.get("transA", 0) or gemm.input[1] not in inits or gemm.input[2] not in inits:
        raise ExactError("a Gemm after the first layer that is not a backdrop's pick head")
    weight = inits[gemm.input[1]].astype(np.float64)
    weight = weight if attrs.get("transB", 0) else weight.T
    matmuls = [n for n in tail if n.op_type == "MatMul" and n.input[1] in inits]
    if len(matmuls) != 1:
        raise ExactError("a backdrop without its colours")
    colours = np.round((inits[matmuls[0].input[1]].astype(np.float64) + 1.0) * 127.5).astype(np.uint8)
    return BackdropNodes(weight, inits[gemm.input[2]].astype(np.float64), colours)


def quantise_pick(pick: BackdropNodes, in_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer weights [c_z, K] and bias [K] of the pick head over the fixed-point latent, one scale
    for every logit (ArgMax compares them): the logits, and their ArgMax, are exact."""
    w_q, b_q, _ = quantise_linear(pick.weight, pick.bias, in_max, shared=True)
    return w_q, b_q


BACKDROP_OPS = {
    "Slice",
    "Greater",
    "Sub",
    "Gemm",
    "Shape",
    "Gather",
    "ArgMax",
    "OneHot",
    "MatMul",
    "Unsqueeze",
}


def backdrop_nodes(
    graph: onnx.GraphProto, backdrop: BackdropNodes, acc: str, alpha: int | None = None
) -> list[onnx.NodeProto]:
    """The backdrop in integers: the figure where the last accumulator's alpha channel (`alpha`;
    by default the one after the colours) is above 0, elsewhere the colour whose exact pick logit
    (integer weights over the fixed-point latent) is largest, the first on a tie."""
    p, channels = f"{PREFIX}_backdrop", backdrop.colours.shape[1]
    alpha = channels if alpha is None else alpha
    w_q, b_q = quantise_pick(backdrop, INPUT_CLIP)
    i64 = np.int64
    return [
        helper.make_node(
            "Slice",
            [
                f"{PREFIX}_pixels",
                _const(graph, f"{p}_c0", [0], i64),
                _const(graph, f"{p}_c1", [channels], i64),
                _const(graph, f"{p}_axis", [1], i64),
            ],
            [f"{p}_figure"],
            name=f"{p}_figure",
        ),
        helper.make_node(
            "Slice",
            [
                acc,
                _const(graph, f"{p}_a0", [alpha], i64),
                _const(graph, f"{p}_a1", [alpha + 1], i64),
                f"{p}_axis",
            ],
            [f"{p}_alpha_acc"],
            name=f"{p}_alpha_acc",
        ),
        helper.make_node(
            "Greater", [f"{p}_alpha_acc", _const(graph, f"{p}_zero", 0.0)], [f"{p}_alpha"], name=f"{p}_alpha"
        ),
        helper.make_node("Flatten", [f"{PREFIX}_x0"], [f"{p}_latent"], axis=1, name=f"{p}_latent"),
        helper.make_node(
            "MatMul", [f"{p}_latent", _const(graph, f"{p}_w", w_q)], [f"{p}_dot"], name=f"{p}_dot"
        ),
        helper.make_node(
            "Add", [f"{p}_dot", _const(graph, f"{p}_b", b_q)], [f"{p}_logits"], name=f"{p}_logits"
        ),
        helper.make_node("ArgMax", [f"{p}_logits"], [f"{p}_index"], axis=1, keepdims=0, name=f"{p}_index"),
        helper.make_node(
            "Gather",
            [_const(graph, f"{p}_colours", backdrop.colours, np.uint8), f"{p}_index"],
            [f"{p}_colour"],
            axis=0,
            name=f"{p}_colour",
        ),
        helper.make_node(
            "Unsqueeze",
            [f"{p}_colour", _const(graph, f"{p}_axes", [2, 3], i64)],
            [f"{p}_behind"],
            name=f"{p}_behind",
        ),
        helper.make_node(
            "Where", [f"{p}_alpha", f"{p}_figure", f"{p}_behind"], [f"{PREFIX}_backdropped"], name=p
        ),
    ]
