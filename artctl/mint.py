"""Mint a collection: every token's image, metadata and manifest entry, re-derivable from the config.

token seed = token_seed(salt, id) -> image from the model -> images/{id}.png; the manifest records the
seed, traits, pixel_sha256 (encoder-independent), file_sha256 and IPFS CID of each token, and the
provenance hash over the files in token order. No timestamps: the same config and model give the
same bytes.

Crash safety: tokens are rendered in chunks; a chunk's images and metadata are written atomically,
then a journal file for the chunk (`.artctl-mint/chunk-{first id}.json`). A re-run trusts a chunk
only if its journal exists and every file on disk still hashes to it; anything else is rendered
again. So `kill -9` at any moment, then a re-run, gives the same bytes as one uninterrupted run.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artctl import __version__
from artctl.cid import cid_of_bytes
from artctl.collection import CollectionConfig
from artctl.fileio import write_bytes_atomic
from artctl.imaging import decode_png, image_grid
from artctl.metadata import check_format, collection_metadata, stable_json, token_metadata
from artctl.rarity import rarity_report
from artctl.renderers import LocalRenderer, Rendered, Renderer, ServerRenderer
from artctl.seeds import CONTRACTS, pixel_sha256, provenance, token_seed
from artctl.traits import TraitPlan, plan_traits

__all__ = [
    "LocalRenderer",
    "MintError",
    "MintResult",
    "Rendered",
    "Renderer",
    "ServerRenderer",
    "mint",
]

MANIFEST_VERSION = "artctl-manifest-v2"
CHUNK = 64
JOURNAL = ".artctl-mint"
CONTACT_SHEET_MAX = 64
ProgressFn = Callable[[int, int], None]  # (tokens done, tokens total)


class MintError(RuntimeError):
    """The drop could not be rendered or does not check out."""


@dataclass(frozen=True)
class Shard:
    """Slice `index` of `count` (0-based, as a Kubernetes Indexed Job numbers its pods)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise MintError(f"--shard must look like i/n (e.g. 0/4), got {text!r}")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or index >= count:
            raise MintError(f"--shard {text}: need 0 <= i < n")
        return cls(index, count)

    def ids(self, config: CollectionConfig) -> range:
        first = config.start_index
        lo = first + self.index * config.size // self.count
        hi = first + (self.index + 1) * config.size // self.count
        return range(lo, hi)


@dataclass
class MintResult:
    out_dir: Path
    tokens: int
    provenance: str
    manifest: Path
    contact_sheet: Path | None
    entries: list[dict[str, Any]] = field(default_factory=list)
    rendered: int = 0  # tokens rendered by this run (the rest were verified and kept)
    notes: list[str] = field(default_factory=list)


def identity(
    config: CollectionConfig, model_sha256: str, fmt: str, shard: Shard | None = None
) -> dict[str, Any]:
    """What decides a drop's bytes; a folder holding another identity is never touched."""
    return {
        "collection": config.model_dump(mode="json"),
        "model_sha256": model_sha256,
        "metadata_format": fmt,
        "shard": None if shard is None else [shard.index, shard.count],
    }


def _chunks(ids: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def token_files_ok(out_dir: Path, config: CollectionConfig, entry: dict[str, Any], ctx: DropContext) -> bool:
    """A finished token is kept only if its image and metadata on disk are exactly what it recorded."""
    image = out_dir / "images" / f"{entry['id']}.png"
    meta = out_dir / "metadata" / f"{entry['id']}.json"
    try:
        if _sha256(image.read_bytes()) != entry["file_sha256"]:
            return False
        return meta.read_bytes() == stable_json(ctx.metadata(config, entry))
    except (OSError, KeyError, TypeError):
        return False


@dataclass
class DropContext:
    """What every token's files depend on besides its own entry."""

    plan: TraitPlan
    model_sha256: str
    fmt: str

    def metadata(self, config: CollectionConfig, entry: dict[str, Any]) -> dict[str, Any]:
        return token_metadata(config, entry, self.plan.order, self.model_sha256, self.fmt)


def render_chunk(
    config: CollectionConfig, ids: Sequence[int], renderer: Renderer, plan: TraitPlan
) -> list[tuple[dict[str, Any], Rendered]]:
    """Render tokens and build their manifest entries (pixels checked against the renderer's hash)."""
    seeds = [token_seed(config.salt, i) for i in ids]
    drawn = [plan.draw_label(config.salt, i) for i in ids]
    labels = [d[1] for d in drawn if d is not None] or None
    rendered = renderer.render(seeds, config.psi, labels)
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
            "file_sha256": _sha256(item.png),
            "cid": cid,
            "image": config.image_uri(token_id, cid),
        }
        if pair is not None:
            entry["label"] = pair[1]
        out.append((entry, item))
    return out


def _clean_temp_files(out_dir: Path) -> None:
    """Remove half-written temporaries a killed run left behind (fileio names them .NAME.*.tmp)."""
    for folder in (out_dir, out_dir / "images", out_dir / "metadata", out_dir / JOURNAL):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _finished_entries(out_dir: Path, ident: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Entries a previous run recorded: from its journal, else from its finished manifest.

    Refuses a folder that holds a different drop, so a wrong --out never overwrites anything.
    """
    journal = out_dir / JOURNAL
    state = _read_json(journal / "state.json") if journal.is_dir() else None
    manifest = _read_json(out_dir / "manifest.json") if (out_dir / "manifest.json").exists() else None
    entries: dict[int, dict[str, Any]] = {}
    if manifest is not None:
        if manifest_identity(manifest) != ident:
            raise MintError(
                f"{out_dir} already holds a different drop (its manifest has another config, model, "
                "format or shard); choose a new --out"
            )
        entries.update({int(t["id"]): t for t in manifest.get("tokens", [])})
    elif state is not None:
        if state != ident:
            raise MintError(
                f"{out_dir} holds an unfinished mint of a different config or model; use a new --out"
            )
    elif (out_dir / "manifest.json").exists() or any(
        (out_dir / sub).is_dir() and any((out_dir / sub).iterdir()) for sub in ("images", "metadata")
    ):
        raise MintError(f"{out_dir} is not empty and is not a drop of this config; choose a new --out")
    if journal.is_dir():
        for path in sorted(journal.glob("chunk-*.json")):
            for entry in _read_json(path) or []:
                entries[int(entry["id"])] = entry
    return entries


def manifest_identity(manifest: dict[str, Any]) -> dict[str, Any]:
    shard = manifest.get("shard")
    return {
        "collection": manifest.get("collection"),
        "model_sha256": (manifest.get("model") or {}).get("sha256", ""),
        "metadata_format": manifest.get("metadata_format"),
        "shard": None if shard is None else [shard["index"], shard["count"]],
    }


def mint(
    config: CollectionConfig,
    out_dir: Path,
    renderer: Renderer,
    fmt: str = "erc721",
    shard: Shard | None = None,
    on_progress: ProgressFn | None = None,
    chunk: int = CHUNK,
) -> MintResult:
    """Render the collection (or one shard of it) into out_dir, resuming whatever a past run finished."""
    out_dir = Path(out_dir)
    check_format(config, fmt)
    card = renderer.model_card()
    model_sha = str(card.get("sha256", ""))
    plan = plan_traits(config, card)
    ctx = DropContext(plan, model_sha, fmt)
    ids = shard.ids(config) if shard else config.token_ids()
    ident = identity(config, model_sha, fmt, shard)

    _clean_temp_files(out_dir)
    finished = _finished_entries(out_dir, ident)
    journal = out_dir / JOURNAL
    if not (journal / "state.json").exists():
        write_bytes_atomic(journal / "state.json", stable_json(ident))
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "metadata").mkdir(parents=True, exist_ok=True)

    entries: list[dict[str, Any]] = []
    rendered_count = 0
    done = 0
    for id_chunk in _chunks(ids, chunk):
        kept = [finished.get(i) for i in id_chunk]
        if all(e is not None and token_files_ok(out_dir, config, e, ctx) for e in kept):
            entries.extend(e for e in kept if e is not None)
        else:
            fresh = render_chunk(config, id_chunk, renderer, plan)
            for entry, item in fresh:
                write_bytes_atomic(out_dir / "images" / f"{entry['id']}.png", item.png)
                write_bytes_atomic(
                    out_dir / "metadata" / f"{entry['id']}.json", stable_json(ctx.metadata(config, entry))
                )
            chunk_entries = [e for e, _ in fresh]
            write_bytes_atomic(journal / f"chunk-{id_chunk[0]}.json", stable_json(chunk_entries))
            entries.extend(chunk_entries)
            rendered_count += len(chunk_entries)
        done += len(id_chunk)
        if on_progress:
            on_progress(done, len(ids))

    doc = manifest_doc(config, fmt, card, renderer.profile(), plan, entries, shard)
    if shard is None:
        result = finalize(out_dir, config, doc)
    else:
        write_bytes_atomic(out_dir / "manifest.json", stable_json(doc))
        result = MintResult(out_dir, len(entries), "", out_dir / "manifest.json", None, entries)
    for path in sorted(journal.glob("*")):
        path.unlink()
    journal.rmdir()
    result.rendered = rendered_count
    result.notes = list(plan.skipped)
    return result


def manifest_doc(
    config: CollectionConfig,
    fmt: str,
    card: dict[str, Any],
    profile: dict[str, Any],
    plan: TraitPlan,
    entries: list[dict[str, Any]],
    shard: Shard | None = None,
) -> dict[str, Any]:
    """The manifest: config echo, model, render profile, and one entry per token in id order."""
    doc: dict[str, Any] = {
        "format": MANIFEST_VERSION,
        "artctl_version": __version__,
        "collection": config.model_dump(mode="json"),
        "metadata_format": fmt,
        "contracts": CONTRACTS,
        "model": card,
        "render_profile": profile,
        "traits": {"active": plan.order, "skipped": plan.skipped},
        "tokens": entries,
    }
    if shard is None:
        doc["provenance"] = provenance(e["file_sha256"] for e in entries)
    else:
        ids = shard.ids(config)
        doc["shard"] = {
            "index": shard.index,
            "count": shard.count,
            "first_id": ids.start,
            "stop_id": ids.stop,
        }
    return doc


def contact_sheet_png(
    out_dir: Path, entries: Sequence[dict[str, Any]], limit: int = CONTACT_SHEET_MAX
) -> bytes:
    """A grid of the first tokens, read back from disk one at a time (memory stays flat)."""
    images = [decode_png((out_dir / "images" / f"{e['id']}.png").read_bytes()) for e in entries[:limit]]
    buf = io.BytesIO()
    image_grid(np.stack(images), cols=min(8, len(images))).save(buf, format="PNG")
    return buf.getvalue()


def final_files(out_dir: Path, config: CollectionConfig, doc: dict[str, Any]) -> dict[str, bytes]:
    """The drop-level files of a complete manifest, as bytes (mint and merge write them, verify compares)."""
    entries = doc["tokens"]
    model_sha = str(doc["model"].get("sha256", ""))
    return {
        "manifest.json": stable_json(doc),
        "provenance.txt": (doc["provenance"] + "\n").encode("ascii"),
        "collection.json": stable_json(
            collection_metadata(config, doc["metadata_format"], doc["provenance"], model_sha)
        ),
        "rarity.json": stable_json(rarity_report(entries, doc["traits"]["active"])),
        "contact-sheet.png": contact_sheet_png(out_dir, entries),
    }


def finalize(out_dir: Path, config: CollectionConfig, doc: dict[str, Any]) -> MintResult:
    for name, data in final_files(out_dir, config, doc).items():
        write_bytes_atomic(out_dir / name, data)
    return MintResult(
        out_dir,
        len(doc["tokens"]),
        doc["provenance"],
        out_dir / "manifest.json",
        out_dir / "contact-sheet.png",
        doc["tokens"],
    )
