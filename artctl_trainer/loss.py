"""GAN losses as data: the config names one, the loop calls these two functions.

- bce: non-saturating logistic loss (Goodfellow et al. 2014), G maximises log D(G(z)).
- hinge: Lim & Ye 2017 / Miyato et al. 2018.
- wgan-gp: Wasserstein critic with gradient penalty (Gulrajani et al. 2017) and a small drift term
  (Karras et al. 2018) that keeps the critic's outputs near zero.
- lsgan: least squares (Mao et al. 2017), targets 1 for real, 0 for fake.
- rpgan: the relativistic pairing loss of R3GAN (Huang et al., NeurIPS 2024): each real is paired
  with a fake and D is asked which of the two is real, softplus(D(fake) - D(real)); G the reverse.
  R3GAN pairs it with zero-centred gradient penalties on reals (R1) and on fakes (R2).
Regularisers that need D's gradients (gradient penalty, R1/R2) live here too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

WGAN_DRIFT = 1e-3


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D's loss from its logits on reals and fakes (penalties excluded)."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(
            real, torch.ones_like(real)
        ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean() + WGAN_DRIFT * real.square().mean()
    if kind == "lsgan":
        return 0.5 * (real - 1.0).square().mean() + 0.5 * fake.square().mean()
    if kind == "rpgan":
        return F.softplus(fake - real).mean()
    raise ValueError(f"unknown loss {kind!r}")


# Losses whose G step needs D's logits on reals too (the loop runs D on them only for these).
RELATIVISTIC = frozenset({"rpgan"})


def g_loss(kind: str, fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """G's loss from D's logits on its fakes (and on reals, for a relativistic loss)."""
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    if kind == "lsgan":
        return 0.5 * (fake - 1.0).square().mean()
    if kind == "rpgan":
        if real is None:
            raise ValueError("rpgan's G loss needs D's logits on reals")
        return F.softplus(real - fake).mean()
    raise ValueError(f"unknown loss {kind!r}")


def gradient_penalty(
    D: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    gen: torch.Generator,
) -> torch.Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] on random interpolates between reals and fakes."""
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=gen, dtype=real.dtype, device=gen.device)
    eps = eps.to(real.device)  # drawn where the generator lives (CPU in the loop): same stream anywhere
    x_hat = (eps * real + (1.0 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).square().mean()


def r1_penalty(logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """E[||grad D(x)||^2] at D's inputs (Mescheder et al. 2018): R1 on reals, R2 on fakes;
    `inputs` must require grad."""
    (grad,) = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()
