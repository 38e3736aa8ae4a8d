"""The label layer: the pixels a label's training images share, drawn exactly over G's output, in
training, in the float and the exact ONNX graphs, and in what the server renders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from artctl_trainer.checkpoint import load_checkpoint
from artctl_trainer.label_layer import LabelLayer
from artctl_trainer.metrics import checkpoint_source
from artctl_trainer.networks import build_generator
from tests.test_pixelart import _folder, _train

PALETTE = ["#000000", "#3c6414", "#3c64c8", "#786414", "#7864c8", "#006414", "#0064c8", "#123456"]


def test_the_layer_holds_the_pixels_a_share_of_the_labels_images_have_in_common() -> None:
    images = torch.zeros((5, 3, 2, 2), dtype=torch.uint8)
    labels = torch.tensor([0, 0, 0, 1, 1])
    images[:3, :, 0, 0] = torch.tensor([10, 20, 30], dtype=torch.uint8)  # label 0: 3 of 3 alike
    images[:3, :, 0, 1] = torch.tensor([[5, 5, 5], [5, 5, 5], [6, 5, 5]], dtype=torch.uint8)  # 2 of 3
    images[3, :, 1, 1], images[4, :, 1, 1] = 200, 100  # label 1: a tie, one image each
    layer = LabelLayer(2, 3, 2)
    layer.fit(images, labels, 1.0)
    assert layer.mask[0, 0].tolist() == [[True, False], [True, True]]
    assert layer.pixels[0, :, 0, 0].tolist() == [10, 20, 30] and layer.pixels[0, :, 0, 1].tolist() == [
        0,
        0,
        0,
    ]
    assert layer.mask[1, 0].tolist() == [[True, True], [True, False]]
    layer.fit(images, labels, 0.5)
    assert layer.mask[0, 0, 0, 1] and layer.pixels[0, :, 0, 1].tolist() == [5, 5, 5]  # the 2 of 3
    assert layer.mask[1, 0, 1, 1] and layer.pixels[1, :, 1, 1].tolist() == [100, 100, 100]  # lower wins
    drawn = layer(torch.full((2, 3, 2, 2), 0.25), torch.tensor([0, 1]))
    assert drawn[0, :, 0, 0].tolist() == pytest.approx([10 / 127.5 - 1, 20 / 127.5 - 1, 30 / 127.5 - 1])
    assert drawn[1, :, 0, 1].tolist() == [-1.0, -1.0, -1.0]  # label 1's shared black
    with pytest.raises(ValueError, match="only the dcgan family"):
        from artctl_trainer.config import NetworkConfig

        build_generator(NetworkConfig(architecture="stylegan", channels=3, label_layer=1.0))


@pytest.mark.parametrize("arithmetic", ["float", "exact"])
def test_a_label_layer_model_draws_the_shared_pixels_exactly_from_training_to_serving(
    tmp_path: Path, arithmetic: str
) -> None:
    """The test folder paints row i of image i (0..4) and leaves the rest black, so in every label's
    images rows 5..15 are black in all of them: the layer must draw exactly those rows."""
    from artctl_exporter.export import export_checkpoint
    from artctl_serving.local import LocalRenderer

    data = _folder(tmp_path / "art", palette=PALETTE)
    run = _train(data, tmp_path / "run", output="snap", label_layer=1.0)
    net = load_checkpoint(run).config.network
    G = build_generator(net)
    G.load_state_dict(load_checkpoint(run).tensors("G_ema.safetensors"))
    assert G.label_layer is not None
    expected = torch.zeros((16, 16), dtype=torch.bool)
    expected[5:] = True
    assert (G.label_layer.mask[:, 0] == expected).all() and (G.label_layer.pixels == 0).all()
    generate, _ = checkpoint_source(run)
    labels = ["ab"[i % 2] for i in range(32)]
    trained = generate(0, 32, labels)
    assert (trained[:, 5:] == 0).all(), "the layer's pixels are not exact in training"
    assert (trained[:, :5] != 0).any(), "G draws nothing of its own: the test would pass on a blank image"
    model = export_checkpoint(run, tmp_path / "m.onnx", parity_seeds=32, arithmetic=arithmetic).path
    served = LocalRenderer(model).render(list(range(32)), None, [i % 2 for i in range(32)])
    pixels = np.stack([r.pixels for r in served if r.pixels is not None])
    assert (pixels[:, 5:] == 0).all()
    if arithmetic == "float":
        assert (pixels == trained).all()  # trained = served, value for value
