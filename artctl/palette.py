"""Palettes (`artctl-palette-v1`): the colours a model's pixels are snapped to, and the snap itself.

A palette file is JSON `{"version": "artctl-palette-v1", "colors": ["#rrggbb", ...]}` (every colour
`#rrggbbaa` for an RGBA palette; other keys, such as `source`, are kept out of the palette's
identity). `artctl data nouns` writes this format and `artctl export --palette` reads it.

The snap: each pixel becomes the palette colour at the smallest squared distance over the uint8
channel values, ties to the lower palette index. An RGB palette on an RGBA model compares and
replaces the colour channels and leaves alpha as the model made it. The exporter builds the same
function into the ONNX graph; `snap` here is the reference the tests, the parity gate and the
documented re-derivation script hold it to. numpy only, so it stays light.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PALETTE_CONTRACT = "artctl-palette-v1"
MAX_COLOURS = 256  # one byte of index; also bounds the snap's [pixels, K] distance table
_HEX = re.compile(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")


class PaletteError(ValueError):
    """A palette that cannot be used: malformed colours, too many or none, mixed RGB and RGBA."""


def parse_colours(colours: Any, source: str = "palette") -> list[str]:
    """Validate a list of hex colours; lowercase "#rrggbb" or "#rrggbbaa" back, in the given order."""
    if not isinstance(colours, list):
        raise PaletteError(f'{source}: colors must be a list of "#rrggbb" strings')
    if not colours:
        raise PaletteError(f"{source}: the palette has no colours")
    if len(colours) > MAX_COLOURS:
        raise PaletteError(f"{source}: {len(colours)} colours; a palette holds at most {MAX_COLOURS}")
    bad = [c for c in colours if not (isinstance(c, str) and _HEX.fullmatch(c))]
    if bad:
        shown = ", ".join(json.dumps(c) for c in bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise PaletteError(
            f'{source}: {len(bad)} malformed colour(s) ({shown}); use "#rrggbb" or "#rrggbbaa"'
        )
    widths = {len(c) for c in colours}
    if len(widths) > 1:
        raise PaletteError(f"{source}: mixes #rrggbb and #rrggbbaa colours; use one form for all")
    return [c.lower() for c in colours]


def parse_palette(doc: Any, source: str = "palette") -> list[str]:
    """The colours of a parsed palette.json document (see the module docstring)."""
    if not isinstance(doc, dict):
        raise PaletteError(f'{source}: not a JSON object with "version" and "colors"')
    if doc.get("version") != PALETTE_CONTRACT:
        raise PaletteError(f"{source}: version must be {PALETTE_CONTRACT!r}, got {doc.get('version')!r}")
    if "colors" not in doc:
        raise PaletteError(f'{source}: no "colors" list')
    return parse_colours(doc["colors"], source)


def load_palette(path: Path) -> list[str]:
    """Read and validate a palette.json file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PaletteError(f"{path}: no such palette file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PaletteError(f"{path}: not a JSON palette file ({exc})") from None
    return parse_palette(doc, str(path))


def palette_sha256(colours: Sequence[str]) -> str:
    """SHA-256 of the canonical form `artctl-palette-v1:` + the lowercase colours joined by ",".

    Order is part of the identity (it decides ties), the file's other keys and formatting are not.
    """
    canonical = f"{PALETTE_CONTRACT}:" + ",".join(c.lower() for c in colours)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def palette_array(colours: Sequence[str]) -> np.ndarray:
    """uint8 [K, 3] or [K, 4]: the colours' channel values, in palette order."""
    checked = parse_colours(list(colours))
    return np.array([list(bytes.fromhex(c[1:])) for c in checked], dtype=np.uint8)


def check_channels(colours: Sequence[str], channels: int) -> None:
    """Refuse a palette that cannot apply to a model with `channels` channels."""
    width = len(colours[0]) // 2 if colours else 3  # "#rrggbb" -> 3, "#rrggbbaa" -> 4
    if channels not in (3, 4):
        raise PaletteError(f"a palette needs an RGB or RGBA model; this one has {channels} channel(s)")
    if width > channels:
        raise PaletteError(
            f"an RGBA palette (#rrggbbaa) needs an RGBA model; this one has {channels} channels"
        )


def snap(pixels: np.ndarray, colours: Sequence[str] | np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Each pixel of uint8 [..., C] replaced by its nearest palette colour (ties: the lower index).

    Distances are exact integers; an RGB palette on C == 4 leaves alpha untouched. Works in chunks
    of pixels so the [pixels, K] distance table stays small.
    """
    pal = palette_array(colours) if not isinstance(colours, np.ndarray) else colours.astype(np.uint8)
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise PaletteError(f"snap takes uint8 pixels, got {pixels.dtype}")
    width = pal.shape[1]
    if pixels.shape[-1] < width:
        raise PaletteError(f"{pixels.shape[-1]}-channel pixels cannot take a {width}-channel palette")
    out = pixels.copy()
    flat = out.reshape(-1, pixels.shape[-1])
    pal32 = pal.astype(np.int64)
    for start in range(0, len(flat), chunk):
        part = flat[start : start + chunk, :width].astype(np.int64)
        dist = ((part[:, None, :] - pal32[None, :, :]) ** 2).sum(axis=-1)
        flat[start : start + chunk, :width] = pal[np.argmin(dist, axis=1)]  # argmin: first minimum
    return out


def pack_colours(pixels: np.ndarray) -> np.ndarray:
    """uint8 [N, C] colours as one uint32 each (channels big-endian), for set operations."""
    packed = np.zeros(len(pixels), dtype=np.uint32)
    for c in range(pixels.shape[1]):
        packed = (packed << np.uint32(8)) | pixels[:, c].astype(np.uint32)
    return packed


def in_palette(pixels: np.ndarray, colours: Sequence[str]) -> bool:
    """Whether every pixel's colour channels are one of the palette's colours."""
    pal = palette_array(colours)
    width = pal.shape[1]
    flat = np.asarray(pixels).reshape(-1, np.asarray(pixels).shape[-1])[:, :width]
    codes = {bytes(row) for row in pal}
    return all(bytes(row) in codes for row in np.unique(flat, axis=0))
