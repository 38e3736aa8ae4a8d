"""The DCGAN discriminator's optional depth (NetworkConfig.d_depth): 3x3 stride-1 convs after each
downsampling conv. It changes D only, so the generator, its export and every served pixel are as
before; at 0 D is the DCGAN D that trained the shipped default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file
from torch import nn

from artctl_trainer.checkpoint import load_checkpoint
from artctl_trainer.config import NetworkConfig
from artctl_trainer.networks import apply_spectral_norm, build_discriminator
from tests.helpers import train_tiny

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "nouns32-default"


def test_depth_zero_is_the_discriminator_the_default_was_trained_with() -> None:
    ck = load_checkpoint(DEFAULT_MODEL)
    assert ck.config.network.d_depth == 0
    D = apply_spectral_norm(build_discriminator(ck.config.network))
    D.load_state_dict(load_file(str(DEFAULT_MODEL / "D.safetensors")))  # strict: same layers, same shapes


def test_each_refining_conv_keeps_its_resolution_and_width() -> None:
    cfg = NetworkConfig(resolution=32, channels=3, d_base=8, spectral_norm=True, d_depth=2)
    D = build_discriminator(cfg)
    seen: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    refiners = [m for m in D.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    for conv in refiners:
        conv.register_forward_hook(lambda _m, a, out: seen.append((tuple(a[0].shape), tuple(out.shape))))
    assert D(torch.randn(2, 3, 32, 32)).shape == (2,)
    assert len(refiners) == 2 * 3  # two at each of 16, 8 and 4 px
    assert [shape_in for shape_in, shape_out in seen if shape_in != shape_out] == []
    assert sorted({s[0][2] for s in seen}) == [4, 8, 16]


def test_a_deeper_discriminator_trains_and_checkpoints(tmp_path: Path) -> None:
    ck = load_checkpoint(train_tiny(tmp_path / "run", steps=2, channels=3, spectral_norm=True, d_depth=1))
    assert ck.config.network.d_depth == 1
    D = apply_spectral_norm(build_discriminator(ck.config.network))
    D.load_state_dict(ck.tensors("D.safetensors"))  # strict: the checkpoint holds the deeper D
    plain = build_discriminator(ck.config.network.model_copy(update={"d_depth": 0}))
    assert len(D.state_dict()) > len(apply_spectral_norm(plain).state_dict())


def test_depth_is_refused_for_the_stylegan_discriminator() -> None:
    with pytest.raises(ValidationError, match="d_depth deepens the dcgan discriminator"):
        NetworkConfig(architecture="stylegan", d_depth=1)
