"""StyleGAN2-type networks (Karras et al. 2020), written for export as much as for training.

Generator = mapping (z [+ label] -> w, 8 equalized-lr layers) + synthesis (a learned 4x4 constant,
two modulated 3x3 convs per octave, skip toRGB outputs summed through bilinear upsampling).

Choices made so the generator exports to ONNX with a dynamic batch and no randomness:
- Modulated convolution scales the *activations* by the style, convolves with the one shared
  weight, then demodulates per output channel. This is the same function as modulating the weight
  per sample, but needs no grouped conv whose group count is the batch size.
- Noise is a constant buffer per layer unless a torch.Generator is passed (training only).
- Truncation is a lerp toward the tracked w_avg (per label when conditional) with psi as a tensor:
  w_avg + psi * (w - w_avg), no data-dependent branch.

The discriminator is residual with minibatch standard deviation, and a projection head when
conditional. Upsampling is bilinear (a [1, 3, 3, 1] filter) and downsampling 2x2 average pooling.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from artctl_trainer.config import NetworkConfig
from artctl_trainer.contract import StyleGeneratorNet

SQRT2 = math.sqrt(2.0)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * SQRT2


def _normalize(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit second moment (pixel norm on latents)."""
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def _width(base: int, cap: int, top: int, res: int) -> int:
    return min(base * top // res, cap)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: N(0, 1) weights scaled by lr_mult / sqrt(fan_in)."""

    def __init__(
        self, c_in: int, c_out: int, bias_init: float = 0.0, lr_mult: float = 1.0, activate: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_mult)
        self.bias = nn.Parameter(torch.full([c_out], float(bias_init) / lr_mult))
        self.weight_gain = lr_mult / math.sqrt(c_in)
        self.lr_mult = lr_mult
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mult)
        return _lrelu(x) if self.activate else x


class EqualConv2d(nn.Module):
    """Conv with equalized learning rate; optional 2x average-pool downsampling after it."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, bias: bool = True, activate: bool = True, down: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(c_in * kernel * kernel)
        self.activate, self.down, self.padding = activate, down, kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        if self.down:
            x = F.avg_pool2d(x, 2)
        return _lrelu(x) if self.activate else x


class MappingNetwork(nn.Module):
    """z [B, z_dim] (+ label [B]) -> w [B, w_dim]."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.num_classes = cfg.num_classes
        w_dim = cfg.w_features
        c_in = cfg.z_dim
        if self.num_classes:
            self.embed = nn.Parameter(torch.randn(self.num_classes, w_dim))
            c_in += w_dim
        dims = [c_in] + [w_dim] * cfg.mapping_layers
        self.layers = nn.ModuleList(
            EqualLinear(a, b, lr_mult=cfg.mapping_lr_mult, activate=True) for a, b in itertools.pairwise(dims)
        )

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        x = _normalize(z)
        if self.num_classes:
            if label is None:
                raise ValueError("this generator is conditional: pass a label per latent")
            x = torch.cat([x, _normalize(self.embed[label])], dim=1)
        for layer in self.layers:
            x = layer(x)
        return x


class SynthesisLayer(nn.Module):
    """Modulated/demodulated conv (activation-scaling form) + noise + bias + leaky ReLU."""

    noise_const: torch.Tensor

    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int, up: bool = False) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        self.weight_gain = 1.0 / math.sqrt(c_in * 9)
        self.up = up

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_gen: torch.Generator | None = None
    ) -> torch.Tensor:
        styles = self.affine(w)  # [B, C_in]
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        weight = self.weight * self.weight_gain
        x = F.conv2d(x * styles[:, :, None, None], weight, padding=1)
        # Demodulation: 1 / ||w_o * s||_2 per sample and output channel, from the weight's energies.
        dcoefs = (styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()  # [B, C_out]
        x = x * dcoefs[:, :, None, None]
        if noise_gen is not None:
            # Drawn on the generator's device (the loop's is on CPU), then moved: same stream anywhere.
            shape = (x.shape[0], 1, x.shape[2], x.shape[3])
            noise = torch.randn(shape, generator=noise_gen, device=noise_gen.device).to(x)
        else:
            noise = self.noise_const
        x = x + noise * self.noise_strength
        return _lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels (no demodulation, no activation)."""

    def __init__(self, c_in: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, c_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.weight_gain = 1.0 / math.sqrt(c_in)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        return F.conv2d(x * styles[:, :, None, None], self.weight, self.bias)


class SynthesisBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, w_dim: int, resolution: int, channels: int) -> None:
        super().__init__()
        self.conv0 = SynthesisLayer(c_in, c_out, w_dim, resolution, up=True) if resolution > 4 else None
        self.conv1 = SynthesisLayer(c_out, c_out, w_dim, resolution)
        self.torgb = ToRGB(c_out, channels, w_dim)
        self.num_conv = 2 if self.conv0 is not None else 1

    def forward(
        self,
        x: torch.Tensor,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise_gen: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        i = 0
        if self.conv0 is not None:
            x = self.conv0(x, ws[:, 0], noise_gen)
            i = 1
        x = self.conv1(x, ws[:, i], noise_gen)
        y = self.torgb(x, ws[:, i + 1])
        if img is not None:
            y = y + F.interpolate(img, scale_factor=2.0, mode="bilinear", align_corners=False)
        return x, y


class SynthesisNetwork(nn.Module):
    """ws [B, num_ws, w_dim] -> image [B, C, H, W] (roughly [-1, 1]; the exporter clips)."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        top = cfg.resolution
        self.resolutions = [2**i for i in range(2, int(math.log2(top)) + 1)]
        w_dim = cfg.w_features
        c4 = _width(cfg.g_base, cfg.max_channels, top, 4)
        self.const = nn.Parameter(torch.randn(c4, 4, 4))
        blocks = []
        c_in = c4
        for res in self.resolutions:
            c_out = _width(cfg.g_base, cfg.max_channels, top, res)
            blocks.append(SynthesisBlock(c_in, c_out, w_dim, res, cfg.channels))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.num_convs = [b.num_conv for b in blocks]
        self.num_ws = sum(self.num_convs) + 1

    def forward(self, ws: torch.Tensor, noise_gen: torch.Generator | None = None) -> torch.Tensor:
        x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        img: torch.Tensor | None = None
        w_idx = 0
        for block, num_conv in zip(self.blocks, self.num_convs):
            x, img = block(x, img, ws[:, w_idx : w_idx + num_conv + 1], noise_gen)
            w_idx += num_conv
        assert img is not None
        return img


class Generator(StyleGeneratorNet):
    """z [B, z_dim] (+ label [B], psi [B]) -> image [B, C, H, W]."""

    w_avg: torch.Tensor

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.z_dim = cfg.z_dim
        self.w_dim = cfg.w_features
        self.num_classes = cfg.num_classes
        self.w_avg_beta = cfg.w_avg_beta
        self.mapping = MappingNetwork(cfg)
        self.synthesis = SynthesisNetwork(cfg)
        self.num_ws = self.synthesis.num_ws
        self.label_layer = None
        self.trait_layers = None
        self.register_buffer("w_avg", torch.zeros(max(1, self.num_classes), self.w_dim))

    @torch.no_grad()
    def _track_w_avg(self, w: torch.Tensor, label: torch.Tensor | None) -> None:
        w = w.to(self.w_avg.dtype)  # under bf16 autocast w is bf16; the average stays fp32
        if not self.num_classes or label is None:
            self.w_avg[0].copy_(w.mean(dim=0).lerp(self.w_avg[0], self.w_avg_beta))
            return
        sums = torch.zeros_like(self.w_avg).index_add_(0, label, w)
        counts = torch.bincount(label, minlength=self.num_classes).to(w.dtype)
        means = sums / counts.clamp(min=1.0)[:, None]
        updated = means.lerp(self.w_avg, self.w_avg_beta)
        self.w_avg.copy_(torch.where((counts > 0)[:, None], updated, self.w_avg))

    def map(
        self,
        z: torch.Tensor,
        label: torch.Tensor | None = None,
        psi: torch.Tensor | None = None,
        update_w_avg: bool = False,
    ) -> torch.Tensor:
        """z -> ws [B, num_ws, w_dim], truncated toward w_avg (of the label) by psi when given."""
        w = self.mapping(z, label)
        if update_w_avg:
            self._track_w_avg(w.detach(), label)
        if psi is not None:
            avg = self.w_avg[label] if self.num_classes and label is not None else self.w_avg[:1]
            w = avg + psi.reshape(-1, 1) * (w - avg)
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)

    def forward(
        self,
        z: torch.Tensor,
        label: torch.Tensor | None = None,
        psi: torch.Tensor | None = None,
        noise_gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        return self.synthesis(self.map(z, label, psi), noise_gen)

    def train_forward(
        self, z: torch.Tensor, label: torch.Tensor | None, gen: torch.Generator, mixing_prob: float
    ) -> torch.Tensor:
        """Training-time sampling: random noise and style mixing, all drawn from `gen`."""
        ws = self.map(z, label, update_w_avg=True)
        cutoff = int(torch.randint(1, self.num_ws, (1,), generator=gen, device=gen.device))
        mix = float(torch.rand([], generator=gen, device=gen.device)) < mixing_prob
        if mix:
            z2 = torch.randn(z.shape, generator=gen, dtype=z.dtype, device=gen.device).to(z.device)
            ws = torch.cat([ws[:, :cutoff], self.map(z2, label)[:, cutoff:]], dim=1)
        return self.synthesis(ws, noise_gen=gen)


class DBlock(nn.Module):
    """Residual block: two 3x3 convs (the second downsamples) + a 1x1 downsampling skip."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(c_in, c_in, 3)
        self.conv1 = EqualConv2d(c_in, c_out, 3, down=True)
        self.skip = EqualConv2d(c_in, c_out, 1, bias=False, activate=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) * math.sqrt(0.5)


def minibatch_stddev(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append one feature map: the std of each feature over a group of images, averaged."""
    b, c, h, w = x.shape
    g = min(group, b)
    while b % g:
        g -= 1
    y = x.reshape(g, -1, c, h, w)
    y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt()  # [M, C, H, W]
    y = y.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


class Discriminator(nn.Module):
    """image [B, C, H, W] (+ label [B]) -> logit [B]."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        top = cfg.resolution
        self.num_classes = cfg.num_classes
        self.mbstd_group = cfg.mbstd_group
        width = lambda res: _width(cfg.d_base, cfg.max_channels, top, res)  # noqa: E731
        self.fromrgb = EqualConv2d(cfg.channels, width(top), 1)
        resolutions = [2**i for i in range(int(math.log2(top)), 2, -1)]
        self.blocks = nn.Sequential(*(DBlock(width(r), width(r // 2)) for r in resolutions))
        c4 = width(4)
        self.conv = EqualConv2d(c4 + 1, c4, 3)
        self.fc = EqualLinear(c4 * 16, c4, activate=True)
        self.out = EqualLinear(c4, 1)
        if self.num_classes:
            self.embed = nn.Embedding(self.num_classes, c4)
            nn.init.normal_(self.embed.weight)

    def forward(self, img: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        x = self.blocks(self.fromrgb(img))
        x = self.conv(minibatch_stddev(x, self.mbstd_group))
        h = self.fc(x.flatten(1))
        logit = self.out(h).flatten()
        if self.num_classes:
            if label is None:
                raise ValueError("this discriminator is conditional: pass a label per image")
            logit = logit + (self.embed(label) * h).sum(dim=1) / math.sqrt(h.shape[1])
        return logit


def weights_init(module: nn.Module) -> None:
    """Nothing to do: equalized-learning-rate layers initialise themselves."""
