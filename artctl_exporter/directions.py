"""SeFa directions of a generator, computed in closed form from its weights at export.

SeFa (Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs", CVPR 2021): if A maps
the latent into the first layers, the unit vectors n that change A n the most are the top
eigenvectors of A^T A. For a StyleGAN-type generator A stacks the style affines of every synthesis
layer (w -> per-channel styles), so the directions live in w; for a DCGAN, A is the first
transposed convolution's weight over z, so they live in z. No labels, no sampling: the same
weights give the same directions.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from artctl_trainer.contract import GeneratorNet, StyleGeneratorNet

DEFAULT_COUNT = 16


def _stylegan_matrix(G: StyleGeneratorNet) -> npt.NDArray[np.float64]:
    from artctl_trainer.networks_stylegan import SynthesisLayer, ToRGB

    rows = [
        (m.affine.weight * m.affine.weight_gain).detach().double().cpu().numpy()
        for m in G.synthesis.modules()
        if isinstance(m, (SynthesisLayer, ToRGB))
    ]
    return np.concatenate(rows, axis=0)  # [sum of channels, w_dim]


def _dcgan_matrix(G: GeneratorNet) -> npt.NDArray[np.float64]:
    first = next(m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    weight = first.weight.detach().double().cpu().numpy()[: G.z_dim]  # z rows (label rows follow)
    return weight.reshape(G.z_dim, -1).T  # [features, z_dim]


def sefa(G: GeneratorNet, count: int = DEFAULT_COUNT) -> tuple[str, npt.NDArray[np.float32], list[float]]:
    """(space, unit vectors [count, dim] strongest first, their eigenvalues)."""
    space, A = ("w", _stylegan_matrix(G)) if isinstance(G, StyleGeneratorNet) else ("z", _dcgan_matrix(G))
    values, vectors = np.linalg.eigh(A.T @ A)  # ascending
    order = np.argsort(values)[::-1][:count]
    chosen = vectors[:, order].T  # [count, dim]
    # An eigenvector's sign is arbitrary: fix it (largest component positive) so exports agree.
    signs = np.sign(chosen[np.arange(len(chosen)), np.abs(chosen).argmax(axis=1)])
    chosen = chosen * signs[:, None]
    chosen /= np.linalg.norm(chosen, axis=1, keepdims=True)
    return space, chosen.astype(np.float32), [float(v) for v in values[order]]
