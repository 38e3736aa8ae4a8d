"""Trait layers: a trait the seed picks and the data draws, exactly, from training to serving.

The test art is layered like Nouns: noise (G's part), then a hat of one of three values, then the
label's glasses over the hat. Each hat value has its own shape and colour, and the glasses cover a
different part of the hat in each label, so the layer must count every hat pixel where some image
shows it and leave what every image covers to the label layer."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
import torch
from PIL import Image

from artctl.seeds import latents
from artctl_trainer.checkpoint import load_checkpoint
from artctl_trainer.config import NetworkConfig, TrainConfig
from artctl_trainer.metrics import checkpoint_source
from artctl_trainer.networks import build_generator
from artctl_trainer.training_loop import training_loop
from artctl_trainer.trait_layers import FIXED, TraitError

HATS = {  # value -> (colour, the rows and columns it covers)
    0: ((200, 40, 40), (slice(0, 2), slice(0, 8))),
    1: ((40, 200, 40), (slice(0, 1), slice(4, 16))),
    2: ((40, 40, 200), (slice(0, 3), slice(0, 16))),
}
GLASSES = {"a": (slice(1, 2), slice(0, 4)), "b": (slice(2, 3), slice(12, 16))}  # drawn last, in white
NOISE = [
    (0, 0, 0),
    (90, 90, 90),
    (160, 120, 60),
    (30, 60, 90),
    (120, 30, 150),
    (60, 150, 90),
    (10, 10, 60),
    (150, 150, 20),
]
PALETTE = sorted(
    {"#{:02x}{:02x}{:02x}".format(*c) for c in [*NOISE, (255, 255, 255), *(c for c, _ in HATS.values())]}
)


# Art with a ground: row 0 is always the image's ground colour (one of two), the hat of rows 1-5 has
# the ground around it, and the label's glasses go over both; rows 6-15 are noise (G's part).
GROUNDS = ((210, 210, 230), (230, 210, 210))
GROUND_HATS = {  # value -> its rows and columns (in HATS' colours); the ground shows around it
    0: (slice(1, 4), slice(2, 9)),
    1: (slice(1, 3), slice(6, 15)),
    2: (slice(1, 6), slice(1, 16)),
}
GROUND_GLASSES = {"a": (slice(4, 5), slice(4, 9)), "b": (slice(5, 6), slice(9, 14))}


def _layered(root: Path, parts: bool = True, ground: bool = False) -> Path:
    """16 images per label; hats 0, 0, 1, 2 in turn (so value 0 is half the data); with `ground`,
    the art above, its two grounds every four images (so each hat is seen on both)."""
    rng = np.random.default_rng(0)
    rows = []
    hats = GROUND_HATS if ground else {value: where for value, (_, where) in HATS.items()}
    for label, glasses in (GROUND_GLASSES if ground else GLASSES).items():
        (root / label).mkdir(parents=True)
        for i in range(16):
            pixels = np.array(NOISE, dtype=np.uint8)[rng.integers(len(NOISE), size=(16, 16))]
            if ground:
                pixels[:6] = GROUNDS[i // 4 % 2]
            hat = (0, 0, 1, 2)[i % 4]
            pixels[hats[hat]] = HATS[hat][0]
            pixels[glasses] = 255
            Image.fromarray(pixels).save(root / label / f"{i}.png")
            rows.append({"file": f"{label}/{i}.png", "hat": 10 + hat, "hat_name": f"hat{hat}"})
    if parts:
        (root / "parts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    colours = sorted({"#{:02x}{:02x}{:02x}".format(*c) for c in GROUNDS}) if ground else []
    palette = {"version": "artctl-palette-v1", "colors": PALETTE + colours}
    (root / "palette.json").write_text(json.dumps(palette))
    return root


def _train(data: Path, run: Path, trait_dim: int = 0, **network: object) -> Path:
    net = NetworkConfig(
        resolution=16, z_dim=8, g_base=8, d_base=8, conditional=True, channels=0, label_layer=1.0,
        trait_share=1.0, trait_dim=trait_dim, **{"trait_layers": ["hat"], "output": "snap", **network},
    )  # fmt: skip
    cfg = TrainConfig(network=net, data=str(data), steps=2, batch=4, sample_every=2, log_every=1)
    return training_loop(cfg, run)


def _expected_hat(seed_latents: np.ndarray) -> list[int]:
    """The pick by its definition: value k where Phi(z_0) lies in the k-th share of the data (1/2,
    1/4, 1/4), at the 2^-20 step the thresholds are stored in."""
    cuts = [np.ceil(NormalDist().inv_cdf(q) * FIXED) / FIXED for q in (0.5, 0.75)]
    return [int(sum(z >= c for c in cuts)) for z in seed_latents[:, 0]]


def test_the_seed_picks_a_hat_and_it_is_drawn_exactly_in_training(tmp_path: Path) -> None:
    run = _train(_layered(tmp_path / "art"), tmp_path / "run")
    net = load_checkpoint(run).config.network
    assert net.trait_values == {"hat": ["hat0", "hat1", "hat2"]}  # names in the order of their index
    G = build_generator(net)
    G.load_state_dict(load_checkpoint(run).tensors("G_ema.safetensors"))
    assert G.trait_layers is not None
    layer = G.trait_layers.layers[0]
    assert layer.thresholds.tolist() == [0, int(np.ceil(NormalDist().inv_cdf(0.75) * FIXED))]
    for value, (colour, where) in HATS.items():
        expected = torch.zeros((16, 16), dtype=torch.bool)
        expected[where] = True
        # every glasses pixel is shown by the other label's images, except where both cover it
        assert (layer.mask[value, 0] == expected).all(), f"hat {value}"
        assert (layer.pixels[value][:, expected] == torch.tensor(colour, dtype=torch.uint8)[:, None]).all()
    seeds = list(range(64))
    hats = _expected_hat(latents(seeds, net.z_dim))
    assert len(set(hats)) == 3
    generate, _ = checkpoint_source(run)
    labels = ["ab"[i % 2] for i in seeds]
    trained = generate(0, 64, labels)
    for i, (hat, label) in enumerate(zip(hats, labels, strict=True)):
        colour, where = HATS[hat]
        visible = np.zeros((16, 16), dtype=bool)
        visible[where] = True
        visible[GLASSES[label]] = False
        assert (trained[i][visible] == colour).all(), f"seed {i}: hat {hat} is not drawn exactly"
        assert (trained[i][GLASSES[label]] == 255).all()


@pytest.mark.parametrize("arithmetic", ["float", "exact"])
@pytest.mark.parametrize("trait_dim", [0, 4])
def test_the_exported_graph_picks_and_draws_the_same_hat_as_training(
    tmp_path: Path, arithmetic: str, trait_dim: int
) -> None:
    """With trait_dim, G also reads the picked value's embedding: the graph gathers it by the pick."""
    from artctl_exporter.export import export_checkpoint
    from artctl_serving.local import LocalRenderer

    run = _train(_layered(tmp_path / "art"), tmp_path / "run", trait_dim)
    assert ("trait_embeds.0.weight" in load_checkpoint(run).tensors("G_ema.safetensors")) == bool(trait_dim)
    generate, _ = checkpoint_source(run)
    seeds = list(range(64))
    trained = generate(0, 64, ["ab"[i % 2] for i in seeds])
    model = export_checkpoint(run, tmp_path / "m.onnx", parity_seeds=32, arithmetic=arithmetic).path
    served = LocalRenderer(model).render(seeds, None, [i % 2 for i in seeds])
    pixels = np.stack([r.pixels for r in served if r.pixels is not None])
    hats = _expected_hat(latents(seeds, 8))
    for i, hat in enumerate(hats):
        colour, where = HATS[hat]
        shown = pixels[i][where]
        covered = np.zeros((16, 16), dtype=bool)
        covered[GLASSES["ab"[i % 2]]] = True
        assert (shown[~covered[where]] == colour).all(), f"seed {i}: the graph drew another hat"
    if arithmetic == "float":
        assert (pixels == trained).all()  # trained = served, value for value


def test_trait_layers_without_parts_say_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(TraitError, match=r"parts\.jsonl"):
        _train(_layered(tmp_path / "art", parts=False), tmp_path / "run")


def test_layers_kept_out_of_training_leave_the_run_as_it_was_and_draw_where_g_is_sampled(
    tmp_path: Path,
) -> None:
    """trait_layers_in_training off: G, G_ema and D train exactly as without trait layers (the layers
    are buffers fitted from the data, and a training step does not draw them), and every sample
    drawn from the checkpoint wears its picked hat."""
    data = _layered(tmp_path / "art")
    kept_out = _train(data, tmp_path / "out", trait_layers_in_training=False)
    plain = _train(data, tmp_path / "plain", trait_layers=[])
    for name in ("G.safetensors", "G_ema.safetensors", "D.safetensors"):
        layered, without = load_checkpoint(kept_out).tensors(name), load_checkpoint(plain).tensors(name)
        assert {k for k in layered if not k.startswith("trait_layers.")} == set(without)
        assert all(torch.equal(layered[k], without[k]) for k in without), name
    generate, _ = checkpoint_source(kept_out)
    hats = _expected_hat(latents(range(16), 8))
    trained = generate(0, 16, ["b"] * 16)
    for i, hat in enumerate(hats):
        colour, where = HATS[hat]
        visible = np.zeros((16, 16), dtype=bool)
        visible[where] = True
        visible[GLASSES["b"]] = False
        assert (trained[i][visible] == colour).all(), f"seed {i}: hat {hat} is not drawn over G's sample"


@pytest.mark.parametrize("arithmetic", ["float", "exact"])
def test_the_ground_around_each_value_is_drawn_in_the_colour_g_gave_pixel_0_0(
    tmp_path: Path, arithmetic: str
) -> None:
    """trait_ground: around each hat, the pixels all its images show in their ground colour are drawn
    in the sample's ground colour, so no trace of another hat stays; in training's samples and in the
    exported graph alike. The ground colour is the one most anchors (pixels every image shows as
    ground) have in G's own sample, counted here from G's samples without the ground. Without the
    snap, G's own pixels differ there."""
    from artctl_exporter.export import export_checkpoint
    from artctl_serving.local import LocalRenderer

    data = _layered(tmp_path / "art", ground=True)
    kept_out = {"trait_layers_in_training": False, "output": "rgb"}  # the same G with and without
    run = _train(data, tmp_path / "run", trait_ground=True, **kept_out)
    plain = _train(data, tmp_path / "plain", **kept_out)
    G = build_generator(load_checkpoint(run).config.network)
    G.load_state_dict(load_checkpoint(run).tensors("G_ema.safetensors"))
    assert G.trait_layers is not None
    layer = G.trait_layers.layers[0]
    assert layer.ground is not None
    hats, grounds = {}, {}
    for value, where in GROUND_HATS.items():
        hats[value] = np.zeros((16, 16), dtype=bool)
        hats[value][where] = True
        grounds[value] = np.zeros((16, 16), dtype=bool)
        grounds[value][:6] = ~hats[value][:6]  # every glasses pixel is ground in the other label's images
        assert (layer.mask[value, 0].numpy() == hats[value]).all(), f"hat {value}"
        assert (layer.ground[value, 0].numpy() == grounds[value]).all(), f"the ground of hat {value}"
    seeds = list(range(64))
    labels = ["ab"[i % 2] for i in seeds]
    trained = checkpoint_source(run)[0](0, 64, labels)
    without = checkpoint_source(plain)[0](0, 64, labels)
    out = tmp_path / "m.onnx"
    model = export_checkpoint(run, out, parity_seeds=32, arithmetic=arithmetic, palette="none").path
    served = np.stack([r.pixels for r in LocalRenderer(model).render(seeds, None, [i % 2 for i in seeds])])
    picked = _expected_hat(latents(seeds, 8))
    flat = {"trained": 0, "served": 0, "without the ground": 0}
    for name, images in (("trained", trained), ("served", served), ("without the ground", without)):
        for i, (hat, label) in enumerate(zip(picked, labels, strict=True)):
            glasses = np.zeros((16, 16), dtype=bool)
            glasses[GROUND_GLASSES[label]] = True
            flat[name] += int((images[i][grounds[hat] & ~glasses] == images[i][0, 0]).all())
            assert (images[i][hats[hat] & ~glasses] == HATS[hat][0]).all(), f"{name} {i}: hat {hat}"
            assert (images[i][glasses] == 255).all()
    assert flat == {"trained": 64, "served": 64, "without the ground": 0}
    assert G.trait_layers.anchors is not None
    anchors = G.trait_layers.anchors.numpy()
    always = np.zeros(256, dtype=bool)
    always[[c for c in range(16)] + [16 * r for r in range(1, 6)]] = True  # row 0, and column 0 above row 6
    assert always[anchors].all() and len(set(anchors.tolist())) == len(anchors)
    votes = 0
    for i in seeds:
        shown = without[i].reshape(256, 3)[anchors]
        counts = [(shown == colour).all(axis=1).sum() for colour in shown]
        assert (trained[i][0, 0] == shown[int(np.argmax(counts))]).all(), f"seed {i}: the vote"
        votes += int((shown[int(np.argmax(counts))] != without[i][0, 0]).any())
    assert votes > 0  # some sample's pixel (0, 0) is not its ground colour
    if arithmetic == "float":
        assert (served == trained).all()


def test_a_ground_without_trait_layers_says_what_is_missing() -> None:
    with pytest.raises(ValueError, match=r"trait_ground: .* name trait_layers"):
        build_generator(NetworkConfig(resolution=16, z_dim=8, trait_ground=True))
