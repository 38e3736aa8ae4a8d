"""artctl.v1.Generator: seeds in, artworks (PNG or raw, pixel hash, metadata JSON) out.

A thin servicer: parse (artctl_serving.requests), look the model up (artctl_serving.registry),
render -> encode -> count (artctl_serving.pipeline), build the response. Errors are raised, and
artctl_serving.interceptors turns them into statuses.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from artctl.directions import Edit, edit_key
from artctl.profile import RenderProfile
from artctl.v1 import generator_pb2 as pb
from artctl.v1 import generator_pb2_grpc as pb_grpc
from artctl_serving.cache import mix_keys, row_keys
from artctl_serving.creative import mix_latents, mix_mapped, walk_job, walk_plan
from artctl_serving.pipeline import Encoded, Pipeline, deadline_of, image_fields
from artctl_serving.registry import ModelRegistry, ServedModel
from artctl_serving.requests import (
    Limits,
    check_cutoff,
    generate_inputs,
    image_format,
    mix_inputs,
    request_scale,
    walk_inputs,
)
from artctl_serving.rows import SeedRows


def profile_message(profile: RenderProfile) -> pb.RenderProfile:
    return pb.RenderProfile(**profile.as_dict())  # type: ignore[arg-type]


def card_message(model: ServedModel) -> pb.ModelCard:
    rt = model.runtime
    card = rt.card
    return pb.ModelCard(
        name=rt.name,
        architecture=card.architecture,
        resolution=card.resolution,
        channels=card.channels,
        z_dim=card.z_dim,
        label_names=card.label_names,
        default_psi=card.default_psi,
        has_psi=card.has_psi,
        has_label=card.has_label,
        sha256=rt.sha256,
        data_fingerprint=card.data_fingerprint,
        exporter_version=card.exporter_version,
        contracts=card.contracts,
        metadata=rt.card.to_metadata(),
        profile=profile_message(rt.profile),
        directions_sha256=model.directions.sha256 if model.directions else "",
        directions=len(model.directions.vectors) if model.directions else 0,
    )


def artwork_metadata(
    model: ServedModel,
    seed: int,
    psi: float | None,
    label: int | None,
    enc: Encoded,
    traits: dict[str, str],
    cutoff: int | None = None,
) -> str:
    """The per-image metadata document: enough to re-derive and check the image anywhere."""
    card = model.runtime.card
    doc: dict[str, Any] = {
        "seed": str(seed),
        "psi": psi,
        "label": label,
        "label_name": card.label_names[label] if label is not None and card.label_names else None,
        "pixel_sha256": enc.pixel_sha256,
        "model": {
            "name": model.name,
            "sha256": model.runtime.sha256,
            "architecture": card.architecture,
            "resolution": card.resolution,
            "channels": card.channels,
        },
        "contracts": card.contracts,
        "render_profile": model.runtime.profile.as_dict(),
        "traits": traits,
    }
    if cutoff is not None:  # absent otherwise: earlier documents stay byte for byte
        doc["truncation_cutoff"] = cutoff
    return json.dumps(doc, sort_keys=True)


class GeneratorServicer(pb_grpc.GeneratorServicer):
    def __init__(self, registry: ModelRegistry, pipeline: Pipeline, limits: Limits) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.limits = limits

    def _artworks(
        self,
        request: pb.GenerateRequest,
        model: ServedModel,
        rows: SeedRows,
        encoded: list[Encoded],
        offset: int,
        scale: int,
    ) -> list[pb.Artwork]:
        shape = model.runtime.image_shape
        traits = dict(request.traits)
        cutoff = request.truncation_cutoff or None
        out = []
        for k, enc in enumerate(encoded):
            i = offset + k
            seed, psi, label = int(rows.seeds[i]), rows.psi_at(i), rows.label_at(i)
            meta = (
                artwork_metadata(model, seed, psi, label, enc, traits, cutoff)
                if request.include_metadata
                else ""
            )
            out.append(
                pb.Artwork(
                    **image_fields(enc, shape, scale),
                    seed=seed,
                    metadata_json=meta,
                    psi=1.0 if psi is None else psi,
                    label=0 if label is None else label,
                    index=i,
                )
            )
        return out

    async def render_seeds(
        self,
        model: ServedModel,
        rows: SeedRows,
        fmt: str,
        deadline: float | None,
        edits: Sequence[Edit] = (),
        scale: int = 1,
        cutoff: int | None = None,
    ) -> list[Encoded]:
        """Encoded images of validated rows (upscaled `scale` times; psi on the first `cutoff` ws
        only), through the response cache: what Generate and the HTTP image URLs share, so both give
        the same bytes and fill the same cache."""
        model.check_edits(edits)
        sha = model.runtime.sha256
        keys = row_keys(sha, rows.seeds, rows.psi, rows.labels, fmt, edit_key(edits), scale, cutoff)
        held = self.pipeline.cached(keys)
        if held is not None:  # every row is cached: not even the mapping runs
            return held
        job = await model.with_edits(rows, edits, deadline, cutoff)
        return await self.pipeline.images(model.name, job, fmt, deadline, keys, scale)

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GenerateResponse:
        model = self.registry.get(request.model)
        with model.tally.timed():
            rows = generate_inputs(request, model.runtime.caps, model.name, self.limits)
            fmt = image_format(request.format)
            edits = [(e.direction, e.amount) for e in request.edits]
            scale = request_scale(request.scale)
            cutoff = check_cutoff(model.caps, request.truncation_cutoff, model.name)
            encoded = await self.render_seeds(model, rows, fmt, deadline_of(context), edits, scale, cutoff)
        return pb.GenerateResponse(
            model=model.name,
            profile=profile_message(model.runtime.profile),
            artworks=self._artworks(request, model, rows, encoded, 0, scale),
        )

    async def GenerateStream(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Artwork]:
        model = self.registry.get(request.model)
        with model.tally.timed():
            rows = generate_inputs(request, model.runtime.caps, model.name, self.limits, streamed=True)
            fmt = image_format(request.format)
            scale = request_scale(request.scale)
            edits = [(e.direction, e.amount) for e in request.edits]
            cutoff = check_cutoff(model.caps, request.truncation_cutoff, model.name)
            deadline = deadline_of(context)
            offset = 0
            job = await model.with_edits(rows, edits, deadline, cutoff)
            stream = self.pipeline.stream(model.name, job, fmt, deadline, scale)
            async with contextlib.aclosing(stream) as parts:
                async for encoded in parts:
                    for artwork in self._artworks(request, model, rows, encoded, offset, scale):
                        yield artwork
                    offset += len(encoded)

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[card_message(m) for m in self.registry], default_model=self.registry.default_name or ""
        )

    # -- w space: style mixing and latent walks ---------------------------------------------------------

    async def Mix(self, request: pb.MixRequest, context: grpc.aio.ServicerContext) -> pb.MixResponse:
        model = self.registry.get(request.model)
        style = model.style()
        fmt = image_format(request.format)
        args = mix_inputs(request, model.runtime.caps, model.name, style.graphs.num_ws, self.limits)
        span = (args.layers.lo, args.layers.hi)
        keys = mix_keys(model.runtime.sha256, args.content, args.style, span, args.psi, args.labels, fmt)
        encoded = self.pipeline.cached(keys)
        if encoded is None:  # cached like the HTTP mix URL (the same keys): only missing pairs render
            deadline = deadline_of(context)
            both = mix_latents(model.caps, args.content, args.style, args.psi, args.labels)
            ws = mix_mapped(await model.map(both, deadline), args.layers)
            encoded = await self.pipeline.images(model.name, model.from_w(ws), fmt, deadline, keys)
        shape = model.runtime.image_shape
        return pb.MixResponse(
            model=model.name,
            profile=profile_message(model.runtime.profile),
            first_layer=args.layers.lo,
            last_layer=args.layers.hi,
            num_ws=style.graphs.num_ws,
            artworks=[
                pb.MixedArtwork(
                    **image_fields(enc, shape),
                    content_seed=int(args.content[i]),
                    style_seed=int(args.style[i]),
                    index=i,
                )
                for i, enc in enumerate(encoded)
            ],
        )

    async def Interpolate(
        self, request: pb.InterpolateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Frame]:
        model = self.registry.get(request.model)
        model.style()  # Interpolate is a w-space walk: INVALID_ARGUMENT without the graphs
        fmt = image_format(request.format)
        args = walk_inputs(request, model.runtime.caps, model.name, self.limits)
        plan = walk_plan(model.caps, args.seeds, args.frames, args.space, args.loop, args.psi, args.label)
        deadline = deadline_of(context)
        shape = model.runtime.image_shape
        specs = iter(plan.specs)
        stream = self.pipeline.stream(model.name, await walk_job(model, plan, deadline), fmt, deadline)
        async with contextlib.aclosing(stream) as parts:
            async for encoded in parts:
                for enc, spec in zip(encoded, specs):
                    yield pb.Frame(
                        **image_fields(enc, shape),
                        index=spec.index,
                        seed_from=plan.seeds[spec.a],
                        seed_to=plan.seeds[spec.b],
                        t=spec.t,
                    )
