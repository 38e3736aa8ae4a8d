"""The integer-exact render graph (artctl-exact-v1): the same pixels on every CPU, by construction.

A float graph's pixels depend on the instruction set: MLAS picks SSE, AVX2+FMA or AVX-512 kernels
that sum in other orders and fuse other multiplies, and Tanh is a polynomial that differs by an ulp;
a value near a rounding boundary then lands on the other uint8. This module rewrites an exported
DCGAN-type graph (ConvTranspose layers with Relu between them, Tanh at the end, then artctl's
quantisation) so that every operation either is exact or is one correctly rounded IEEE operation:

- The first layer's input is fixed point: Clip(Round(x * 2^k), -A0, A0).
- Each ConvTranspose sees integer activations and integer weights, stored in float32. Weights are
  scaled per output channel so that, for every output value, the sum of |term| (bias included) stays
  below 2^24: every partial sum is then an integer that float32 holds exactly, so the result is the
  same in any summation order, with or without FMA (checked per channel here, not assumed).
- Between layers: Clip(Round(acc * m_c), 0, 255), one multiply (correctly rounded everywhere), round
  half to even, clip; the clip at 0 is the Relu.
- The last layer: index = Clip(Round(acc * m_c), -N, N) into a uint8 table of the pixel quantisation
  of tanh, (tanh(i / STEPS) + 1) * 127.5 rounded half to even; no Tanh kernel is run.

A slot model's figure is its slot colours, picked per pixel (exact_slots.py); a backdrop
(exact_backdrop.py) goes under the figure, and the trait layers and the label layer over it
(exact_layers.py), all in uint8. The
palette snap that follows (artctl-palette-v1) is exact already and is kept as it was. Activation
scales come from a calibration over seeds rendered by the float graph itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from artctl.profile import EXACT_CONTRACT
from artctl_exporter.exact_backdrop import BACKDROP_OPS, BackdropNodes, backdrop_nodes, find_backdrop
from artctl_exporter.exact_base import EXACT_LIMIT, INPUT_BITS, INPUT_CLIP, PREFIX, ExactError
from artctl_exporter.exact_base import add_constant as _const
from artctl_exporter.exact_layers import GROUND_OPS, LayerNodes, find_layers, layer_nodes
from artctl_exporter.exact_slots import SLOT_OPS, SlotNodes, find_slots, slot_nodes

ACTIVATION_MAX = 511  # hidden activations: 0..511 after the clip that is the Relu
TANH_STEPS = 1024  # last layer: pre-tanh values in steps of 1/1024 ...
TANH_RANGE = 8  # ... over [-8, 8], where tanh is within 1e-6 of +-1
CALIBRATION = range(1_000_000, 1_000_512)  # seeds the activation scales come from (labels: seed mod L)


@dataclass
class Layer:
    node: onnx.NodeProto  # the float ConvTranspose
    weight: np.ndarray  # float [Cin, Cout, k, k]
    bias: np.ndarray  # float [Cout]


def _chain(
    model: onnx.ModelProto,
) -> tuple[str, list[Layer], list[onnx.NodeProto], list[LayerNodes], BackdropNodes | None, SlotNodes | None]:
    """The first layer's input, the ConvTranspose layers in order, the nodes the rewrite replaces,
    the layers drawn over the output (trait layers, label layer), the backdrop under it and the
    colour slots, where there are ones."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = list(model.graph.node)
    first = next((i for i, n in enumerate(nodes) if n.op_type == "ConvTranspose"), None)
    if first is None:
        raise ExactError("no ConvTranspose layers: only DCGAN-type generators have an exact graph")
    allowed = {"ConvTranspose", "Relu", "Tanh", "Add", "Mul", "Clip", "Round", "Cast", "Transpose", "Where"}
    tail = []
    for node in nodes[first:]:
        tail.append(node)
        if "image" in node.output or "image_unsnapped" in node.output:
            break
    slots = find_slots(model, tail)
    backdrop = find_backdrop(model, [n for n in tail if slots is None or n is not slots.gemm])
    allowed |= (BACKDROP_OPS if backdrop is not None else set()) | (SLOT_OPS if slots is not None else set())
    after = "Add" if backdrop is not None else "Einsum" if slots is not None else "Tanh"
    drawn_over = find_layers(model, tail, ("Tanh", after))
    allowed |= GROUND_OPS if any(layer.colours is None for layer in drawn_over) else set()
    kinds = [n.op_type for n in tail]
    if set(kinds) - allowed or kinds.count("Tanh") != 1 or any(n.op_type == "Conv" for n in nodes):
        raise ExactError(
            f"only DCGAN-type generators have an exact graph; this one has {sorted(set(kinds) - allowed)}"
        )
    layers = []
    for node in tail:
        if node.op_type != "ConvTranspose":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("group", 1) != 1 or any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise ExactError("grouped or dilated ConvTranspose is not supported")
        weight = inits[node.input[1]].astype(np.float64)
        bias = inits[node.input[2]].astype(np.float64) if len(node.input) > 2 else np.zeros(weight.shape[1])
        layers.append(Layer(node, weight, bias))
    return nodes[first].input[0], layers, tail, drawn_over, backdrop, slots


def _stride(node: onnx.NodeProto) -> int:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return int(attrs.get("strides", [1, 1])[0])


def term_bound(weight: np.ndarray, stride: int) -> np.ndarray:
    """Per output channel, the largest sum of |w| over the taps that meet in one output value.

    In a ConvTranspose with stride s, the kernel taps that add into one output share kh mod s and
    kw mod s; the bound is the largest such class (summed over all input channels).
    """
    a = np.abs(weight)
    classes = [
        a[:, :, i::stride, j::stride].sum(axis=(0, 2, 3)) for i in range(stride) for j in range(stride)
    ]
    return np.max(np.stack(classes), axis=0)


def quantise_weights(
    layer: Layer, in_scale: float, in_max: int, shared: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer weights and bias (in accumulator units) and the per-channel weight scale.

    The scale is as fine as the exactness bound allows: sum |w_q| * in_max + |b_q| < 2^24 per channel.
    The first `shared` channels (slot logits, which ArgMax compares) take one scale, the coarsest.
    """
    stride = _stride(layer.node)
    bound = np.maximum(term_bound(layer.weight, stride), 1e-12)
    scale = bound * in_max / (0.98 * EXACT_LIMIT)
    scale[:shared] = scale[:shared].max(initial=0.0)
    for _ in range(50):
        w_q = np.round(layer.weight / scale[None, :, None, None])
        b_q = np.round(layer.bias / (in_scale * scale))
        total = term_bound(w_q, stride) * in_max + np.abs(b_q)
        over = total >= EXACT_LIMIT
        if not over.any():
            return w_q, b_q, scale
        over[:shared] = over[:shared].any()
        scale = np.where(over, scale * 1.01, scale)
    raise ExactError("could not fit the weights under the exactness bound")


def tanh_table() -> np.ndarray:
    """uint8 pixel of tanh(i / TANH_STEPS) for i in [-N, N]: artctl's quantisation, half to even."""
    n = TANH_STEPS * TANH_RANGE
    x = np.arange(-n, n + 1, dtype=np.float64) / TANH_STEPS
    return np.clip(np.round((np.tanh(x) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def calibrate(model: onnx.ModelProto, feeds: dict[str, np.ndarray], names: list[str]) -> list[float]:
    """The largest value each named tensor takes over the calibration feeds (float graph, CPU)."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    n = len(next(iter(feeds.values())))
    peaks = np.zeros(len(names))
    for start in range(0, n, 64):
        part = {k: v[start : start + 64] for k, v in feeds.items()}
        outs = session.run(names, part)
        peaks = np.maximum(peaks, [float(np.abs(o).max()) for o in outs])
    # Three significant digits, rounded up: a CPU whose float kernels differ in the last bit
    # calibrates the same scales, so the exact graph's bytes do not depend on where it was exported.
    return [round_up_3(float(p)) for p in peaks]


def round_up_3(value: float) -> float:
    """`value` rounded up to three significant digits (1.0 for zero), e.g. 7.4933 -> 7.5, in decimal
    arithmetic so that 0.000123 stays 0.000123."""
    if value <= 0:
        return 1.0
    exact = Decimal(f"{value:.6g}")  # six digits first: drops the last-bit noise of a float kernel
    shift = exact.adjusted() - 2
    return float(exact.scaleb(-shift).to_integral_value(rounding=ROUND_CEILING).scaleb(shift))


def _prune(graph: onnx.GraphProto) -> None:
    """Drop nodes whose outputs nothing reads (the label layer's float colours), then the
    initializers no node reads any more."""
    outputs = {o.name for o in graph.output}
    while True:
        read = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if not any(o in read for o in n.output)]
        if not dead:
            break
        keep = [n for n in graph.node if n not in dead]
        del graph.node[:]
        graph.node.extend(keep)
    read = {i for n in graph.node for i in n.input}
    inits = [i for i in graph.initializer if i.name in read]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def make_exact(
    model: onnx.ModelProto, feeds: dict[str, np.ndarray]
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The exact graph of a float DCGAN-type graph, calibrated on `feeds`; and what was chosen."""
    source, layers, tail, drawn_over, backdrop, slots = _chain(model)
    relus = [n.output[0] for n in tail if n.op_type == "Relu"]
    if len(relus) != len(layers) - 1:
        raise ExactError("expected a Relu between every two ConvTranspose layers")
    peaks = calibrate(model, feeds, relus)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    final = tail[-1].output[0]
    replaced = {t.SerializeToString() for t in tail}
    keep = [n for n in graph.node if n.SerializeToString() not in replaced]
    del graph.node[:]
    graph.node.extend(keep)
    used = {i for n in tail for i in n.input} - {i for n in keep for i in n.input}
    used -= {
        n for layer in drawn_over for n in (layer.masks, layer.colours, layer.anchors) if n
    }  # gathered anew
    kept_inits = [i for i in graph.initializer if i.name not in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    p, new = PREFIX, []
    in_scale, in_max = 2.0**-INPUT_BITS, INPUT_CLIP
    _const(graph, f"{p}_in_mul", 2.0**INPUT_BITS)
    _const(graph, f"{p}_in_lo", -INPUT_CLIP)
    _const(graph, f"{p}_in_hi", INPUT_CLIP)
    new += [
        helper.make_node("Mul", [source, f"{p}_in_mul"], [f"{p}_in_scaled"], name=f"{p}_in_scale"),
        helper.make_node("Round", [f"{p}_in_scaled"], [f"{p}_in_rounded"], name=f"{p}_in_round"),
        helper.make_node(
            "Clip", [f"{p}_in_rounded", f"{p}_in_lo", f"{p}_in_hi"], [f"{p}_x0"], name=f"{p}_in_clip"
        ),
    ]
    chosen: dict[str, Any] = {"contract": EXACT_CONTRACT, "layers": []}
    x = f"{p}_x0"
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        w_q, b_q, w_scale = quantise_weights(layer, in_scale, in_max, slots.count if slots and last else 0)
        conv = helper.make_node(
            "ConvTranspose",
            [x, _const(graph, f"{p}_w{i}", w_q), _const(graph, f"{p}_b{i}", b_q)],
            [f"{p}_acc{i}"],
            name=f"{p}_conv{i}",
        )
        conv.attribute.extend(layer.node.attribute)
        new.append(conv)
        if last:
            out_scale, lo, hi = 1.0 / TANH_STEPS, -TANH_STEPS * TANH_RANGE, TANH_STEPS * TANH_RANGE
        else:
            out_scale, lo, hi = peaks[i] / ACTIVATION_MAX, 0, ACTIVATION_MAX
        mult = (in_scale * w_scale / out_scale).astype(np.float32).reshape(1, -1, 1, 1)
        new += [
            helper.make_node(
                "Mul",
                [f"{p}_acc{i}", _const(graph, f"{p}_m{i}", mult)],
                [f"{p}_r{i}"],
                name=f"{p}_requant{i}",
            ),
            helper.make_node("Round", [f"{p}_r{i}"], [f"{p}_q{i}"], name=f"{p}_round{i}"),
            helper.make_node(
                "Clip",
                [f"{p}_q{i}", _const(graph, f"{p}_lo{i}", lo), _const(graph, f"{p}_hi{i}", hi)],
                [f"{p}_x{i + 1}"],
                name=f"{p}_clip{i}",
            ),
        ]
        chosen["layers"].append(
            {
                "input_max": in_max,
                "weight_max": int(np.abs(w_q).max()),
                "largest_sum": int((term_bound(w_q, _stride(layer.node)) * in_max + np.abs(b_q)).max()),
            }
        )
        x, in_scale, in_max = f"{p}_x{i + 1}", out_scale, ACTIVATION_MAX
    acc = f"{p}_acc{i}"
    if slots is not None:  # the slot colours, picked per pixel (the last layer's x is then unused)
        table = _const(graph, f"{p}_tanh", tanh_table(), np.uint8)
        new += slot_nodes(graph, slots, acc, TANH_STEPS, TANH_STEPS * TANH_RANGE, table)
        chosen["colour_slots"] = slots.count
    else:
        offset = _const(graph, f"{p}_offset", TANH_STEPS * TANH_RANGE)
        table = _const(graph, f"{p}_tanh", tanh_table(), np.uint8)
        new += [
            helper.make_node("Add", [x, offset], [f"{p}_index_f"], name=f"{p}_offset"),
            helper.make_node(
                "Cast", [f"{p}_index_f"], [f"{p}_index"], to=TensorProto.INT64, name=f"{p}_index"
            ),
            helper.make_node("Gather", [table, f"{p}_index"], [f"{p}_pixels"], axis=0, name=f"{p}_tanh"),
        ]
    pixels = f"{p}_pixels"
    if backdrop is not None:  # the figure where the alpha accumulator is above 0, else the pick
        new += backdrop_nodes(graph, backdrop, acc, slots.count if slots is not None else None)
        pixels = f"{p}_backdropped"
        chosen["backdrop"] = True
    if drawn_over:  # their uint8 colours go straight over the pixels: no float round trip
        layered, pixels = layer_nodes(graph, drawn_over, pixels)
        new += layered
        chosen["layers_drawn_over"] = len(drawn_over)
    new.append(helper.make_node("Transpose", [pixels], [final], perm=[0, 2, 3, 1], name=f"{p}_to_nhwc"))
    graph.node.extend(new)
    _prune(graph)
    # Keep a topological order: the rewritten chain goes where the float one was (before the snap).
    order = [n for n in graph.node if n.op_type != "ArgMin" and not n.name.startswith("palette_snap")]
    order += [n for n in graph.node if n.op_type == "ArgMin" or n.name.startswith("palette_snap")]
    sorted_nodes = [onnx.NodeProto() for _ in order]
    for dst, src in zip(sorted_nodes, order, strict=True):
        dst.CopyFrom(src)
    del graph.node[:]
    graph.node.extend(sorted_nodes)
    del graph.value_info[:]
    for prop in out.metadata_props:  # a card copied from the float graph names the new contract
        if prop.key == "contracts":
            prop.value = json.dumps({**json.loads(prop.value), "arithmetic": EXACT_CONTRACT}, sort_keys=True)
    onnx.checker.check_model(out, full_check=True)
    chosen["activation_peaks"] = peaks
    return out, chosen


def check_exact(
    model: onnx.ModelProto, feeds: dict[str, np.ndarray], reference_seeds: int = 8
) -> dict[str, Any]:
    """The gate an exact graph passes before it is written: the same pixels at batch sizes 1, 7 and
    64, at ORT_DISABLE_ALL and ORT_ENABLE_ALL, and from onnx's own reference evaluator (an
    independent implementation of every operator, in numpy) on the first seeds."""
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    def render(level: str, batch: int) -> np.ndarray:
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        n = len(feeds["z"])
        parts = [
            session.run(["image"], {k: v[i : i + batch] for k, v in feeds.items()})[0]
            for i in range(0, n, batch)
        ]
        return np.concatenate(parts)

    base = render("ORT_ENABLE_ALL", 64)
    for level, batch in (("ORT_ENABLE_ALL", 1), ("ORT_ENABLE_ALL", 7), ("ORT_DISABLE_ALL", 64)):
        differ = int((render(level, batch) != base).any(axis=(1, 2, 3)).sum())
        if differ:
            raise ExactError(
                f"exact graph: {differ} images change at {level}, batch {batch}; model not written"
            )
    few = {k: v[:reference_seeds] for k, v in feeds.items()}
    outputs: Any = ReferenceEvaluator(model).run(["image"], few)
    evaluated = np.asarray(outputs[0])
    differ = int((evaluated != base[:reference_seeds]).any(axis=(1, 2, 3)).sum())
    if differ:
        raise ExactError(f"exact graph: onnx's reference evaluator renders {differ} images differently")
    return {"exact_images_checked": len(base), "exact_reference_evaluator_images": reference_seeds}
