"""One exported model in ONNX Runtime: seeds in, uint8 images out, plus its card and render profile."""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from artctl.modelcard import ModelCard, file_sha256
from artctl.seeds import LATENT_CONTRACT, as_seed_array, latents

log = logging.getLogger("artctl.serving")

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


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

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.card.resolution, self.card.resolution, self.card.channels)

    def render(
        self,
        seeds: npt.NDArray[np.uint64],
        psi: npt.NDArray[np.float32] | None = None,
        labels: npt.NDArray[np.int64] | None = None,
    ) -> npt.NDArray[np.uint8]:
        """Images [B, H, W, C] for validated inputs. Each image depends on its own seed only."""
        feeds: dict[str, np.ndarray] = {"z": latents(as_seed_array(seeds), self.card.z_dim)}
        if "psi" in self.input_names:
            feeds["psi"] = (
                psi if psi is not None else np.full(len(seeds), self.card.default_psi, dtype=np.float32)
            )
        if "label" in self.input_names:
            feeds["label"] = labels if labels is not None else np.zeros(len(seeds), dtype=np.int64)
        (images,) = self.session.run(["image"], feeds)
        return images


def load_model(path: Path, name: str | None = None, provider: str = "cpu", threads: int = 0) -> ModelRuntime:
    """Open an exported model; refuse files without a card or whose sidecar SHA-256 disagrees."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    sha = file_sha256(path)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        import json

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
    ep = PROVIDERS.get(provider)
    if ep is None:
        raise ModelLoadError(f"unknown provider {provider!r}; choose one of {sorted(PROVIDERS)}")
    if ep not in ort.get_available_providers():
        raise ModelLoadError(f"{ep} is not available in this onnxruntime build")
    try:
        session = ort.InferenceSession(str(path), options, providers=[ep])
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt files
        raise ModelLoadError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from exc
    try:
        card = ModelCard.from_metadata(session.get_modelmeta().custom_metadata_map)
    except ValueError as exc:
        raise ModelLoadError(f"{path}: {exc}") from exc
    inputs = {i.name for i in session.get_inputs()}
    if "z" not in inputs or "image" not in {o.name for o in session.get_outputs()}:
        raise ModelLoadError(f"{path}: expected input 'z' and output 'image'")
    device = "cpu" if ep == "CPUExecutionProvider" else "cuda"
    profile = RenderProfile(
        model_sha256=sha,
        runtime=f"onnxruntime {ort.__version__}",
        provider=session.get_providers()[0],
        device=f"{device} ({platform.machine()})" if device == "cpu" else device,
        exec_batch=0,
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
