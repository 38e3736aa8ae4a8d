"""Image URLs: a seed's picture, a style mix and a walk frame, each a GET whose bytes depend only
on the URL and the model.

    GET /v1/models                                       the models, their cards and directions
    GET /v1/models/{m}/images/{seed}.png?psi=&label=&edit=0:2.5,3:-1&scale=N
    GET /v1/models/{m}/mix/{content}/{style}.png?layers=coarse&psi=&label=&scale=N
    GET /v1/models/{m}/walk/{a}/{b}/{i}.png?frames=N&space=z&psi=&label=&scale=N

`scale=N` (1..16) upscales the PNG N times by nearest neighbour, for pixel art shown large; the
ETag and X-Pixel-Sha256 stay the native pixels' hash. Only the canonical spelling is served (`2`,
not `02`, `+2` or `2.0`: a 400 names it), so a CDN never holds one picture under many URLs;
`scale=1` is accepted as the default is, because it is that default's one spelling.

Determinism makes them immutable: with `v=` the model's SHA-256 (its first 12 hex digits or more)
the reply is `Cache-Control: public, max-age=31536000, immutable`, ready for a CDN, and a URL for
another model version is 404, never another picture. Without `v=` the model behind the name may
be reloaded, so the reply may be cached only briefly. The ETag is the pixel hash either way, and
If-None-Match gives 304. Every reply, hit or fresh, comes through the response cache.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from aiohttp import web

from artctl.capabilities import Space
from artctl.stylemix import parse_layers
from artctl_serving.cache import CacheKey, mix_keys
from artctl_serving.creative import mix_latents, mix_mapped, walk_job, walk_plan
from artctl_serving.errors import InvalidRequestError, ModelNotFoundError
from artctl_serving.generator_service import GeneratorServicer
from artctl_serving.pipeline import Encoded, Pipeline
from artctl_serving.registry import AnyJob, ModelRegistry, ServedModel
from artctl_serving.requests import check_cutoff, check_labels, check_psi, check_seeds
from artctl_serving.rows import SeedRows
from artctl_serving.web_params import Query, scale, whole

MAX_WALK_FRAMES = 1024
IMMUTABLE = "max-age=31536000, immutable"  # the URL pins the model version
REVALIDATE = "max-age=60"  # the name may point at a reloaded model: check back soon
PICTURE = ("v", "psi", "label", "scale")  # what every image URL may say
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ImageRoutes:
    """The image routes; with `private` (token mode) replies may be cached by the browser that holds
    the token, never by a shared cache that would hand them to clients without it."""

    def __init__(self, generator: GeneratorServicer, private: bool = False) -> None:
        self.generator = generator
        self.private = private
        self.registry: ModelRegistry = generator.registry
        self.pipeline: Pipeline = generator.pipeline

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/models", self.models),
            web.get("/v1/models/{model}/images/{seed}.png", self.image),
            web.get("/v1/models/{model}/mix/{content}/{style}.png", self.mix),
            web.get("/v1/models/{model}/walk/{a}/{b}/{i}.png", self.walk),
        ]

    # -- the models --------------------------------------------------------------------------------

    async def models(self, request: web.Request) -> web.Response:
        out = []
        for model in self.registry:
            card = model.runtime.card
            d = model.directions
            out.append(
                {
                    "name": model.name,
                    "sha256": model.runtime.sha256,
                    "architecture": card.architecture,
                    "resolution": card.resolution,
                    "channels": card.channels,
                    "labels": card.label_names if card.has_label else [],
                    "has_psi": card.has_psi,
                    "default_psi": card.default_psi,
                    "mix": model.styles is not None,
                    "num_ws": model.styles.graphs.num_ws if model.styles else 0,
                    "directions": {"count": len(d.vectors), "space": d.space, "sha256": d.sha256}
                    if d
                    else None,
                }
            )
        return web.json_response({"models": out, "default": self.registry.default_name})

    # -- the pictures --------------------------------------------------------------------------------

    def _model(self, request: web.Request, query: Query) -> tuple[ServedModel, bool]:
        """The model the URL names, and whether the URL pins its version (v=<sha256 prefix>)."""
        model = self.registry.get(request.match_info["model"])
        version = query.get("v") or ""
        if not version:
            return model, False
        if len(version) < 12 or not model.runtime.sha256.startswith(version.lower()):
            raise ModelNotFoundError(
                f"model {model.name!r} is now version {model.runtime.sha256[:12]}, not {version[:64]!r}"
            )
        return model, True

    def _psi_label(self, query: Query, model: ServedModel, n: int) -> tuple[Any, Any]:
        caps = model.runtime.caps
        psi = query.real("psi")
        index = query.label(list(caps.label_names))
        return (
            check_psi(caps, None if psi is None else [psi], n, model.name),
            check_labels(caps, [] if index is None else [index], n, model.name),
        )

    def _reply(self, request: web.Request, item: Encoded, pinned: bool) -> web.Response:
        """The PNG. Its ETag is the native pixels' hash at every scale: an ETag is per URL, and the
        scale is in the URL, so two scales of one picture are two resources that never meet."""
        etag = f'"{item.pixel_sha256}"'
        scope = "private" if self.private else "public"
        headers = {"ETag": etag, "Cache-Control": f"{scope}, {IMMUTABLE if pinned else REVALIDATE}"}
        if self.private:
            headers["Vary"] = "Authorization, Cookie"
        if _matches(request, item.pixel_sha256):
            return web.Response(status=304, headers=headers)
        headers["X-Pixel-Sha256"] = item.pixel_sha256
        return web.Response(body=item.data, content_type="image/png", headers=headers)

    async def image(self, request: web.Request) -> web.Response:
        query = Query(request.query, (*PICTURE, "edit", "cutoff"))
        model, pinned = self._model(request, query)
        seed = check_seeds([whole(request.match_info["seed"], "seed")], 1)
        psi, labels = self._psi_label(query, model, 1)
        edits = query.edits()
        cutoff = check_cutoff(model.caps, query.whole("cutoff", 0, 0, 2**31 - 1), model.name)
        (item,) = await self.generator.render_seeds(
            model, SeedRows(seed, psi, labels), "png", None, edits, scale(request.query), cutoff
        )
        return self._reply(request, item, pinned)

    async def _cached_render(
        self, key: CacheKey, model: ServedModel, render: Callable[[], Awaitable[AnyJob]], scale: int = 1
    ) -> Encoded:
        """One image through the cache: `render` plans its job (mapping included) only on a miss. The
        scale is added to the key here, so no route can forget it."""
        key = (*key, scale)
        held = self.pipeline.cached([key])
        if held is not None:
            return held[0]
        (item,) = await self.pipeline.images(model.name, await render(), "png", None, [key], scale)
        return item

    async def mix(self, request: web.Request) -> web.Response:
        query = Query(request.query, (*PICTURE, "layers"))
        model, pinned = self._model(request, query)
        style = model.style()
        content, style_seed = (whole(request.match_info[k], k) for k in ("content", "style"))
        try:
            layers = parse_layers(query.get("layers") or "coarse", style.graphs.num_ws)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        psi, labels = self._psi_label(query, model, 1)
        (key,) = mix_keys(
            model.runtime.sha256, [content], [style_seed], (layers.lo, layers.hi), psi, labels, "png"
        )
        key = key[:-1]  # _cached_render adds the scale

        async def render() -> AnyJob:
            c, s = (np.array([x], dtype=np.uint64) for x in (content, style_seed))
            ws = await model.map(mix_latents(model.caps, c, s, psi, labels))
            return model.from_w(mix_mapped(ws, layers))

        item = await self._cached_render(key, model, render, scale(request.query))
        return self._reply(request, item, pinned)

    async def walk(self, request: web.Request) -> web.Response:
        query = Query(request.query, (*PICTURE, "frames", "space"))
        model, pinned = self._model(request, query)
        a, b = (whole(request.match_info[k], k) for k in ("a", "b"))
        frames = query.whole("frames", 16, 2, MAX_WALK_FRAMES)
        asked = query.get("space") or "z"
        index = whole(request.match_info["i"], "the frame index", 0, 2**64 - 1)
        if not 0 <= index < frames:
            raise InvalidRequestError(
                f"the frame index must be in 0..frames-1 (0..{frames - 1}), got {index}"
            )
        if asked not in ("z", "w") or (asked == "w" and model.styles is None):
            raise InvalidRequestError("space must be z, or w for a StyleGAN-type model")
        space: Space = "w" if asked == "w" else "z"
        psi, labels = self._psi_label(query, model, 1)
        key = ("walk", model.runtime.sha256, a, b, frames, index, space, _b(psi), _b(labels))
        p = None if psi is None else float(psi[0])
        label = None if labels is None else int(labels[0])

        async def render() -> AnyJob:  # frame `index` of the Interpolate / `artctl walk` walk
            return await walk_job(model, walk_plan(model.caps, [a, b], frames, space, False, p, label, index))

        item = await self._cached_render(key, model, render, scale(request.query))
        return self._reply(request, item, pinned)


def _matches(request: web.Request, sha: str) -> bool:
    """If-None-Match by the weak comparison RFC 9110 asks for: `*` or one of the listed tags."""
    try:
        tags = request.if_none_match
    except ValueError:
        return False
    return bool(tags) and any(t.value == "*" or t.value == sha for t in tags or ())


def _b(array: Any) -> bytes | None:
    return None if array is None else np.ascontiguousarray(array).tobytes()
