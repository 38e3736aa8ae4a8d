"""The Nouns data set: artctl's own decoder against the reference renderer, and `artctl data nouns`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from artctl_trainer.nouns import TRAITS, draw_choices, load_art

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "tests" / "nouns"
ASSETS = REFERENCE / "node_modules" / "@nouns" / "assets"
RECT = re.compile(r"<rect ([^>]*?)/?>")
ATTR = re.compile(r'(\w[\w-]*)="([^"]*)"')


def _reference_ready() -> None:
    if not (REFERENCE / "node_modules" / "@nouns" / "sdk").is_dir() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("tests/nouns/node_modules is missing: `make test` installs it with npm ci")
        pytest.skip("the reference renderer is not installed (cd tests/nouns && npm ci)")


def svg_pixels(svg: str, scale: int = 10, size: int = 32) -> np.ndarray:
    """The RGB pixels an SVG of axis-aligned rects at `scale` paints, read back on the 32 px grid."""
    out = np.zeros((size, size, 3), dtype=np.int32) - 1
    for match in RECT.finditer(svg):
        attrs = dict(ATTR.findall(match.group(1)))
        colour = attrs["fill"].lstrip("#")
        rgb = [int(colour[i : i + 2], 16) for i in (0, 2, 4)]
        if attrs["width"] == "100%":
            out[:, :] = rgb
            continue
        x, y = int(attrs["x"]) // scale, int(attrs["y"]) // scale
        w, h = int(attrs["width"]) // scale, int(attrs["height"]) // scale
        for v in (attrs["x"], attrs["y"], attrs["width"], attrs["height"]):
            assert int(v) % scale == 0, f"rect off the {scale} px grid: {attrs}"
        out[y : y + h, x : x + w] = rgb
    return out


def test_decoder_matches_the_reference_renderer_on_random_compositions() -> None:
    """200 random compositions, plus every part of every trait at least once: 0 differing pixels."""
    _reference_ready()
    art = load_art(ASSETS)
    counts = art.counts()
    choices = draw_choices(art, 200, seed=2026)
    longest = max(counts[t] for t in TRAITS)
    for i in range(longest):  # each part shows up in one composition or another
        choices.append({t: i % counts[t] for t in TRAITS})
    order = [[c["body"], c["accessory"], c["head"], c["glasses"], c["background"]] for c in choices]
    proc = subprocess.run(
        ["node", "render-svg.js"],
        input=json.dumps(order),
        capture_output=True,
        text=True,
        cwd=REFERENCE,
        timeout=120,
        check=True,
    )
    svgs = json.loads(proc.stdout)
    assert len(svgs) == len(choices) > 200
    differing = 0
    for choice, svg in zip(choices, svgs, strict=True):
        ours = art.compose(choice).astype(np.int32)
        theirs = svg_pixels(svg)
        assert (theirs >= 0).all(), "the reference left pixels unpainted"
        differing += int((ours != theirs).any(axis=2).sum())
    assert differing == 0
    assert 4_000 < len(svgs[0]) < 12_000  # an SVG of one Noun is a few KB


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "artctl", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )


def test_data_nouns_writes_labelled_images_parts_and_palette(tmp_path: Path) -> None:
    _reference_ready()
    out = tmp_path / "nouns"
    proc = _cli("data", "nouns", "--out", str(out), "--n", "60", "--seed", "3", "--assets", str(ASSETS))
    assert proc.returncode == 0, proc.stderr
    art = load_art(ASSETS)
    records = [json.loads(line) for line in (out / "parts.jsonl").read_text().splitlines()]
    assert len(records) == 60
    palette = json.loads((out / "palette.json").read_text())
    assert palette["version"] == "artctl-palette-v1"
    allowed = {tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in palette["colors"]}
    assert len(allowed) == len(palette["colors"]) <= 256
    for record in records:
        path = out / record["file"]
        assert path.parent.name == art.parts["glasses"][record["glasses"]].name == record["glasses_name"]
        pixels = np.asarray(Image.open(path))
        assert pixels.shape == (32, 32, 3)  # opaque art: RGB
        assert np.array_equal(pixels, art.compose({t: record[t] for t in TRAITS}))
        assert {tuple(p) for p in pixels.reshape(-1, 3).tolist()} <= allowed
    # The same seed gives the same bytes; another seed another draw.
    again = tmp_path / "again"
    assert (
        _cli(
            "data", "nouns", "--out", str(again), "--n", "60", "--seed", "3", "--assets", str(ASSETS)
        ).returncode
        == 0
    )
    assert (again / "parts.jsonl").read_bytes() == (out / "parts.jsonl").read_bytes()
    first = records[0]["file"]
    assert (again / first).read_bytes() == (out / first).read_bytes()


def test_data_nouns_flat_and_by_background(tmp_path: Path) -> None:
    _reference_ready()
    flat = tmp_path / "flat"
    assert (
        _cli(
            "data", "nouns", "--out", str(flat), "--n", "9", "--labels", "none", "--assets", str(ASSETS)
        ).returncode
        == 0
    )
    assert sorted(p.name for p in flat.iterdir() if p.is_dir()) == []
    assert len(list(flat.glob("*.png"))) == 9
    bg = tmp_path / "bg"
    assert (
        _cli(
            "data", "nouns", "--out", str(bg), "--n", "40", "--labels", "background", "--assets", str(ASSETS)
        ).returncode
        == 0
    )
    assert sorted(p.name for p in bg.iterdir() if p.is_dir()) == ["cool", "warm"]


def test_data_nouns_without_npm_says_so_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = _cli("data", "nouns", "--out", str(tmp_path / "x"), "--n", "4", env=env)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "npm is not installed" in lines[0], proc.stderr
    assert not (tmp_path / "x").exists()


def test_data_nouns_refuses_bad_options(tmp_path: Path) -> None:
    for args, message in (
        (["--labels", "hats"], "--labels must be one of"),
        (["--size", "64"], "--size must be 32"),
        (["--n", "0"], "--n must be at least 1"),
    ):
        proc = _cli("data", "nouns", "--out", str(tmp_path / "x"), *args, "--assets", str(ASSETS))
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr
