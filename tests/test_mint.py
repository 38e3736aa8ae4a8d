"""Minting: a drop is a pure function of (config, model); its manifest proves every file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from artctl.client import GeneratorClient
from artctl.collection import CollectionConfig, ConfigError, load_collection
from artctl.drops.mint import mint
from artctl.drops.render import ServerRenderer
from artctl.imaging import decode_png
from artctl.seeds import latents, pixel_sha256, provenance, token_seed
from artctl_serving.local import LocalRenderer


def config(**kw: Any) -> CollectionConfig:
    base = {"name": "Test Drop", "symbol": "TD", "size": 12, "salt": "pepper", "start_index": 1}
    return CollectionConfig(**{**base, **kw})


def test_local_mint_manifest_proves_every_file(tiny_model: Path, tmp_path: Path) -> None:
    cfg = config(model=str(tiny_model))
    result = mint(cfg, tmp_path / "drop", LocalRenderer(tiny_model))
    manifest = json.loads((tmp_path / "drop" / "manifest.json").read_text())
    ids = list(range(1, 13))
    assert [t["id"] for t in manifest["tokens"]] == ids
    seeds = [token_seed("pepper", i) for i in ids]
    session = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    expected = session.run(["image"], {"z": latents(seeds, 16)})[0]
    file_hashes = []
    for entry, seed, img in zip(manifest["tokens"], seeds, expected):
        png = (tmp_path / "drop" / "images" / f"{entry['id']}.png").read_bytes()
        assert entry["seed"] == str(seed)
        assert entry["pixel_sha256"] == pixel_sha256(img) == pixel_sha256(decode_png(png))
        assert entry["file_sha256"] == hashlib.sha256(png).hexdigest()
        file_hashes.append(entry["file_sha256"])
        meta = json.loads((tmp_path / "drop" / "metadata" / f"{entry['id']}.json").read_text())
        assert meta["name"] == f"Test Drop #{entry['id']}" and meta["image"].endswith(f"/{entry['id']}.png")
        assert {"name", "description", "image", "attributes"} <= meta.keys()
    assert manifest["provenance"] == result.provenance == provenance(file_hashes)
    assert (tmp_path / "drop" / "provenance.txt").read_text().strip() == result.provenance
    assert manifest["render_profile"]["provider"] == "CPUExecutionProvider"
    assert (tmp_path / "drop" / "contact-sheet.png").is_file()


def test_same_config_gives_the_same_bytes(tiny_model: Path, tmp_path: Path) -> None:
    cfg = config(size=5)
    for name in ("a", "b"):
        mint(cfg, tmp_path / name, LocalRenderer(tiny_model))
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 5 * 2 + 5
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_server_mint_equals_local_mint(server: tuple[Any, str], tiny_model: Path, tmp_path: Path) -> None:
    cfg = config(size=20)
    local = mint(cfg, tmp_path / "local", LocalRenderer(tiny_model))
    with GeneratorClient([server[1], server[1]]) as client:
        remote = mint(cfg, tmp_path / "remote", ServerRenderer(client, "default"))
    assert [e["pixel_sha256"] for e in remote.entries] == [e["pixel_sha256"] for e in local.entries]
    assert remote.provenance == local.provenance


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('name = "x"\nsize = 0\nsalt = "s"\n', "size: Input should be greater than or equal to 1"),
        ('name = "x"\nsize = 3\nsalt = "s"\nsizes = 4\n', "sizes: Extra inputs are not permitted"),
        ('name = "x"\nsize = 3\n', "salt: Field required"),
        ("name = [unclosed\n", "not valid TOML"),
        (None, "does not exist"),
    ],
)
def test_collection_config_errors_name_the_key(tmp_path: Path, text: str | None, error: str) -> None:
    path = tmp_path / "c.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=error):
        load_collection(path)


def test_example_collection_is_valid() -> None:
    cfg = load_collection(Path(__file__).resolve().parent.parent / "examples" / "collection.toml")
    assert cfg.size >= 1 and cfg.salt


def test_decoded_pngs_roundtrip_channels() -> None:
    from artctl.imaging import encode_png

    for c in (1, 3, 4):
        img = np.random.default_rng(c).integers(0, 256, size=(5, 7, c), dtype=np.uint8)
        np.testing.assert_array_equal(decode_png(encode_png(img)), img)


def test_server_mint_refuses_a_model_that_changed_mid_drop(tiny_model: Path, tmp_path: Path) -> None:
    """Two servers with different files under the same name: the drop stops instead of mixing them."""
    import shutil

    from artctl.drops.render import RenderError
    from artctl_exporter.export import export_checkpoint
    from tests.helpers import running_server, train_tiny

    other_dir = tmp_path / "other"
    train_tiny(tmp_path / "run", steps=5)
    export_checkpoint(tmp_path / "run", other_dir / "tiny.onnx", parity_seeds=8)
    same_dir = tmp_path / "same"
    same_dir.mkdir()
    shutil.copy(tiny_model, same_dir / "tiny.onnx")
    with (
        running_server([same_dir]) as (_, a),
        running_server([other_dir]) as (_, b),
        GeneratorClient([a, b]) as client,
        pytest.raises(RenderError, match="rendered with model"),
    ):
        mint(config(size=200), tmp_path / "drop", ServerRenderer(client, "default"))


def test_the_example_collection_mints_with_the_embedded_default_model(tmp_path: Path) -> None:
    """What the README shows: examples/collection.toml against the model that ships."""
    from artctl.models import embedded_default

    example = Path(__file__).resolve().parent.parent / "examples" / "collection.toml"
    cfg = load_collection(example).model_copy(update={"size": 6})
    model = embedded_default()
    assert model is not None, "the package ships default.onnx"
    result = mint(cfg, tmp_path / "drop", LocalRenderer(model))
    entries = list(result.entries)
    assert len(entries) == 6
    noggles = set(next(t for t in cfg.traits if t.name == "Noggles").values)
    assert all(e["traits"]["Noggles"] in noggles for e in entries), "the conditioning trait was skipped"
    assert all(set(e["traits"]) == {"Noggles", "Palette", "Brightness"} for e in entries)
    # Pixel art at image_scale 10: each 32 x 32 token becomes a 320 x 320 PNG of whole-pixel blocks.
    from PIL import Image

    with Image.open(result.out_dir / "images" / "1.png") as image:
        assert cfg.image_scale == 10 and image.size == (320, 320)
        big = np.asarray(image)
    assert (big == np.repeat(np.repeat(big[::10, ::10], 10, 0), 10, 1)).all()
