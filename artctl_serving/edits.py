"""Edits along a model's latent directions: which batcher renders them and with what columns.

A StyleGAN-type model's directions live in w: the seeds are mapped (psi, label), every layer's w
moves by the edit's offset, and the synthesis graph's batcher renders them. A DCGAN's live in z:
the seeds' latents move, and the model's latent batcher renders them. Both follow
artctl.directions (artctl-edit-v1), so the server's pixels are anyone's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from artctl.directions import DirectionsError, Edit
from artctl.seeds import latents
from artctl_serving.batcher import Columns, DynamicBatcher
from artctl_serving.errors import InvalidRequestError
from artctl_serving.registry import ServedModel


def check_edits(model: ServedModel, edits: Sequence[Edit]) -> None:
    """INVALID_ARGUMENT for edits the model cannot make (before any work is queued)."""
    if not edits:
        return
    if model.directions is None:
        raise InvalidRequestError(
            f"model {model.name!r} has no latent directions (export it again to get NAME.directions.json)"
        )
    try:
        model.directions.check(edits)
    except DirectionsError as exc:
        raise InvalidRequestError(str(exc)) from None


async def edited_columns(
    model: ServedModel,
    seeds: npt.NDArray[np.uint64],
    psi: npt.NDArray[np.float32] | None,
    labels: npt.NDArray[np.int64] | None,
    edits: Sequence[Edit],
) -> tuple[DynamicBatcher, Columns]:
    """The batcher and columns that render `seeds` moved by `edits` (checked with check_edits)."""
    directions = model.directions
    assert directions is not None
    if directions.space == "w":
        style = model.style()
        ws = await asyncio.to_thread(style.graphs.map_seeds, seeds, psi, labels)
        return style.batcher, {"ws": directions.apply(ws, edits)}
    assert model.latents is not None
    columns: Columns = {"z": directions.apply(latents(seeds, model.runtime.card.z_dim), edits)}
    if psi is not None:
        columns = {**columns, "psi": psi}
    if labels is not None:
        columns = {**columns, "labels": labels}
    return model.latents, columns
