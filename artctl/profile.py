"""The render profile: what besides (model bytes, seed, psi, label) decided an image's pixels.

Every artctl image is rendered by ONNX Runtime, and a few of its settings change arithmetic (the
graph optimisation level first of all). They are data here, recorded with every response and in
every manifest, and `session_options` is the one place that turns them into a session, so the
server, the in-process renderer and the companion graphs can never drift apart. onnxruntime is
imported only when a session is made: the core stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from artctl.seeds import LATENT_CONTRACT

# Names of onnxruntime.GraphOptimizationLevel members, by the short names artctl uses.
GRAPH_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
SERVING_LEVEL = "extended"


@dataclass(frozen=True)
class RenderProfile:
    """The settings a set of pixels was rendered under (recorded, never inferred)."""

    model_sha256: str
    runtime: str
    provider: str
    device: str
    exec_batch: int
    precision: str
    latent_contract: str = LATENT_CONTRACT

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def session_options(threads: int = 0, level: str = SERVING_LEVEL, deterministic: bool = False) -> Any:
    """onnxruntime.SessionOptions for `level`, `threads` intra-op threads (0: onnxruntime's choice)
    and deterministic compute (the CUDA EP needs it; the CPU EP is deterministic anyway).

    Idle threads sleep instead of spinning: a server shares its cores with PNG encoders and gRPC.
    """
    import onnxruntime as ort

    if level not in GRAPH_LEVELS:
        raise ValueError(f"unknown graph optimisation level {level!r}; choose {', '.join(GRAPH_LEVELS)}")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_LEVELS[level])
    options.use_deterministic_compute = deterministic
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options
