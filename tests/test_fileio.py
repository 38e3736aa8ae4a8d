"""Atomic writes leave readable files: the mode an ordinary open() would give, not mkstemp's 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from artctl.fileio import write_bytes_atomic, write_json_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_writes_get_the_normal_file_mode(tmp_path: Path) -> None:
    reference = tmp_path / "plain"
    reference.write_bytes(b"x")  # created the ordinary way, under the same umask
    write_bytes_atomic(tmp_path / "a.png", b"png")
    write_json_atomic(tmp_path / "b.json", {"k": 1})
    assert _mode(tmp_path / "a.png") == _mode(reference) == _mode(tmp_path / "b.json")
    assert _mode(tmp_path / "a.png") & stat.S_IRGRP, "group/others could not read a published file"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_exported_models_are_readable_by_others(tiny_model: Path) -> None:
    assert _mode(tiny_model) & stat.S_IROTH and _mode(tiny_model.with_suffix(".json")) & stat.S_IROTH


def test_streamed_writes_get_the_normal_file_mode_too(tmp_path: Path) -> None:
    """manifest.json and rarity.json are written piece by piece, through the same writer."""
    from artctl.fileio import write_atomic

    reference = tmp_path / "plain"
    reference.write_bytes(b"x")
    write_atomic(tmp_path / "manifest.json", lambda write: (write(b"{"), write(b"}")))
    assert (tmp_path / "manifest.json").read_bytes() == b"{}"
    assert _mode(tmp_path / "manifest.json") == _mode(reference)
