"""The models that ship inside the package: NAME.onnx, each with its sidecar (and, for StyleGAN-type
models, its w-space graphs and latent directions).

`default` is the product's face (the Nouns pixel-art DCGAN); `emoji` is the conditional StyleGAN-type
model beside it, kept for what only a w space gives (psi, style mixing, w walks, directions). Found
through importlib.resources, so they are located the same way in a checkout, a wheel or an image.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_NAME = "default"
DEFAULT_FILE = "default.onnx"
# What an error about a missing w space (psi, style mixing, w walks) suggests instead.
W_SPACE_HINT = "the embedded emoji model has one (model emoji)"
# Graphs the exporter writes beside a StyleGAN-type model: never models of their own.
COMPANION_SUFFIXES = (".mapping.onnx", ".synthesis.onnx")


def _folder() -> Path:
    return Path(str(resources.files(__name__)))


def embedded_models() -> dict[str, Path]:
    """Every embedded model, name -> file, `default` first (so it stays the default alias)."""
    folder = _folder()
    found = {
        p.name.removesuffix(".onnx"): p
        for p in sorted(folder.glob("*.onnx"))
        if p.is_file() and not p.name.endswith(COMPANION_SUFFIXES)
    }
    default = found.pop(DEFAULT_NAME, None)
    return ({DEFAULT_NAME: default} if default else {}) | found


def embedded(name: str) -> Path | None:
    """The embedded model called `name` ("" means default), or None when this install ships none."""
    return embedded_models().get(name or DEFAULT_NAME)


def embedded_default() -> Path | None:
    """The embedded default model's path, or None when this install ships none."""
    return embedded(DEFAULT_NAME)
