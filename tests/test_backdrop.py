"""The backdrop: one flat colour per image behind G's figure, in training, export and serving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from artctl_trainer.checkpoint import load_checkpoint
from artctl_trainer.config import NetworkConfig
from artctl_trainer.metrics import checkpoint_source
from artctl_trainer.networks import build_generator
from tests.test_pixelart import _folder, _train

BACKDROPS = [(213, 215, 225), (225, 215, 213)]  # Nouns' cool and warm


def _backdrop_folder(root: Path) -> Path:
    """Two labels of 16 x 16 figures (a block whose colour follows the image) on one of two backdrops."""
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for i in range(6):
            img = Image.new("RGB", (16, 16), BACKDROPS[i % 2])
            for x in range(4, 12):
                for y in range(3 + i % 3, 14):
                    img.putpixel((x, y), (40 * i, 90, 20 if label == "a" else 200))
            img.save(root / label / f"{i}.png")
    colours = BACKDROPS + [(40 * i, 90, blue) for i in range(6) for blue in (20, 200)]
    palette = {"version": "artctl-palette-v1", "colors": ["#" + bytes(c).hex() for c in colours]}
    (root / "palette.json").write_text(json.dumps(palette))
    return root


def test_auto_takes_the_corner_colours_and_refuses_art_without_a_flat_backdrop(tmp_path: Path) -> None:
    run = _train(_backdrop_folder(tmp_path / "art"), tmp_path / "run", backdrop=["auto"])
    assert load_checkpoint(run).config.network.backdrop == ["#d5d7e1", "#e1d7d5"]
    with pytest.raises(ValueError, match="do not all have one flat backdrop"):
        _train(_folder(tmp_path / "rows"), tmp_path / "r2", backdrop=["auto"])
    with pytest.raises(ValueError, match="only the dcgan family draws a backdrop"):
        build_generator(NetworkConfig(architecture="stylegan", channels=3, backdrop=["#000000"]))
    with pytest.raises(ValueError, match="3-channel colours, a 4-channel generator"):
        build_generator(NetworkConfig(channels=4, backdrop=["#000000"]))


def test_the_backdrop_is_flat_exact_and_learns_through_its_hard_choices(tmp_path: Path) -> None:
    run = _train(_backdrop_folder(tmp_path / "art"), tmp_path / "run", backdrop=["auto"])
    G = build_generator(load_checkpoint(run).config.network)
    G.load_state_dict(load_checkpoint(run).tensors("G_ema.safetensors"))
    assert G.backdrop is not None
    G.eval()
    z, label = torch.randn(16, 8, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 2
    with torch.no_grad():
        zc = torch.cat([z, G.embed(label)], dim=1)
        raw = G.net(zc.reshape(16, -1, 1, 1))
        image = G(z, label)
    figure = raw[:, -1:] > 0
    colours = G.backdrop.colours[G.backdrop.pick(zc).argmax(dim=1)][:, :, None, None]
    assert torch.equal(torch.where(figure, torch.tanh(raw[:, :-1]), colours), image)
    assert figure.any() and (~figure).any(), "a test on an all-figure or all-backdrop image shows nothing"
    # In a training step the hard choices pass the gradient of their soft forms to both heads.
    G.train()
    G(z, label).square().sum().backward()
    assert G.backdrop.pick.weight.grad is not None and G.backdrop.pick.weight.grad.abs().sum() > 0
    last = G.net[-1].weight.grad
    assert last is not None and last[:, -1].abs().sum() > 0  # the alpha channel's kernels learn


@pytest.mark.parametrize("arithmetic", ["float", "exact"])
def test_a_backdrop_model_draws_one_flat_backdrop_from_training_to_serving(
    tmp_path: Path, arithmetic: str
) -> None:
    from artctl_exporter.export import export_checkpoint
    from artctl_serving.local import LocalRenderer

    palette = ["#" + bytes(c).hex() for c in BACKDROPS]
    run = _train(_backdrop_folder(tmp_path / "art"), tmp_path / "run", output="snap", backdrop=palette)
    generate, _ = checkpoint_source(run)
    trained = generate(0, 24, ["ab"[i % 2] for i in range(24)])
    model = export_checkpoint(run, tmp_path / "m.onnx", parity_seeds=24, arithmetic=arithmetic).path
    served = LocalRenderer(model).render(list(range(24)), None, [i % 2 for i in range(24)])
    pixels = np.stack([r.pixels for r in served if r.pixels is not None])
    assert pixels.shape == trained.shape
    backdrops = np.array(BACKDROPS, dtype=np.uint8)
    shown = np.stack([(pixels == b).all(axis=-1) for b in backdrops], axis=1)  # [N, K, H, W]
    assert (shown.any(axis=(2, 3)).sum(axis=1) == 1).all(), "each image shows one backdrop colour"
    if arithmetic == "float":
        assert (pixels == trained).all()  # trained = served, value for value
        return
    # The exact graph picks each image's colour from integer logits and tests its alpha on the
    # integer accumulator: the same picks as training, and the figure's outline nearly everywhere.
    trained_shown = np.stack([(trained == b).all(axis=-1) for b in backdrops], axis=1)
    assert (shown.any(axis=(2, 3)) == trained_shown.any(axis=(2, 3))).all()
    assert (shown.any(axis=1) == trained_shown.any(axis=1)).mean() > 0.95
