"""The collection the studio curates for: a config's conditioning trait as the studio shows it.

A config may map only some of a model's labels to trait values, and `artctl mint` refuses a
curation that pins any other label. So the studio, given the config (`artctl serve --collection`,
or a file chosen in the page), offers exactly the mapped labels, under their trait values.

    GET  /v1/collection     the served config's view (404 when the server was started without one)
    POST /v1/collection     the view of the TOML config in the body (nothing is stored)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from artctl.collection import CollectionConfig, ConfigError, load_collection, parse_collection
from artctl.traits import plan_traits
from artctl_serving.registry import ModelRegistry
from artctl_serving.web_conn import HttpError, HttpLimits, read_body

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def collection_view(config: CollectionConfig, registry: ModelRegistry) -> dict[str, Any]:
    """What the studio needs: the served model the config names, and its conditioning trait's values
    with the label each maps to (only the values whose labels the model has; others are refused)."""
    model = registry.get(config.model)
    card = model.runtime.card
    plan = plan_traits(
        config, {"name": model.name, "has_label": card.has_label, "label_names": card.label_names}
    )
    trait = None
    if plan.conditioning is not None:
        values = list(plan.conditioning.values)
        trait = {
            "name": plan.conditioning.name,
            "values": values,
            "labels": [card.label_names[plan.label_index[v]] for v in values],
        }
    return {"name": config.name, "model": model.name, "trait": trait, "notes": plan.skipped}


def parse_toml(text: str, source: str) -> CollectionConfig:
    """A config from its TOML text, or a ConfigError of one line."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from None
    return parse_collection(raw, source)


class CollectionRoutes:
    """The collection routes over the served models; `path` is the config `serve` was given."""

    def __init__(self, registry: ModelRegistry, limits: HttpLimits, path: Path | None) -> None:
        self.registry = registry
        self.limits = limits
        self.path = path
        if path is not None:  # a config the server cannot show is refused at start, not in the page
            collection_view(load_collection(path), registry)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/collection", self.served), web.post("/v1/collection", self.given)]

    async def served(self, request: web.Request) -> web.Response:
        if self.path is None:
            raise HttpError(404, "the server was started without a collection (artctl serve --collection)")
        try:  # read again each time: the file and the models may have changed since the start
            view = collection_view(load_collection(self.path), self.registry)
        except ConfigError as exc:
            raise HttpError(409, str(exc)) from None
        return web.json_response(view, headers={"Cache-Control": "no-cache"})

    async def given(self, request: web.Request) -> web.Response:
        body = await read_body(request, self.limits)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "the collection config is not UTF-8 text") from None
        try:
            view = collection_view(parse_toml(text, "collection config"), self.registry)
        except ConfigError as exc:
            raise HttpError(400, str(exc)) from None
        return web.json_response(view, headers={"Cache-Control": "no-store"})
