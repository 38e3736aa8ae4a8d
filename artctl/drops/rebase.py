"""Point a finished drop's image URIs somewhere new, without rendering anything again.

The usual IPFS flow: mint (image URIs hold a placeholder, or an old gateway), upload images/, then
rebase onto the folder's CID, which the manifest already records (`--images-cid`), then upload
metadata/. Only the image URIs change: every metadata file, the manifest's `image` fields and its
collection echo (base_uri), collection.json and the metadata folder's CID. A collection image
still unset (empty or a <placeholder>) becomes the contact sheet's own CID, ipfs://<CID of
contact-sheet.png>. Images, pixels, provenance and rarity stay as they are. Re-running a rebase that
was interrupted finishes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from artctl.cid import cid_of_bytes
from artctl.collection import base_uri_problem
from artctl.drops import MintError
from artctl.drops.files import DropTally, MintResult, directory_cids, finalize
from artctl.drops.tokens import DropContext
from artctl.drops.verify import load_manifest
from artctl.fileio import write_bytes_atomic
from artctl.jsonstream import iter_array
from artctl.metadata import stable_json
from artctl.traits import TraitPlan


def rebase(drop: Path, base_uri: str | None = None, images_cid: bool = False) -> MintResult:
    """Rewrite the drop's image URIs as base_uri + "{id}.png" (or .svg; or ipfs://<images CID>/)."""
    drop = Path(drop)
    doc, config = load_manifest(drop)
    if doc.get("shard"):
        raise MintError(f"{drop} is a shard: rebase the merged drop")
    if doc.get("metadata_format") != "erc721":
        raise MintError(f"{drop}: a Metaplex drop names its images by file; Sugar writes the links on upload")
    if images_cid == (base_uri is not None):
        raise MintError("give either --base-uri URI or --images-cid")
    if images_cid:
        cid = (doc.get("ipfs_directories") or {}).get("images")
        if not cid:
            raise MintError(f"{drop}/manifest.json records no CID of images/ (an older or very large drop)")
        base_uri = f"ipfs://{cid}/"
    assert base_uri is not None
    problem = base_uri_problem(base_uri)
    if problem:
        raise MintError(f"--base-uri: {problem}")
    update: dict[str, Any] = {"base_uri": base_uri, "ipfs": False}
    if not config.has_collection_image:
        try:
            update["image"] = f"ipfs://{cid_of_bytes((drop / 'contact-sheet.png').read_bytes())}"
        except OSError as exc:
            raise MintError(
                f"{drop}/contact-sheet.png, the collection image, cannot be read ({exc})"
            ) from None
    rebased = config.model_copy(update=update)
    plan = TraitPlan(order=list(doc["traits"]["active"]), skipped=list(doc["traits"]["skipped"]))
    ctx = DropContext(
        rebased, plan, str(doc["model"].get("sha256", "")), "erc721", dict(doc.get("inputs") or {})
    )
    manifest = drop / "manifest.json"

    def entries() -> Iterator[dict[str, Any]]:
        for entry in iter_array(manifest, "tokens"):
            yield {**entry, "image": ctx.layout.image_uri(rebased, int(entry["id"]), str(entry["cid"]))}

    tally = DropTally(plan.order, len(rebased.token_ids()))
    for entry in entries():
        write_bytes_atomic(ctx.layout.metadata(drop, entry["id"]), stable_json(ctx.metadata(entry)))
        tally.add(entry)
    header = {
        **doc,
        "collection": rebased.model_dump(mode="json"),
        "ipfs_directories": directory_cids(drop, ctx.layout, rebased.token_ids()),
    }
    # The new manifest streams its entries from the old one: written beside it, then swapped in.
    return finalize(drop, rebased, header, tally, entries)
