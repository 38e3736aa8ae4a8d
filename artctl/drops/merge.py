"""Join the shards of a drop (`artctl mint --shard i/n`, e.g. from a Kubernetes Indexed Job) into one
drop whose manifest, provenance and every other file equal a single uninterrupted run's.

The shard manifests are streamed, one token entry at a time, so memory stays flat.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from artctl.collection import ConfigError, parse_collection
from artctl.drops import MintError
from artctl.drops.files import DropTally, MintResult, directory_cids, finalize, manifest_doc
from artctl.drops.journal import Journal, identity, read_manifest_head
from artctl.drops.mint import ProgressFn, placeholder_notes
from artctl.drops.tokens import DropContext
from artctl.fileio import write_bytes_atomic
from artctl.jsonstream import iter_array
from artctl.metadata import stable_json
from artctl.traits import COLOUR_V1, TraitPlan

_SAME = (
    "format",
    "collection",
    "metadata_format",
    "contracts",
    "model",
    "render_profile",
    "inputs",
    "traits",
)


def _load_shard(path: Path) -> dict[str, Any]:
    """A shard's manifest without its tokens (those are streamed when needed)."""
    doc = read_manifest_head(path, "shard")
    if not isinstance(doc, dict) or "shard" not in doc:
        raise MintError(f"{path}/manifest.json is not a shard manifest (mint it with --shard i/n)")
    return doc


def _shard_entries(paths: Sequence[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        yield from iter_array(path / "manifest.json", "tokens")


def _copy_checked(src: Path, dst: Path, expected: bytes | None, sha256: str | None) -> None:
    data = src.read_bytes()
    if expected is not None and data != expected:
        raise MintError(f"{src} differs from what its shard manifest says; re-run that shard")
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise MintError(f"{src}: SHA-256 does not match its shard manifest; re-run that shard")
    if not dst.exists() or dst.read_bytes() != data:
        write_bytes_atomic(dst, data)


def _ordered_shards(shard_dirs: Sequence[Path]) -> list[tuple[dict[str, Any], Path]]:
    """The shards by index, refused unless they belong together and cover the collection once."""
    if not shard_dirs:
        raise MintError("give the shard folders to merge")
    shards = sorted(
        ((_load_shard(Path(d)), Path(d)) for d in shard_dirs), key=lambda s: s[0]["shard"]["index"]
    )
    first = shards[0][0]
    for doc, path in shards[1:]:
        for key in _SAME:
            if doc.get(key) != first.get(key):
                raise MintError(
                    f"{path}: its {key} differs from {shards[0][1]}'s; these shards are not one drop"
                )
    count = first["shard"]["count"]
    indices = [doc["shard"]["index"] for doc, _ in shards]
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - set(indices))
        dupes = sorted({i for i in indices if indices.count(i) > 1})
        raise MintError(f"shards do not cover 0..{count - 1} once (missing {missing}, repeated {dupes})")
    return shards


def merge(out_dir: Path, shard_dirs: Sequence[Path], on_progress: ProgressFn | None = None) -> MintResult:
    """Check that the shards belong together and cover the collection once, then join them."""
    shards = _ordered_shards(shard_dirs)
    first = shards[0][0]
    out_dir = Path(out_dir)
    if out_dir.resolve() in {p.resolve() for _, p in shards}:
        raise MintError("merge into a new folder, not into one of the shards")
    try:
        config = parse_collection(first["collection"], f"{shards[0][1]}/manifest.json collection")
    except ConfigError as exc:
        raise MintError(str(exc)) from None
    card = first["model"]
    model_sha = str(card.get("sha256", ""))
    fmt = first["metadata_format"]
    plan = TraitPlan(
        order=list(first["traits"]["active"]),
        skipped=list(first["traits"]["skipped"]),
        colour=(first.get("contracts") or {}).get("colour", COLOUR_V1),
    )
    ctx = DropContext(config, plan, model_sha, fmt, dict(first.get("inputs") or {}))
    journal = Journal(out_dir, ctx.layout)
    journal.claim(identity(config, model_sha, fmt))  # refuses a folder holding another drop
    tally = DropTally(plan.order, len(config.token_ids()))
    want = iter(config.token_ids())
    in_order, copied = True, 0
    for _, path in shards:
        for entry in iter_array(path / "manifest.json", "tokens"):
            token = entry["id"]
            layout = ctx.layout
            _copy_checked(layout.image(path, token), layout.image(out_dir, token), None, entry["file_sha256"])
            expected = stable_json(ctx.metadata(entry))
            _copy_checked(layout.metadata(path, token), layout.metadata(out_dir, token), expected, None)
            copied += 1
            in_order = in_order and token == next(want, None)
            if in_order:
                tally.add(entry)
        if on_progress:
            on_progress(copied, config.size)
    if not in_order or next(want, None) is not None:
        raise MintError("the shards' tokens are not exactly the collection's token ids in order")
    paths = [path for _, path in shards]
    directories = directory_cids(out_dir, ctx.layout, config.token_ids())
    header = manifest_doc(
        config, fmt, card, first["render_profile"], plan, tally, None, ctx.inputs, directories
    )
    result = finalize(out_dir, config, header, tally, lambda: _shard_entries(paths))
    journal.remove()
    result.notes = list(plan.skipped) + placeholder_notes(config, fmt, directories)
    return result
