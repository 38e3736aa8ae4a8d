"""Mint a collection: every token's image, metadata and manifest entry, re-derivable from the config.

token seed = token_seed(salt, id) -> image from the model -> images/{id}.png; the manifest records the
seed, pixel_sha256 (encoder-independent) and file_sha256 of each token, and the provenance hash over
the files in token order. No timestamps: the same config and model give the same bytes.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from artctl import __version__
from artctl.collection import CollectionConfig
from artctl.fileio import write_bytes_atomic, write_json_atomic
from artctl.imaging import decode_png, image_grid
from artctl.seeds import CONTRACTS, pixel_sha256, provenance, token_seed

MANIFEST_VERSION = "artctl-manifest-v1"
CHUNK = 64


class MintError(RuntimeError):
    """The drop could not be rendered or does not check out."""


@dataclass
class Rendered:
    seed: int
    png: bytes
    pixel_sha256: str


class Renderer(Protocol):
    """Something that turns seeds into PNGs: a server (via the client) or in-process ONNX Runtime."""

    def render(self, seeds: Sequence[int], psi: float | None) -> list[Rendered]: ...

    def profile(self) -> dict[str, Any]: ...

    def model_card(self) -> dict[str, Any]: ...


class ServerRenderer:
    def __init__(self, client: Any, model: str) -> None:
        self.client = client
        self.model = model
        self._profile: dict[str, Any] = {}
        self._card: dict[str, Any]
        cards = {c["name"]: c for c in client.list_models()}
        if model in ("", "default"):
            self._card = next(iter(cards.values()), {})  # list_models puts the default first
        elif model not in cards:
            raise MintError(f"server has no model {model!r} (it has: {', '.join(sorted(cards)) or 'none'})")
        else:
            self._card = cards[model]

    def render(self, seeds: Sequence[int], psi: float | None) -> list[Rendered]:
        result = self.client.generate(seeds, model=self.model, psi=psi, fmt="png")
        if [a.seed for a in result.artworks] != list(seeds):
            raise MintError("server returned artworks for other seeds than requested")
        self._profile = result.profile
        return [Rendered(a.seed, a.image, a.pixel_sha256) for a in result.artworks]

    def profile(self) -> dict[str, Any]:
        return self._profile

    def model_card(self) -> dict[str, Any]:
        return {k: v for k, v in self._card.items() if k not in ("metadata", "profile")}


class LocalRenderer:
    """In-process ONNX Runtime (needs the serve extra); the same pixels as a CPU server."""

    def __init__(self, model_path: Path, threads: int = 0) -> None:
        from serving.runtime import load_model  # lazy: the core does not need onnxruntime

        self.runtime = load_model(Path(model_path), threads=threads)

    def render(self, seeds: Sequence[int], psi: float | None) -> list[Rendered]:
        from serving.encoding import encode_image
        from serving.validation import check_psi

        arr = np.asarray(seeds, dtype=np.uint64)
        psi_arr = check_psi(self.runtime.card, None if psi is None else [psi], len(arr))
        images = self.runtime.render(arr, psi_arr, None)
        out = []
        for seed, img in zip(seeds, images):
            enc = encode_image(img, "png")
            out.append(Rendered(int(seed), enc.data, enc.pixel_sha256))
        return out

    def profile(self) -> dict[str, Any]:
        return dict(self.runtime.profile.as_dict())

    def model_card(self) -> dict[str, Any]:
        return {**self.runtime.card.to_json(), "sha256": self.runtime.sha256}


@dataclass
class MintResult:
    out_dir: Path
    tokens: int
    provenance: str
    manifest: Path
    contact_sheet: Path | None
    entries: list[dict[str, Any]] = field(default_factory=list)


def token_metadata(
    config: CollectionConfig, token_id: int, seed: int, pix: str, model_sha: str
) -> dict[str, Any]:
    """ERC-721 metadata JSON (OpenSea style attributes), with the data needed to re-derive the image."""
    doc: dict[str, Any] = {
        "name": f"{config.name} #{token_id}",
        "description": config.description,
        "image": f"{config.base_uri}{token_id}.png",
        "attributes": [{"trait_type": "Seed", "value": str(seed)}],
        "artctl": {"seed": str(seed), "pixel_sha256": pix, "model_sha256": model_sha, "contracts": CONTRACTS},
    }
    if config.external_url:
        doc["external_url"] = config.external_url
    return doc


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def mint(
    config: CollectionConfig,
    out_dir: Path,
    renderer: Renderer,
    on_token: Callable[[int], None] | None = None,
    contact_sheet_max: int = 64,
) -> MintResult:
    """Render every token of the collection into out_dir and write the manifest and provenance."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "metadata").mkdir(parents=True, exist_ok=True)
    ids = list(config.token_ids())
    card = renderer.model_card()
    model_sha = str(card.get("sha256", ""))
    entries: list[dict[str, Any]] = []
    sheet_images: list[np.ndarray] = []
    for id_chunk in _chunks(ids, CHUNK):
        seeds = [token_seed(config.salt, i) for i in id_chunk]
        rendered = renderer.render(seeds, config.psi)
        for token_id, item in zip(id_chunk, rendered):
            pixels = decode_png(item.png)
            pix = pixel_sha256(pixels)
            if pix != item.pixel_sha256:
                raise MintError(f"token {token_id}: PNG pixels do not match the renderer's pixel hash")
            write_bytes_atomic(out_dir / "images" / f"{token_id}.png", item.png)
            write_json_atomic(
                out_dir / "metadata" / f"{token_id}.json",
                token_metadata(config, token_id, item.seed, pix, model_sha),
            )
            entries.append(
                {
                    "id": token_id,
                    "seed": str(item.seed),
                    "pixel_sha256": pix,
                    "file_sha256": hashlib.sha256(item.png).hexdigest(),
                    "image": f"{config.base_uri}{token_id}.png",
                }
            )
            if len(sheet_images) < contact_sheet_max:
                sheet_images.append(pixels)
            if on_token:
                on_token(token_id)
    prov = provenance(e["file_sha256"] for e in entries)
    manifest = {
        "format": MANIFEST_VERSION,
        "artctl_version": __version__,
        "collection": config.model_dump(mode="json"),
        "contracts": CONTRACTS,
        "model": card,
        "render_profile": renderer.profile(),
        "provenance": prov,
        "tokens": entries,
    }
    write_json_atomic(out_dir / "manifest.json", manifest)
    write_bytes_atomic(out_dir / "provenance.txt", (prov + "\n").encode())
    write_json_atomic(
        out_dir / "collection.json",
        {
            "name": config.name,
            "symbol": config.symbol,
            "description": config.description,
            "external_link": config.external_url,
        },
    )
    sheet_path = None
    if sheet_images:
        sheet_path = out_dir / "contact-sheet.png"
        buf = io.BytesIO()
        image_grid(np.stack(sheet_images), cols=min(8, len(sheet_images))).save(buf, format="PNG")
        write_bytes_atomic(sheet_path, buf.getvalue())
    return MintResult(out_dir, len(entries), prov, out_dir / "manifest.json", sheet_path, entries)
