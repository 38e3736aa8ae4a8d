"""The layers drawn over the figure in the exact graph: the label layer and the trait layers.

Each is a Where after the figure (Tanh, the slots' Einsum or the backdrop's Add), drawn one over
another in the art's order: the trait layers, then the label layer. Its mask is a Gather of a bool
initializer and its float colours come from a Gather of a uint8 one. The exact graph keeps the mask
and draws the uint8 colours straight over its uint8 pixels. The index each one gathers by is the
label input (the label layer) or the value the latent picks (a trait layer: a comparison of z * 2^20
with integer thresholds, exact in float32), and both are kept as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import TensorProto, helper

from artctl_exporter.exact_base import PREFIX, ExactError


@dataclass
class LayerNodes:
    """One Where after the figure: its mask, and the uint8 colours behind its float colours."""

    mask: str  # bool [B, 1, H, W], gathered by `index` (kept as it is)
    colours: str  # the uint8 [K, C, H, W] initializer the float colours are computed from
    index: str  # what the colours are gathered by: the label input, or a trait's pick


def _layer(model: onnx.ModelProto, where: onnx.NodeProto) -> LayerNodes:
    """Follow the Where's colour input back (Sub, Div, Cast) to its Gather of a uint8 initializer."""
    producers = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    node = producers.get(where.input[1])
    while node is not None and node.op_type in ("Sub", "Div", "Cast"):
        node = producers.get(node.input[0])
    if node is None or node.op_type != "Gather" or node.input[0] not in inits:
        raise ExactError("a Where after Tanh that is not a label or trait layer: no exact graph for it")
    if inits[node.input[0]].data_type != TensorProto.UINT8:
        raise ExactError("a layer's colours are not uint8")
    return LayerNodes(where.input[0], node.input[0], node.input[1])


def find_layers(
    model: onnx.ModelProto, tail: list[onnx.NodeProto], figure: tuple[str, ...]
) -> list[LayerNodes]:
    """The Wheres of `tail`, in drawing order: the first drawn over a node of a `figure` op type,
    each next over the one before."""
    wheres = [n for n in tail if n.op_type == "Where"]
    producers = {o: n for n in tail for o in n.output}
    for i, where in enumerate(wheres):
        under = producers.get(where.input[2])
        on_figure = under is not None and under.op_type in figure
        if not (on_figure if i == 0 else under is wheres[i - 1]):
            raise ExactError(
                "only layers drawn one over another, right after the figure, have an exact graph"
            )
    return [_layer(model, w) for w in wheres]


def layer_nodes(layers: list[LayerNodes], pixels: str) -> tuple[list[onnx.NodeProto], str]:
    """Each layer's uint8 colours over the uint8 pixels [B, C, H, W], in order; and the result's name."""
    nodes = []
    for i, layer in enumerate(layers):
        colours, drawn = f"{PREFIX}_layer{i}_colours", f"{PREFIX}_layered{i}"
        nodes += [
            helper.make_node("Gather", [layer.colours, layer.index], [colours], axis=0, name=colours),
            helper.make_node("Where", [layer.mask, colours, pixels], [drawn], name=f"{PREFIX}_layer{i}"),
        ]
        pixels = drawn
    return nodes, pixels
