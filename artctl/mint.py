"""Mint a collection: every token's image, metadata and manifest entry, re-derivable from the config.

token seed = token_seed(salt, id) -> image from the model -> images/{id}.png; the manifest records the
seed, traits, pixel_sha256 (encoder-independent), file_sha256 and IPFS CID of each token, and the
provenance hash over the files in token order. No timestamps: the same config and model give the
same bytes.

Crash safety: tokens are rendered in chunks; a chunk's images and metadata are written atomically,
then a journal file for the chunk (`.artctl-mint/chunk-{first id}.json`). A re-run trusts a chunk
only if its journal exists and every file on disk still hashes to it; anything else is rendered
again. So `kill -9` at any moment, then a re-run, gives the same bytes as one uninterrupted run.

Memory stays flat whatever the size: entries live in the journal, not in a list. The manifest is
written by streaming them back chunk by chunk; per token only a few words stay in memory (rarity
codes and scores), and the provenance hash is updated as the tokens go by.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artctl import __version__
from artctl.cid import cid_of_bytes
from artctl.collection import CollectionConfig
from artctl.fileio import write_atomic, write_bytes_atomic
from artctl.imaging import decode_png, image_grid
from artctl.jsonstream import Fill, constant, dump_streamed, iter_array, read_without
from artctl.metadata import check_format, collection_metadata, stable_json, token_metadata
from artctl.rarity import RarityTally
from artctl.renderers import LocalRenderer, Rendered, Renderer, ServerRenderer
from artctl.seeds import CONTRACTS, pixel_sha256, token_seed
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
    rendered: int = 0  # tokens rendered by this run (the rest were verified and kept)
    notes: list[str] = field(default_factory=list)

    @property
    def entries(self) -> Iterator[dict[str, Any]]:
        """The manifest's token entries, streamed from disk: a result holds none of them in memory."""
        return iter_array(self.manifest, "tokens")


_HEX64 = re.compile(r"[0-9a-f]{64}")


class DropTally:
    """What the drop-level files need from the tokens, gathered as the entries stream past in id
    order: the provenance hash (seeds.provenance, one digest at a time), rarity codes and the ids of
    the contact sheet's tokens. A few machine words per token, never the entries themselves.
    """

    def __init__(self, trait_names: Sequence[str]) -> None:
        self.tokens = 0
        self.rarity = RarityTally(trait_names)
        self.sheet_ids: list[Any] = []
        self._provenance = hashlib.sha256()

    def add(self, entry: dict[str, Any]) -> None:
        digest = str(entry.get("file_sha256", "0" * 64))
        text = digest.lower()
        if not _HEX64.fullmatch(text):
            raise ValueError(f"entry {self.tokens} is not a SHA-256 hex digest: {digest!r}")
        self._provenance.update(text.encode("ascii"))
        self.rarity.add(entry)
        if len(self.sheet_ids) < CONTACT_SHEET_MAX:
            self.sheet_ids.append(entry["id"])
        self.tokens += 1

    @property
    def provenance(self) -> str:
        return self._provenance.hexdigest()


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


# What artctl's atomic writers leave when killed: mkstemp names, ".{name}.{8 random chars}.tmp".
_OUR_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def read_manifest_head(folder: Path, what: str) -> Any:
    """A drop's or shard's manifest without its token entries (stream those when needed).

    `what` completes "is the ... finished?" in the error for a folder without a manifest.
    """
    try:
        return read_without(folder / "manifest.json", "tokens")
    except FileNotFoundError:
        raise MintError(f"{folder}: no manifest.json (is the {what} finished?)") from None
    except (OSError, ValueError) as exc:
        raise MintError(f"{folder}/manifest.json: cannot read it ({exc})") from None


def _clean_temp_files(out_dir: Path) -> None:
    """Remove half-written temporaries a killed run of ours left behind, and nothing else.

    Called only once the folder is known to hold this drop, so another drop's (or a person's)
    files are never touched.
    """
    for folder in (out_dir, out_dir / "images", out_dir / "metadata", out_dir / JOURNAL):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                if _OUR_TEMP.match(tmp.name):
                    tmp.unlink(missing_ok=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_manifest_header(path: Path) -> dict[str, Any] | None:
    """A finished manifest without its tokens (the whole file is parsed, one entry at a time)."""
    try:
        return read_without(path, "tokens") if path.exists() else None
    except (OSError, ValueError):
        return None


def check_out_dir(out_dir: Path, ident: dict[str, Any]) -> bool:
    """Refuse a folder that holds a different drop, so a wrong --out never overwrites anything.

    True if the folder holds a finished manifest of this drop, to resume from.
    """
    journal = out_dir / JOURNAL
    state = _read_json(journal / "state.json") if journal.is_dir() else None
    manifest = _read_manifest_header(out_dir / "manifest.json")
    if manifest is not None:
        if manifest_identity(manifest) != ident:
            raise MintError(
                f"{out_dir} already holds a different drop (its manifest has another config, model, "
                "format or shard); choose a new --out"
            )
        return True
    if state is not None:
        if state != ident:
            raise MintError(
                f"{out_dir} holds an unfinished mint of a different config or model; use a new --out"
            )
    elif (out_dir / "manifest.json").exists() or any(
        (out_dir / sub).is_dir() and any((out_dir / sub).iterdir()) for sub in ("images", "metadata")
    ):
        raise MintError(f"{out_dir} is not empty and is not a drop of this config; choose a new --out")
    return False


def journal_chunk(journal: Path, ids: Sequence[int]) -> list[dict[str, Any]] | None:
    """The entries a chunk's journal file recorded, if it holds exactly these token ids."""
    entries = _read_json(journal / f"chunk-{ids[0]}.json")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return None
    return entries if [e.get("id") for e in entries] == list(ids) else None


def _numbered(entries: Iterable[Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    for entry in entries:
        try:
            yield int(entry["id"]), entry
        except (KeyError, TypeError, ValueError):
            continue


class FinishedEntries:
    """What a previous run finished, handed out one chunk at a time (never all at once): the
    chunk's journal file, else the entries of a finished manifest, read in step with the chunks.
    """

    def __init__(self, out_dir: Path, ident: dict[str, Any]) -> None:
        self.journal = out_dir / JOURNAL
        has_manifest = check_out_dir(out_dir, ident)
        self._stream = iter_array(out_dir / "manifest.json", "tokens") if has_manifest else None
        self._tokens = _numbered(self._stream or ())
        self._pending: tuple[int, dict[str, Any]] | None = None

    def take(self, ids: Sequence[int]) -> tuple[list[dict[str, Any] | None], bool]:
        """The chunk's recorded entries (None where there is none), and whether the journal has them."""
        recorded = journal_chunk(self.journal, ids)
        if recorded is not None:
            return list(recorded), True
        found: dict[int, dict[str, Any]] = {}
        while True:  # manifest tokens come in id order; skip to this chunk, stop after it
            if self._pending is None:
                self._pending = next(self._tokens, None)
                if self._pending is None:
                    break
            token_id, entry = self._pending
            if token_id > ids[-1]:
                break
            self._pending = None
            if token_id >= ids[0]:
                found[token_id] = entry
        return [found.get(i) for i in ids], False

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


def journal_entries(journal: Path, ids: Sequence[int], chunk: int) -> Iterator[dict[str, Any]]:
    """Every entry of a finished run, streamed back from its journal in id order."""
    for id_chunk in _chunks(ids, chunk):
        entries = journal_chunk(journal, id_chunk)
        if entries is None:
            raise MintError(f"{journal}: the journal of tokens {id_chunk[0]}.. vanished during the mint")
        yield from entries


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

    finished = FinishedEntries(out_dir, ident)  # refuses a folder that holds another drop
    _clean_temp_files(out_dir)
    journal = out_dir / JOURNAL
    if not (journal / "state.json").exists():
        write_bytes_atomic(journal / "state.json", stable_json(ident))
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "metadata").mkdir(parents=True, exist_ok=True)

    tally = DropTally(plan.order)
    rendered_count = 0
    done = 0
    try:
        for id_chunk in _chunks(ids, chunk):
            kept, journaled = finished.take(id_chunk)
            if all(e is not None and token_files_ok(out_dir, config, e, ctx) for e in kept):
                chunk_entries = [e for e in kept if e is not None]
                if not journaled:  # from the old manifest: journal it, the manifest is rewritten
                    write_bytes_atomic(journal / f"chunk-{id_chunk[0]}.json", stable_json(chunk_entries))
            else:
                chunk_entries = _render_and_write(out_dir, config, id_chunk, renderer, ctx)
                write_bytes_atomic(journal / f"chunk-{id_chunk[0]}.json", stable_json(chunk_entries))
                rendered_count += len(chunk_entries)
            for entry in chunk_entries:
                tally.add(entry)
            done += len(id_chunk)
            if on_progress:
                on_progress(done, len(ids))
    finally:
        finished.close()

    header = manifest_doc(config, fmt, card, renderer.profile(), plan, tally, shard)
    entries = functools.partial(journal_entries, journal, ids, chunk)
    if shard is None:
        result = finalize(out_dir, config, header, tally, entries)
    else:
        write_atomic(
            out_dir / "manifest.json", lambda write: dump_streamed(header, "tokens", entries(), write)
        )
        result = MintResult(out_dir, tally.tokens, "", out_dir / "manifest.json", None)
    for path in sorted(journal.glob("*")):
        path.unlink()
    journal.rmdir()
    result.rendered = rendered_count
    result.notes = list(plan.skipped)
    return result


def _render_and_write(
    out_dir: Path, config: CollectionConfig, ids: Sequence[int], renderer: Renderer, ctx: DropContext
) -> list[dict[str, Any]]:
    """Render a chunk and write its images and metadata (each atomically); returns its entries."""
    fresh = render_chunk(config, ids, renderer, ctx.plan)
    for entry, item in fresh:
        write_bytes_atomic(out_dir / "images" / f"{entry['id']}.png", item.png)
        write_bytes_atomic(
            out_dir / "metadata" / f"{entry['id']}.json", stable_json(ctx.metadata(config, entry))
        )
    return [e for e, _ in fresh]


def manifest_doc(
    config: CollectionConfig,
    fmt: str,
    card: dict[str, Any],
    profile: dict[str, Any],
    plan: TraitPlan,
    tally: DropTally,
    shard: Shard | None = None,
) -> dict[str, Any]:
    """The manifest without its tokens (config echo, model, render profile, provenance or shard);
    the token entries are streamed into it in id order when it is written.
    """
    doc: dict[str, Any] = {
        "format": MANIFEST_VERSION,
        "artctl_version": __version__,
        "collection": config.model_dump(mode="json"),
        "metadata_format": fmt,
        "contracts": CONTRACTS,
        "model": card,
        "render_profile": profile,
        "traits": {"active": plan.order, "skipped": plan.skipped},
    }
    if shard is None:
        doc["provenance"] = tally.provenance
    else:
        ids = shard.ids(config)
        doc["shard"] = {
            "index": shard.index,
            "count": shard.count,
            "first_id": ids.start,
            "stop_id": ids.stop,
        }
    return doc


def contact_sheet_png(out_dir: Path, ids: Sequence[Any], limit: int = CONTACT_SHEET_MAX) -> bytes:
    """A grid of the first tokens, read back from disk one at a time (memory stays flat)."""
    images = [decode_png((out_dir / "images" / f"{i}.png").read_bytes()) for i in ids[:limit]]
    buf = io.BytesIO()
    image_grid(np.stack(images), cols=min(8, len(images))).save(buf, format="PNG")
    return buf.getvalue()


EntriesFn = Callable[[], Iterator[dict[str, Any]]]  # streams the token entries again, in id order


def final_files(
    out_dir: Path, config: CollectionConfig, header: dict[str, Any], tally: DropTally, entries: EntriesFn
) -> dict[str, Fill]:
    """The drop-level files of a complete drop, each as a Fill that streams its bytes (mint and merge
    write them, verify hashes them). `header` is the manifest without its tokens.
    """
    model_sha = str(header["model"].get("sha256", ""))
    prov = header["provenance"]
    collection = collection_metadata(config, header["metadata_format"], prov, model_sha)
    return {
        "manifest.json": lambda write: dump_streamed(header, "tokens", entries(), write),
        "provenance.txt": constant((prov + "\n").encode("ascii")),
        "collection.json": constant(stable_json(collection)),
        "rarity.json": tally.rarity.write,
        "contact-sheet.png": lambda write: write(contact_sheet_png(out_dir, tally.sheet_ids)),
    }


def finalize(
    out_dir: Path, config: CollectionConfig, header: dict[str, Any], tally: DropTally, entries: EntriesFn
) -> MintResult:
    for name, fill in final_files(out_dir, config, header, tally, entries).items():
        write_atomic(out_dir / name, fill)
    return MintResult(
        out_dir,
        tally.tokens,
        header["provenance"],
        out_dir / "manifest.json",
        out_dir / "contact-sheet.png",
    )
