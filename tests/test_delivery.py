"""Pixel-art delivery: image_scale and image_format in drops, checked against real files.

The expectations are computed here from ONNX Runtime's own pixels (np.repeat for the upscale, an
independent SVG painter on xml.etree), not from artctl.delivery's own decoder.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest

from artctl.cid import cid_of_bytes
from artctl.collection import ConfigError, parse_collection
from artctl.delivery import as_rgba, decode_svg, encode_svg, visible
from artctl.drops.verify import verify
from artctl.imaging import decode_png
from artctl.seeds import latents, pixel_sha256, token_seed
from artctl_serving.local import LocalRenderer
from tests.helpers import artctl

REPO = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"


def paint(svg: bytes) -> tuple[npt.NDArray[np.uint8], ET.Element]:
    """Paint the SVG's rects onto a transparent canvas of its full size (an independent reader)."""
    root = ET.fromstring(svg)
    w, h = int(root.get("width", "")), int(root.get("height", ""))
    assert root.get("viewBox") == f"0 0 {w} {h}" and root.get("shape-rendering") == "crispEdges"
    canvas = np.zeros((h, w, 4), np.uint8)
    for rect in root:
        assert rect.tag == f"{SVG}rect"
        x, y, rw, rh = (int(rect.get(k, "")) for k in ("x", "y", "width", "height"))
        fill = rect.get("fill", "").lstrip("#")
        fill = "".join(c * 2 for c in fill) if len(fill) == 3 else fill
        alpha = round(float(rect.get("fill-opacity", "1")) * 255)
        assert not canvas[y : y + rh, x : x + rw, 3].any(), "rects overlap"
        canvas[y : y + rh, x : x + rw] = [*bytes.fromhex(fill), alpha]
    return canvas, root


def up(pixels: npt.NDArray[np.uint8], scale: int) -> npt.NDArray[np.uint8]:
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)


def test_svg_paints_exactly_the_pixels_with_merged_rects() -> None:
    rng = np.random.default_rng(7)
    img = (rng.integers(0, 3, (12, 10, 4)) * 120).astype(np.uint8)
    img[..., 3] = rng.choice([0, 77, 255], (12, 10))
    img[:6] = img[0]  # identical rows: their runs merge downwards
    for scale in (1, 4):
        svg = encode_svg(img, scale)
        assert svg == encode_svg(img.copy(), scale)  # deterministic bytes
        canvas, root = paint(svg)
        assert np.array_equal(canvas, up(visible(img), scale))
        assert np.array_equal(decode_svg(svg, scale), visible(img))
        assert len(root) < sum(1 for y in range(12) for x in range(10) if img[y, x, 3])  # merged
    grey = np.full((4, 4, 1), 17, np.uint8)
    assert b'fill="#111"' in encode_svg(grey) and np.array_equal(decode_svg(encode_svg(grey)), as_rgba(grey))


@pytest.mark.parametrize(
    ("value", "message"),
    [(0, "image_scale: Input should be greater than or equal to 1"), (17, "less than or equal to 16")],
)
def test_image_scale_is_validated(value: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_collection({"name": "x", "size": 1, "salt": "s", "image_scale": value})
    with pytest.raises(ConfigError, match="image_format"):
        parse_collection({"name": "x", "size": 1, "salt": "s", "image_format": "gif"})
    default = parse_collection({"name": "x", "size": 1, "salt": "s"})
    assert "image_scale" not in default.model_dump(mode="json")  # old drops keep their echo


def write_config(path: Path, model: Path, fmt: str, **extra: object) -> Path:
    lines = [
        'name = "Pixels"',
        'symbol = "PX"',
        "size = 6",
        'salt = "crisp"',
        f'model = "{model}"',
        "image_scale = 3",
        f'image_format = "{fmt}"',
        *(f"{k} = {json.dumps(v)}" for k, v in extra.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def native(tiny_model: Path) -> list[npt.NDArray[np.uint8]]:
    session = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    seeds = [token_seed("crisp", i) for i in range(6)]
    return list(session.run(["image"], {"z": latents(seeds, 16)})[0])


@pytest.fixture(scope="module")
def drops(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for fmt in ("png", "svg"):
        folder = tmp_path_factory.mktemp(fmt)
        res = artctl(
            "mint",
            str(write_config(folder / "c.toml", tiny_model, fmt)),
            "--out",
            str(folder / "drop"),
            "--local",
        )
        assert res.returncode == 0, res.stderr
        out[fmt] = folder / "drop"
    return out


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_scaled_drop_files_and_manifest(
    fmt: str, drops: dict[str, Path], native: list[npt.NDArray[np.uint8]]
) -> None:
    drop = drops[fmt]
    manifest = json.loads((drop / "manifest.json").read_text())
    echo = manifest["collection"]  # the defaults (1, png) are left out of the echo
    assert echo["image_scale"] == 3 and echo.get("image_format", "png") == fmt
    for entry, pixels in zip(manifest["tokens"], native):
        data = (drop / "images" / f"{entry['id']}.{fmt}").read_bytes()
        if fmt == "png":
            image = decode_png(data)
            assert image.shape == (48, 48, 4) and np.array_equal(image, up(pixels, 3))
        else:
            canvas, _ = paint(data)
            assert canvas.shape == (48, 48, 4) and np.array_equal(canvas, up(visible(pixels), 3))
        assert entry["pixel_sha256"] == pixel_sha256(pixels)  # native pixels, not the file's
        assert entry["file_sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["cid"] == cid_of_bytes(data)
        meta = json.loads((drop / "metadata" / f"{entry['id']}.json").read_text())
        assert meta["image"] == entry["image"] and meta["image"].endswith(f"/{entry['id']}.{fmt}")
    assert sorted(p.suffix for p in (drop / "images").iterdir()) == [f".{fmt}"] * 6


def test_contact_sheets_show_native_pixels_at_every_scale_and_format(drops: dict[str, Path]) -> None:
    sheets = [decode_png((drops[f] / "contact-sheet.png").read_bytes()) for f in ("png", "svg")]
    assert np.array_equal(sheets[0], sheets[1])  # both read back to the same native pixels
    # Nearest neighbour: a 16 px token at 6x is made of 6 x 6 blocks of one colour.
    tile = sheets[0][4 : 4 + 96, 4 : 4 + 96]
    assert np.array_equal(tile, up(tile[::6, ::6], 6))


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_verify_passes_then_catches_a_tampered_image(
    fmt: str, drops: dict[str, Path], tiny_model: Path
) -> None:
    drop = drops[fmt]
    assert verify(drop, LocalRenderer(tiny_model)).ok
    path = drop / "images" / f"2.{fmt}"
    good = path.read_bytes()
    try:
        if fmt == "png":  # same pixels, re-encoded: the SHA-256 and the mint bytes catch it
            from PIL import Image

            Image.fromarray(decode_png(good)).save(path, format="PNG", compress_level=9)
        else:
            path.write_bytes(good.replace(b'shape-rendering="crispEdges"', b""))
        report = verify(drop, LocalRenderer(tiny_model))
        assert not report.ok
        text = "\n".join(report.problems)
        assert f"images/2.{fmt}: file SHA-256 does not match" in text
        assert f"images/2.{fmt}: is not the file mint writes from token 2's re-rendered pixels" in text
    finally:
        path.write_bytes(good)


def test_metaplex_refuses_svg_before_writing(tiny_model: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", tiny_model, "svg")
    res = artctl("mint", str(config), "--out", str(tmp_path / "drop"), "--local", "--format", "metaplex")
    assert res.returncode != 0
    assert "image_format: Sugar (--format metaplex) takes no SVG images" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "drop").exists()


def test_studio_never_smooths_images() -> None:
    css = (REPO / "artctl_serving" / "studio" / "studio.css").read_text()
    rule = next(line for line in css.splitlines() if line.startswith("img {"))
    assert rule.index("crisp-edges") < rule.index("pixelated")  # the fallback first, the last known wins
    for line in css.splitlines():  # and nothing sizes an image with smoothing
        assert "image-rendering" not in line or ("auto" not in line and "smooth" not in line)


def test_svg_shards_merge_and_rebase_keep_the_extension(tiny_model: Path, tmp_path: Path) -> None:
    from artctl.drops.merge import merge
    from artctl.drops.mint import mint
    from artctl.drops.rebase import rebase
    from artctl.drops.shard import Shard

    cfg = parse_collection({"name": "P", "size": 5, "salt": "s", "image_scale": 2, "image_format": "svg"})
    renderer = LocalRenderer(tiny_model)
    single = mint(cfg, tmp_path / "single", renderer)
    for i in range(2):
        mint(cfg, tmp_path / f"part{i}", renderer, shard=Shard(i, 2))
    merged = merge(tmp_path / "merged", [tmp_path / "part0", tmp_path / "part1"])
    assert merged.provenance == single.provenance
    assert (tmp_path / "merged" / "manifest.json").read_bytes() == single.manifest.read_bytes()
    rebase(tmp_path / "merged", images_cid=True)
    meta = json.loads((tmp_path / "merged" / "metadata" / "3.json").read_text())
    images = json.loads((tmp_path / "merged" / "manifest.json").read_text())["ipfs_directories"]["images"]
    assert meta["image"] == f"ipfs://{images}/3.svg"
    assert verify(tmp_path / "merged", renderer).ok
