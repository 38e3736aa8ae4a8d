"""What the exact graph's modules share (artctl-exact-v1): its bounds, its error, its constants."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

EXACT_LIMIT = 2**24  # float32 holds every integer of magnitude <= 2^24
INPUT_BITS = 7  # first-layer input step 2^-7
INPUT_CLIP = 512  # ... clipped to +-4.0 (a latent beyond 4 sigma is rare and barely matters)
PREFIX = "exact"  # the names of the exact graph's nodes and initializers start with it


class ExactError(ValueError):
    """The graph is not of a shape this rewrite supports (e.g. a StyleGAN-type generator)."""


def add_constant(graph: onnx.GraphProto, name: str, value: Any, dtype: Any = np.float32) -> str:
    """`value` as an initializer of `graph`, named `name` (returned, for a node's inputs)."""
    graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
    return name


def quantise_linear(
    weight: np.ndarray, bias: np.ndarray, in_max: int, shared: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer weights [c_in, R] and bias [R] of a linear head [R, c_in] over the fixed-point latent,
    and the scale of each row: every row's sum of |terms| stays below 2^24, so its integer outputs
    are exact. `shared`: one scale for every row (logits an ArgMax compares)."""
    scale = np.maximum(np.abs(weight).sum(axis=1) * in_max, 1e-12) / (0.98 * EXACT_LIMIT)
    if shared:
        scale = np.full_like(scale, scale.max())
    for _ in range(50):
        w_q = np.round(weight / scale[:, None])
        b_q = np.round(bias / (scale * 2.0**-INPUT_BITS))
        over = np.abs(w_q).sum(axis=1) * in_max + np.abs(b_q) >= EXACT_LIMIT
        if not over.any():
            return w_q.T, b_q, scale
        scale = np.where(over.any() if shared else over, scale * 1.01, scale)
    raise ExactError("could not fit a linear head under the exactness bound")
