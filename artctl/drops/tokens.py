"""One token: its seed, traits and label, rendered into a manifest entry and two files.

token seed = token_seed(salt, id) -> image from the model -> its image and metadata files (where they
live is the drop's Layout: images/ and metadata/, or Sugar's assets/).
The entry records the seed, traits, pixel_sha256 (encoder-independent), file_sha256 and IPFS CID.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from artctl.cid import cid_of_bytes
from artctl.collection import CollectionConfig
from artctl.drops import MintError
from artctl.drops.layout import Layout
from artctl.drops.render import Rendered, Renderer
from artctl.fileio import write_bytes_atomic
from artctl.imaging import decode_png
from artctl.metadata import stable_json, token_metadata
from artctl.seeds import LATENT_CONTRACT, pixel_sha256, token_seed
from artctl.traits import TraitPlan

CHUNK = 64  # tokens rendered, written and journaled together
T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def shortest_float32(value: float) -> float:
    """A float32 value as the shortest decimal that reads back to it (0.7, not 0.699999988)."""
    return float(str(np.float32(value)))


def render_inputs(config: CollectionConfig, card: dict[str, Any]) -> dict[str, Any]:
    """Every input the graph sees besides each token's seed and label, stated once for the drop:
    the latent contract and size, the effective psi (the config's, else the card's default; None
    for a model without psi) and the label names the token labels index."""
    has_psi = bool(card.get("has_psi"))
    psi = None
    if has_psi:
        psi = shortest_float32(config.psi if config.psi is not None else float(card.get("default_psi", 1.0)))
    labels = [str(n) for n in card.get("label_names") or []] if card.get("has_label") else None
    return {"z": LATENT_CONTRACT, "z_dim": int(card.get("z_dim", 0)), "psi": psi, "labels": labels}


@dataclass
class DropContext:
    """What every token's files depend on besides its own entry."""

    config: CollectionConfig
    plan: TraitPlan
    model_sha256: str
    fmt: str
    inputs: dict[str, Any] = field(default_factory=dict)  # render_inputs(): psi, labels, ...

    @property
    def layout(self) -> Layout:
        return Layout.of(self.fmt, self.config)

    def metadata(self, entry: dict[str, Any]) -> dict[str, Any]:
        return token_metadata(
            self.config, entry, self.plan.order, self.model_sha256, self.fmt, self.inputs.get("psi")
        )


def render_chunk(
    ctx: DropContext, ids: Sequence[int], renderer: Renderer
) -> list[tuple[dict[str, Any], Rendered]]:
    """Render tokens and build their manifest entries (pixels checked against the renderer's hash)."""
    config, plan = ctx.config, ctx.plan
    seeds = [token_seed(config.salt, i) for i in ids]
    drawn = [plan.draw_label(config.salt, i) for i in ids]
    labels = [d[1] for d in drawn if d is not None] or None
    rendered = renderer.render(seeds, ctx.inputs.get("psi"), labels)
    if len(rendered) != len(ids):
        raise MintError(f"renderer returned {len(rendered)} images for {len(ids)} seeds")
    out = []
    for token_id, seed, pair, item in zip(ids, seeds, drawn, rendered):
        if item.seed != seed:
            raise MintError(f"token {token_id}: renderer answered for seed {item.seed}, not {seed}")
        pixels = item.pixels if item.pixels is not None else decode_png(item.png)
        pix = pixel_sha256(pixels)
        if pix != item.pixel_sha256:
            raise MintError(f"token {token_id}: PNG pixels do not match the renderer's pixel hash")
        cid = cid_of_bytes(item.png)
        entry: dict[str, Any] = {
            "id": token_id,
            "seed": str(seed),
            "traits": plan.traits_for(config.salt, token_id, pixels, pair[0] if pair else None),
            "pixel_sha256": pix,
            "file_sha256": sha256_hex(item.png),
            "cid": cid,
            "image": ctx.layout.image_uri(config, token_id, cid),
        }
        if pair is not None:
            entry["label"] = pair[1]
            names = ctx.inputs.get("labels")
            if names:  # drops before artctl-manifest-v3 recorded no label names
                entry["label_name"] = names[pair[1]]
        out.append((entry, item))
    return out


def write_token_files(
    out_dir: Path, ctx: DropContext, entry: dict[str, Any], png: bytes, keep_existing: bool = False
) -> None:
    """A token's image and metadata, each written atomically.

    keep_existing (repair): a file already there must be exactly what would be written; it is then
    left alone, and anything else is refused rather than overwritten.
    """
    files = (
        (ctx.layout.image(out_dir, entry["id"]), png),
        (ctx.layout.metadata(out_dir, entry["id"]), stable_json(ctx.metadata(entry))),
    )
    for path, data in files:
        if keep_existing and path.exists():
            if path.read_bytes() != data:
                raise MintError(
                    f"{path} is not what token {entry['id']} of this drop renders to; it is left as it is "
                    "(a different config, model or an edited file?)"
                )
            continue
        write_bytes_atomic(path, data)


def token_files_ok(out_dir: Path, ctx: DropContext, entry: dict[str, Any]) -> bool:
    """A finished token is kept only if its image and metadata on disk are exactly what it recorded."""
    try:
        if sha256_hex(ctx.layout.image(out_dir, entry["id"]).read_bytes()) != entry["file_sha256"]:
            return False
        return ctx.layout.metadata(out_dir, entry["id"]).read_bytes() == stable_json(ctx.metadata(entry))
    except (OSError, KeyError, TypeError):
        return False
