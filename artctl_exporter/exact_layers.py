"""The layers drawn over the figure in the exact graph: the label layer and the trait layers.

Each is a Where after the figure (Tanh, the slots' Einsum or the backdrop's Add), drawn one over
another in the art's order: the trait layers, then the label layer. Its mask is a Gather of a bool
initializer and its float colours come from a Gather of a uint8 one. A trait layer's ground is a
Where too, whose colour is computed from the figure: the colour most of its anchor pixels (an int64
initializer the float graph gathers the figure by) show. The exact graph gathers the same masks and
draws the uint8 colours, or the ground colour voted on the uint8 figure in integers, straight over
its uint8 pixels. The index each one gathers by is the label input (the label layer) or the value
the latent picks (a trait layer: a comparison of z * 2^20 with integer thresholds, exact in
float32), kept as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from artctl_exporter.exact_base import PREFIX, ExactError, add_constant

# The ops of a ground's colour vote in the float graph (torch's export of TraitLayers.ground_colour).
GROUND_OPS = {
    "Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Equal", "Where", "ConstantOfShape", "Add",
    "Mul", "Round", "Not", "Cast", "ReduceSum", "Greater", "ArgMax", "Expand", "GatherElements", "Flatten",
    "Slice",
}  # fmt: skip


@dataclass
class LayerNodes:
    """One Where after the figure: its mask, and the uint8 colours behind its float colours."""

    masks: str  # the bool [K, 1, H, W] initializer the mask is gathered from
    colours: str | None  # the uint8 [K, C, H, W] initializer of its colours; None: a ground
    index: str  # what the mask and colours are gathered by: the label input, or a trait's pick
    anchors: str | None = None  # a ground's int64 [A] initializer: the flat pixels that vote


def _ancestors(name: str, producers: dict[str, onnx.NodeProto], stop: str = "") -> list[onnx.NodeProto]:
    """The nodes of `producers` that `name` is computed from (up to the tensor `stop`)."""
    seen: dict[int, onnx.NodeProto] = {}
    todo = [name]
    while todo:
        tensor = todo.pop()
        node = None if tensor == stop else producers.get(tensor)
        if node is not None and id(node) not in seen:
            seen[id(node)] = node
            todo += list(node.input)
    return list(seen.values())


def _layer(
    model: onnx.ModelProto, where: onnx.NodeProto, tail: list[onnx.NodeProto], figure: str
) -> LayerNodes:
    """The Where's mask (a Gather of a bool initializer) and its colours: followed back (Sub, Div,
    Cast) to a Gather of a uint8 initializer, or a ground's vote on the figure."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    gather = producers.get(where.input[0])
    if gather is None or gather.op_type != "Gather" or gather.input[0] not in inits:
        raise ExactError("a Where after the figure whose mask is not gathered from the model")
    if inits[gather.input[0]].data_type != TensorProto.BOOL:
        raise ExactError("a layer's mask is not bool")
    node = producers.get(where.input[1])
    while node is not None and node.op_type in ("Sub", "Div", "Cast"):
        node = producers.get(node.input[0])
    if node is not None and node.op_type == "Gather" and node.input[0] in inits:
        if inits[node.input[0]].data_type != TensorProto.UINT8:
            raise ExactError("a layer's colours are not uint8")
        if node.input[1] != gather.input[1]:
            raise ExactError("a layer whose mask and colours are gathered by different indices")
        return LayerNodes(gather.input[0], node.input[0], node.input[1])
    in_tail = {o: n for n in tail for o in n.output}
    vote = _ancestors(where.input[1], in_tail, stop=figure)
    anchors = [  # the Gather of the figure's pixels (not of a shape) by an int64 initializer
        n.input[1]
        for n in vote
        if n.op_type == "Gather"
        and n.input[1] in inits
        and inits[n.input[1]].data_type == TensorProto.INT64
        and not (n.input[0] in in_tail and in_tail[n.input[0]].op_type == "Shape")
    ]
    reads_figure = any(figure in n.input for n in vote)
    if len(anchors) != 1 or not reads_figure or {n.op_type for n in vote} - GROUND_OPS:
        raise ExactError("a Where after the figure that is not a label layer, trait layer or ground")
    return LayerNodes(gather.input[0], None, gather.input[1], anchors[0])


def find_layers(
    model: onnx.ModelProto, tail: list[onnx.NodeProto], figure: tuple[str, ...]
) -> list[LayerNodes]:
    """The chain of Wheres of `tail`, in drawing order: the first drawn over a node of a `figure` op
    type, each next over the one before. Any other Where must be part of a ground's vote."""
    producers = {o: n for n in tail for o in n.output}
    firsts = [
        n
        for n in tail
        if n.op_type == "Where" and n.input[2] in producers and producers[n.input[2]].op_type in figure
    ]
    if not firsts:
        if any(n.op_type == "Where" for n in tail):
            raise ExactError(
                "only layers drawn one over another, right after the figure, have an exact graph"
            )
        return []
    figure_out = firsts[0].input[2]
    chain = [firsts[0]]
    while after := [n for n in tail if n.op_type == "Where" and n.input[2] == chain[-1].output[0]]:
        chain.append(after[0])
    layers = [_layer(model, w, tail, figure_out) for w in chain]
    votes = {id(n) for w in chain for n in _ancestors(w.input[1], producers, stop=figure_out)}
    if any(n.op_type == "Where" and n not in chain and id(n) not in votes for n in tail):
        raise ExactError("only layers drawn one over another, right after the figure, have an exact graph")
    return layers


def _ground_colour(graph: onnx.GraphProto, anchors: str, figure: str, name: str) -> list[onnx.NodeProto]:
    """`name` [B, C, 1, 1] uint8: of the figure's anchor pixels, the colour most of them show (the
    first anchor's on a tie), compared as integers: ArgMax of the counts of equal anchors."""
    i64 = np.int64

    def const(suffix: str, value: list[int]) -> str:
        return add_constant(graph, f"{name}_const_{suffix}", value, i64)

    p = name
    return [
        helper.make_node("Reshape", [figure, const("flat", [0, 0, -1])], [f"{p}_flat"], name=f"{p}_flat"),
        helper.make_node("Gather", [f"{p}_flat", anchors], [f"{p}_shown"], axis=2, name=f"{p}_shown"),
        helper.make_node("Cast", [f"{p}_shown"], [f"{p}_int"], to=TensorProto.INT32, name=f"{p}_int"),
        helper.make_node("Unsqueeze", [f"{p}_int", const("ax3", [3])], [f"{p}_rows"], name=f"{p}_rows"),
        helper.make_node("Unsqueeze", [f"{p}_int", const("ax2", [2])], [f"{p}_cols"], name=f"{p}_cols"),
        helper.make_node("Equal", [f"{p}_rows", f"{p}_cols"], [f"{p}_eq"], name=f"{p}_eq"),  # [B, C, K, K]
        helper.make_node("Cast", [f"{p}_eq"], [f"{p}_eq_int"], to=TensorProto.INT32, name=f"{p}_eq_int"),
        helper.make_node(
            "ReduceMin", [f"{p}_eq_int"], [f"{p}_same"], axes=[1], keepdims=0, name=f"{p}_same"
        ),  # [B, K, K]: 1 where every channel agrees
        helper.make_node(
            "ReduceSum", [f"{p}_same", const("ax_votes", [2])], [f"{p}_votes"], keepdims=0, name=f"{p}_votes"
        ),
        helper.make_node("ArgMax", [f"{p}_votes"], [f"{p}_best"], axis=1, keepdims=1, name=f"{p}_best"),
        helper.make_node("Unsqueeze", [f"{p}_best", const("ax1", [1])], [f"{p}_best3"], name=f"{p}_best3"),
        helper.make_node("Shape", [f"{p}_shown"], [f"{p}_shape"], end=2, name=f"{p}_shape"),
        helper.make_node("Concat", [f"{p}_shape", const("one", [1])], [f"{p}_to"], axis=0, name=f"{p}_to"),
        helper.make_node("Expand", [f"{p}_best3", f"{p}_to"], [f"{p}_pick"], name=f"{p}_pick"),
        helper.make_node("GatherElements", [f"{p}_shown", f"{p}_pick"], [f"{p}_c"], axis=2, name=f"{p}_c"),
        helper.make_node("Unsqueeze", [f"{p}_c", const("ax_last", [3])], [name], name=name),
    ]


def layer_nodes(
    graph: onnx.GraphProto, layers: list[LayerNodes], pixels: str
) -> tuple[list[onnx.NodeProto], str]:
    """Each layer's uint8 colours (a ground: the colour voted on the figure, the uint8 `pixels` they
    are first drawn over) over the uint8 pixels [B, C, H, W], in order; and the result's name."""
    nodes, figure, ground = [], pixels, None
    for i, layer in enumerate(layers):
        mask, colours, drawn = f"{PREFIX}_layer{i}_mask", f"{PREFIX}_layer{i}_colours", f"{PREFIX}_layered{i}"
        nodes.append(helper.make_node("Gather", [layer.masks, layer.index], [mask], axis=0, name=mask))
        if layer.colours is None:
            assert layer.anchors is not None
            if ground is None:
                ground = f"{PREFIX}_ground"
                nodes += _ground_colour(graph, layer.anchors, figure, ground)
            colours = ground
        else:
            nodes.append(
                helper.make_node("Gather", [layer.colours, layer.index], [colours], axis=0, name=colours)
            )
        nodes.append(helper.make_node("Where", [mask, colours, pixels], [drawn], name=f"{PREFIX}_layer{i}"))
        pixels = drawn
    return nodes, pixels
