"""Request checks shared by both APIs: every bad input becomes one readable INVALID_ARGUMENT."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from artctl.modelcard import ModelCard

PSI_RANGE = (0.0, 2.0)


class InvalidRequestError(ValueError):
    """The request cannot be served as sent (INVALID_ARGUMENT)."""


def check_seeds(seeds: Sequence[int] | npt.NDArray[np.uint64], max_seeds: int) -> npt.NDArray[np.uint64]:
    if len(seeds) == 0:
        raise InvalidRequestError("no seeds given: send at least one seed")
    if len(seeds) > max_seeds:
        raise InvalidRequestError(f"{len(seeds)} seeds in one request; the limit is {max_seeds}")
    return np.asarray(seeds, dtype=np.uint64)


def check_psi(card: ModelCard, psi: Sequence[float] | None, n: int) -> npt.NDArray[np.float32] | None:
    """None for models without a psi input; else one value per seed (default psi when absent)."""
    if not card.has_psi:
        if psi is not None and any(float(p) != 1.0 for p in psi):
            raise InvalidRequestError(f"model {card.name!r} has no truncation input; omit psi")
        return None
    if psi is None or len(psi) == 0:
        return np.full(n, card.default_psi, dtype=np.float32)
    if len(psi) not in (1, n):
        raise InvalidRequestError(f"give one psi or one per seed ({n}), got {len(psi)}")
    for p in psi:
        if not math.isfinite(p) or not PSI_RANGE[0] <= p <= PSI_RANGE[1]:
            raise InvalidRequestError(
                f"psi must be a finite number in [{PSI_RANGE[0]}, {PSI_RANGE[1]}], got {p}"
            )
    return np.broadcast_to(np.asarray(psi, dtype=np.float32), (n,)).copy()


def check_labels(card: ModelCard, labels: Sequence[int], n: int) -> npt.NDArray[np.int64] | None:
    """None for unconditional models; else one label per seed, each within the model's labels."""
    if not card.has_label:
        if len(labels):
            raise InvalidRequestError(f"model {card.name!r} is unconditional; omit labels")
        return None
    if len(labels) == 0:
        return np.zeros(n, dtype=np.int64)
    if len(labels) not in (1, n):
        raise InvalidRequestError(f"give one label or one per seed ({n}), got {len(labels)}")
    count = len(card.label_names)
    for label in labels:
        if not 0 <= int(label) < count:
            raise InvalidRequestError(
                f"label {label} out of range: model {card.name!r} has labels 0..{count - 1}"
            )
    return np.broadcast_to(np.asarray(labels, dtype=np.int64), (n,)).copy()
