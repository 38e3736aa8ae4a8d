"""Latent directions: the `NAME.directions.json` sidecar the exporter writes, and edits along them.

The directions are found without labels by closed-form factorisation (SeFa, Shen & Zhou 2021): the
eigenvectors of A^T A, where A maps the latent into the generator's first layers (a StyleGAN's
style affines, a DCGAN's first projection). Moving a latent along one changes one factor of the
picture (pose, colour, size) more than along a random direction.

An edit is a pure function of (seed, psi, label, edits): the latent the model would render for the
seed (w after mapping and truncation for a StyleGAN-type model, for every layer; z for a DCGAN),
plus, in float32 and in the edits' order, amount * vector for each edit (artctl-edit-v1,
docs/seed-contract.md). So a curated drop with edits re-derives like any other.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

DIRECTIONS_FORMAT = "artctl-directions-v1"
EDIT_CONTRACT = "artctl-edit-v1"
MAX_EDITS = 8  # edits one render may combine
MAX_AMOUNT = 20.0  # |amount| at most: far beyond this a latent leaves everything the model saw

Edit = tuple[int, float]  # (direction index, amount)


class DirectionsError(ValueError):
    """A directions file that cannot be used, or an edit it cannot make."""


def directions_path(model: Path) -> Path:
    """`art.onnx` -> `art.directions.json`."""
    return Path(model).with_suffix(".directions.json")


@dataclass(frozen=True)
class Directions:
    space: str  # "w" (StyleGAN-type: added to every layer's w) or "z" (DCGAN)
    vectors: npt.NDArray[np.float32]  # [k, dim], unit length, strongest first
    values: tuple[float, ...]  # eigenvalues, for display: how much each direction moves the layer
    model_sha256: str
    sha256: str  # of the file's bytes: what a curated drop records

    def check(self, edits: Sequence[Edit]) -> list[tuple[int, np.float32]]:
        """Edits as (index, float32 amount), refused with a message when out of range."""
        if len(edits) > MAX_EDITS:
            raise DirectionsError(f"{len(edits)} edits; at most {MAX_EDITS} at once")
        out = []
        for index, amount in edits:
            if not 0 <= int(index) < len(self.vectors):
                raise DirectionsError(f"direction {index} does not exist (the model has {len(self.vectors)})")
            if not math.isfinite(amount) or abs(amount) > MAX_AMOUNT:
                raise DirectionsError(
                    f"edit amount must be a finite number in [-{MAX_AMOUNT:g}, {MAX_AMOUNT:g}]"
                )
            out.append((int(index), np.float32(amount)))
        return out

    def offset(self, edits: Sequence[Edit]) -> npt.NDArray[np.float32]:
        """The latent offset of `edits`: sum of amount * vector, in float32, in the edits' order."""
        total = np.zeros(self.vectors.shape[1], dtype=np.float32)
        for index, amount in self.check(edits):
            total = total + amount * self.vectors[index]
        return total

    def apply(self, latents: npt.NDArray[np.float32], edits: Sequence[Edit]) -> npt.NDArray[np.float32]:
        """z [B, dim] or ws [B, num_ws, dim] moved by the edits (every layer alike)."""
        if not edits:
            return latents
        return (latents + self.offset(edits)).astype(np.float32)


def edit_key(edits: Sequence[Edit]) -> tuple[tuple[int, bytes], ...]:
    """Edits as exact values, for cache keys and comparisons (amounts as their float32 bytes)."""
    return tuple((int(i), np.float32(a).tobytes()) for i, a in edits)


def parse_edits(text: str) -> list[Edit]:
    """'0:2.5,3:-1' -> [(0, 2.5), (3, -1.0)] (URLs and the command line)."""
    edits: list[Edit] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        index, sep, amount = part.partition(":")
        try:
            if not sep:
                raise ValueError
            edits.append((int(index), float(amount)))
        except ValueError:
            raise DirectionsError(f"edit {part[:32]!r}: write DIRECTION:AMOUNT, e.g. 0:2.5") from None
    return edits


def to_json(
    space: str, vectors: npt.NDArray[np.float32], values: Sequence[float], model_sha256: str
) -> bytes:
    """The sidecar's bytes, one vector per line (float32 values written so that they read back
    exactly)."""
    head = {
        "format": DIRECTIONS_FORMAT,
        "method": "sefa",
        "space": space,
        "model_sha256": model_sha256,
        "values": [round(float(v), 6) for v in values],
    }
    rows = [json.dumps([float(x) for x in row]) for row in np.asarray(vectors, dtype=np.float32)]
    text = json.dumps(head, indent=1)[:-2] + ',\n "vectors": [\n  ' + ",\n  ".join(rows) + "\n ]\n}\n"
    return text.encode()


def load_directions(path: Path, model_sha256: str | None = None) -> Directions:
    """Read and check a sidecar; with `model_sha256`, it must belong to that model file."""
    path = Path(path)
    try:
        data = path.read_bytes()
        doc = json.loads(data)
    except (OSError, ValueError) as exc:
        raise DirectionsError(f"{path}: cannot read it as JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != DIRECTIONS_FORMAT:
        raise DirectionsError(f"{path}: not an {DIRECTIONS_FORMAT} file")
    if doc.get("space") not in ("w", "z"):
        raise DirectionsError(f"{path}: space must be w or z")
    try:
        vectors = np.asarray(doc["vectors"], dtype=np.float32)
        values = tuple(float(v) for v in doc["values"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DirectionsError(f"{path}: vectors and values must be numbers ({exc})") from None
    if vectors.ndim != 2 or len(vectors) != len(values) or not np.isfinite(vectors).all():
        raise DirectionsError(f"{path}: vectors must be a finite [k, dim] table with one value each")
    if model_sha256 is not None and doc.get("model_sha256") != model_sha256:
        raise DirectionsError(
            f"{path} belongs to another model file (sha256 {str(doc.get('model_sha256'))[:12]})"
        )
    return Directions(
        space=str(doc["space"]),
        vectors=vectors,
        values=values,
        model_sha256=str(doc.get("model_sha256", "")),
        sha256=hashlib.sha256(data).hexdigest(),
    )
