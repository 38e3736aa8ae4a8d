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
