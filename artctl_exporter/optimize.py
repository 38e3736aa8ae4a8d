"""Graph optimisation and reduced precision for exported generators.

- Offline ONNX Runtime optimisation at the BASIC level: constant folding and redundant-node
  elimination with standard ONNX ops only, so the file stays portable across execution providers.
  EXTENDED fusions (e.g. Conv+activation into com.microsoft.FusedConv) are specific to the EP they
  were made for; ONNX Runtime applies them online when a session is created (the server asks for
  EXTENDED), so the file does not need them. bench/export.py measures both.
- fp16: weights and activations in half precision, float inputs kept fp32 (keep_io_types) and the
  in-graph quantisation tail and Resize kept in fp32 so pixel rounding is decided at full precision.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import onnx
import onnxruntime as ort

QUANTISE_NODES = (
    "quantize_shift",
    "quantize_scale",
    "quantize_clip",
    "quantize_round",
    "quantize_cast",
    "to_nhwc",
)
FP32_OPS = ["Resize", "Round", "Clip"]

LEVELS = {
    "none": None,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
}


def optimize_offline(model: onnx.ModelProto, level: str = "basic") -> onnx.ModelProto:
    """The graph after ONNX Runtime's offline optimisation at `level` (none, basic or extended)."""
    if level not in LEVELS:
        raise ValueError(f"unknown optimisation level {level!r}; choose {', '.join(LEVELS)}")
    ort_level = LEVELS[level]
    if ort_level is None:
        return model
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "optimized.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort_level
        options.optimized_model_filepath = str(out)
        options.log_severity_level = 3
        # ConstantSharing merges equal constants across nodes; the fp16 converter then gives a shared
        # constant one type where its consumers need two, so it stays off (it only saves bytes).
        ort.InferenceSession(
            model.SerializeToString(),
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=["ConstantSharing"],
        )
        optimized = onnx.load(str(out))
    # Keep what ONNX Runtime's writer does not carry over.
    optimized.producer_name, optimized.producer_version = model.producer_name, model.producer_version
    return optimized


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Half-precision weights and compute; fp32 at the inputs, in Resize and in the quantisation tail."""
    from onnxconverter_common import float16

    blocked = [n.name for n in model.graph.node if n.name in QUANTISE_NODES]
    with warnings.catch_warnings():  # it warns for every tiny constant (e.g. 1e-8 epsilons) it clamps
        warnings.simplefilter("ignore", UserWarning)
        return float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=FP32_OPS, node_block_list=blocked
        )


def float_probe_name(model: onnx.ModelProto, default: str) -> str:
    """The fp32 tensor entering the quantisation tail (renamed by the fp16 converter's Casts)."""
    for node in model.graph.node:
        if node.name == "quantize_shift":
            return node.input[0]
    return default
