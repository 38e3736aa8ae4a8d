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
import numpy.typing as npt

from artctl.cid import cid_of_bytes
from artctl.collection import CollectionConfig
from artctl.delivery import encode_file
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
    inputs = {"z": LATENT_CONTRACT, "z_dim": int(card.get("z_dim", 0)), "psi": psi, "labels": labels}
    if config.truncation_cutoff is not None:  # absent otherwise: earlier manifests stay as they were
        inputs["truncation_cutoff"] = config.truncation_cutoff
    return inputs


@dataclass
class DropContext:
    """What every token's files depend on besides its own entry."""

    config: CollectionConfig
    plan: TraitPlan
    model_sha256: str
    fmt: str
    inputs: dict[str, Any] = field(default_factory=dict)  # render_inputs(): psi, labels, ...
    curated: list[Curated] = field(default_factory=list)  # curated_inputs(), for curated drops

    @property
    def layout(self) -> Layout:
        return Layout.of(self.fmt, self.config)

    @property
    def plain(self) -> bool:
        """PNG at scale 1: the renderer's own PNG is the file (as every drop before image_scale)."""
        return self.config.image_scale == 1 and self.config.image_format == "png"

    def image_file(self, pixels: npt.NDArray[np.uint8]) -> bytes:
        """What mint writes for these native pixels at the drop's image_scale and image_format."""
        return encode_file(pixels, self.config.image_scale, self.config.image_format)

    def metadata(self, entry: dict[str, Any]) -> dict[str, Any]:
        psi = entry.get("psi", self.inputs.get("psi"))  # a curated token states its own
        return token_metadata(self.config, entry, self.plan.order, self.model_sha256, self.fmt, psi)


Curated = tuple[int, float | None, int | None, tuple[tuple[int, float], ...]]  # seed, psi, label, edits


def curated_inputs(ctx: DropContext) -> list[Curated]:
    """Every curated entry as the graph takes it: label names resolved to indices, psi as the drop
    states it (the entry's, else the drop's), refused with the entry's number when it cannot be."""
    curation = ctx.config.curation
    assert curation is not None
    names = ctx.inputs.get("labels")
    has_psi = ctx.inputs.get("psi") is not None
    values = {index: value for value, index in ctx.plan.label_index.items()}
    out: list[Curated] = []
    for n, entry in enumerate(curation.entries):
        where = f"curation entry {n} (seed {entry.seed})"
        if entry.psi is not None and not has_psi:
            raise MintError(f"{where}: the model has no truncation input; drop psi")
        label: int | None = None
        if entry.label is not None:
            if names is None:
                raise MintError(f"{where}: the model is unconditional; drop label")
            if isinstance(entry.label, int):
                label = entry.label
            elif entry.label in names:
                label = names.index(entry.label)
            else:
                raise MintError(f"{where}: the model has no label {entry.label!r}")
            if not 0 <= label < len(names):
                raise MintError(f"{where}: label {label} is outside the model's 0..{len(names) - 1}")
        elif names is not None:
            label = 0
        if ctx.plan.conditioning is not None and label not in values:
            raise MintError(
                f"{where}: label {names[label] if names and label is not None else label!r} is no value "
                f"of the trait {ctx.plan.conditioning.name!r}; {_allowed(ctx.plan.label_index, names)}"
            )
        psi = shortest_float32(entry.psi) if entry.psi is not None else ctx.inputs.get("psi")
        out.append((int(entry.seed), psi, label, entry.edit_pairs))
    return out


def _allowed(label_index: dict[str, int], names: list[str] | None) -> str:
    """The labels a curated entry may pin, each with the trait value it stands for."""
    shown = [f"{names[i] if names else i} ({value})" for value, i in label_index.items()]
    return "allowed labels: " + ", ".join(shown)


def prepare_curation(ctx: DropContext, card: dict[str, Any]) -> None:
    """For a curated drop: check the curation belongs to this model (and its directions), then
    resolve every entry before anything renders."""
    curation = ctx.config.curation
    if curation is None:
        return
    if curation.model.sha256 != ctx.model_sha256:
        raise MintError(
            f"the curation was made with model {curation.model.sha256[:12]}…, but the renderer's is "
            f"{ctx.model_sha256[:12]}…: mint it with the model it was made with"
        )
    if curation.has_edits and card.get("directions_sha256") != curation.directions_sha256:
        raise MintError(
            "the curation's edits need the directions it was made with (directions_sha256 "
            f"{str(curation.directions_sha256)[:12]}…), and the renderer has "
            f"{str(card.get('directions_sha256') or 'none')[:12]}"
        )
    ctx.curated = curated_inputs(ctx)


def _extras(ctx: DropContext, edits: tuple[tuple[int, float], ...]) -> dict[str, Any]:
    """The renderer's optional arguments a token needs: its edits, the drop's truncation cutoff
    (only those that are set, so a renderer from before them still serves drops without them)."""
    extras: dict[str, Any] = {"edits": edits} if edits else {}
    if ctx.inputs.get("truncation_cutoff") is not None:
        extras["cutoff"] = int(ctx.inputs["truncation_cutoff"])
    return extras


def _render_curated(
    ctx: DropContext, ids: Sequence[int], renderer: Renderer
) -> tuple[list[int], list[tuple[str, int] | None], list[Rendered], list[Curated]]:
    """Curated tokens rendered in groups of one psi and one edit (each group one render call)."""
    config = ctx.config
    wanted = [ctx.curated[i - config.start_index] for i in ids]
    values = {index: value for value, index in ctx.plan.label_index.items()}
    groups: dict[tuple[Any, ...], list[int]] = {}
    for position, (_, psi, _, edits) in enumerate(wanted):
        groups.setdefault((psi, edits), []).append(position)
    rendered: list[Rendered | None] = [None] * len(ids)
    for (psi, edits), positions in groups.items():
        seeds = [wanted[p][0] for p in positions]
        labels = [wanted[p][2] for p in positions]
        label_arg = None if labels[0] is None else [int(x) for x in labels if x is not None]
        items = renderer.render(seeds, psi, label_arg, **_extras(ctx, edits))
        if len(items) != len(positions):
            raise MintError(f"renderer returned {len(items)} images for {len(positions)} seeds")
        for p, item in zip(positions, items):
            rendered[p] = item
    drawn = [
        None
        if label is None
        else ((values.get(label) or "", label) if ctx.plan.conditioning else ("", label))
        for _, _, label, _ in wanted
    ]
    return [w[0] for w in wanted], drawn, [r for r in rendered if r is not None], wanted


def render_chunk(
    ctx: DropContext, ids: Sequence[int], renderer: Renderer
) -> list[tuple[dict[str, Any], Rendered]]:
    """Render tokens and build their manifest entries (pixels checked against the renderer's hash);
    each item's `file` is the image file to write, upscaled and encoded as the config says."""
    config, plan = ctx.config, ctx.plan
    wanted: list[Curated] | None = None
    if config.curation is not None:
        seeds, drawn, rendered, wanted = _render_curated(ctx, ids, renderer)
    else:
        seeds = [token_seed(config.salt, i) for i in ids]
        drawn = [plan.draw_label(config.salt, i) for i in ids]
        labels = [d[1] for d in drawn if d is not None] or None
        rendered = renderer.render(seeds, ctx.inputs.get("psi"), labels, **_extras(ctx, ()))
    if len(rendered) != len(ids):
        raise MintError(f"renderer returned {len(rendered)} images for {len(ids)} seeds")
    out = []
    for position, (token_id, seed, pair, item) in enumerate(zip(ids, seeds, drawn, rendered)):
        if item.seed != seed:
            raise MintError(f"token {token_id}: renderer answered for seed {item.seed}, not {seed}")
        pixels = item.pixels if item.pixels is not None else decode_png(item.png)
        pix = pixel_sha256(pixels)
        if pix != item.pixel_sha256:
            raise MintError(f"token {token_id}: PNG pixels do not match the renderer's pixel hash")
        item.file = item.png if ctx.plain else ctx.image_file(pixels)
        cid = cid_of_bytes(item.file)
        entry: dict[str, Any] = {
            "id": token_id,
            "seed": str(seed),
            "traits": plan.traits_for(
                config.salt, token_id, pixels, pair[0] if pair and plan.conditioning else None
            ),
            "pixel_sha256": pix,
            "file_sha256": sha256_hex(item.file),
            "cid": cid,
            "image": ctx.layout.image_uri(config, token_id, cid),
        }
        if pair is not None:
            entry["label"] = pair[1]
            names = ctx.inputs.get("labels")
            if names:  # drops before artctl-manifest-v3 recorded no label names
                entry["label_name"] = names[pair[1]]
        if wanted is not None:  # a curated token states its own psi and edits
            _, psi, _, edits = wanted[position]
            if psi is not None:
                entry["psi"] = psi
            if edits:
                entry["edits"] = [{"direction": d, "amount": a} for d, a in edits]
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
