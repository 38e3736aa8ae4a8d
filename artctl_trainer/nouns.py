"""A pixel-art training set from the Nouns art (CC0): random compositions of its traits, 32 x 32.

The art ships in the npm package `@nouns/assets` as run-length-encoded parts plus one palette. This
module reads that format with its own decoder (the packages' code is GPL; their data is CC0) and
composes parts in the on-chain order: background, body, accessory, head, glasses.

The encoding of one part, as hex bytes: a palette number (always 0: there is one palette), the part's
bounds top, right, bottom, left (right exclusive), then (run length, colour index) pairs that fill the
bounds row by row, left to right, wrapping at `right`. Colour index 0 is transparent.

The package is fetched with `npm pack` at a pinned version into a cache and checked against its
pinned SHA-1 (the registry's shasum), so every machine composes from the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ASSETS_PACKAGE = "@nouns/assets"
ASSETS_VERSION = "0.10.0"
ASSETS_SHA1 = "31680f84f245cbfd6b4727c9990f5df1fe6245a1"  # the registry's dist.shasum of the tarball
SIZE = 32
TRAITS = ("background", "body", "accessory", "head", "glasses")  # the on-chain drawing order
IMAGE_KEYS = {"body": "bodies", "accessory": "accessories", "head": "heads", "glasses": "glasses"}
BACKGROUND_NAMES = ("cool", "warm")  # Nouns' names for its two background colours
LABEL_CHOICES = (*TRAITS, "none")


class NounsAssetsError(RuntimeError):
    """The Nouns art could not be fetched or read (npm missing, registry unreachable, bad file)."""


@dataclass(frozen=True)
class Part:
    """One decoded part: its name, RGBA pixels [32, 32, 4] (alpha 0 where transparent) and mask."""

    name: str
    rgba: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.rgba[..., 3] > 0


def hex_rgb(value: str) -> tuple[int, int, int]:
    value = value.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def decode_part(data: str, palette: list[str], size: int = SIZE) -> np.ndarray:
    """RGBA [size, size, 4] uint8 of one run-length-encoded part (transparent outside its runs)."""
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data)
    if len(raw) < 5 or (len(raw) - 5) % 2:
        raise NounsAssetsError(f"a part's data has {len(raw)} bytes: not the Nouns run-length format")
    top, right, bottom, left = raw[1], raw[2], raw[3], raw[4]
    out = np.zeros((size, size, 4), dtype=np.uint8)
    if len(raw) == 5:  # an empty part (e.g. accessory-none): bounds 0 and no runs
        return out
    if not (left < right <= size and top <= bottom < size):
        raise NounsAssetsError(f"a part's bounds ({top}, {right}, {bottom}, {left}) do not fit {size} px")
    x, y = left, top
    for i in range(5, len(raw), 2):
        length, colour = raw[i], raw[i + 1]
        while length:
            if y >= size:
                raise NounsAssetsError("a part's runs go past its bounds")
            take = min(length, right - x)
            if colour:
                out[y, x : x + take, :3] = hex_rgb(palette[colour])
                out[y, x : x + take, 3] = 255
            x, length = x + take, length - take
            if x == right:
                x, y = left, y + 1
    return out


@dataclass
class NounsArt:
    """The decoded art: parts per trait (backgrounds as solid parts) and every colour it uses."""

    parts: dict[str, list[Part]]
    palette: list[str]  # "#rrggbb", background colours first, then the parts' palette in order
    source: str

    @classmethod
    def from_image_data(cls, doc: dict, source: str) -> NounsArt:
        try:
            colours = [c.lower() for c in doc["palette"]]
            backgrounds = [c.lower() for c in doc["bgcolors"]]
            images = doc["images"]
            parts: dict[str, list[Part]] = {
                "background": [
                    Part(
                        name,
                        np.concatenate(
                            [
                                np.full((SIZE, SIZE, 3), hex_rgb(c), np.uint8),
                                np.full((SIZE, SIZE, 1), 255, np.uint8),
                            ],
                            axis=2,
                        ),
                    )
                    for name, c in zip(BACKGROUND_NAMES, backgrounds, strict=True)
                ]
            }
            for trait, key in IMAGE_KEYS.items():
                parts[trait] = [
                    Part(_part_name(item["filename"], trait), decode_part(item["data"], colours))
                    for item in images[key]
                ]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise NounsAssetsError(f"{source} is not the Nouns image data ({exc!r})") from None
        seen: dict[str, None] = {}
        for c in [*backgrounds, *colours[1:]]:
            seen.setdefault("#" + c, None)
        return cls(parts=parts, palette=list(seen), source=source)

    def compose(self, choice: dict[str, int]) -> np.ndarray:
        """RGB [32, 32, 3] of one composition: each trait's part drawn over the ones before it."""
        canvas = self.parts["background"][choice["background"]].rgba[..., :3].copy()
        for trait in TRAITS[1:]:
            part = self.parts[trait][choice[trait]]
            canvas[part.mask] = part.rgba[part.mask, :3]
        return canvas

    def counts(self) -> dict[str, int]:
        return {trait: len(self.parts[trait]) for trait in TRAITS}


def _part_name(filename: str, trait: str) -> str:
    """`glasses-hip-rose` -> `hip-rose`: the part's name without its trait's prefix."""
    prefix = f"{trait}-"
    return filename[len(prefix) :] if filename.startswith(prefix) else filename


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "artctl" / "npm"


def fetch_assets(cache: Path | None = None) -> Path:
    """The pinned `@nouns/assets` tarball, from the cache or fetched with `npm pack`, SHA-1 checked."""
    cache = cache or cache_dir()
    tarball = cache / f"nouns-assets-{ASSETS_VERSION}.tgz"
    if not tarball.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise NounsAssetsError(
                "npm is not installed: the Nouns art comes from the npm package "
                f"{ASSETS_PACKAGE}@{ASSETS_VERSION} (apt-get install npm, or --assets PATH)"
            )
        cache.mkdir(parents=True, exist_ok=True)
        spec = f"{ASSETS_PACKAGE}@{ASSETS_VERSION}"
        try:
            proc = subprocess.run(
                [npm, "pack", spec, "--pack-destination", str(cache), "--silent"],
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            raise NounsAssetsError(
                f"npm pack {spec} took over 5 minutes: is the npm registry reachable?"
            ) from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise NounsAssetsError(f"npm pack {spec} failed: {last}")
        packed = cache / proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else None
        if packed is None or not packed.is_file():
            raise NounsAssetsError(f"npm pack {spec} wrote no tarball into {cache}")
        packed.replace(tarball)
    digest = hashlib.sha1(tarball.read_bytes()).hexdigest()  # the registry's own checksum
    if digest != ASSETS_SHA1:
        raise NounsAssetsError(
            f"{tarball} has SHA-1 {digest}, not the pinned {ASSETS_VERSION}'s {ASSETS_SHA1}: "
            "delete it and retry"
        )
    return tarball


def load_art(assets: Path | None = None) -> NounsArt:
    """The art from a package folder, its tarball, its image-data.json, or (None) the pinned tarball."""
    path = Path(assets) if assets is not None else fetch_assets()
    if path.is_dir():
        path = path / "dist" / "image-data.json"
    if not path.is_file():
        raise NounsAssetsError(
            f"{path} does not exist: give the {ASSETS_PACKAGE} folder, tarball or image-data.json"
        )
    try:
        if path.suffix in (".tgz", ".gz"):
            with tarfile.open(path) as archive:
                member = archive.extractfile("package/dist/image-data.json")
                if member is None:
                    raise KeyError("package/dist/image-data.json")
                doc = json.load(member)
        else:
            doc = json.loads(path.read_text())
    except (OSError, KeyError, tarfile.TarError, json.JSONDecodeError) as exc:
        raise NounsAssetsError(f"cannot read the Nouns image data from {path} ({exc})") from None
    return NounsArt.from_image_data(doc, str(path))


def draw_choices(art: NounsArt, n: int, seed: int) -> list[dict[str, int]]:
    """`n` compositions, each trait drawn uniformly (as the Nouns seeder does), from one numpy seed."""
    rng = np.random.default_rng(seed)
    counts = art.counts()
    drawn = {trait: rng.integers(0, counts[trait], size=n) for trait in TRAITS}
    return [{trait: int(drawn[trait][i]) for trait in TRAITS} for i in range(n)]


@dataclass
class NounsReport:
    out: Path
    count: int
    labels: dict[str, int]
    palette_size: int


def write_palette(path: Path, colours: list[str], source: str) -> None:
    """palette.json: the colours the art may use, in a fixed order (artctl-palette-v1)."""
    doc = {"version": "artctl-palette-v1", "source": source, "colors": colours}
    path.write_text(json.dumps(doc, indent=1) + "\n")


def make_nouns(
    out: Path, n: int = 20000, seed: int = 0, labels: str = "glasses", assets: Path | None = None
) -> NounsReport:
    """Write `n` compositions as PNGs (one sub-folder per value of `labels`), parts.jsonl, palette.json."""
    if labels not in LABEL_CHOICES:
        raise ValueError(f"--labels must be one of {', '.join(LABEL_CHOICES)}, got {labels!r}")
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty: give a new folder")
    art = load_art(assets)
    choices = draw_choices(art, n, seed)
    out.mkdir(parents=True, exist_ok=True)
    tally: dict[str, int] = {}
    width = max(5, len(str(n - 1)))
    with (out / "parts.jsonl").open("w") as parts_file:
        for i, choice in enumerate(choices):
            folder = "" if labels == "none" else art.parts[labels][choice[labels]].name
            rel = f"{folder}/{i:0{width}d}.png" if folder else f"{i:0{width}d}.png"
            (out / rel).parent.mkdir(exist_ok=True)
            buf = io.BytesIO()
            Image.fromarray(art.compose(choice), "RGB").save(buf, format="PNG", optimize=True)
            (out / rel).write_bytes(buf.getvalue())
            record = {"file": rel, **choice, **{f"{t}_name": art.parts[t][choice[t]].name for t in TRAITS}}
            parts_file.write(json.dumps(record) + "\n")
            tally[folder or "all"] = tally.get(folder or "all", 0) + 1
    write_palette(out / "palette.json", art.palette, f"{ASSETS_PACKAGE}@{ASSETS_VERSION}")
    return NounsReport(out=out, count=n, labels=dict(sorted(tally.items())), palette_size=len(art.palette))
