"""Image repair by masked GAN inversion: find the w (or w+) whose render matches the kept pixels,
then fill the masked pixels from that render.

Loss, over kept pixels only:
- pixel: mean squared error in [-1, 1] over kept pixels (all channels, alpha included);
- perceptual: squared difference of unit-normalised Inception activations (the network the FID
  metric uses, artctl_trainer/metrics.py) at two depths (`conv_4`, 28x28 and `mixed_2`, 13x13 at the
  default 128 px input), LPIPS-style. Both images have the masked pixels set to mid grey, so the
  damaged pixels never reach the loss. Mid-level activations are used instead of pool3 because they
  keep spatial layout (which inpainting needs) and cost a tenth of the full 299 px network, whose
  forward + backward takes seconds per step on a CPU;
- regularisation: squared distance of w from w_avg (keeps the fill on the generator's manifold),
  and for w+ the spread of the per-layer ws around their mean.
Noise is a constant buffer in our generator, so there is no noise to optimise or regularise.
The start is w_avg (of the label, or the mean over labels), so the result is deterministic for a
given checkpoint, image, mask, options and torch build.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from PIL import Image

from artctl.fileio import write_bytes_atomic, write_json_atomic
from artctl.imaging import encode_png, image_grid
from artctl.modelcard import label_index
from artctl_trainer.checkpoint import CheckpointError, load_checkpoint
from artctl_trainer.contract import StyleGeneratorNet
from artctl_trainer.inception import inception
from artctl_trainer.networks import build_generator
from artctl_trainer.preview import quantize

PERCEPTUAL_TAPS = ("conv_4", "mixed_2")
SPACES = ("w", "w+")


class RestoreError(ValueError):
    """Inputs that cannot be restored (sizes, empty mask, a model without w space)."""


@dataclass(frozen=True)
class RestoreOptions:
    steps: int = 200
    space: str = "w+"
    lr: float = 0.05
    perceptual_weight: float = 0.1
    perceptual_size: int = 128
    w_weight: float = 1e-3
    wplus_weight: float = 1e-2

    def check(self) -> None:
        if self.steps < 1:
            raise RestoreError(f"--steps must be >= 1, got {self.steps}")
        if self.space not in SPACES:
            raise RestoreError(f"--space must be w or w+, got {self.space!r}")
        if not (self.perceptual_weight >= 0 and math.isfinite(self.perceptual_weight)):
            raise RestoreError(f"the perceptual weight must be >= 0, got {self.perceptual_weight}")
        if self.perceptual_size < 75:
            raise RestoreError("the perceptual input size must be at least 75 px (Inception's minimum)")


@dataclass
class RestoreResult:
    restored: npt.NDArray[np.uint8]  # [H, W, C]: kept pixels from the input, masked ones generated
    projection: npt.NDArray[np.uint8]  # [H, W, C]: the generator's render of the recovered latent
    ws: npt.NDArray[np.float32]  # [num_ws, w_dim]
    masked_pixels: int
    initial_loss: float
    final_loss: float
    files: dict[str, Path] = field(default_factory=dict)


def load_generator(checkpoint: Path) -> tuple[Any, Any]:
    """The EMA generator of a StyleGAN-type checkpoint, and its network config."""
    if Path(checkpoint).suffix == ".onnx":
        raise RestoreError(
            f"{checkpoint}: restore optimises through the generator, so it needs the training "
            "checkpoint (a run or checkpoint directory), not the exported ONNX file"
        )
    ck = load_checkpoint(checkpoint)
    net = ck.config.network
    G = build_generator(net)
    if not isinstance(G, StyleGeneratorNet):
        raise RestoreError(
            f"{ck.path}: a {net.architecture} generator has no mapping/synthesis (w space); "
            "restore needs a StyleGAN-type model"
        )
    try:
        G.load_state_dict(ck.tensors(ck.generator_file))
    except RuntimeError as exc:
        raise CheckpointError(f"{ck.path}: weights do not fit the config ({exc})") from exc
    G.eval().requires_grad_(False)
    return G, net


def read_image(path: Path, channels: int) -> npt.NDArray[np.uint8]:
    """A picture as HWC uint8 with the model's channel count (RGBA kept for 4-channel models)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGBA" if channels == 4 else "RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise RestoreError(f"{path}: cannot read the image ({exc})") from exc


def read_mask(path: Path) -> npt.NDArray[np.bool_]:
    """True where pixels are to be repaired (white, >= 128 in grey)."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("L"), dtype=np.uint8) >= 128
    except (OSError, ValueError) as exc:
        raise RestoreError(f"{path}: cannot read the mask ({exc})") from exc


def check_inputs(image: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_], resolution: int) -> None:
    h, w = image.shape[:2]
    if (h, w) != (resolution, resolution):
        raise RestoreError(
            f"the image is {w}x{h}; this model works at {resolution}x{resolution} (resize it first)"
        )
    if mask.shape != (h, w):
        raise RestoreError(f"the mask is {mask.shape[1]}x{mask.shape[0]} but the image is {w}x{h}")
    if not mask.any():
        raise RestoreError("the mask is empty: mark the pixels to repair in white")
    if mask.all():
        raise RestoreError("the mask covers the whole image: nothing is left to fit the generator to")


class _Perceptual:
    """Unit-normalised Inception activations at PERCEPTUAL_TAPS (gradients flow to the input)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.layers = inception().net.layers
        for param in self.layers.parameters():  # a ScriptModule: no requires_grad_()
            param.requires_grad = False
        names = [n for n, _ in self.layers.named_children()]
        self.stop = max(names.index(t) for t in PERCEPTUAL_TAPS)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: [B, C, H, W] in [-1, 1]; alpha (if any) composites over white, as FID does."""
        if x.shape[1] == 4:
            rgb01 = (x[:, :3] + 1) / 2
            alpha = (x[:, 3:4] + 1) / 2
            x = (rgb01 * alpha + (1 - alpha)) * 2 - 1
        elif x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        # The network expects TF scaling of uint8, x / 128 - 1: nearly [-1, 1].
        y = F.interpolate(
            x * (127.5 / 128.0), size=(self.size, self.size), mode="bilinear", align_corners=False
        )
        taps = []
        for i, (name, module) in enumerate(self.layers.named_children()):
            y = module(y)
            if name in PERCEPTUAL_TAPS:
                taps.append(y / (y.square().sum(dim=1, keepdim=True) + 1e-10).sqrt())
            if i == self.stop:
                break
        return taps


def _start_w(G: Any, label: int | None) -> torch.Tensor:
    if G.num_classes and label is not None:
        if not 0 <= label < G.num_classes:
            raise RestoreError(f"label {label} out of range: the model has labels 0..{G.num_classes - 1}")
        return G.w_avg[label].clone()
    return G.w_avg.mean(dim=0)


def restore_image(
    G: Any,
    image: npt.NDArray[np.uint8],
    mask: npt.NDArray[np.bool_],
    options: RestoreOptions | None = None,
    label: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RestoreResult:
    """Fit the kept pixels (mask False) in w/w+, then fill the masked ones from the render;
    `on_progress(done, total)` after every few steps."""
    opts = options or RestoreOptions()
    opts.check()
    target = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    keep = torch.from_numpy(np.array(~mask))[None, None].float()
    kept = keep.sum() * target.shape[1]
    w_avg = _start_w(G, label)
    count = 1 if opts.space == "w" else G.num_ws
    w = w_avg[None, None].repeat(1, count, 1).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([w], lr=opts.lr, betas=(0.9, 0.999))
    perceptual = _Perceptual(opts.perceptual_size) if opts.perceptual_weight > 0 else None
    target_feats = [] if perceptual is None else [f.detach() for f in perceptual(target * keep)]
    losses: list[float] = []
    for step in range(opts.steps):
        # Cosine ramp-down of the learning rate over the last quarter of the steps (as StyleGAN2's projector).
        ramp = min(1.0, (opts.steps - step) / max(1.0, opts.steps * 0.25))
        for group in optimizer.param_groups:
            group["lr"] = opts.lr * (0.5 - 0.5 * math.cos(math.pi * ramp))
        ws = w.expand(1, G.num_ws, -1)
        render = G.synthesis(ws)
        pixel = ((render - target).square() * keep).sum() / kept
        loss = pixel + opts.w_weight * (w - w_avg).square().mean()
        if count > 1:
            loss = loss + opts.wplus_weight * (w - w.mean(dim=1, keepdim=True)).square().mean()
        if perceptual is not None:
            feats = perceptual(render * keep)
            term = sum(
                ((a - b).square().sum(dim=1).mean() for a, b in zip(feats, target_feats)), torch.zeros(())
            )
            loss = loss + opts.perceptual_weight * term
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(float(pixel.detach()))
        if on_progress and ((step + 1) % 5 == 0 or step + 1 == opts.steps):
            on_progress(step + 1, opts.steps)
    with torch.no_grad():
        ws = w.detach().expand(1, G.num_ws, -1)
        render = G.synthesis(ws)
        final = float(((render - target).square() * keep).sum() / kept)
        projection = quantize(render)[0].numpy()
    restored = np.where(mask[..., None], projection, image)
    return RestoreResult(
        restored=restored,
        projection=projection,
        ws=ws[0].numpy().astype(np.float32).copy(),
        masked_pixels=int(mask.sum()),
        initial_loss=losses[0],
        final_loss=final,
    )


def restore_files(
    image_path: Path,
    mask_path: Path,
    checkpoint: Path,
    out_dir: Path,
    options: RestoreOptions | None = None,
    label: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RestoreResult:
    """The CLI's job: read, check, restore, then write restored.png, projection.png, latent.npy
    (w+ as [num_ws, w_dim] float32), strip.png (damaged | projection | restored) and restore.json."""
    opts = options or RestoreOptions()
    opts.check()
    G, net = load_generator(checkpoint)
    image = read_image(image_path, net.channels)
    mask = read_mask(mask_path)
    check_inputs(image, mask, net.resolution)
    try:
        index = label_index(label, list(net.label_names) if G.num_classes else [])
    except ValueError as exc:
        raise RestoreError(str(exc)) from None
    if index is not None and not G.num_classes:
        raise RestoreError("the model is unconditional; omit --label")
    result = restore_image(G, image, mask, opts, index, on_progress)
    damaged = image.copy()
    damaged[mask] = 128  # what the generator was not shown
    out_dir = Path(out_dir)
    files = {
        "restored": out_dir / "restored.png",
        "projection": out_dir / "projection.png",
        "latent": out_dir / "latent.npy",
        "strip": out_dir / "strip.png",
        "report": out_dir / "restore.json",
    }
    write_bytes_atomic(files["restored"], encode_png(result.restored))
    write_bytes_atomic(files["projection"], encode_png(result.projection))
    buf = _npy_bytes(result.ws)
    write_bytes_atomic(files["latent"], buf)
    strip = np.asarray(image_grid(np.stack([damaged, result.projection, result.restored]), cols=3))
    write_bytes_atomic(files["strip"], encode_png(strip))
    write_json_atomic(
        files["report"],
        {
            "image": str(image_path),
            "mask": str(mask_path),
            "checkpoint": str(checkpoint),
            "label": index,
            "options": asdict(opts),
            "masked_pixels": result.masked_pixels,
            "kept_pixel_mse": {"initial": result.initial_loss, "final": result.final_loss},
            "latent_shape": list(result.ws.shape),
        },
    )
    result.files = files
    return result


def _npy_bytes(array: npt.NDArray[np.float32]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def masked_psnr(
    restored: npt.NDArray[np.uint8], truth: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_]
) -> float:
    """PSNR (dB, peak 255) over the masked pixels only, all channels."""
    diff = restored[mask].astype(np.float64) - truth[mask].astype(np.float64)
    mse = float(np.mean(diff**2))
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


__all__ = ["RestoreError", "RestoreOptions", "RestoreResult", "masked_psnr", "restore_files", "restore_image"]
