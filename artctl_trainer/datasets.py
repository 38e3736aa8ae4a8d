"""Training images: a folder or .zip of the artist's files, or a small synthetic set for trying things out.

Every data set is loaded once into a float tensor in [-1, 1] (artists bring hundreds to thousands of
images, which fit in memory) and carries a fingerprint that the checkpoint and model card record.
With `channels=0` the channels follow the data: RGB when every pixel is opaque, else RGBA. A
folder's palette (its `palette.json`, else its distinct colours when there are at most 256) is
recorded with the data, so an export can snap to it without the data at hand.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SYNTHETIC_SHAPES = "synthetic:shapes"
MIN_IMAGES = 8
MAX_PALETTE = 256  # the most colours an exported graph snaps to
PALETTE_FILE = "palette.json"


class DatasetError(ValueError):
    """The data set is missing, empty or too small to train on."""


@dataclass
class ImageDataset:
    images: torch.Tensor  # [N, C, H, W] uint8: a quarter of the memory of floats; `floats` per batch
    labels: torch.Tensor  # [N] int64 (all zero when unlabelled)
    label_names: list[str]
    fingerprint: str
    source: str
    skipped: list[str] = field(default_factory=list)  # "path (why)" of each file that would not decode
    loose: list[str] = field(default_factory=list)  # images outside the label folders (label -1)
    palette: list[str] | None = None  # "#rrggbb"/"#rrggbbaa": palette.json's, or <= 256 distinct colours
    files: list[str] = field(default_factory=list)  # each image's path in the folder or archive

    def check_labelled(self) -> None:
        """Conditional training needs every image in a label folder: refuse loose ones by name."""
        if self.loose:
            raise DatasetError(
                f"{len(self.loose)} image(s) sit at the top of {self.source}, outside the label folders "
                f"({', '.join(self.label_names[:4])}{', ...' if len(self.label_names) > 4 else ''}), "
                f"e.g. {self.loose[0]!r}: move them into a label folder, or train without --conditional"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def floats(self, index: torch.Tensor) -> torch.Tensor:
        """The images at `index` as float32 in [-1, 1] (x / 127.5 - 1, correctly rounded: the values
        the trainer used when it held the whole set as floats)."""
        return self.images[index].to(torch.float32) / 127.5 - 1.0


def _to_array(img: Image.Image, resolution: int, channels: int) -> np.ndarray:
    """Resize (shorter side) + center crop, then RGBA kept or composited onto white for RGB."""
    img = img.convert("RGBA")
    w, h = img.size
    scale = resolution / min(w, h)
    img = img.resize(
        (max(resolution, round(w * scale)), max(resolution, round(h * scale))), Image.Resampling.LANCZOS
    )
    w, h = img.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    img = img.crop((left, top, left + resolution, top + resolution))
    if channels == 3:
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img).convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def distinct_colours(arrays: list[np.ndarray]) -> list[str] | None:
    """The data's colours as "#rrggbb[aa]", sorted, when there are at most MAX_PALETTE (else None).
    Fully transparent pixels count as one colour, whatever their RGB."""
    if not arrays:
        return None
    pixels = np.concatenate([a.reshape(-1, a.shape[-1]) for a in arrays])
    if pixels.shape[1] == 4:
        pixels = np.where(pixels[:, 3:] == 0, 0, pixels)
    from artctl.palette import pack_colours

    unique = np.unique(pack_colours(pixels))
    if len(unique) > MAX_PALETTE:
        return None
    digits = 2 * pixels.shape[1]
    return [f"#{int(v):0{digits}x}" for v in unique]


def read_palette_file(path: Path) -> list[str]:
    """The colours of a palette.json (artctl-palette-v1), as a data-set error when it is not one."""
    from artctl.palette import PaletteError, load_palette

    try:
        return load_palette(path)
    except PaletteError as exc:
        raise DatasetError(str(exc)) from None


def _to_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def read_labels_file(path: Path) -> dict[str, str]:
    """Image path (relative, posix) -> label, from a CSV `path,label` file or a JSON object."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"labels file {path}: cannot read it ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"labels file {path}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
            raise DatasetError(f"labels file {path}: expected an object {{image path: label}}")
        return {str(k).replace("\\", "/"): v for k, v in doc.items()}
    rows = list(csv.reader(io.StringIO(text)))
    if rows and [c.strip().lower() for c in rows[0]] == ["path", "label"]:
        rows = rows[1:]
    out = {}
    for number, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) != 2 or not row[1].strip():
            raise DatasetError(f"labels file {path}, line {number}: expected `path,label`")
        out[row[0].strip().replace("\\", "/")] = row[1].strip()
    return out


def _decode_all(
    entries: list[tuple[str, bytes]],
    resolution: int,
    channels: int,
    source: str,
    kind: str,
    label_map: dict[str, str] | None = None,
    palette: list[str] | None = None,
) -> ImageDataset:
    """Decode (relative posix path, bytes) pairs; labels from `label_map` when given, else the first
    path component when there are several."""
    if label_map is not None:
        missing = [rel for rel, _ in entries if rel not in label_map]
        if missing:
            raise DatasetError(
                f"{len(missing)} image(s) in {source} have no label in the labels file, e.g. {missing[0]!r}"
            )
        label_of = {rel: label_map[rel] for rel, _ in entries}
    else:
        label_of = {rel: (rel.split("/")[0] if "/" in rel else "") for rel, _ in entries}
    label_names = sorted(set(label_of.values()))
    if label_names == [""] or len(label_names) < 2:
        label_names = []
    if label_names and "" in label_names:  # a label "" would be a class made by accident
        label_names.remove("")
    decode_channels = 4 if channels == 0 else channels
    arrays, labels, skipped, hashed, kept = [], [], [], [], []
    for rel, data in entries:
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                arrays.append(_to_array(img, resolution, decode_channels))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            reason = "not an image Pillow can read" if isinstance(exc, UnidentifiedImageError) else str(exc)
            skipped.append(f"{rel} ({reason})")
            continue
        labels.append(
            label_names.index(label_of[rel]) if label_of[rel] in label_names else -1 if label_names else 0
        )
        hashed.append(f"{rel}:{hashlib.sha256(data).hexdigest()}\n")
        kept.append(rel)
    if channels == 0:  # follow the data: drop an alpha channel that is opaque everywhere
        channels = 3 if arrays and all(bool((a[..., 3] == 255).all()) for a in arrays) else 4
        if channels == 3:
            arrays = [a[..., :3] for a in arrays]
    digest = hashlib.sha256(f"{kind}:{resolution}:{channels}".encode())
    if label_map is not None:
        digest.update(json.dumps(label_of, sort_keys=True).encode())
    for line in hashed:
        digest.update(line.encode())
    if len(arrays) < MIN_IMAGES:
        unreadable = f"; unreadable: {', '.join(skipped[:3])}" if skipped else ""
        raise DatasetError(
            f"{source} has {len(arrays)} readable image(s); at least {MIN_IMAGES} are needed{unreadable}"
        )
    return ImageDataset(
        images=_to_tensor(arrays),
        labels=torch.tensor(labels, dtype=torch.int64),
        label_names=label_names,
        fingerprint=digest.hexdigest(),
        source=source,
        skipped=skipped,
        loose=[rel for rel, _ in entries if label_names and label_of[rel] not in label_names],
        palette=palette if palette is not None else distinct_colours(arrays),
        files=kept,
    )


def _check_folder_path(path: Path) -> None:
    if path.is_file():
        raise DatasetError(
            f"{path} is a file, not a folder: give a folder of images, a .zip, or synthetic:shapes"
        )
    if not path.is_dir():
        raise DatasetError(f"data folder {path} does not exist")


def _check_zip_path(path: Path) -> None:
    if path.is_dir():
        raise DatasetError(f"{path} is a folder, not a zip file: rename it or give a real .zip")
    if not path.is_file():
        raise DatasetError(f"data archive {path} does not exist")


def count_images(spec: str, synthetic_size: int = 2048) -> int:
    """How many image files a data spec names (before decoding any): picks the preset's recipe."""
    if spec.startswith("synthetic:"):
        return synthetic_size
    path = Path(spec)
    if spec.lower().endswith(".zip"):
        _check_zip_path(path)
        try:
            with zipfile.ZipFile(path) as archive:
                return sum(1 for n in archive.namelist() if Path(n).suffix.lower() in IMAGE_SUFFIXES)
        except (OSError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{path} is not a readable zip archive ({exc})") from None
    _check_folder_path(path)
    return sum(1 for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_folder(
    path: Path, resolution: int, channels: int, labels: dict[str, str] | None = None
) -> ImageDataset:
    """All images under `path` (recursive); sub-folder names become labels when there are several."""
    path = Path(path)
    _check_folder_path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    entries = [(p.relative_to(path).as_posix(), p.read_bytes()) for p in files]
    palette = read_palette_file(path / PALETTE_FILE) if (path / PALETTE_FILE).is_file() else None
    return _decode_all(entries, resolution, channels, str(path), "folder", labels, palette)


def load_zip(
    path: Path, resolution: int, channels: int, labels: dict[str, str] | None = None
) -> ImageDataset:
    """Images inside a .zip, as for a folder: a single top-level folder is looked through, then
    first-level folder names become labels when there are several. Hidden and __MACOSX entries are ignored."""
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise DatasetError(
                f"{path} is a folder named like a .zip; give the folder without .zip or a zip file"
            )
        raise DatasetError(f"data archive {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(
                n
                for n in archive.namelist()
                if not n.endswith("/")
                and Path(n).suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith((".", "__MACOSX")) for part in n.split("/"))
            )
            entries = [(n, archive.read(n)) for n in names]
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{path} is not a readable zip archive ({exc})") from exc
    tops = {n.split("/")[0] for n, _ in entries}
    if len(tops) == 1 and all("/" in n for n, _ in entries):  # archive of one folder: look inside it
        entries = [(n.split("/", 1)[1], data) for n, data in entries]
    return _decode_all(entries, resolution, channels, str(path), "zip", labels)


SHAPES = ("circle", "square", "triangle", "diamond")
PALETTE = [(230, 57, 70), (241, 250, 238), (69, 123, 157), (29, 53, 87), (255, 183, 3), (42, 157, 143)]


def synthetic_shapes(count: int, resolution: int, channels: int, seed: int = 1234) -> ImageDataset:
    """Coloured shapes on a transparent (RGBA) or white (RGB) background; label = shape.

    Drawn at 4x and downsampled for anti-aliasing, from a fixed numpy seed: the same arguments give
    the same pixels, so the fingerprint is just the recipe.
    """
    rng = np.random.default_rng(seed)
    big = resolution * 4
    arrays, labels = [], []
    for _ in range(count):
        kind = int(rng.integers(len(SHAPES)))
        color = PALETTE[int(rng.integers(len(PALETTE)))]
        outline = PALETTE[int(rng.integers(len(PALETTE)))]
        radius = big * float(rng.uniform(0.22, 0.42))
        cx, cy = big / 2 + rng.uniform(-0.08, 0.08, size=2) * big
        img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
        draw = ImageDraw.Draw(img)
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        width = max(1, big // 24)
        if SHAPES[kind] == "circle":
            draw.ellipse(box, fill=(*color, 255), outline=(*outline, 255), width=width)
        elif SHAPES[kind] == "square":
            draw.rectangle(box, fill=(*color, 255), outline=(*outline, 255), width=width)
        elif SHAPES[kind] == "triangle":
            pts = [(cx, cy - radius), (cx + radius, cy + radius), (cx - radius, cy + radius)]
            draw.polygon(pts, fill=(*color, 255), outline=(*outline, 255), width=width)
        else:
            pts = [(cx, cy - radius), (cx + radius, cy), (cx, cy + radius), (cx - radius, cy)]
            draw.polygon(pts, fill=(*color, 255), outline=(*outline, 255), width=width)
        arrays.append(
            _to_array(img.resize((resolution, resolution), Image.Resampling.LANCZOS), resolution, channels)
        )
        labels.append(kind)
    recipe = f"{SYNTHETIC_SHAPES}:{count}:{resolution}:{channels}:{seed}"
    return ImageDataset(
        images=_to_tensor(arrays),
        labels=torch.tensor(labels, dtype=torch.int64),
        label_names=list(SHAPES),
        fingerprint=hashlib.sha256(recipe.encode()).hexdigest(),
        source=recipe,
    )


def load_dataset(
    spec: str, resolution: int, channels: int, synthetic_size: int = 2048, labels_file: str | None = None
) -> ImageDataset:
    """`synthetic:shapes`, a .zip archive or a folder path (labels from a labels file or sub-folders)."""
    if spec == SYNTHETIC_SHAPES:
        if labels_file:
            raise DatasetError("a labels file applies to a folder or a .zip, not to synthetic:shapes")
        return synthetic_shapes(synthetic_size, resolution, channels or 4)
    if spec.startswith("synthetic:"):
        raise DatasetError(f"unknown synthetic data set {spec!r}; available: {SYNTHETIC_SHAPES}")
    labels = read_labels_file(Path(labels_file)) if labels_file else None
    if spec.lower().endswith(".zip"):
        return load_zip(Path(spec), resolution, channels, labels)
    return load_folder(Path(spec), resolution, channels, labels)
