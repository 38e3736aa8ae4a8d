"""The DCGAN discriminator's optional minibatch-stddev map (NetworkConfig.minibatch_std)."""

from __future__ import annotations

import pytest
import torch

from artctl_trainer.config import NetworkConfig
from artctl_trainer.networks import build_discriminator


@pytest.mark.parametrize("conditional", [False, True])
def test_dcgan_minibatch_std_lets_d_see_a_batch_that_is_too_alike(conditional: bool) -> None:
    """With minibatch_std the DCGAN D judges an image by its group too: four copies of one image
    score differently from the same image among three others. Off (the default), D is per image,
    and its parameters keep the names and shapes older checkpoints have."""
    names = ["a", "b"] if conditional else []
    base = dict(resolution=32, channels=3, d_base=8, spectral_norm=True, label_names=names)
    torch.manual_seed(0)
    images, labels = torch.randn(4, 3, 32, 32), torch.zeros(4, dtype=torch.long)
    alike = images[:1].repeat(4, 1, 1, 1)
    label = labels if conditional else None
    cfg = NetworkConfig(**base, conditional=conditional, minibatch_std=True)
    D = build_discriminator(cfg).eval()
    with torch.no_grad():
        assert not torch.allclose(D(images, label)[0], D(alike, label)[0])
    plain = build_discriminator(NetworkConfig(**base, conditional=conditional)).eval()
    with torch.no_grad():
        assert torch.allclose(plain(images, label)[0], plain(alike, label)[0])
    assert D.state_dict().keys() == plain.state_dict().keys()
    # One more input channel (the std map) into the last 4x4 conv, and nothing else.
    assert sum(p.numel() for p in D.parameters()) - sum(p.numel() for p in plain.parameters()) == 16
