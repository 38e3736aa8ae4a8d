"""DCGAN (Radford et al. 2015): transposed-conv generator, strided-conv discriminator.

Sizes follow the resolution: one 2x upsampling block per octave from 4x4 (a 4x4 transposed conv, or
with upsample="nearest" nearest-neighbour then 3x3, trained as the transposed conv it equals). Channel
widths double towards the low-resolution end, capped at `max_channels`. BatchNorm runs in eval mode
at export, so every image depends on its own latent only (batch-invariant), which the serving contract
relies on.

Conditional variant (cfg.conditional): G concatenates a learned label embedding to z; D is a
projection discriminator (Miyato & Koyama 2018): logit = linear(h) + <embed(label), h> over D's pooled
features h. With spectral norm on, D drops its BatchNorm (SN-DCGAN). With minibatch_std, D's last
layer also sees StyleGAN's minibatch-stddev map (off by default: D then judges each image alone).
With d_depth, D gains 3x3 stride-1 convs after each downsampling conv, as SNGAN's standard-CNN D.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from artctl.palette import palette_array
from artctl_trainer.config import NetworkConfig
from artctl_trainer.contract import GeneratorNet
from artctl_trainer.label_layer import LabelLayer
from artctl_trainer.networks_stylegan import minibatch_stddev
from artctl_trainer.trait_layers import TraitLayers


def _widths(resolution: int, base: int, cap: int) -> list[int]:
    """Channel width at each resolution from 4x4 up to resolution/2 (low-res first)."""
    n = int(math.log2(resolution)) - 2
    return [min(base * 2 ** (n - 1 - i), cap) for i in range(n)]


def _straight_through(hard: torch.Tensor, soft: torch.Tensor, training: bool) -> torch.Tensor:
    """hard in the forward pass; in a training step, soft's gradient (straight-through)."""
    return hard + (soft - soft.detach()) if training and torch.is_grad_enabled() else hard


class Backdrop(nn.Module):
    """A flat backdrop behind G's figure: one of the art's backdrop colours per image, picked from
    z, shown wherever G's extra alpha channel is at most 0 (no figure there).

    Profile-picture collections paint their figure over one flat colour. A convolutional G paints
    the backdrop pixel by pixel and speckles it; here it only decides where the figure ends (alpha
    above 0) and which colour lies behind it, both hard in the forward pass (as export draws them)
    with straight-through gradients.
    """

    def __init__(self, colours: list[str], channels: int, c_z: int) -> None:
        super().__init__()
        values = torch.from_numpy(palette_array(colours)).to(torch.float32) / 127.5 - 1.0
        if values.shape[1] != channels:
            raise ValueError(f"backdrop: {values.shape[1]}-channel colours, a {channels}-channel generator")
        self.register_buffer("colours", values)  # [K, C]
        self.colours: torch.Tensor
        self.pick = nn.Linear(c_z, len(colours))

    def forward(self, figure: torch.Tensor, alpha_logit: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        drawn = (alpha_logit > 0).to(figure.dtype)
        alpha = _straight_through(drawn, torch.sigmoid(alpha_logit), self.training)
        logits = self.pick(z)
        hard = nn.functional.one_hot(logits.argmax(dim=1), logits.shape[1]).to(figure.dtype)
        pick = _straight_through(hard, logits.softmax(dim=1), self.training)
        behind = (pick @ self.colours)[:, :, None, None]
        return alpha * figure + (1 - alpha) * behind


class ColourSlots(nn.Module):
    """G's figure drawn in `count` colours per image: a linear head on z makes the colours, and each
    pixel takes the one its slot logit scores highest.

    Pixel art paints flat areas in a few colours. A G that paints each pixel's RGB lands a flat area
    on several neighbouring shades, which the snap turns into speckle; here every pixel of a slot is
    the same colour by construction. The pick is hard in the forward pass (as export draws it) and
    learns through the softmax (straight-through), the colours through their own gradient.
    """

    def __init__(self, count: int, channels: int, c_z: int) -> None:
        super().__init__()
        self.count, self.channels = count, channels
        self.colours = nn.Linear(c_z, count * channels)

    def forward(self, logits: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """logits [B, count, H, W] and z [B, c_z] -> the figure [B, C, H, W] in [-1, 1]."""
        colours = torch.tanh(self.colours(z)).view(-1, self.count, self.channels)
        index = logits.argmax(dim=1)  # [B, H, W]; the first on a tie
        hard = nn.functional.one_hot(index, self.count).permute(0, 3, 1, 2).to(logits.dtype)
        pick = _straight_through(hard, logits.softmax(dim=1), self.training)
        return torch.einsum("bkhw,bkc->bchw", pick, colours)  # one colour times 1, the rest times 0


# Nearest-neighbour 2x upsampling then a 3x3 conv (padding 1) is a 4x4 transposed conv (stride 2,
# padding 1) whose taps, along each axis, are these sums of the 3x3 conv's taps: an even output pixel
# sees input i-1 through tap 3 and input i through tap 1, an odd one input i through tap 2 and i+1
# through tap 0.
_NEAREST_TAPS = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


class NearestUpConv(nn.ConvTranspose2d):
    """2x nearest-neighbour upsampling and a 3x3 conv, run as the 4x4 transposed conv it equals.

    Its `weight` is the 3x3 conv's (in the transposed layout, [in, out, 3, 3]); the 4x4 kernel is
    made from it in every forward pass, so an export traces one ConvTranspose whose weight folds to a
    constant, and the exact graph and every tool read it as any DCGAN layer. Odena et al. (2016):
    a transposed conv's uneven overlap paints checkerboards, which the snap turns into speckle.
    """

    def __init__(self, c_in: int, c_out: int, bias: bool = True) -> None:
        super().__init__(c_in, c_out, 3, 2, 1, bias=bias)

    def kernel(self) -> torch.Tensor:
        taps = _NEAREST_TAPS.to(self.weight)
        return torch.einsum("ka,lb,ioab->iokl", taps, taps, self.weight)

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        return nn.functional.conv_transpose2d(x, self.kernel(), self.bias, stride=2, padding=1)


def _upsampler(cfg: NetworkConfig, c_in: int, c_out: int, bias: bool) -> nn.ConvTranspose2d:
    if cfg.upsample == "nearest":
        return NearestUpConv(c_in, c_out, bias=bias)
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)


class Generator(GeneratorNet):
    """z [B, z_dim] (+ label [B]) -> image [B, C, H, W] in [-1, 1]."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.z_dim = cfg.z_dim
        self.num_classes = cfg.num_classes
        c_z = cfg.z_dim
        if self.num_classes:
            self.embed = nn.Embedding(self.num_classes, cfg.label_dim)
            c_z += cfg.label_dim
        # G reads each trait layer's value too, so it knows what the layer will cover.
        self.trait_embeds = nn.ModuleList(
            nn.Embedding(len(cfg.trait_values[t]), cfg.trait_dim) for t in cfg.trait_layers if cfg.trait_dim
        )
        c_z += cfg.trait_dim * len(self.trait_embeds)
        widths = _widths(cfg.resolution, cfg.g_base, cfg.max_channels)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(c_z, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in itertools.pairwise(widths):
            layers += [
                _upsampler(cfg, c_in, c_out, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        # The last layer: RGB (tanh), or slot logits, and an alpha channel under a backdrop.
        figure_channels = cfg.colour_slots or cfg.channels
        layers += [_upsampler(cfg, widths[-1], figure_channels + bool(cfg.backdrop), bias=True)]
        if not cfg.backdrop and not cfg.colour_slots:
            layers += [nn.Tanh()]
        self.slots = ColourSlots(cfg.colour_slots, cfg.channels, c_z) if cfg.colour_slots else None
        self.backdrop = Backdrop(cfg.backdrop, cfg.channels, c_z) if cfg.backdrop else None
        self.net = nn.Sequential(*layers)
        self.label_layer = (
            LabelLayer(self.num_classes, cfg.channels, cfg.resolution)
            if cfg.label_layer and self.num_classes
            else None
        )
        self.trait_in_training = cfg.trait_layers_in_training
        self.trait_layers = (
            TraitLayers(
                {t: cfg.trait_values[t] for t in cfg.trait_layers},
                cfg.channels,
                cfg.resolution,
                ground=cfg.trait_ground,
            )
            if cfg.trait_layers
            else None
        )

    def forward(
        self, z: torch.Tensor, label: torch.Tensor | None = None, psi: torch.Tensor | None = None
    ) -> torch.Tensor:
        # The layers draw where G is sampled, and in training steps only when asked to.
        drawn = self.trait_layers is not None and (self.trait_in_training or not self.training)
        read = self.trait_layers is not None and len(self.trait_embeds) > 0
        picked = self.trait_layers.pick(z) if self.trait_layers is not None and (drawn or read) else None
        if self.num_classes:
            if label is None:
                raise ValueError("this generator is conditional: pass a label per latent")
            z = torch.cat([z, self.embed(label)], dim=1)
        if picked is not None and read:
            z = torch.cat([z, *(embed(picked[:, i]) for i, embed in enumerate(self.trait_embeds))], dim=1)
        out: torch.Tensor = self.net(z.reshape(z.shape[0], -1, 1, 1))
        image = out
        if self.slots is not None:
            image = self.slots(out[:, : self.slots.count], z)
        elif self.backdrop is not None:
            image = torch.tanh(out[:, :-1])
        if self.backdrop is not None:
            image = self.backdrop(image, out[:, -1:], z)
        if self.trait_layers is not None and picked is not None and drawn:
            image = self.trait_layers(image, picked)
        if self.label_layer is not None and label is not None:
            image = self.label_layer(image, label)
        return image


def _d_conv(c_in: int, c_out: int, kernel: int, stride: int, cfg: NetworkConfig) -> list[nn.Module]:
    """One conv of D (padding 1: 4x4 stride 2 halves, 3x3 stride 1 keeps the size) and its activation:
    plain with spectral norm (SN-DCGAN), else with BatchNorm."""
    if cfg.spectral_norm:
        return [nn.Conv2d(c_in, c_out, kernel, stride, 1), nn.LeakyReLU(0.2, True)]
    conv = nn.Conv2d(c_in, c_out, kernel, stride, 1, bias=False)
    return [conv, nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)]


def _refine(width: int, cfg: NetworkConfig) -> list[nn.Module]:
    """cfg.d_depth 3x3 stride-1 convs at one resolution: more layers to judge detail with, at the
    width already there (SNGAN's standard-CNN discriminator interleaves them the same way)."""
    return [layer for _ in range(cfg.d_depth) for layer in _d_conv(width, width, 3, 1, cfg)]


class Discriminator(nn.Module):
    """image [B, C, H, W] (+ label [B]) -> logit [B]."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.num_classes = cfg.num_classes
        widths = list(reversed(_widths(cfg.resolution, cfg.d_base, cfg.max_channels)))
        layers: list[nn.Module] = [nn.Conv2d(cfg.channels, widths[0], 4, 2, 1), nn.LeakyReLU(0.2, True)]
        layers += _refine(widths[0], cfg)
        for c_in, c_out in itertools.pairwise(widths):
            layers += _d_conv(c_in, c_out, 4, 2, cfg) + _refine(c_out, cfg)
        self.mbstd_group = cfg.mbstd_group if cfg.minibatch_std else 0
        layers += [nn.Conv2d(widths[-1] + bool(self.mbstd_group), 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)
        if self.num_classes:
            self.embed = nn.Embedding(self.num_classes, widths[-1])

    def forward(self, img: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        h = self.net[:-1](img)
        x = minibatch_stddev(h, self.mbstd_group) if self.mbstd_group else h
        logit: torch.Tensor = self.net[-1](x).flatten()
        if not self.num_classes:
            return logit
        if label is None:
            raise ValueError("this discriminator is conditional: pass a label per image")
        return logit + (self.embed(label) * h.sum(dim=(2, 3))).sum(dim=1)


def weights_init(module: nn.Module) -> None:
    """DCGAN's initialisation: N(0, 0.02) convs and embeddings, N(1, 0.02) BatchNorm scales."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, 0.0, 0.02)
