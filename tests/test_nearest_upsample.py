"""The DCGAN generator's nearest-neighbour upsampling (NetworkConfig.upsample = "nearest"): the layer
equals upsample-then-3x3-conv, and it exports as the plain transposed conv the exact graph reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

from artctl_exporter.export import export_checkpoint
from artctl_trainer.config import NetworkConfig
from artctl_trainer.networks import build_generator
from artctl_trainer.networks_dcgan import NearestUpConv
from tests.helpers import train_tiny


def test_the_layer_is_nearest_upsampling_then_a_3x3_conv() -> None:
    torch.manual_seed(0)
    layer = NearestUpConv(5, 7)
    conv = torch.nn.Conv2d(5, 7, 3, 1, 1)
    with torch.no_grad():
        conv.weight.copy_(layer.weight.transpose(0, 1))
        conv.bias.copy_(layer.bias)
        x = torch.randn(2, 5, 8, 8)
        expected = conv(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
        assert torch.allclose(layer(x), expected, atol=1e-5)
        # Each 2x2 block of a constant input's output is flat: no checkerboard from uneven overlap.
        flat = layer(torch.ones(1, 5, 8, 8))[0, :, 2:14, 2:14]
        assert torch.allclose(flat, flat[:, :1, :1].expand_as(flat), atol=1e-5)
    plain = build_generator(NetworkConfig(resolution=16, channels=3, g_base=8))
    nearest = build_generator(NetworkConfig(resolution=16, channels=3, g_base=8, upsample="nearest"))
    assert plain.state_dict().keys() == nearest.state_dict().keys()
    assert sum(isinstance(m, NearestUpConv) for m in nearest.modules()) == 2  # every 2x layer, not 1 -> 4


def test_it_exports_as_transposed_convs_and_the_exact_graph_renders_it(tmp_path: Path) -> None:
    run = train_tiny(tmp_path / "run", steps=3, channels=3, upsample="nearest", spectral_norm=True)
    result = export_checkpoint(run, tmp_path / "m.onnx", parity_seeds=16)
    assert result.card.contracts["arithmetic"] == "artctl-exact-v1"
    assert result.parity["uint8_pixels_differing"] == 0
    model = onnx.load(str(result.path))
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "ConvTranspose"]
    assert [weights[n.input[1]].shape[2:] for n in convs] == [(4, 4)] * 3
    assert not [n for n in model.graph.node if n.op_type in ("Einsum", "Resize", "Upsample")]
    session = ort.InferenceSession(str(result.path))
    z = np.random.default_rng(0).standard_normal((4, 16)).astype(np.float32)
    pixels = session.run(None, {"z": z})[0]
    assert pixels.dtype == np.uint8 and pixels.shape[0] == 4
