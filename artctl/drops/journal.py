"""Crash safety for long mints and merges: a journal beside the drop, trusted only after checking.

Tokens are rendered in chunks; a chunk's images and metadata are written atomically, then a journal
file for the chunk (`.artctl-mint/chunk-{first id}.json`). A re-run trusts a chunk only if its
journal exists and every file on disk still hashes to it; anything else is rendered again. So
`kill -9` at any moment, then a re-run, gives the same bytes as one uninterrupted run.

A folder is only ever touched when it holds this drop (same config, model, format and shard), a
drop in progress of it, or nothing: a wrong --out never overwrites anybody's files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from artctl.collection import CollectionConfig
from artctl.drops import MintError
from artctl.drops.layout import Layout
from artctl.drops.tokens import chunks
from artctl.fileio import write_bytes_atomic
from artctl.jsonstream import iter_array, read_without
from artctl.metadata import stable_json

JOURNAL = ".artctl-mint"
# What artctl's atomic writers leave when killed: mkstemp names, ".{name}.{8 random chars}.tmp".
_OUR_TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def identity(
    config: CollectionConfig, model_sha256: str, fmt: str, shard: tuple[int, int] | None = None
) -> dict[str, Any]:
    """What decides a drop's bytes; a folder holding another identity is never touched."""
    return {
        "collection": config.model_dump(mode="json"),
        "model_sha256": model_sha256,
        "metadata_format": fmt,
        "shard": None if shard is None else list(shard),
    }


def manifest_identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """The identity a finished manifest records."""
    shard = manifest.get("shard")
    return {
        "collection": manifest.get("collection"),
        "model_sha256": (manifest.get("model") or {}).get("sha256", ""),
        "metadata_format": manifest.get("metadata_format"),
        "shard": None if shard is None else [shard["index"], shard["count"]],
    }


def _without_uris(ident: dict[str, Any]) -> dict[str, Any]:
    collection = {
        k: v for k, v in (ident.get("collection") or {}).items() if k not in ("base_uri", "ipfs", "image")
    }
    return {**ident, "collection": collection}


def read_manifest_head(folder: Path, what: str) -> Any:
    """A drop's or shard's manifest without its token entries (stream those when needed).

    `what` completes "is the ... finished?" in the error for a folder without a manifest.
    """
    try:
        return read_without(Path(folder) / "manifest.json", "tokens")
    except FileNotFoundError:
        raise MintError(f"{folder}: no manifest.json (is the {what} finished?)") from None
    except (OSError, ValueError) as exc:
        raise MintError(f"{folder}/manifest.json: cannot read it ({exc})") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _finished_manifest(path: Path) -> dict[str, Any] | None:
    """A finished manifest without its tokens (the whole file is parsed, one entry at a time)."""
    try:
        return read_without(path, "tokens") if path.exists() else None
    except (OSError, ValueError):
        return None


class Journal:
    """The journal folder of one drop being written into `out_dir`."""

    def __init__(self, out_dir: Path, layout: Layout) -> None:
        self.out_dir = Path(out_dir)
        self.layout = layout
        self.folder = self.out_dir / JOURNAL

    def claim(self, ident: dict[str, Any], repair_ids: range | None = None) -> bool:
        """Refuse a folder holding another drop; record `ident`; remove our own half-written files.

        True if the folder holds a finished manifest of this drop, to resume from. With `repair_ids`
        a folder without manifest and journal is accepted when it holds nothing but token files of
        these ids (a drop whose manifest was lost); mint then checks every file against a render.
        """
        state = _read_json(self.folder / "state.json") if self.folder.is_dir() else None
        manifest_path = self.out_dir / "manifest.json"
        manifest = _finished_manifest(manifest_path)
        if manifest is not None:
            found = manifest_identity(manifest)
            if found != ident and _without_uris(found) == _without_uris(ident):
                raise MintError(
                    f"{self.out_dir} holds this drop with other image URIs (base_uri / ipfs / image); "
                    f"change them without rendering again: artctl rebase {self.out_dir} --base-uri URI "
                    "(or --images-cid)"
                )
            if found != ident:
                raise MintError(
                    f"{self.out_dir} already holds a different drop (its manifest has another config, "
                    "model, format or shard); choose a new --out"
                )
        elif state is not None:
            if state != ident:
                raise MintError(
                    f"{self.out_dir} holds an unfinished mint of a different config or model; use a new --out"
                )
        elif manifest_path.exists() or any(
            (self.out_dir / sub).is_dir() and any((self.out_dir / sub).iterdir())
            for sub in self.layout.folders
        ):
            strays = None if repair_ids is None else self._strays(repair_ids)
            if strays is None or strays or manifest_path.exists():
                why = f" (it also holds {strays[0]})" if strays else ""
                raise MintError(
                    f"{self.out_dir} is not empty and is not a drop of this config{why}; choose a new --out "
                    "(or, for this drop with its manifest lost, add --repair)"
                )
        self._clean_temp_files()
        if not (self.folder / "state.json").exists():
            write_bytes_atomic(self.folder / "state.json", stable_json(ident))
        for sub in self.layout.folders:
            (self.out_dir / sub).mkdir(parents=True, exist_ok=True)
        return manifest is not None

    def _has_files(self, sub: str) -> bool:
        folder = self.out_dir / sub
        return folder.is_dir() and any(folder.iterdir())

    def _strays(self, ids: range) -> list[str]:
        """Files in images/ and metadata/ that are not token files of `ids` (nor our temporaries)."""
        strays = []
        for sub, suffix in (("images", f".{self.layout.ext}"), ("metadata", ".json")):
            folder = self.out_dir / sub
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                stem = path.name.removesuffix(suffix)
                ours = (
                    path.name.endswith(suffix)
                    and stem.isdigit()
                    and str(int(stem)) == stem
                    and int(stem) in ids
                )
                if not ours and not _OUR_TEMP.match(path.name):
                    strays.append(f"{sub}/{path.name}")
        return strays

    def _clean_temp_files(self) -> None:
        """Remove half-written temporaries a killed run of ours left behind, and nothing else."""
        for folder in (self.out_dir, *(self.out_dir / sub for sub in self.layout.folders), self.folder):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    if _OUR_TEMP.match(tmp.name):
                        tmp.unlink(missing_ok=True)

    def record(self, ids: Sequence[int], entries: list[dict[str, Any]]) -> None:
        write_bytes_atomic(self.folder / f"chunk-{ids[0]}.json", stable_json(entries))

    def chunk(self, ids: Sequence[int]) -> list[dict[str, Any]] | None:
        """The entries a chunk's journal file recorded, if it holds exactly these token ids."""
        entries = _read_json(self.folder / f"chunk-{ids[0]}.json")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            return None
        return entries if [e.get("id") for e in entries] == list(ids) else None

    def entries(self, ids: Sequence[int], size: int) -> Iterator[dict[str, Any]]:
        """Every entry of a finished run, streamed back from the journal in id order."""
        for id_chunk in chunks(ids, size):
            found = self.chunk(id_chunk)
            if found is None:
                raise MintError(
                    f"{self.folder}: the journal of tokens {id_chunk[0]}.. vanished during the mint"
                )
            yield from found

    def remove(self) -> None:
        """The drop is complete: the journal has done its job."""
        for path in sorted(self.folder.glob("*")):
            path.unlink()
        self.folder.rmdir()


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

    def __init__(self, journal: Journal, has_manifest: bool) -> None:
        self.journal = journal
        manifest = journal.out_dir / "manifest.json"
        self._stream = iter_array(manifest, "tokens") if has_manifest else None
        self._tokens = _numbered(self._stream or ())
        self._pending: tuple[int, dict[str, Any]] | None = None

    def take(self, ids: Sequence[int]) -> tuple[list[dict[str, Any] | None], bool]:
        """The chunk's recorded entries (None where there is none), and whether the journal has them."""
        recorded = self.journal.chunk(ids)
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
