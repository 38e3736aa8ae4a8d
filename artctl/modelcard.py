"""The model card: what an exported ONNX file says about itself in its metadata_props.

The exporter writes it, the server and mint read it (through onnxruntime's model metadata or the
sidecar NAME.json), and `artctl inspect` prints it. Values in ONNX metadata are strings, so lists
and maps are stored as JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CARD_VERSION = "artctl-card-v1"
OPTIONAL_WHEN_EMPTY = ("palette", "palette_sha256")


class ModelCardError(ValueError):
    """An ONNX file without a (valid) artctl model card."""


@dataclass
class ModelCard:
    name: str
    architecture: str
    resolution: int
    channels: int
    z_dim: int
    label_names: list[str] = field(default_factory=list)
    default_psi: float = 1.0
    has_psi: bool = False
    has_label: bool = False
    contracts: dict[str, str] = field(default_factory=dict)
    data_fingerprint: str = ""
    exporter_version: str = ""
    torch_version: str = ""
    precision: str = "fp32"
    # artctl-palette-v1: the colours the graph snaps its pixels to ("#rrggbb[aa]", in order) and
    # artctl.palette.palette_sha256 of them; empty for models without a snap (all before the palette).
    palette: list[str] = field(default_factory=list)
    palette_sha256: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def to_metadata(self) -> dict[str, str]:
        """Flatten to ONNX metadata_props (str -> str)."""
        out = {"artctl_card": CARD_VERSION, **self.extra}
        for key, value in asdict(self).items():
            if key == "extra" or (key in OPTIONAL_WHEN_EMPTY and not value):
                continue  # a model without a palette exports the same bytes as before palettes existed
            out[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return out

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> ModelCard:
        """Parse metadata_props written by to_metadata; unknown keys land in `extra`."""
        if meta.get("artctl_card") != CARD_VERSION:
            raise ModelCardError(f"no {CARD_VERSION} model card in the model's metadata")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        values: dict[str, Any] = {}
        try:
            for key in known:
                if key not in meta:
                    continue
                is_text = cls.__dataclass_fields__[key].type in ("str", str)
                values[key] = meta[key] if is_text else json.loads(meta[key])
        except json.JSONDecodeError as exc:
            raise ModelCardError(f"model card field is not valid JSON: {exc}") from exc
        extra = {k: v for k, v in meta.items() if k not in known and k != "artctl_card"}
        for key, value in values.items():
            _check_type(key, value)
        try:
            return cls(**values, extra=extra)
        except TypeError as exc:
            raise ModelCardError(f"incomplete model card: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# What each non-text card field must hold; a card that says otherwise is refused, not coerced.
_FIELD_CHECKS: dict[str, tuple[Any, str]] = {
    "resolution": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "channels": (lambda v: v in (1, 3, 4) and _is_int(v), "1, 3 or 4"),
    "z_dim": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "label_names": (lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of names"),
    "default_psi": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "has_psi": (lambda v: isinstance(v, bool), "true or false"),
    "has_label": (lambda v: isinstance(v, bool), "true or false"),
    "palette": (lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v), "a list of colours"),
    "contracts": (
        lambda v: (
            isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())
        ),
        "an object of strings",
    ),
}


def _check_type(key: str, value: Any) -> None:
    check = _FIELD_CHECKS.get(key)
    if check is not None and not check[0](value):
        raise ModelCardError(f"model card field {key} must be {check[1]}, got {json.dumps(value)[:80]}")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(model_path: Path) -> Path:
    """NAME.onnx -> NAME.json (the card plus the file's SHA-256)."""
    return Path(model_path).with_suffix(".json")


def read_sidecar(model_path: Path) -> dict[str, Any] | None:
    """The sidecar the exporter wrote beside a model (None when there is none).

    A sidecar that is not a JSON object is an error, never ignored: it is what vouches for the file.
    """
    path = sidecar_path(model_path)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelCardError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ModelCardError(f"{path} is not a JSON object")
    return doc


def label_index(label: str | None, names: list[str]) -> int | None:
    """A label given by name or by index -> its index (None when not given); ValueError if unknown."""
    if label is None:
        return None
    if label in names:
        return names.index(label)
    try:
        return int(label)
    except ValueError:
        raise ValueError(
            f"unknown label {label!r} (the model's labels: {', '.join(names) or 'none'})"
        ) from None
