"""Image repair: restore fills a 25% hole in a held-out emoji better than grey, and refuses bad inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import require_emoji_font, train_tiny


@pytest.fixture(scope="module")
def style_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("restore") / "run"
    train_tiny(run, steps=2, architecture="stylegan")  # synthetic shapes: every emoji is held out
    return run


@pytest.fixture(scope="module")
def emoji(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from artctl_trainer.emoji import render_emoji

    require_emoji_font()
    out = tmp_path_factory.mktemp("emoji")
    render_emoji(out, size=16, limit=3)
    return sorted(out.rglob("*.png"))[0]


def _mask(path: Path, size: int = 16, hole: slice = slice(4, 12)) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[hole, hole] = 255  # 8x8 of 16x16: 25 %
    Image.fromarray(mask, "L").save(path)
    return mask > 0


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "artctl", *args], capture_output=True, text=True, timeout=300
    )


def test_restore_beats_a_grey_fill_on_held_out_emoji(style_run: Path, emoji: Path, tmp_path: Path) -> None:
    from artctl.imaging import decode_png
    from artctl_trainer.restore import masked_psnr

    mask = _mask(tmp_path / "mask.png")
    assert mask.mean() == 0.25
    out = tmp_path / "out"
    res = _cli(
        "restore",
        str(emoji),
        "--mask",
        str(tmp_path / "mask.png"),
        "--model",
        str(style_run),
        "--steps",
        "30",
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    assert "restore" in res.stderr and "30/30" in res.stderr  # progress while it optimises
    truth = np.asarray(Image.open(emoji).convert("RGBA"))
    restored = decode_png((out / "restored.png").read_bytes())
    grey = truth.copy()
    grey[mask] = 128
    assert np.array_equal(restored[~mask], truth[~mask])  # kept pixels are untouched
    assert masked_psnr(restored, truth, mask) > masked_psnr(grey, truth, mask) + 1.0
    latent = np.load(out / "latent.npy")
    assert latent.shape == (6, 16) and latent.dtype == np.float32
    strip = decode_png((out / "strip.png").read_bytes())
    assert strip.shape[1] > 3 * 16
    assert (out / "restore.json").is_file() and (out / "projection.png").is_file()


def test_restore_is_deterministic_and_w_space_works(style_run: Path, emoji: Path) -> None:
    from artctl_trainer.restore import RestoreOptions, load_generator, read_image, restore_image

    G, _ = load_generator(style_run)
    image = read_image(emoji, 4)
    mask = np.zeros((16, 16), dtype=bool)
    mask[:, :4] = True
    opts = RestoreOptions(steps=5, space="w", perceptual_weight=0.0)
    a = restore_image(G, image, mask, opts)
    b = restore_image(G, image, mask, opts)
    assert np.array_equal(a.restored, b.restored) and np.array_equal(a.ws, b.ws)
    assert a.final_loss < a.initial_loss


def test_restore_errors_are_one_line(style_run: Path, emoji: Path, tiny_run: Path, tmp_path: Path) -> None:
    _mask(tmp_path / "ok.png")
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8), "L").save(tmp_path / "small.png")
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8), "L").save(tmp_path / "empty.png")
    cases = [
        ("small.png", style_run, "the mask is 8x8 but the image is 16x16"),
        ("empty.png", style_run, "the mask is empty"),
        ("ok.png", tiny_run, "restore needs a StyleGAN-type model"),
        ("ok.png", tmp_path / "m.onnx", "not the exported ONNX file"),
    ]
    for mask, model, needle in cases:
        out = tmp_path / f"out-{mask}"
        res = _cli(
            "restore",
            str(emoji),
            "--mask",
            str(tmp_path / mask),
            "--model",
            str(model),
            "--steps",
            "2",
            "--out",
            str(out),
        )
        assert res.returncode != 0
        assert needle in res.stderr and res.stderr.count("\n") == 1, res.stderr
        assert not out.exists()
