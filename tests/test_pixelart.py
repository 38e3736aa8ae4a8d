"""Pixel art in the trainer: channels that follow the data, the palette it records, the recipe the
auto choice picks, and the pixel-art quality scores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from artctl.palette import pack_colours, palette_array, snap
from artctl_trainer.checkpoint import load_checkpoint
from artctl_trainer.config import NetworkConfig, TrainConfig
from artctl_trainer.datasets import DatasetError, load_dataset
from artctl_trainer.metrics import checkpoint_source
from artctl_trainer.nouns import TRAITS, draw_choices, load_art
from artctl_trainer.palette_snap import PaletteSnap, _nearest_table
from artctl_trainer.pixelart import PartStack, nouns_scores, pixel_art_scores
from artctl_trainer.preview import quantize
from artctl_trainer.training_loop import training_loop
from tests.test_nouns import ASSETS, _reference_ready

REPO = Path(__file__).resolve().parent.parent


def _folder(root: Path, alpha: int = 255, colours: int = 3, palette: list[str] | None = None) -> Path:
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(5):
            img = Image.new("RGBA", (16, 16), (0, 0, 0, alpha))
            for x in range(16):
                img.putpixel((x, i), (60 * (x % colours), 100, 20 if label == "a" else 200, 255))
            img.save(root / label / f"{i}.png")
    if palette is not None:
        (root / "palette.json").write_text(json.dumps({"version": "artctl-palette-v1", "colors": palette}))
    return root


def _train(data: Path, run: Path, **network: object) -> Path:
    net = NetworkConfig(
        **{
            "resolution": 16,
            "z_dim": 8,
            "g_base": 8,
            "d_base": 8,
            "conditional": True,
            "channels": 0,
            **network,
        }
    )
    cfg = TrainConfig(network=net, data=str(data), steps=2, batch=4, sample_every=2, log_every=1)
    return training_loop(cfg, run)


def test_channels_follow_the_data_and_the_palette_is_recorded(tmp_path: Path) -> None:
    opaque = _train(_folder(tmp_path / "opaque"), tmp_path / "r1")
    ck = load_checkpoint(opaque)
    assert ck.config.network.channels == 3  # opaque art trains as RGB: no alpha to learn
    expected = ["#000000", *sorted(f"#{60 * k:02x}64{b:02x}" for k in range(3) for b in (20, 200))]
    assert ck.meta["palette"] == expected  # the data's distinct colours, sorted
    see_through = _train(_folder(tmp_path / "alpha", alpha=0), tmp_path / "r2")
    assert load_checkpoint(see_through).config.network.channels == 4
    forced = _train(_folder(tmp_path / "forced"), tmp_path / "r3", channels=4)
    assert load_checkpoint(forced).config.network.channels == 4
    given = ["#000000", "#3c6414", "#3c64c8", "#786414", "#7864c8", "#006414", "#0064c8", "#123456"]
    with_file = _train(_folder(tmp_path / "pal", palette=given), tmp_path / "r4")
    assert load_checkpoint(with_file).meta["palette"] == given


def test_distinct_colours_and_palette_limits(tmp_path: Path) -> None:
    data = load_dataset(str(_folder(tmp_path / "few")), 16, 0)
    assert data.images.shape[1] == 3
    assert data.palette == [
        "#000000",
        *sorted(f"#{60 * k:02x}64{b:02x}" for k in range(3) for b in (20, 200)),
    ]
    many = _folder(tmp_path / "many", palette=[f"#{i:06x}" for i in range(257)])
    with pytest.raises(DatasetError, match="257 colours; a palette holds at most 256"):
        load_dataset(str(many), 16, 0)
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(noisy / f"{i}.png")
    assert load_dataset(str(noisy), 16, 0).palette is None  # a photo-like set has no palette


def _dry(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "artctl", "train", *args, "--dry-run"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_the_auto_choice_says_whether_it_flips_and_why(tmp_path: Path) -> None:
    pixel = _dry(str(_folder(tmp_path / "pix", palette=["#000000"])))
    assert pixel.returncode == 0, pixel.stderr
    cfg = json.loads(pixel.stdout)
    assert (
        cfg["mirror"] is False and cfg["network"]["conditional"] is True and cfg["network"]["channels"] == 0
    )
    assert "preset: pixel32-cond" in pixel.stderr and "has a palette.json: pixel art" in pixel.stderr
    assert "no flips: pixel-art characters face one way" in pixel.stderr
    assert cfg["network"]["trait_layers"] == []
    lines = [{"file": f"{label}/{i}.png", "head": i} for label in "ab" for i in range(5)]
    (tmp_path / "pix" / "parts.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    layered = _dry(str(tmp_path / "pix"))
    assert "preset: nouns32" in layered.stderr
    assert "a parts.jsonl naming each image's traits" in layered.stderr
    assert json.loads(layered.stdout)["network"]["trait_layers"] == ["head"]
    plain = _dry(str(_folder(tmp_path / "plain")))
    assert json.loads(plain.stdout)["mirror"] is True
    assert "preset: small-data-dcgan32" in plain.stderr and "random horizontal flips" in plain.stderr
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in (tmp_path / "pix" / "a").iterdir():
        (flat / p.name).write_bytes(p.read_bytes())
    (flat / "palette.json").write_text((tmp_path / "pix" / "palette.json").read_text())
    assert "preset: pixel32" in _dry(str(flat)).stderr


def test_snap_takes_the_nearest_colour_and_the_lower_index_on_ties() -> None:
    palette = np.array([[0, 0, 0], [10, 0, 0], [20, 0, 0]], dtype=np.uint8)
    pixels = np.array([[[[5, 0, 0], [6, 0, 0], [15, 0, 0], [255, 9, 9]]]], dtype=np.uint8)
    assert snap(pixels, palette).tolist() == [[[[0, 0, 0], [10, 0, 0], [10, 0, 0], [20, 0, 0]]]]


def test_the_training_snap_is_the_contract_snap_for_every_rgb_value() -> None:
    # 0x40 and 0x80 are both 0x20 from 0x60: ties, which go to the lower index in both
    palette = ["#400000", "#800000", "#00ff00", "#0000ff", "#ffffff", "#806040", "#000000", "#ff00ff"]
    table = _nearest_table(tuple(palette)).numpy()
    cube = np.stack(np.meshgrid(*[np.arange(256, dtype=np.uint8)] * 3, indexing="ij"), -1).reshape(-1, 3)
    reference = snap(cube, palette)
    assert (palette_array(palette)[table] == reference).all()  # all 16,777,216 RGB values
    assert table[0x60 << 16] == 0  # the tie between index 0 and 1


def test_the_snap_passes_gradients_straight_through_and_draws_what_export_draws() -> None:
    palette = ["#000000", "#ff0000", "#00ff00", "#0000ff", "#ffffff"]
    snapper = PaletteSnap(palette, channels=4)  # an RGB palette on RGBA: alpha is left alone
    x = (torch.rand(2, 4, 5, 5) * 2 - 1).requires_grad_()
    out = snapper(x)
    drawn = quantize(out.detach())
    expected = snap(quantize(x.detach()).numpy(), palette)
    assert (drawn.numpy() == expected).all()
    weights = torch.randn_like(x)
    (out * weights).sum().backward()
    assert torch.equal(x.grad, weights)  # D's gradient reaches G as if the snap were not there
    with pytest.raises(ValueError, match="an RGBA palette cannot snap a 3-channel generator"):
        PaletteSnap(["#00000080"], channels=3)


def test_a_snap_model_draws_palette_colours_only_in_training_and_in_onnx(tmp_path: Path) -> None:
    given = ["#000000", "#3c6414", "#3c64c8", "#786414", "#7864c8", "#006414", "#0064c8", "#123456"]
    run = _train(_folder(tmp_path / "pal", palette=given), tmp_path / "run", output="snap")
    net = load_checkpoint(run).config.network
    assert net.output == "snap" and net.palette == given  # resolved from the data, kept in the config
    generate, _ = checkpoint_source(run)
    allowed = set(pack_colours(palette_array(given)).tolist())
    assert set(pack_colours(generate(0, 16).reshape(-1, 3)).tolist()) <= allowed

    def export(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "artctl", "export", str(run), *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=300,
        )

    model = tmp_path / "snap.onnx"
    made = export("--out", str(model))
    assert made.returncode == 0, made.stderr
    assert "uint8 pixels differing: 0.00e+00" in made.stdout and "0 mismatches" in made.stdout
    from artctl_serving.local import LocalRenderer

    served = LocalRenderer(model).render(list(range(16)), None, [i % 2 for i in range(16)])
    drawn = np.stack([r.pixels for r in served if r.pixels is not None])
    assert (drawn == generate(0, 16, ["ab"[i % 2] for i in range(16)])).all()  # trained = served
    refused = export("--out", str(tmp_path / "raw.onnx"), "--palette", "none")
    assert refused.returncode == 1 and "export it with --palette auto" in refused.stderr
    assert not (tmp_path / "raw.onnx").exists()
    with pytest.raises(
        ValueError, match=r"snap output needs a palette; synthetic:shapes\S* has no palette.json"
    ):
        training_loop(TrainConfig(network=NetworkConfig(output="snap"), steps=1), tmp_path / "none")


def test_nouns_scores_know_real_compositions_and_broken_ones() -> None:
    _reference_ready()
    art = load_art(ASSETS)
    choices = draw_choices(art, 40, seed=5)
    real = np.stack([art.compose(c) for c in choices])
    asked = [art.parts["glasses"][c["glasses"]].name for c in choices]
    glasses, heads = PartStack.of(art.parts["glasses"]), PartStack.of(art.parts["head"])
    scores = nouns_scores(real, asked, glasses, heads)
    assert scores == {
        "noggles_exact": 1.0,
        "label_fidelity": 1.0,
        "noggles_exact_as_asked": 1.0,
        "heads_copied": 1.0,
    }
    broken = real.copy()
    part = art.parts["glasses"][choices[0]["glasses"]]
    y, x = np.argwhere(part.mask)[0]
    broken[0, y, x] = 255 - broken[0, y, x]  # one pixel of the first sample's glasses
    wrong = list(asked)
    wrong[1] = next(n for n in glasses.names if n != asked[1])
    scores = nouns_scores(broken, wrong, glasses, heads)
    assert scores["noggles_exact"] == pytest.approx(39 / 40) and scores["label_fidelity"] == pytest.approx(
        39 / 40
    )
    palette = json.loads(json.dumps(art.palette))
    noisy = np.clip(real.astype(int) + np.random.default_rng(1).integers(-2, 3, real.shape), 0, 255).astype(
        np.uint8
    )
    full = pixel_art_scores(noisy, palette, asked, art)
    assert full["off_palette_raw"] > 0.5 and full["off_palette_snapped"] == 0.0
    assert full["noggles_exact_raw"] < 0.2 and full["noggles_exact_snapped"] > full["noggles_exact_raw"]
    assert {c["head"] for c in choices} and set(TRAITS) == {
        "background",
        "body",
        "accessory",
        "head",
        "glasses",
    }


def test_metrics_pixels_scores_a_model_trained_on_nouns(tmp_path: Path) -> None:
    _reference_ready()
    data = tmp_path / "nouns"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "artctl", *args], capture_output=True, text=True, cwd=REPO, timeout=300
        )

    made = cli("data", "nouns", "--out", str(data), "--n", "48", "--assets", str(ASSETS))
    assert made.returncode == 0, made.stderr
    net = NetworkConfig(resolution=32, channels=0, z_dim=8, g_base=8, d_base=8, conditional=True)
    run = tmp_path / "run"
    training_loop(TrainConfig(network=net, data=str(data), steps=2, batch=4, sample_every=2), run)
    scored = cli("metrics", "pixels", "--model", str(run), "--data", str(data), "--n", "24", "--json")
    assert scored.returncode == 0, scored.stderr
    doc = json.loads(scored.stdout)
    assert doc["n"] == 24 and doc["palette_size"] == 240 and doc["off_palette_snapped"] == 0.0
    assert doc["off_palette_raw"] > 0.5  # two steps of training: nowhere near the palette yet
    for key in ("noggles_exact", "label_fidelity", "heads_copied"):
        assert 0.0 <= doc[f"{key}_raw"] <= 1.0 and 0.0 <= doc[f"{key}_snapped"] <= 1.0
    not_pixel_art = cli("metrics", "pixels", "--model", str(run), "--data", "synthetic:shapes", "--n", "4")
    assert not_pixel_art.returncode == 1 and "is not pixel art" in not_pixel_art.stderr
