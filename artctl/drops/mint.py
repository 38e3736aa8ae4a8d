"""Mint a collection: every token's image, metadata and manifest entry, re-derivable from the config.

No timestamps: the same config and model give the same bytes. A re-run resumes whatever a past run
finished (artctl.drops.journal), and memory stays flat whatever the size: entries live in the
journal, not in a list, and the drop-level files are written by streaming them back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from artctl.cid import cid_of_bytes
from artctl.collection import CollectionConfig
from artctl.drops.files import (
    DropTally,
    MintResult,
    directory_cids,
    finalize,
    manifest_doc,
    write_shard_manifest,
)
from artctl.drops.journal import FinishedEntries, Journal, identity
from artctl.drops.render import Renderer
from artctl.drops.shard import Shard
from artctl.drops.sugar_config import upload_note
from artctl.drops.tokens import (
    CHUNK,
    DropContext,
    chunks,
    prepare_curation,
    render_chunk,
    render_inputs,
    token_files_ok,
    write_token_files,
)
from artctl.metadata import check_format
from artctl.traits import plan_traits

ProgressFn = Callable[[int, int], None]  # (tokens done, tokens total)


def mint(
    config: CollectionConfig,
    out_dir: Path,
    renderer: Renderer,
    fmt: str = "erc721",
    shard: Shard | None = None,
    on_progress: ProgressFn | None = None,
    chunk: int = CHUNK,
    repair: bool = False,
) -> MintResult:
    """Render the collection (or one shard of it) into out_dir, resuming whatever a past run finished.

    repair: accept a folder of this drop's token files without manifest or journal (the manifest was
    lost); every token is rendered again, and the files there must equal the renders.
    """
    out_dir = Path(out_dir)
    check_format(config, fmt)
    card = renderer.model_card()
    model_sha = str(card.get("sha256", ""))
    plan = plan_traits(config, card)
    ctx = DropContext(config, plan, model_sha, fmt, render_inputs(config, card))
    prepare_curation(ctx, card)
    ids = shard.ids(config) if shard else config.token_ids()
    journal = Journal(out_dir, ctx.layout)
    part = None if shard is None else (shard.index, shard.count)
    has_manifest = journal.claim(identity(config, model_sha, fmt, part), ids if repair else None)
    finished = FinishedEntries(journal, has_manifest)

    tally = DropTally(plan.order, len(config.token_ids()))
    rendered = 0
    try:
        for id_chunk in chunks(ids, chunk):
            kept, journaled = finished.take(id_chunk)
            if all(e is not None and token_files_ok(out_dir, ctx, e) for e in kept):
                entries = [e for e in kept if e is not None]
                if not journaled:  # from the old manifest: journal it, the manifest is rewritten
                    journal.record(id_chunk, entries)
            else:
                fresh = render_chunk(ctx, id_chunk, renderer)
                for entry, item in fresh:
                    write_token_files(out_dir, ctx, entry, item.file or item.png, keep_existing=repair)
                entries = [e for e, _ in fresh]
                journal.record(id_chunk, entries)
                rendered += len(entries)
            for entry in entries:
                tally.add(entry)
            if on_progress:
                on_progress(tally.tokens, len(ids))
    finally:
        finished.close()

    shard_doc = shard.describe(config) if shard else None
    directories = None if shard else directory_cids(out_dir, ctx.layout, ids)
    header = manifest_doc(
        config, fmt, card, renderer.profile(), plan, tally, shard_doc, ctx.inputs, directories
    )
    streamed = functools.partial(journal.entries, ids, chunk)
    if shard is None:
        result = finalize(out_dir, config, header, tally, streamed)
    else:
        result = write_shard_manifest(out_dir, header, streamed)
    journal.remove()
    result.rendered = rendered
    result.notes = list(plan.skipped) + placeholder_notes(config, fmt, directories)
    if shard is None:
        result.notes += publishing_notes(out_dir, config, fmt)
    return result


def placeholder_notes(config: CollectionConfig, fmt: str, directories: dict[str, Any] | None) -> list[str]:
    """A word when token metadata points at a placeholder instead of real image URIs."""
    first = f"{config.start_index}.{config.image_format}"
    base = config.image_uri(config.start_index, "").removesuffix(first)
    if fmt != "erc721" or config.ipfs or "<" not in base:
        return []
    images = (directories or {}).get("images")
    where = f" (its directory CID will be {images})" if images else ""
    return [
        f"image URIs use the placeholder {base!r}: upload images/{where}, then "
        "`artctl rebase DROP --images-cid` points every token at it, without rendering again"
    ]


def publishing_notes(out_dir: Path, config: CollectionConfig, fmt: str) -> list[str]:
    """What is left to do before the drop can be published: an unset collection image (ERC-721
    without ipfs = true), or Sugar's upload settings (Metaplex)."""
    if fmt == "metaplex":
        note = upload_note(out_dir)
        return [note] if note else []
    if config.ipfs or config.has_collection_image:
        return []
    cid = cid_of_bytes((out_dir / "contact-sheet.png").read_bytes())
    what = f"is the placeholder {config.image!r}" if config.image else "is empty"
    return [
        f"collection.json's image {what}: set image in the config to your collection image, or "
        f"`artctl rebase DROP` fills in the contact sheet's own CID (ipfs://{cid}; upload contact-sheet.png)"
    ]
