"""One exported model in ONNX Runtime: seeds in, uint8 images out, plus its card and render profile."""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from artctl.modelcard import ModelCard, file_sha256
from artctl.seeds import LATENT_CONTRACT, as_seed_array, latents

if TYPE_CHECKING:
    from serving.styles import StyleGraphs

log = logging.getLogger("artctl.serving")

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# On the CUDA EP, cuDNN picks convolution algorithms per shape and some are not batch-invariant, so
# every call runs at one canonical batch shape (padded) with deterministic compute and a
# non-benchmarking algorithm search (DESIGN.md §4 has the measurements behind this).
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}


def resolve_provider(provider: str) -> str:
    """auto -> cuda when this onnxruntime build has the CUDA EP, else cpu."""
    if provider == "auto":
        return "cuda" if PROVIDERS["cuda"] in ort.get_available_providers() else "cpu"
    if provider not in PROVIDERS:
        raise ModelLoadError(f"unknown provider {provider!r}; choose auto, cpu or cuda")
    return provider


class ModelLoadError(RuntimeError):
    """A model file that cannot be served (missing, corrupt, or without an artctl card)."""


@dataclass(frozen=True)
class RenderProfile:
    model_sha256: str
    runtime: str
    provider: str
    device: str
    exec_batch: int
    precision: str
    latent_contract: str = LATENT_CONTRACT

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class ModelRuntime:
    """A loaded ONNX Runtime session for one model file."""

    name: str
    path: Path
    card: ModelCard
    sha256: str
    session: ort.InferenceSession
    profile: RenderProfile
    input_names: set[str] = field(default_factory=set)
    # The mapping/synthesis companions (serving.styles), when loaded: style mixing and walks.
    styles: StyleGraphs | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.card.resolution, self.card.resolution, self.card.channels)

    def _feeds(
        self,
        seeds: npt.NDArray[np.uint64],
        psi: npt.NDArray[np.float32] | None,
        labels: npt.NDArray[np.int64] | None,
    ) -> dict[str, np.ndarray]:
        n = len(seeds)
        feeds: dict[str, np.ndarray] = {"z": latents(as_seed_array(seeds), self.card.z_dim)}
        if "psi" in self.input_names:
            feeds["psi"] = psi if psi is not None else np.full(n, self.card.default_psi, dtype=np.float32)
        if "label" in self.input_names:
            feeds["label"] = labels if labels is not None else np.zeros(n, dtype=np.int64)
        return feeds

    def render(
        self,
        seeds: npt.NDArray[np.uint64],
        psi: npt.NDArray[np.float32] | None = None,
        labels: npt.NDArray[np.int64] | None = None,
    ) -> npt.NDArray[np.uint8]:
        """Images [B, H, W, C] for validated inputs. Each image depends on its own seed only.

        With a canonical exec batch, inputs are cut into slices of exactly that size, the last one
        padded (seed 0, default psi, label 0), and the padding's images are discarded.
        """
        feeds = self._feeds(seeds, psi, labels)
        step = self.profile.exec_batch
        if not step:
            (images,) = self.session.run(["image"], feeds)
            return images
        n = len(seeds)
        out = np.empty((n, *self.image_shape), dtype=np.uint8)
        for start in range(0, n, step):
            part = {k: v[start : start + step] for k, v in feeds.items()}
            real = len(part["z"])
            if real < step:
                pad = self._feeds(np.zeros(step - real, dtype=np.uint64), None, None)
                part = {k: np.concatenate([v, pad[k]]) for k, v in part.items()}
            (images,) = self.session.run(["image"], part)
            out[start : start + real] = images[:real]
        return out


def _device_name(kind: str, device_id: int) -> str:
    if kind == "cpu":
        return f"cpu ({platform.machine()})"
    try:  # the GPU's marketing name, when the NVIDIA management library is present
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        return f"cuda:{device_id} ({pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(device_id))})"
    except Exception:
        return f"cuda:{device_id}"


def load_model(
    path: Path,
    name: str | None = None,
    provider: str = "cpu",
    threads: int = 0,
    exec_batch: int | None = None,
    device_id: int = 0,
) -> ModelRuntime:
    """Open an exported model; refuse files without a card or whose sidecar SHA-256 disagrees.

    exec_batch: the canonical batch shape every call runs at (0: natural size). None chooses the
    safe default: 0 on the CPU EP (measured batch-invariant), 64 on the CUDA EP.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    sha = file_sha256(path)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            expected = json.loads(sidecar.read_text()).get("sha256")
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{sidecar} is not valid JSON ({exc})") from exc
        if expected and expected != sha:
            raise ModelLoadError(
                f"{path}: SHA-256 {sha[:12]}… does not match its sidecar ({str(expected)[:12]}…)"
            )
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    # A server shares its cores with PNG encoders and gRPC: idle ORT threads must sleep, not spin.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    kind = resolve_provider(provider)
    ep = PROVIDERS[kind]
    if ep not in ort.get_available_providers():
        raise ModelLoadError(f"{ep} is not available in this onnxruntime build")
    providers: list[Any] = [ep]
    if kind == "cuda":
        if hasattr(ort, "preload_dlls"):  # CUDA/cuDNN from the nvidia-* wheels or the local torch
            ort.preload_dlls()
        options.use_deterministic_compute = True
        providers = [(ep, {**CUDA_OPTIONS, "device_id": str(device_id)})]
    if exec_batch is None:
        exec_batch = 64 if kind == "cuda" else 0
    if exec_batch < 0:
        raise ModelLoadError(f"exec batch must be >= 0, got {exec_batch}")
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
        raise ModelLoadError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from exc
    try:
        card = ModelCard.from_metadata(session.get_modelmeta().custom_metadata_map)
    except ValueError as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc
    inputs = {i.name for i in session.get_inputs()}
    if "z" not in inputs or "image" not in {o.name for o in session.get_outputs()}:
        raise ModelLoadError(f"{path}: expected input 'z' and output 'image'")
    active = session.get_providers()[0]
    if active != ep:
        raise ModelLoadError(f"asked for {ep} but onnxruntime fell back to {active}")
    profile = RenderProfile(
        model_sha256=sha,
        runtime=f"onnxruntime {ort.__version__}",
        provider=active,
        device=_device_name(kind, device_id),
        exec_batch=exec_batch,
        precision=card.precision,
    )
    log.info("loaded model %s from %s (sha256 %s, %s)", name or card.name, path, sha[:12], profile.provider)
    return ModelRuntime(
        name=name or card.name,
        path=path,
        card=card,
        sha256=sha,
        session=session,
        profile=profile,
        input_names=inputs,
    )
