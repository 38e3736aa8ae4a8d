"""A model's w-space graphs (NAME.mapping.onnx, NAME.synthesis.onnx) in ONNX Runtime.

Style mixing and latent walks run z -> mapping -> (edit ws) -> synthesis. They are only
trustworthy when mapping + synthesis is the same function as the main graph, pixel for pixel, so
loading renders a few probe seeds both ways and refuses companions that disagree: then "mixing a
seed with itself is its plain render" and "walk endpoints are the seeds' renders" hold by check,
not by hope. The companions' SHA-256 are checked against the sidecar (NAME.json) when it names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from artctl.capabilities import Capabilities, Labels, Psi, WSpace
from artctl.modelcard import file_sha256, read_sidecar
from artctl.models import W_SPACE_HINT
from artctl.seeds import latents
from artctl.stylemix import cut_truncation
from artctl_serving.errors import NoStyleGraphsError
from artctl_serving.rows import LatentRows, StyleRows
from artctl_serving.runtime import Graph, ModelRuntime, Seeds, load_model, open_graph

PROBE_SEEDS = np.array([0, 1, 2, 3, 12345, 2**63 + 7], dtype=np.uint64)
GRAPHS = ("mapping", "synthesis")


@dataclass
class StyleGraphs:
    """Mapping and synthesis sessions for one model, opened with the main graph's engine."""

    caps: Capabilities
    mapping: Graph
    synthesis: Graph
    space: WSpace

    @property
    def num_ws(self) -> int:
        return self.space.num_ws

    @property
    def w_dim(self) -> int:
        return self.space.w_dim

    def map_z(
        self, z: npt.NDArray[np.float32], psi: Psi = None, labels: Labels = None
    ) -> npt.NDArray[np.float32]:
        """ws [B, num_ws, w_dim] (truncated by psi; default psi and label 0 when not given)."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        return self.mapping.run("ws", {"z": z, **self.caps.conditioning(len(z), psi, labels)})

    def map_seeds(self, seeds: Seeds, psi: Psi = None, labels: Labels = None) -> npt.NDArray[np.float32]:
        """ws of seeds through the seed contract (artctl-latent-v1)."""
        return self.map_z(latents(seeds, self.caps.z_dim), psi, labels)

    def synthesize(self, ws: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """Images [B, H, W, C] from ws."""
        return self.synthesis.run("image", {"ws": np.ascontiguousarray(ws, dtype=np.float32)})

    def render_rows(self, rows: StyleRows) -> npt.NDArray[np.uint8]:
        """The synthesis batcher's render function: ws in, images out."""
        return self.synthesize(rows.ws)

    def map_rows(self, rows: LatentRows) -> npt.NDArray[np.float32]:
        """The mapping batcher's function: z (psi, labels) in, ws out."""
        return self.map_z(rows.z, rows.psi, rows.labels)

    def cut_seeds(self, seeds: Seeds, psi: Psi, labels: Labels, cutoff: int) -> npt.NDArray[np.float32]:
        """ws of seeds with psi on the first `cutoff` layers only, mapped in process."""
        rows = cutoff_rows(self.caps, LatentRows(latents(seeds, self.caps.z_dim), psi, labels))
        return cut_mapped(self.map_rows(rows), cutoff)


def cutoff_rows(caps: Capabilities, rows: LatentRows) -> LatentRows:
    """What a truncation cutoff maps, in one call: the rows at their psi (the model's default when
    none), then the same rows at psi 1 (rows are independent: the same as two calls)."""
    psi = rows.psi if rows.psi is not None else np.full(len(rows), caps.default_psi, np.float32)
    truncated = LatentRows(rows.z, psi, rows.labels)
    return truncated.join([LatentRows(rows.z, np.ones_like(psi), rows.labels)])


def cut_mapped(ws: npt.NDArray[np.float32], cutoff: int) -> npt.NDArray[np.float32]:
    """ws of cutoff_rows' rows -> the first `cutoff` layers from the truncated half, the rest free."""
    n = len(ws) // 2
    return cut_truncation(ws[:n], ws[n:], cutoff)


def _companion(runtime: ModelRuntime, graph: str, entry: dict[str, Any]) -> Path:
    """The graph's file: the sidecar's name for it first (`entry`, its companions entry), since a
    renamed model (the embedded emoji model was default.onnx once) keeps the old name in its card,
    whose bytes cannot change."""
    name = entry.get("file") or runtime.card.extra.get(f"{graph}_file")
    if not name:
        raise NoStyleGraphsError(
            f"model {runtime.name!r} has no {graph} graph: style mixing, walks in w and restore need a "
            "StyleGAN-type model exported with its companions (artctl export --companions)"
        )
    path = runtime.path.with_name(name)
    if not path.is_file():
        raise NoStyleGraphsError(f"model {runtime.name!r}: its {graph} graph {path} is missing")
    return path


def load_style_graphs(runtime: ModelRuntime, probe: bool = True) -> StyleGraphs:
    """Open the companions the card names; check their SHA-256 and (probe) their pixels."""
    space = runtime.caps.w_space
    if space is None:
        raise NoStyleGraphsError(
            f"model {runtime.name!r} ({runtime.card.architecture}) has no w space: style mixing, walks "
            f"in w and restore need a StyleGAN-type model; {W_SPACE_HINT}"
        )
    listed = (read_sidecar(runtime.path) or {}).get("companions") or {}
    listed = listed if isinstance(listed, dict) else {}
    sessions = {}
    for graph in GRAPHS:
        entry = listed.get(graph)
        entry = entry if isinstance(entry, dict) else {}
        path = _companion(runtime, graph, entry)
        expected = entry.get("sha256")
        if expected and file_sha256(path) != expected:
            raise NoStyleGraphsError(f"{path}: SHA-256 does not match the sidecar's; re-export the model")
        sessions[graph] = open_graph(path, runtime.engine)
    graphs = StyleGraphs(runtime.caps, sessions["mapping"], sessions["synthesis"], space)
    if probe:
        fused = runtime.render(PROBE_SEEDS)
        split = graphs.synthesize(graphs.map_seeds(PROBE_SEEDS))
        if not np.array_equal(fused, split):
            raise NoStyleGraphsError(
                f"model {runtime.name!r}: mapping + synthesis do not reproduce the main graph's pixels; "
                "re-export the model"
            )
    return graphs


def open_style_graphs(path: Path) -> StyleGraphs:
    """A model file's w-space graphs on the CPU, for the command line (named by its file, as a
    server names it: the embedded emoji model's card still says default)."""
    return load_style_graphs(load_model(path, name=Path(path).stem))
