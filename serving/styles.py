"""A model's w-space graphs (NAME.mapping.onnx, NAME.synthesis.onnx) in ONNX Runtime.

Style mixing and latent walks run z -> mapping -> (edit ws) -> synthesis. They are only
trustworthy when mapping + synthesis is the same function as the main graph, pixel for pixel, so
loading renders a few probe seeds both ways and refuses companions that disagree: then "mixing a
seed with itself is its plain render" and "walk endpoints are the seeds' renders" hold by check,
not by hope. The companions' SHA-256 are checked against the sidecar (model.json) when it names them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from artctl.modelcard import file_sha256
from artctl.seeds import latents
from serving.runtime import ModelLoadError, ModelRuntime

PROBE_SEEDS = np.array([0, 1, 2, 3, 12345, 2**63 + 7], dtype=np.uint64)


class NoStyleGraphsError(ModelLoadError):
    """The model has no (usable) mapping/synthesis graphs."""


@dataclass
class StyleGraphs:
    """Mapping and synthesis sessions for one served model, at the main session's settings."""

    runtime: ModelRuntime
    mapping: ort.InferenceSession
    synthesis: ort.InferenceSession
    num_ws: int
    w_dim: int

    def map_z(
        self,
        z: npt.NDArray[np.float32],
        psi: npt.NDArray[np.float32] | None = None,
        labels: npt.NDArray[np.int64] | None = None,
    ) -> npt.NDArray[np.float32]:
        """ws [B, num_ws, w_dim] (truncated by psi; default psi and label 0 when not given)."""
        n = len(z)
        card = self.runtime.card
        feeds: dict[str, np.ndarray] = {
            "z": np.ascontiguousarray(z, dtype=np.float32),
            "psi": psi if psi is not None else np.full(n, card.default_psi, dtype=np.float32),
        }
        if card.has_label:
            feeds["label"] = labels if labels is not None else np.zeros(n, dtype=np.int64)
        (ws,) = self.mapping.run(["ws"], feeds)
        return ws

    def map_seeds(
        self,
        seeds: npt.NDArray[np.uint64],
        psi: npt.NDArray[np.float32] | None = None,
        labels: npt.NDArray[np.int64] | None = None,
    ) -> npt.NDArray[np.float32]:
        """ws of seeds through the seed contract (artctl-latent-v1)."""
        return self.map_z(latents(seeds, self.runtime.card.z_dim), psi, labels)

    def synthesize(self, ws: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """Images [B, H, W, C] from ws; at the runtime's canonical exec batch when it has one
        (padded with copies of the first row, which are discarded)."""
        step = self.runtime.profile.exec_batch
        if not step:
            (images,) = self.synthesis.run(["image"], {"ws": ws})
            return images
        out = np.empty((len(ws), *self.runtime.image_shape), dtype=np.uint8)
        for start in range(0, len(ws), step):
            part = ws[start : start + step]
            real = len(part)
            if real < step:
                part = np.concatenate([part, np.repeat(part[:1], step - real, axis=0)])
            (images,) = self.synthesis.run(["image"], {"ws": part})
            out[start : start + real] = images[:real]
        return out


def _companion(runtime: ModelRuntime, graph: str) -> Path:
    name = runtime.card.extra.get(f"{graph}_file")
    if not name:
        raise NoStyleGraphsError(
            f"model {runtime.name!r} has no {graph} graph: style mixing, walks in w and restore need a "
            "StyleGAN-type model exported with its companions (artctl export --companions)"
        )
    path = runtime.path.with_name(name)
    if not path.is_file():
        raise NoStyleGraphsError(f"model {runtime.name!r}: its {graph} graph {path} is missing")
    return path


def _expected_sha(runtime: ModelRuntime, graph: str) -> str | None:
    sidecar = runtime.path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        doc = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None  # load_model already refused unreadable sidecars
    entry = doc.get("companions", {}).get(graph, {})
    return entry.get("sha256") if isinstance(entry, dict) else None


def _session(runtime: ModelRuntime, path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    main = runtime.session.get_session_options()
    options.intra_op_num_threads = main.intra_op_num_threads
    options.inter_op_num_threads = main.inter_op_num_threads
    options.graph_optimization_level = main.graph_optimization_level
    options.use_deterministic_compute = main.use_deterministic_compute
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers = runtime.session.get_providers()
    provider_options = runtime.session.get_provider_options()
    try:
        return ort.InferenceSession(
            str(path),
            options,
            providers=[(p, provider_options.get(p, {})) for p in providers],
        )
    except Exception as exc:  # onnxruntime's own exception types
        raise NoStyleGraphsError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from exc


def load_style_graphs(runtime: ModelRuntime, probe: bool = True) -> StyleGraphs:
    """Open the companions the card names; check their SHA-256 and (probe) their pixels."""
    if not runtime.card.has_psi:
        raise NoStyleGraphsError(
            f"model {runtime.name!r} ({runtime.card.architecture}) has no w space: style mixing, walks "
            "in w and restore need a StyleGAN-type model"
        )
    sessions = {}
    for graph in ("mapping", "synthesis"):
        path = _companion(runtime, graph)
        expected = _expected_sha(runtime, graph)
        if expected and file_sha256(path) != expected:
            raise NoStyleGraphsError(f"{path}: SHA-256 does not match the sidecar's; re-export the model")
        sessions[graph] = _session(runtime, path)
    try:
        num_ws = int(runtime.card.extra["num_ws"])
        w_dim = int(runtime.card.extra["w_dim"])
    except (KeyError, ValueError) as exc:
        raise NoStyleGraphsError(f"model {runtime.name!r}: the card lacks num_ws/w_dim") from exc
    graphs = StyleGraphs(runtime, sessions["mapping"], sessions["synthesis"], num_ws, w_dim)
    if probe:
        fused = runtime.render(PROBE_SEEDS)
        split = graphs.synthesize(graphs.map_seeds(PROBE_SEEDS))
        if not np.array_equal(fused, split):
            raise NoStyleGraphsError(
                f"model {runtime.name!r}: mapping + synthesis do not reproduce the main graph's pixels; "
                "re-export the model"
            )
    return graphs
