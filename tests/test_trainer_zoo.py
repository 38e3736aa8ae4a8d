"""The GAN zoo on CPU: losses, conditioning, StyleGAN, regularisers and augmentation as config data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from artctl_exporter.export import export_checkpoint, parity_inputs
from artctl_trainer import augment
from artctl_trainer.config import NetworkConfig, TrainConfig
from artctl_trainer.datasets import DatasetError
from artctl_trainer.loss import d_loss, g_loss, gradient_penalty, r1_penalty
from artctl_trainer.networks import apply_spectral_norm, build_discriminator, build_generator
from artctl_trainer.networks_stylegan import SynthesisLayer, minibatch_stddev
from tests.helpers import require_emoji_font, train_tiny


def test_losses_match_their_definitions() -> None:
    big, small = torch.full((4,), 3.0), torch.full((4,), -3.0)
    assert d_loss("hinge", big, small) == 0  # both margins satisfied
    assert d_loss("lsgan", torch.ones(4), torch.zeros(4)) == 0
    assert torch.isclose(d_loss("wgan-gp", big, small), torch.tensor(-6.0 + 1e-3 * 9))
    assert torch.isclose(g_loss("bce", torch.zeros(4)), torch.tensor(math.log(2.0)))
    assert g_loss("hinge", big) == -3 and g_loss("lsgan", torch.ones(4)) == 0
    # D(x) = <a, x> has gradient a everywhere: penalty (|a| - 1)^2, R1 |a|^2.
    a = torch.randn(1, 2, 4, 4)

    def linear_d(x: torch.Tensor) -> torch.Tensor:
        return (x * a).sum(dim=(1, 2, 3))

    x = torch.randn(3, 2, 4, 4)
    gp = gradient_penalty(linear_d, x, torch.randn(3, 2, 4, 4), torch.Generator().manual_seed(0))
    assert torch.isclose(gp, (a.norm() - 1) ** 2, rtol=1e-5)
    x.requires_grad_(True)
    assert torch.isclose(r1_penalty(linear_d(x), x), a.square().sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown loss"):
        d_loss("nope", big, small)


def test_the_relativistic_pairing_loss_compares_each_real_with_its_fake() -> None:
    real, fake = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([-1.0, 0.5, 1.5])
    # softplus(fake - real) per pair, averaged: -log sigmoid(D(real) - D(fake)).
    want_d = torch.log1p(torch.exp(fake - real)).mean()
    assert torch.isclose(d_loss("rpgan", real, fake), want_d)
    assert torch.isclose(g_loss("rpgan", fake, real), torch.log1p(torch.exp(real - fake)).mean())
    # Relativistic: only the differences count, so shifting every logit changes nothing (bce moves).
    assert torch.isclose(d_loss("rpgan", real + 5, fake + 5), want_d)
    assert not torch.isclose(d_loss("bce", real + 5, fake + 5), d_loss("bce", real, fake))
    # The pairing is element-wise: reordering the fakes against the reals changes the loss.
    assert not torch.isclose(d_loss("rpgan", real, fake.flip(0)), want_d)
    with pytest.raises(ValueError, match="needs D's logits on reals"):
        g_loss("rpgan", fake)


def test_r2_is_r1_on_fakes_and_forbids_a_batchnorm_critic() -> None:
    a = torch.randn(1, 2, 4, 4)
    fake = torch.randn(3, 2, 4, 4, requires_grad=True)
    assert torch.isclose(r1_penalty((fake * a).sum(dim=(1, 2, 3)), fake), a.square().sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="R2 need a discriminator without BatchNorm"):
        TrainConfig(network=NetworkConfig(architecture="dcgan"), r2_gamma=1.0)


def test_spectral_norm_bounds_each_layer() -> None:
    D = build_discriminator(NetworkConfig(resolution=16, d_base=8, spectral_norm=True))
    apply_spectral_norm(D)
    for _ in range(30):  # power iteration converges while D runs in training mode
        D(torch.randn(4, 4, 16, 16))
    for m in D.modules():
        if hasattr(m, "parametrizations"):
            sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
            assert sigma == pytest.approx(1.0, abs=0.05)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())


def test_modulated_conv_equals_per_sample_weight_modulation() -> None:
    """The activation-scaling form is the StyleGAN2 weight-modulation formula, sample by sample."""
    torch.manual_seed(0)
    layer = SynthesisLayer(3, 5, w_dim=6, resolution=8).eval()
    layer.noise_strength.data.fill_(0.0)
    x, w = torch.randn(2, 3, 8, 8), torch.randn(2, 6)
    out = layer(x, w)
    styles = layer.affine(w)
    for i in range(2):
        wt = layer.weight * layer.weight_gain * styles[i][None, :, None, None]
        wt = wt / (wt.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        ref = torch.nn.functional.conv2d(x[i : i + 1], wt, padding=1) + layer.bias[None, :, None, None]
        ref = torch.nn.functional.leaky_relu(ref, 0.2) * math.sqrt(2)
        assert torch.allclose(out[i : i + 1], ref, atol=1e-5)


def test_minibatch_stddev_appends_group_std() -> None:
    x = torch.zeros(4, 2, 3, 3)
    x[2:] = 2.0  # one group of four: every feature takes the values {0, 0, 2, 2}
    y = minibatch_stddev(x, group=4)
    assert y.shape == (4, 3, 3, 3)
    assert torch.allclose(y[:, 2], torch.full((4, 3, 3), 1.0), atol=1e-3)  # std of {0,0,2,2} = 1
    assert minibatch_stddev(torch.randn(6, 2, 4, 4), group=4).shape == (6, 3, 4, 4)  # 6 % 4 != 0


def test_stylegan_generator_shapes_and_truncation() -> None:
    cfg = NetworkConfig(
        architecture="stylegan", resolution=32, channels=3, z_dim=8, g_base=8, max_channels=16,
        mapping_layers=8, conditional=True, label_names=["a", "b"],
    )  # fmt: skip
    G = build_generator(cfg).eval()
    assert len(G.mapping.layers) == 8 and G.num_ws == 8  # 2 * log2(32) - 2
    G.w_avg.copy_(torch.randn_like(G.w_avg))
    z, label = torch.randn(5, 8), torch.tensor([0, 1, 0, 1, 1])
    with torch.no_grad():
        assert G(z, label).shape == (5, 3, 32, 32)
        ws0 = G.map(z, label, psi=torch.zeros(5))
        assert torch.allclose(ws0[:, 0], G.w_avg[label])
        assert torch.allclose(G.map(z, label, psi=torch.ones(5)), G.map(z, label), atol=1e-6)


def test_stylegan_w_avg_tracks_each_label() -> None:
    cfg = NetworkConfig(
        architecture="stylegan", resolution=16, z_dim=8, conditional=True, label_names=["a", "b"]
    )
    G = build_generator(cfg)
    G.w_avg_beta = 0.0  # w_avg = this batch's mean, per label
    z, label = torch.randn(6, 8), torch.tensor([0, 0, 0, 0, 1, 1])
    with torch.no_grad():
        w = G.mapping(z, label)
        G.map(z, label, update_w_avg=True)
    assert torch.allclose(G.w_avg[0], w[:4].mean(0), atol=1e-6)
    assert torch.allclose(G.w_avg[1], w[4:].mean(0), atol=1e-6)


def test_diffaugment_ops_keep_shape_alpha_and_gradients() -> None:
    x = torch.rand(4, 4, 16, 16, requires_grad=True)
    gen = torch.Generator().manual_seed(1)
    out = augment.diff_augment(x, "color,translation,cutout", gen)
    assert out.shape == x.shape
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    again = augment.diff_augment(x, "color,translation,cutout", torch.Generator().manual_seed(1))
    assert torch.equal(out, again), "augmentation draws only from the given generator"
    colour = augment.color(x.detach(), torch.Generator().manual_seed(2))
    assert torch.equal(colour[:, 3], x.detach()[:, 3]), "colour ops leave alpha alone"
    cut = augment.cutout(torch.ones(8, 3, 16, 16), torch.Generator().manual_seed(3))
    zeros = (cut == 0).flatten(1).sum(1)
    assert torch.all((zeros > 0) & (zeros <= 3 * 8 * 8)) and zeros.max() == 3 * 8 * 8
    moved = augment.translation(torch.ones(8, 3, 16, 16), torch.Generator().manual_seed(4))
    assert moved.shape == (8, 3, 16, 16) and (moved == 0).any()
    assert torch.equal(augment.ada_augment(x.detach(), 0.0, gen), x.detach())
    with pytest.raises(ValueError, match="unknown DiffAugment"):
        TrainConfig(augment="diffaug", diffaug_policy="color,blur")


def test_ada_p_follows_the_overfitting_signal() -> None:
    ada = augment.AdaController(p=0.0, target=0.6, kimg=0.1)  # 100 images from 0 to 1
    for _ in range(5):
        ada.accumulate(torch.full((10,), 2.0))  # D sure every real is real: r_t = 1 > 0.6
        ada.adjust()
    assert ada.p == pytest.approx(0.5)
    for _ in range(3):
        ada.accumulate(torch.tensor([1.0, -1.0, 1.0, -1.0]))  # r_t = 0 < 0.6
        ada.adjust()
    assert ada.p == pytest.approx(0.5 - 12 / 100)
    for _ in range(100):
        ada.accumulate(-torch.ones(10))
        ada.adjust()
    assert ada.p == 0.0
    restored = augment.AdaController()
    ada.accumulate(torch.ones(3))
    restored.load(json.loads(json.dumps(ada.state())))
    assert restored.state() == ada.state()


ZOO = [
    ("dcgan", False, "bce", {}),
    ("dcgan", False, "hinge", {"spectral_norm": True}),
    ("dcgan", True, "wgan-gp", {"spectral_norm": True}),
    ("dcgan", True, "lsgan", {"spectral_norm": True}),
    ("stylegan", False, "bce", {}),
    ("stylegan", False, "wgan-gp", {}),
    ("stylegan", True, "hinge", {"spectral_norm": True}),
    ("stylegan", True, "lsgan", {}),
    ("dcgan", False, "rpgan", {"spectral_norm": True}),
    ("stylegan", True, "rpgan", {}),
]


@pytest.mark.parametrize(("architecture", "conditional", "loss", "extra"), ZOO)
def test_every_architecture_and_loss_trains_and_exports(
    tmp_path: Path, architecture: str, conditional: bool, loss: str, extra: dict[str, bool]
) -> None:
    aug = {"bce": "diffaug", "lsgan": "ada"}.get(loss, "none")
    # R1 and gradient penalties need a per-sample critic: a DCGAN one without BatchNorm (see config).
    per_sample = architecture == "stylegan" or extra.get("spectral_norm", False)
    r1 = 1.0 if per_sample else 0.0
    train = {"loss": loss, "augment": aug, "r1_gamma": r1, "r1_interval": 2, "ada_kimg": 0.05}
    if loss == "rpgan":  # R3GAN: the relativistic loss with R1 and R2 of equal weight
        train["r2_gamma"] = r1
    last = train_tiny(
        tmp_path / "run", steps=3, train=train, architecture=architecture, conditional=conditional, **extra
    )
    for name in ("G", "G_ema", "D"):
        assert all(torch.isfinite(t).all() for t in load_file(str(last / f"{name}.safetensors")).values())
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(math.isfinite(r["loss_D"] + r["loss_G"]) for r in records)
    if aug == "ada":  # the controller's behaviour is tested above; here: it is wired in and logged
        assert all("ada_p" in r for r in records)
    assert Image.open(tmp_path / "run" / "samples-000003.png").size[0] > 16

    result = export_checkpoint(tmp_path / "run", tmp_path / "m.onnx", parity_seeds=16)
    assert result.parity["max_abs_diff"] <= 1e-4
    expected = ["z"] + (["psi"] if architecture == "stylegan" else []) + (["label"] if conditional else [])
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == expected
    assert (result.card.has_psi, result.card.has_label) == (architecture == "stylegan", conditional)
    assert result.card.label_names == (["circle", "square", "triangle", "diamond"] if conditional else [])
    for batch in (1, 7):
        feeds = parity_inputs(np.arange(batch, dtype=np.uint64), 16, result.card.has_psi, 4 * conditional)
        (images,) = session.run(["image"], feeds)
        assert images.shape == (batch, 16, 16, 4) and images.dtype == np.uint8


def test_conditional_training_needs_labels(tmp_path: Path) -> None:
    for i in range(8):
        Image.new("RGB", (16, 16), (i * 30, 0, 0)).save(tmp_path / f"{i}.png")
    cfg = TrainConfig(network=NetworkConfig(resolution=16, conditional=True), data=str(tmp_path), steps=1)
    from artctl_trainer.training_loop import training_loop

    with pytest.raises(DatasetError, match="sub-folder per label"):
        training_loop(cfg, tmp_path / "run")


def test_ada_p_rises_when_d_overfits_and_resume_restores_it(tmp_path: Path) -> None:
    # Eight real images and a D that learns fast: sign(D(real)) goes positive and p climbs.
    train = {"augment": "ada", "ada_interval": 1, "ada_kimg": 0.02, "ada_target": 0.1, "lr_d": 1e-2}
    train_tiny(tmp_path / "run", steps=4, train={**train, "synthetic_size": 16, "checkpoint_every": 2})
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["ada_p"] > 0.0
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-000004" / "state.json").read_text())
    assert state["ada"]["p"] == pytest.approx(records[-1]["ada_p"], abs=1e-6)


@pytest.mark.parametrize("architecture", ["stylegan"])
def test_stylegan_resume_equals_an_uninterrupted_run(tmp_path: Path, architecture: str) -> None:
    """ADA p, its running statistics, R1 timing, style mixing and noise all survive a resume."""
    train = {
        "augment": "ada",
        "ada_p": 0.3,
        "ada_interval": 3,
        "ada_kimg": 0.1,
        "r1_gamma": 1.0,
        "r1_interval": 2,
    }
    net = {"architecture": architecture, "conditional": True}
    straight = train_tiny(tmp_path / "straight", steps=6, train=train, **net)
    train_tiny(tmp_path / "split", steps=3, train=train, **net)
    resumed = train_tiny(tmp_path / "split", steps=6, train=train, resume=tmp_path / "split", **net)
    for name in ("G.safetensors", "G_ema.safetensors", "D.safetensors", "optim.safetensors"):
        a, b = load_file(str(straight / name)), load_file(str(resumed / name))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}:{key} differs after resume"
    sa = json.loads((straight / "state.json").read_text())
    sb = json.loads((resumed / "state.json").read_text())
    assert sa == sb and sa["ada"]["p"] != 0.3, "p moved and its exact value survived the resume"


def test_zip_data_set_equals_the_folder_it_was_made_from(tmp_path: Path) -> None:
    import zipfile

    from artctl_trainer.datasets import load_dataset, load_folder

    for label in ("cats", "dogs"):
        (tmp_path / "art" / label).mkdir(parents=True)
        for i in range(4):
            Image.new("RGBA", (20, 24), (i * 50, 20, 90, 200)).save(tmp_path / "art" / label / f"{i}.png")
    with zipfile.ZipFile(tmp_path / "art.zip", "w") as archive:
        for path in sorted((tmp_path / "art").rglob("*.png")):
            archive.write(path, f"art/{path.relative_to(tmp_path / 'art').as_posix()}")  # one top folder
        archive.writestr("__MACOSX/art/._0.png", b"junk")
        archive.writestr("art/cats/broken.png", b"not a png")
    folder = load_folder(tmp_path / "art", 16, 4)
    zipped = load_dataset(str(tmp_path / "art.zip"), 16, 4)
    assert zipped.skipped == ["cats/broken.png (not an image Pillow can read)"]
    assert zipped.label_names == folder.label_names == ["cats", "dogs"]
    assert torch.equal(zipped.images, folder.images) and torch.equal(zipped.labels, folder.labels)
    (tmp_path / "bad.zip").write_bytes(b"PK nonsense")
    with pytest.raises(DatasetError, match="not a readable zip"):
        load_dataset(str(tmp_path / "bad.zip"), 16, 4)


def test_emoji_font_missing_names_the_package(tmp_path: Path) -> None:
    from artctl_trainer.emoji import EmojiFontError, render_emoji

    with pytest.raises(EmojiFontError, match="fonts-noto-color-emoji"):
        render_emoji(tmp_path / "out", font_path=tmp_path / "NotoColorEmoji.ttf")


def test_emoji_data_set_renders_labelled_rgba(tmp_path: Path) -> None:
    from artctl_trainer.emoji import render_emoji

    require_emoji_font()
    report = render_emoji(tmp_path / "emoji", size=16, limit=40, labels="block")
    assert report.count == 40 and sum(report.labels.values()) == 40 and len(report.labels) >= 2
    files = sorted((tmp_path / "emoji").rglob("*.png"))
    assert len(files) == 40
    images = [Image.open(f) for f in files]
    assert all(img.mode == "RGBA" and img.size == (16, 16) for img in images)
    assert any(img.getextrema()[3][0] == 0 for img in images), "transparent background kept"
    again = render_emoji(tmp_path / "again", size=16, limit=40, labels="block")
    assert again.labels == report.labels
    assert (
        files[0].read_bytes() == (tmp_path / "again" / files[0].relative_to(tmp_path / "emoji")).read_bytes()
    )


EMOJI_TEST = """# emoji-test.txt
# Version: 15.0
# group: Smileys & Emotion
# subgroup: face-smiling
1F600                                                  ; fully-qualified     # 😀 E1.0 grinning face
263A FE0F                                              ; fully-qualified     # ☺️ E0.6 smiling face
263A                                                   ; unqualified         # ☺ E0.6 smiling face
# group: People & Body
1F44B                                                  ; fully-qualified     # 👋 E0.6 waving hand
1F44B 1F3FB    ; fully-qualified     # 👋🏻 E1.0 waving hand: light skin tone
# group: Component
1F3FB          ; component           # 🏻 E1.0 light skin tone
# group: Animals & Nature
1F436                                                  ; fully-qualified     # 🐶 E0.6 dog face
"""


def test_emoji_labels_are_the_groups_of_emoji_test(tmp_path: Path) -> None:
    import json

    from artctl_trainer.emoji import emoji_groups, render_emoji

    require_emoji_font(emoji_list=True)
    listing = tmp_path / "emoji-test.txt"
    listing.write_text(EMOJI_TEST, encoding="utf-8")
    assert emoji_groups(listing) == {
        0x1F600: "smileys-emotion",
        0x263A: "smileys-emotion",
        0x1F44B: "people-body",
        0x1F436: "animals-nature",
    }
    report = render_emoji(tmp_path / "emoji", size=16, emoji_test=listing)
    assert report.labels == {"animals-nature": 1, "people-body": 1, "smileys-emotion": 2}
    files = sorted(p.relative_to(tmp_path / "emoji").as_posix() for p in (tmp_path / "emoji").rglob("*.png"))
    assert files == [
        "animals-nature/u1f436.png",
        "people-body/u1f44b.png",
        "smileys-emotion/u0263a.png",
        "smileys-emotion/u1f600.png",
    ]
    about = json.loads((tmp_path / "emoji" / "emoji.json").read_text())
    assert about["labels_by"] == "group" and about["emoji_version"] == "15.0"
    # The installed list (Debian unicode-data) gives Unicode's ten groups; the font draws ~1.4k.
    full = render_emoji(tmp_path / "full", size=8, limit=5)
    assert full.labels == {"smileys-emotion": 5}


def test_emoji_list_errors_are_clear(tmp_path: Path) -> None:
    from artctl_trainer.emoji import EmojiListError, emoji_groups, render_emoji

    require_emoji_font()
    with pytest.raises(EmojiListError, match="unicode-data"):
        render_emoji(tmp_path / "out", emoji_test=tmp_path / "missing.txt")
    (tmp_path / "notes.txt").write_text("# group: Nothing\nhello ; world\n")
    with pytest.raises(EmojiListError, match=r"not an emoji-test\.txt line"):
        emoji_groups(tmp_path / "notes.txt")
    (tmp_path / "empty.txt").write_text("# only comments\n")
    with pytest.raises(EmojiListError, match="no emoji found"):
        emoji_groups(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="'group' or 'block'"):
        render_emoji(tmp_path / "out", labels="colour")  # type: ignore[arg-type]
    # One folder never mixes two label sets: a block-labelled set is not overwritten by groups.
    render_emoji(tmp_path / "set", size=8, limit=2, labels="block")
    render_emoji(tmp_path / "set", size=8, limit=2, labels="block")  # re-rendering in place is fine
    with pytest.raises(ValueError, match="already holds other files"):
        render_emoji(tmp_path / "set", size=8, limit=2)


def test_gradient_penalties_refuse_a_batchnorm_critic() -> None:
    from pydantic import ValidationError

    from artctl_trainer.config import NetworkConfig, TrainConfig

    for kwargs in ({"loss": "wgan-gp"}, {"r1_gamma": 1.0}):
        with pytest.raises(ValidationError, match="without BatchNorm"):
            TrainConfig(network=NetworkConfig(architecture="dcgan"), **kwargs)
    TrainConfig(network=NetworkConfig(architecture="dcgan", spectral_norm=True), loss="wgan-gp", r1_gamma=1.0)
