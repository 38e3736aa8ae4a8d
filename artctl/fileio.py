"""Atomic file writes: a reader (or a re-run after kill -9) sees the old file or the new one, never half."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, doc: Any) -> None:
    """Stable JSON (sorted keys, 2-space indent, trailing newline): same document, same bytes."""
    write_bytes_atomic(path, (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode())
