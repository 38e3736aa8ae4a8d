"""The model that ships inside the package: default.onnx, its sidecar and its w-space graphs.

Found through importlib.resources, so it is located the same way in a checkout, a wheel or an image.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_FILE = "default.onnx"


def embedded_default() -> Path | None:
    """The embedded default model's path, or None when this install ships none."""
    path = Path(str(resources.files(__name__).joinpath(DEFAULT_FILE)))
    return path if path.is_file() else None
