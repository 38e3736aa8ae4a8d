"""artctl.v1.Generator: seeds in, artworks (PNG or raw, pixel hash, metadata JSON) out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np

from artctl.v1 import generator_pb2 as pb
from artctl.v1 import generator_pb2_grpc as pb_grpc
from serving.base import ServiceContext, ServicerBase, deadline_of
from serving.encoding import Encoded
from serving.registry import ServedModel
from serving.runtime import RenderProfile
from serving.style_requests import mix_inputs, walk_inputs
from serving.style_serving import StyleServing
from serving.validation import InvalidRequestError, check_labels, check_psi, check_seeds

FORMATS = {pb.IMAGE_FORMAT_PNG: "png", pb.IMAGE_FORMAT_RAW: "raw"}


def image_format(value: pb.ImageFormat) -> str:
    """The encoder name for a request's ImageFormat; INVALID_ARGUMENT for values we do not know."""
    fmt = FORMATS.get(value)
    if fmt is None:
        raise InvalidRequestError(f"unknown image format {value}")
    return fmt


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
    )


def artwork_metadata(
    model: ServedModel, seed: int, psi: float | None, label: int | None, enc: Encoded, traits: dict[str, str]
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
    return json.dumps(doc, sort_keys=True)


class GeneratorServicer(ServicerBase, pb_grpc.GeneratorServicer):
    def __init__(self, ctx: ServiceContext, styles: StyleServing | None = None) -> None:
        super().__init__(ctx)
        self.styles = styles if styles is not None else StyleServing()

    async def _artworks(
        self,
        request: pb.GenerateRequest,
        context: grpc.aio.ServicerContext,
        model: ServedModel,
        offset: int,
        seeds: np.ndarray,
        psi: np.ndarray | None,
        labels: np.ndarray | None,
    ) -> list[pb.Artwork]:
        fmt = image_format(request.format)
        images = await self.render(model, seeds, psi, labels, context)
        encoded = await self.encode(images, fmt)
        h, w, c = model.runtime.image_shape
        traits = dict(request.traits)
        out = []
        for i, enc in enumerate(encoded):
            p = None if psi is None else float(psi[i])
            lab = None if labels is None else int(labels[i])
            out.append(
                pb.Artwork(
                    seed=int(seeds[i]),
                    image=enc.data,
                    mime=enc.mime,
                    width=w,
                    height=h,
                    channels=c,
                    pixel_sha256=enc.pixel_sha256,
                    metadata_json=(
                        artwork_metadata(model, int(seeds[i]), p, lab, enc, traits)
                        if request.include_metadata
                        else ""
                    ),
                    psi=1.0 if p is None else p,
                    label=0 if lab is None else lab,
                    index=offset + i,
                )
            )
        return out

    def _inputs(self, request: pb.GenerateRequest, model: ServedModel) -> tuple[Any, Any, Any]:
        seeds = check_seeds(request.seeds, self.ctx.max_seeds_per_request)
        card = model.runtime.card
        psi = check_psi(card, [request.psi] if request.HasField("psi") else None, len(seeds))
        labels = check_labels(card, list(request.labels), len(seeds))
        return seeds, psi, labels

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GenerateResponse:
        async def body() -> pb.GenerateResponse:
            model = self.ctx.registry.get(request.model)
            seeds, psi, labels = self._inputs(request, model)
            artworks = await self._artworks(request, context, model, 0, seeds, psi, labels)
            return pb.GenerateResponse(
                model=model.name, profile=profile_message(model.runtime.profile), artworks=artworks
            )

        return await self.guarded("Generate", request.model, context, body)

    async def GenerateStream(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Artwork]:
        async def prepare() -> tuple[ServedModel, Any, Any, Any]:
            model = self.ctx.registry.get(request.model)
            return (model, *self._inputs(request, model))

        model, seeds, psi, labels = await self.guarded("GenerateStream", request.model, context, prepare)
        step = model.batcher.max_batch
        for start in range(0, len(seeds), step):
            end = start + step

            async def chunk(start: int = start, end: int = end) -> list[pb.Artwork]:
                return await self._artworks(
                    request,
                    context,
                    model,
                    start,
                    seeds[start:end],
                    None if psi is None else psi[start:end],
                    None if labels is None else labels[start:end],
                )

            for artwork in await self.guarded("GenerateStream", request.model, context, chunk):
                yield artwork

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        async def body() -> pb.ListModelsResponse:
            return pb.ListModelsResponse(
                models=[card_message(m) for m in self.ctx.registry],
                default_model=self.ctx.registry.default_name or "",
            )

        return await self.guarded("ListModels", "", context, body)

    # -- w space: style mixing and latent walks (logic in serving.style_requests / style_serving) --

    async def Mix(self, request: pb.MixRequest, context: grpc.aio.ServicerContext) -> pb.MixResponse:
        async def body() -> pb.MixResponse:
            model = self.ctx.registry.get(request.model)
            style = self.styles.get(model.runtime)
            fmt = image_format(request.format)
            args = mix_inputs(
                request, model.runtime.card, style.graphs.num_ws, self.ctx.max_seeds_per_request
            )
            images = await style.mix(
                args.content,
                args.style,
                args.layers,
                args.psi,
                args.labels,
                deadline_of(context),
            )
            self.ctx.metrics.images.labels(model.name).inc(len(images))
            encoded = await self.encode(images, fmt)
            h, w, c = model.runtime.image_shape
            return pb.MixResponse(
                model=model.name,
                profile=profile_message(model.runtime.profile),
                first_layer=args.layers.lo,
                last_layer=args.layers.hi,
                num_ws=style.graphs.num_ws,
                artworks=[
                    pb.MixedArtwork(
                        content_seed=int(args.content[i]),
                        style_seed=int(args.style[i]),
                        image=enc.data,
                        mime=enc.mime,
                        width=w,
                        height=h,
                        channels=c,
                        pixel_sha256=enc.pixel_sha256,
                        index=i,
                    )
                    for i, enc in enumerate(encoded)
                ],
            )

        return await self.guarded("Mix", request.model, context, body)

    async def Interpolate(
        self, request: pb.InterpolateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.Frame]:
        async def prepare() -> Any:
            model = self.ctx.registry.get(request.model)
            style = self.styles.get(model.runtime)
            fmt = image_format(request.format)
            args = walk_inputs(request, model.runtime.card, self.ctx.max_seeds_per_request)
            deadline = deadline_of(context)
            frames = style.walk(
                args.seeds,
                args.frames,
                args.space,
                args.loop,
                args.psi,
                args.label,
                style.batcher.max_batch,
                deadline,
            )
            return model, fmt, frames

        model, fmt, frames = await self.guarded("Interpolate", request.model, context, prepare)
        h, w, c = model.runtime.image_shape
        iterator = frames.__aiter__()
        try:
            async for frame in self._frames(iterator, model, fmt, (h, w, c), request.model, context):
                yield frame
        finally:
            await iterator.aclose()

    async def _frames(
        self,
        iterator: Any,
        model: ServedModel,
        fmt: str,
        shape: tuple[int, int, int],
        name: str,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.Frame]:
        h, w, c = shape
        while True:

            async def step() -> Any:
                try:
                    specs, seeds, images = await iterator.__anext__()
                except StopAsyncIteration:
                    return None
                self.ctx.metrics.images.labels(model.name).inc(len(images))
                return specs, seeds, await self.encode(images, fmt)

            got = await self.guarded("Interpolate", name, context, step)
            if got is None:
                break
            specs, seeds, encoded = got
            for spec, enc in zip(specs, encoded):
                yield pb.Frame(
                    index=spec.index,
                    seed_from=seeds[spec.a],
                    seed_to=seeds[spec.b],
                    t=spec.t,
                    image=enc.data,
                    mime=enc.mime,
                    width=w,
                    height=h,
                    channels=c,
                    pixel_sha256=enc.pixel_sha256,
                )
