"""The drop-level files: manifest.json, provenance.txt, collection.json, rarity.json, contact sheet.

Each is a pure function of the config, the model card, the render profile and the token entries in
id order, streamed: per token only a few words stay in memory (rarity codes and scores), and the
provenance hash is updated as the tokens go by. Mint and merge write these files; verify hashes
what they should be and compares.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artctl import __version__
from artctl.cid import DirectoryTooLarge, cid_of_bytes, directory_cid
from artctl.collection import CollectionConfig
from artctl.delivery import native_pixels
from artctl.drops.layout import Layout
from artctl.drops.sugar_config import write_sugar_config
from artctl.fileio import write_atomic
from artctl.imaging import contact_sheet, image_grid
from artctl.jsonstream import Fill, Write, constant, dump_streamed, iter_array
from artctl.metadata import collection_metadata, stable_json
from artctl.rarity import RarityTally
from artctl.seeds import CONTRACTS, Provenance
from artctl.traits import TraitPlan

# v3: inputs stated once, label names per token. v4: the contact sheet spreads over the whole drop
# with token ids, and the default palette names colours by hue (artctl-colour-v2).
MANIFEST_VERSION = "artctl-manifest-v4"
LEGACY_SHEET_FORMATS = ("artctl-manifest-v2", "artctl-manifest-v3")  # sheet: the first 64, no ids
LEGACY_SHEET_MAX = 64
CONTACT_SHEET_MAX = 100  # 10 x 10 tiles


def sheet_positions(count: int, limit: int = CONTACT_SHEET_MAX) -> set[int]:
    """Which of `count` tokens (by position in id order) the contact sheet shows: all of a small
    drop, else `limit` spread evenly from the first to the last."""
    if count <= limit:
        return set(range(count))
    return {k * (count - 1) // (limit - 1) for k in range(limit)}


EntriesFn = Callable[[], Iterator[dict[str, Any]]]  # streams the token entries again, in id order


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


class DropTally:
    """What the drop-level files need from the tokens, gathered as the entries stream past in id
    order: the provenance hash, rarity codes and the ids of the contact sheet's tokens.
    """

    def __init__(self, trait_names: Sequence[str], count: int) -> None:
        self.rarity = RarityTally(trait_names)
        self.sheet_ids: list[Any] = []  # spread over the drop (manifest v4 on)
        self.legacy_sheet_ids: list[Any] = []  # the first 64 (older manifests)
        self._positions = sheet_positions(count)
        self._provenance = Provenance()

    @property
    def tokens(self) -> int:
        return self._provenance.count

    def add(self, entry: dict[str, Any]) -> None:
        self._provenance.add(str(entry.get("file_sha256", "0" * 64)))
        position = self._provenance.count - 1
        self.rarity.add(entry)
        if position in self._positions:
            self.sheet_ids.append(entry["id"])
        if len(self.legacy_sheet_ids) < LEGACY_SHEET_MAX:
            self.legacy_sheet_ids.append(entry["id"])

    @property
    def provenance(self) -> str:
        return self._provenance.hexdigest()


def directory_cids(out_dir: Path, layout: Layout, ids: range) -> dict[str, Any]:
    """The IPFS directory CID of each token folder, as `ipfs add -r --cid-version=1 FOLDER` gives
    it: after uploading images/, base_uri is ipfs://<images>/ (`artctl rebase --images-cid`), and
    the token URI base is ipfs://<metadata>/. Sugar layouts upload per file: none."""
    if layout.sugar:
        return {}
    out: dict[str, Any] = {}
    for folder, path_of in (("images", layout.image), ("metadata", layout.metadata)):
        try:
            out[folder] = directory_cid(path_of(out_dir, i) for i in ids)
        except DirectoryTooLarge as exc:
            out[folder] = None
            out["note"] = str(exc)
    return out


def manifest_doc(
    config: CollectionConfig,
    fmt: str,
    card: dict[str, Any],
    profile: dict[str, Any],
    plan: TraitPlan,
    tally: DropTally,
    shard: dict[str, int] | None = None,
    inputs: dict[str, Any] | None = None,
    directories: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest without its tokens (config echo, model, render profile, the inputs every token
    shares, provenance or shard); the token entries are streamed into it in id order when written.
    """
    doc: dict[str, Any] = {
        "format": MANIFEST_VERSION,
        "artctl_version": __version__,
        "collection": config.model_dump(mode="json"),
        "metadata_format": fmt,
        "contracts": {**CONTRACTS, "colour": plan.colour},
        "model": card,
        "render_profile": profile,
        "inputs": inputs or {},
        "traits": {"active": plan.order, "skipped": plan.skipped},
    }
    if shard is None:
        doc["provenance"] = tally.provenance
        doc["ipfs_directories"] = directories or {}
    else:
        doc["shard"] = shard
    return doc


def contact_sheet_png(
    out_dir: Path, ids: Sequence[Any], layout: Layout, legacy: bool = False, scale: int = 1
) -> bytes:
    """Up to 100 tokens spread over the drop, each at 96 px or more with its id under it (a legacy
    drop's sheet: its first 64 tokens at 1x), read back from disk one at a time. Upscaled or SVG
    files are read back to their native pixels first, so the sheet is the same at every
    image_scale, and zoomed by nearest neighbour only (pixel art stays crisp)."""
    images = np.stack([native_pixels(layout.image(out_dir, i).read_bytes(), scale, layout.ext) for i in ids])
    buf = io.BytesIO()
    if legacy:
        image_grid(images, cols=min(8, len(images))).save(buf, format="PNG")
    else:
        contact_sheet(images, [int(i) for i in ids]).save(buf, format="PNG")
    return buf.getvalue()


def final_files(
    out_dir: Path, config: CollectionConfig, header: dict[str, Any], tally: DropTally, entries: EntriesFn
) -> dict[str, Fill]:
    """The drop-level files of a complete drop, each as a Fill that streams its bytes (mint and merge
    write them, verify hashes them). `header` is the manifest without its tokens.
    """
    model_sha = str(header["model"].get("sha256", ""))
    prov = header["provenance"]
    fmt = header["metadata_format"]
    layout = Layout.of(fmt, config)
    legacy = header.get("format") in LEGACY_SHEET_FORMATS
    sheet_png: list[bytes] = []  # built once: the contact sheet and, with ipfs = true, its CID

    def sheet_bytes() -> bytes:
        if not sheet_png:
            ids = tally.legacy_sheet_ids if legacy else tally.sheet_ids
            sheet_png.append(contact_sheet_png(out_dir, ids, layout, legacy, config.image_scale))
        return sheet_png[0]

    def sheet(write: Write) -> None:
        write(sheet_bytes())

    def collection(write: Write) -> None:
        # With ipfs = true every URI is a file's own CID: an unset collection image is the sheet's.
        image = None
        if config.ipfs and not config.has_collection_image:
            image = f"ipfs://{cid_of_bytes(sheet_bytes())}"
        write(stable_json(collection_metadata(config, fmt, prov, model_sha, image)))

    files: dict[str, Fill] = {
        "manifest.json": lambda write: dump_streamed(header, "tokens", entries(), write),
        "provenance.txt": constant((prov + "\n").encode("ascii")),
        layout.collection_json: collection,
        "rarity.json": tally.rarity.write,
        "contact-sheet.png": sheet,
    }
    if layout.sugar:  # the collection NFT's image: the drop's contact sheet
        files["assets/collection.png"] = sheet
    return files


def finalize(
    out_dir: Path, config: CollectionConfig, header: dict[str, Any], tally: DropTally, entries: EntriesFn
) -> MintResult:
    """Write the drop-level files of a complete drop, each atomically (and Sugar's config.json
    beside a Metaplex drop's assets/, keeping what the user filled in)."""
    for name, fill in final_files(out_dir, config, header, tally, entries).items():
        write_atomic(out_dir / name, fill)
    if Layout.of(header["metadata_format"], config).sugar:
        write_sugar_config(out_dir, config)
    return MintResult(
        out_dir,
        tally.tokens,
        header["provenance"],
        out_dir / "manifest.json",
        out_dir / "contact-sheet.png",
    )


def write_shard_manifest(out_dir: Path, header: dict[str, Any], entries: EntriesFn) -> MintResult:
    """A shard has no drop-level files but its manifest; `artctl merge` writes the rest."""
    write_atomic(out_dir / "manifest.json", lambda write: dump_streamed(header, "tokens", entries(), write))
    tokens = header["shard"]["stop_id"] - header["shard"]["first_id"]
    return MintResult(out_dir, tokens, "", out_dir / "manifest.json", None)
