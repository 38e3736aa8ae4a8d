"""Colour slots: G's figure drawn in a few colours per image, in training, export and serving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from artctl_trainer.checkpoint import load_checkpoint
from artctl_trainer.config import NetworkConfig
from artctl_trainer.metrics import checkpoint_source
from artctl_trainer.networks import build_generator, init_weights
from tests.test_backdrop import BACKDROPS, _backdrop_folder
from tests.test_pixelart import _train

SLOTS = 3


def _net(**extra: object) -> NetworkConfig:
    base = {"resolution": 16, "z_dim": 8, "g_base": 8, "channels": 3, "colour_slots": SLOTS}
    return NetworkConfig(**{**base, **extra})  # type: ignore[arg-type]


def test_each_image_is_drawn_in_its_own_slot_colours_and_both_heads_learn() -> None:
    torch.manual_seed(0)
    G = build_generator(_net())
    init_weights(G, _net())
    assert G.slots is not None
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    G.eval()
    with torch.no_grad():
        image = G(z)
        raw = G.net(z.reshape(16, -1, 1, 1))
        colours = torch.tanh(G.slots.colours(z)).view(16, SLOTS, 3)
    assert raw.shape[1] == SLOTS  # slot logits, no RGB and no Tanh in the last layer
    # Every pixel is the colour of the slot its logits score highest: at most SLOTS colours an image.
    index = raw.argmax(dim=1)
    expected = colours[torch.arange(16)[:, None, None], index].permute(0, 3, 1, 2)
    assert torch.equal(image, expected)
    distinct = [len(torch.unique(img.flatten(1), dim=1).T) for img in image]
    assert max(distinct) <= SLOTS and max(distinct) > 1
    # A training step draws the same hard picks and passes the soft ones' gradient to both heads.
    G.train()
    G.net.apply(lambda m: m.eval() if isinstance(m, torch.nn.BatchNorm2d) else None)
    trained = G(z)
    assert torch.allclose(trained, image)
    trained.square().sum().backward()
    assert G.slots.colours.weight.grad is not None and G.slots.colours.weight.grad.abs().sum() > 0
    last = G.net[-1].weight.grad
    assert last is not None and last.abs().sum() > 0  # the slot logits' kernels learn


@pytest.mark.parametrize(("arithmetic", "backdrop"), [("float", True), ("exact", True), ("exact", False)])
def test_a_slot_model_serves_the_pixels_it_trained_on(
    tmp_path: Path, arithmetic: str, backdrop: bool
) -> None:
    from artctl_exporter.export import export_checkpoint
    from artctl_serving.local import LocalRenderer

    backdrops = ["#" + bytes(c).hex() for c in BACKDROPS] if backdrop else []
    art = _backdrop_folder(tmp_path / "art")
    layer = 0.98 if backdrop else 0.0  # the default's layout: slots, backdrop and the label layer over them
    run = _train(art, tmp_path / "run", output="snap", backdrop=backdrops, colour_slots=4, label_layer=layer)
    assert load_checkpoint(run).config.network.colour_slots == 4
    generate, _ = checkpoint_source(run)
    trained = generate(0, 24, ["ab"[i % 2] for i in range(24)])
    exported = export_checkpoint(run, tmp_path / "m.onnx", parity_seeds=24, arithmetic=arithmetic)
    assert exported.card.contracts.get("arithmetic") == ("artctl-exact-v1" if arithmetic == "exact" else None)
    model = exported.path
    served = LocalRenderer(model).render(list(range(24)), None, [i % 2 for i in range(24)])
    pixels = np.stack([r.pixels for r in served if r.pixels is not None])
    if arithmetic == "float":
        assert (pixels == trained).all()  # trained = served, value for value
        return
    # The exact graph picks each pixel's slot from the integer accumulators and makes the colours
    # with integer weights: the same picks nearly everywhere, colours within a step of the float's.
    same = (pixels == trained).all(axis=-1)
    assert same.mean() > 0.95


def test_slots_refuse_other_families() -> None:
    with pytest.raises(ValueError, match="only the dcgan family draws colour slots"):
        build_generator(NetworkConfig(architecture="stylegan", channels=3, colour_slots=4))


def test_the_slot_logits_share_one_scale_so_the_integer_argmax_is_the_float_one() -> None:
    import onnx

    from artctl_exporter.exact import Layer, quantise_weights

    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.02, (16, 5, 4, 4)) * np.array([1.0, 30.0, 0.3, 5.0, 1.0])[None, :, None, None]
    bias = rng.normal(0, 0.01, 5)
    node = onnx.helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])
    layer = Layer(node, weight, bias)
    x = rng.integers(0, 512, (8, 16, 8, 8)).astype(np.float64)
    float_logits = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias), stride=2, padding=1
    )
    w_q, b_q, scale = quantise_weights(layer, 1.0, 511, shared=4)
    assert len(set(scale[:4].tolist())) == 1 and scale[4] != scale[0]  # alpha (channel 4) keeps its own
    acc = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(x), torch.from_numpy(w_q), torch.from_numpy(b_q), stride=2, padding=1
    )
    same = (acc[:, :4].argmax(dim=1) == float_logits[:, :4].argmax(dim=1)).double().mean()
    assert same > 0.99


def _tied_generator(gap: float) -> torch.nn.Module:
    """A slot G whose slots 0 and 1 score the highest everywhere, `gap` apart."""
    torch.manual_seed(0)
    G = build_generator(_net())
    init_weights(G, _net())
    G.eval()
    last = G.net[-1]
    with torch.no_grad():
        last.weight[:, 1] = last.weight[:, 0]
        last.bias[0], last.bias[1] = 10.0, 10.0 + gap
    return G


def test_the_float_parity_gate_leaves_out_near_tied_slot_picks_only() -> None:
    """A hard pick between logits a float rounding apart may go either way in ONNX Runtime; the float
    gate leaves those pixels out (traced_call's ties) and still refuses a difference anywhere else."""
    from artctl_exporter.graphs import FLOAT_OUTPUT, MainGraph, example_inputs, export_graph
    from artctl_exporter.parity import TIE_MARGIN, compare, cpu_session, parity_inputs, traced_call

    seeds = np.arange(4, dtype=np.uint64)
    feeds = parity_inputs(seeds, 8)
    tied = traced_call(_tied_generator(TIE_MARGIN / 2), feeds)[1]
    assert tied is not None and tied.shape == (4, 1, 16, 16) and tied.all()
    apart = traced_call(_tied_generator(0.1), feeds)[1]
    assert apart is not None and not apart.any()
    assert traced_call(build_generator(_net(colour_slots=0)), feeds)[1] is None

    G = _tied_generator(0.1)
    graph = export_graph(MainGraph(G, False, False), example_inputs(["z"], 8), FLOAT_OUTPUT, 17)
    session = cpu_session(graph)
    with torch.no_grad():
        reference = G(torch.from_numpy(feeds["z"])).numpy()
    ties = np.zeros((4, 1, 16, 16), dtype=bool)
    ties[2, 0, 5, 7] = True
    moved = reference.copy()
    moved[2, :, 5, 7] += 0.5  # the other slot's colour at a near-tie: allowed
    assert compare(session, feeds, moved, FLOAT_OUTPUT, (1, 4), ties=ties).max_diff < 1e-5
    moved[1, 0, 3, 3] += 0.5  # anywhere else: the gate sees it
    assert compare(session, feeds, moved, FLOAT_OUTPUT, (1, 4), ties=ties).max_diff >= 0.5 - 1e-5
