"""Exported models in ONNX Runtime: the one place that opens sessions and pads to the canonical batch.

`open_graph` turns a file and the engine settings into a Graph (a session that runs at the canonical
exec batch when there is one); the generator (ModelRuntime, here) and its mapping/synthesis
companions (artctl_serving.styles) are both opened through it, so they share every setting by construction.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from artctl.capabilities import Capabilities, Labels, Psi
from artctl.modelcard import ModelCard, ModelCardError, file_sha256, read_sidecar
from artctl.profile import SERVING_LEVEL, RenderProfile, check_runtime, cpu_isa, level_name, session_options
from artctl.seeds import as_seed_array, latents
from artctl_serving.errors import ModelLoadError
from artctl_serving.rows import LatentRows, SeedRows

log = logging.getLogger("artctl.serving")

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# On the CUDA EP, cuDNN picks convolution algorithms per shape and some are not batch-invariant, so
# every call runs at one canonical batch shape (padded) with deterministic compute and a
# non-benchmarking algorithm search (docs/serving.md, "Batching and determinism").
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}
CUDA_EXEC_BATCH = 64
Seeds = npt.NDArray[np.uint64]


def resolve_provider(provider: str) -> str:
    """auto -> cuda when this onnxruntime build has the CUDA EP, else cpu."""
    if provider == "auto":
        return "cuda" if PROVIDERS["cuda"] in ort.get_available_providers() else "cpu"
    if provider not in PROVIDERS:
        raise ModelLoadError(f"unknown provider {provider!r}; choose auto, cpu or cuda")
    return provider


@dataclass(frozen=True)
class Engine:
    """How every graph of a model is run: execution provider, threads, device, canonical batch."""

    kind: str = "cpu"  # "cpu" or "cuda" (resolved)
    threads: int = 0
    device_id: int = 0
    exec_batch: int = 0  # 0: natural batch size
    level: str = SERVING_LEVEL  # graph optimisation level (it changes pixels: part of the profile)

    @classmethod
    def choose(
        cls,
        provider: str = "cpu",
        threads: int = 0,
        exec_batch: int | None = None,
        device_id: int = 0,
        level: str = SERVING_LEVEL,
    ) -> Engine:
        """exec_batch None picks the safe default: 0 on the CPU EP (measured batch-invariant), 64 on CUDA."""
        kind = resolve_provider(provider)
        if exec_batch is None:
            exec_batch = CUDA_EXEC_BATCH if kind == "cuda" else 0
        if exec_batch < 0:
            raise ModelLoadError(f"exec batch must be >= 0, got {exec_batch}")
        try:
            level_name(level)
            check_runtime(ort.__version__)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(str(exc)) from None
        return cls(kind, threads, device_id, exec_batch, level)

    @property
    def provider(self) -> str:
        return PROVIDERS[self.kind]

    def device_name(self) -> str:
        if self.kind == "cpu":
            return f"cpu ({platform.machine()})"
        try:  # the GPU's marketing name, when the NVIDIA management library is present
            import pynvml  # type: ignore[import-not-found]

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.device_id)
            return f"cuda:{self.device_id} ({pynvml.nvmlDeviceGetName(handle)})"
        except Exception:
            return f"cuda:{self.device_id}"


@dataclass
class Graph:
    """One ONNX Runtime session; with a canonical exec batch every call runs at exactly that size."""

    session: ort.InferenceSession
    exec_batch: int

    @property
    def inputs(self) -> set[str]:
        return {i.name for i in self.session.get_inputs()}

    def run(self, output: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """`output` for `feeds` (all of one batch size). With a canonical exec batch the inputs are cut
        into slices of that size, the last padded with copies of its first row, and the padding's
        outputs are discarded: rows never affect each other, only the shape could."""
        step = self.exec_batch
        if not step:
            return np.asarray(self.session.run([output], feeds)[0])
        n = len(next(iter(feeds.values())))
        parts = []
        for start in range(0, n, step):
            part = {k: v[start : start + step] for k, v in feeds.items()}
            real = len(next(iter(part.values())))
            if real < step:
                part = {
                    k: np.concatenate([v, np.repeat(v[:1], step - real, axis=0)]) for k, v in part.items()
                }
            parts.append(np.asarray(self.session.run([output], part)[0])[:real])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def open_graph(path: Path, engine: Engine) -> Graph:
    """A session for `path` on `engine`; refuses a silent fallback to another execution provider."""
    ep = engine.provider
    if ep not in ort.get_available_providers():
        raise ModelLoadError(f"{ep} is not available in this onnxruntime build")
    providers: list[Any] = [ep]
    if engine.kind == "cuda":
        if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from the nvidia-* wheels or the local torch
            ort.preload_dlls()
        providers = [(ep, {**CUDA_OPTIONS, "device_id": str(engine.device_id)})]
    options = session_options(engine.threads, engine.level, deterministic=engine.kind == "cuda")
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
        raise ModelLoadError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from exc
    active = session.get_providers()[0]
    if active != ep:
        raise ModelLoadError(f"asked for {ep} but onnxruntime fell back to {active}")
    return Graph(session, engine.exec_batch)


@dataclass
class ModelRuntime:
    """An exported generator in ONNX Runtime: seeds in, uint8 images out, plus its card, its
    capabilities (read from the card once, at load) and its render profile."""

    name: str
    path: Path
    card: ModelCard
    caps: Capabilities
    sha256: str
    graph: Graph
    engine: Engine
    profile: RenderProfile

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.caps.image_shape()

    def feeds(self, seeds: Seeds, psi: Psi = None, labels: Labels = None) -> dict[str, np.ndarray]:
        """The graph's inputs: z from the seed contract, then psi and label where the model has them."""
        z = latents(as_seed_array(seeds), self.caps.z_dim)
        return {"z": z, **self.caps.conditioning(len(z), psi, labels)}

    def render(self, seeds: Seeds, psi: Psi = None, labels: Labels = None) -> npt.NDArray[np.uint8]:
        """Images [B, H, W, C] for validated inputs. Each image depends on its own seed only."""
        return self.graph.run("image", self.feeds(seeds, psi, labels))

    def render_latents(
        self, z: npt.NDArray[np.float32], psi: Psi = None, labels: Labels = None
    ) -> npt.NDArray[np.uint8]:
        """Images of latents given directly (a walk's frames between seeds), not drawn from seeds."""
        return self.graph.run("image", {"z": z, **self.caps.conditioning(len(z), psi, labels)})

    def render_latent_rows(self, rows: LatentRows) -> npt.NDArray[np.uint8]:
        """The latent batcher's render function: z (psi, labels) in, images out."""
        return self.render_latents(rows.z, rows.psi, rows.labels)

    def render_rows(self, rows: SeedRows) -> npt.NDArray[np.uint8]:
        """The batcher's render function: seeds (psi, labels) in, images out."""
        return self.render(rows.seeds, rows.psi, rows.labels)

    def signature(self) -> dict[str, Any]:
        """The graph's inputs and outputs, as `artctl inspect` prints them."""
        session = self.graph.session
        return {
            "inputs": {i.name: [i.type, i.shape] for i in session.get_inputs()},
            "outputs": {o.name: [o.type, o.shape] for o in session.get_outputs()},
        }


def card_capabilities(path: Path, card: ModelCard, graph: Graph) -> Capabilities:
    """The model's capabilities from its card, which must describe the graph it sits in: its
    inputs, latent size and image shape.

    A card that disagrees (edited, or stamped on another export) would fail only at render time,
    so it is refused at load with the field that is wrong. After this the graph's input names are
    never read again: everything asks the capabilities.
    """
    session = graph.session
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if "z" not in inputs or "image" not in outputs:
        raise ModelLoadError(f"{path}: expected input 'z' and output 'image'")
    problems = []
    for name, has in (("psi", card.has_psi), ("label", card.has_label)):
        if has != (name in inputs):
            problems.append(
                f"has_{name} is {has} but the graph {'has' if name in inputs else 'lacks'} input {name!r}"
            )
    z_shape = inputs["z"].shape
    if len(z_shape) != 2 or (isinstance(z_shape[1], int) and z_shape[1] != card.z_dim):
        problems.append(f"z_dim is {card.z_dim} but input z has shape {z_shape}")
    image = outputs["image"].shape
    expected = [card.resolution, card.resolution, card.channels]
    if len(image) != 4 or any(isinstance(d, int) and d != e for d, e in zip(image[1:], expected)):
        problems.append(f"resolution/channels say {expected} but output image has shape {image}")
    try:
        caps = Capabilities.from_card(card)
    except ModelCardError as exc:
        problems.append(str(exc))
    if problems:
        raise ModelLoadError(f"{path}: the model card does not fit its graph: {'; '.join(problems)}")
    if list(caps.inputs) != [i.name for i in session.get_inputs()]:
        raise ModelLoadError(f"{path}: the graph's inputs are not {', '.join(caps.inputs)} in that order")
    return caps


def load_model(path: Path, name: str | None = None, engine: Engine | None = None) -> ModelRuntime:
    """Open an exported model; refuse files without a card or whose sidecar SHA-256 disagrees."""
    path = Path(path)
    engine = engine or Engine()
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    sha = file_sha256(path)
    try:
        sidecar = read_sidecar(path)
    except ModelCardError as exc:
        raise ModelLoadError(str(exc)) from None
    expected = (sidecar or {}).get("sha256")
    if expected and expected != sha:
        raise ModelLoadError(
            f"{path}: SHA-256 {sha[:12]}… does not match its sidecar ({str(expected)[:12]}…)"
        )
    graph = open_graph(path, engine)
    try:
        card = ModelCard.from_metadata(graph.session.get_modelmeta().custom_metadata_map)
    except ValueError as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc
    caps = card_capabilities(path, card, graph)
    profile = RenderProfile(
        model_sha256=sha,
        runtime=f"onnxruntime {ort.__version__}",
        provider=engine.provider,
        device=engine.device_name(),
        exec_batch=engine.exec_batch,
        precision=card.precision,
        graph_optimization=level_name(engine.level),
        cpu_isa=cpu_isa(),
    )
    log.info("loaded model %s from %s (sha256 %s, %s)", name or card.name, path, sha[:12], profile.provider)
    return ModelRuntime(name or card.name, path, card, caps, sha, graph, engine, profile)
