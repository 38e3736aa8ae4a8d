"""Atomic file writes: a reader (or a re-run after kill -9) sees the old file or the new one, never half."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only (0600); the final files get the mode an
# ordinary open() would give them (0644 under the usual umask), so a web server, another user or a
# container's non-root user can read a drop or a model.
_UMASK = _umask()
FILE_MODE = 0o666 & ~_UMASK
DIR_MODE = 0o777 & ~_UMASK


def publish_mode(fd: int) -> None:
    """Give a temp file (from mkstemp) the mode a normally created file would have."""
    os.fchmod(fd, FILE_MODE)


def write_atomic(
    path: Path, fill: Callable[[Callable[[bytes], object]], object], fsync: bool = False
) -> None:
    """Write a file piece by piece (`fill` gets the write function); readers see the old file or
    the whole new one, with the mode an ordinary open() would give it.

    fsync=True also survives power loss (models, checkpoints); drops skip it for speed, since a
    re-run verifies and redoes anything a crash left behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        publish_mode(fd)
        with os.fdopen(fd, "wb") as handle:
            fill(handle.write)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes, fsync: bool = False) -> None:
    write_atomic(path, lambda write: write(data), fsync=fsync)


def write_json_atomic(path: Path, doc: Any) -> None:
    """Stable JSON (sorted keys, 2-space indent, trailing newline): same document, same bytes."""
    write_bytes_atomic(path, (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())
