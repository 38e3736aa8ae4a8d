"""The collection config (TOML), validated with errors that name the bad key.

A config plus the model decides every byte of a drop, so everything here is checked up front:
a mistake found after 9,000 tokens (or after the reveal) is far more expensive than one line now.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from artctl.curation import Curation
from artctl.delivery import MAX_SCALE
from artctl.evm import EVM_ADDRESS, checksum_problem

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

# Placeholders the example config ships with: mint says what to do about them, rebase replaces them.
PLACEHOLDER_BASE_URI = "ipfs://<images-CID>/"
URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
NOT_IN_URIS = frozenset(' <>"{}|\\^`')

SOLANA_ADDRESS = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")  # base58, 32-byte public key
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

DERIVED_SOURCES = ("dominant_colour", "brightness", "transparency")

# Named colours for the dominant-colour trait: every opaque pixel votes for its nearest entry.
EXAMPLE_SALT = "change-me-before-your-drop"  # examples/collection.toml's: public, so never secret

DEFAULT_PALETTE: dict[str, str] = {
    "black": "#141414",
    "white": "#f0f0f0",
    "grey": "#808080",
    "red": "#d22828",
    "orange": "#f08c1e",
    "yellow": "#f0dc32",
    "green": "#32a03c",
    "teal": "#1e9696",
    "blue": "#2850d2",
    "purple": "#8c3cbe",
    "pink": "#f08cbe",
    "brown": "#784b28",
}


def base_uri_problem(value: str) -> str | None:
    """Why `value` cannot be the prefix of every token's image URI (None: it can).

    Token URIs are base_uri + the file name ("1.png"), so a base without its trailing slash
    silently names files that do not exist ("ipfs://CID1.png"): refused, with the corrected value,
    never patched up behind the user's back."""
    if value == PLACEHOLDER_BASE_URI:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if (
        parts is None
        or not URI_SCHEME.match(parts.scheme)
        or not parts.netloc
        or any(c in NOT_IN_URIS or ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return f"{value!r} is not a URI like ipfs://CID/ or https://host/path/"
    if parts.query or parts.fragment:
        return f"{value!r} has a query or fragment; token URIs are base_uri + the file name"
    if not value.endswith("/"):
        return f"{value!r} lacks its trailing slash (token URIs are base_uri + '1.png'); use {value + '/'!r}"
    return None


class ConfigError(ValueError):
    """A collection config that cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    """Unknown keys and wrong types are errors: `size = "20"` or `size = true` is not a size."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Royalties(_Strict):
    """ERC-2981 royalty: basis points of the sale price (500 = 5%) and who receives it."""

    basis_points: int = Field(ge=0, le=10_000)
    recipient: str

    @field_validator("recipient")
    @classmethod
    def _address(cls, value: str) -> str:
        if not (EVM_ADDRESS.match(value) or SOLANA_ADDRESS.match(value)):
            raise ValueError("must be an EVM address (0x + 40 hex digits) or a Solana base58 address")
        problem = checksum_problem(value) if EVM_ADDRESS.match(value) else None
        if problem:
            raise ValueError(problem)
        return value


class ConditioningTrait(_Strict):
    """Drawn per token with integer weights (artctl-trait-v1), then fed to the model as its label.

    `labels` maps each value to one of the model's label names (default: the value itself). On a
    model without labels the trait is left out of the drop (`on_unconditional = "skip"`, shown as a
    note) or refused (`"error"`): an attribute that does not steer the image would be a lie.
    """

    name: str = Field(min_length=1)
    kind: Literal["conditioning"]
    values: list[str] = Field(min_length=1)
    weights: list[int]
    labels: list[str] | None = None
    on_unconditional: Literal["skip", "error"] = "skip"

    @model_validator(mode="after")
    def _shape(self) -> ConditioningTrait:
        if len(self.weights) != len(self.values):
            raise ValueError(f"weights: need {len(self.values)} weights, one per value")
        if any(w < 0 for w in self.weights) or sum(self.weights) == 0:
            raise ValueError("weights: must be non-negative integers, not all zero")
        if len(set(self.values)) != len(self.values):
            raise ValueError("values: must be unique")
        if self.labels is not None and len(self.labels) != len(self.values):
            raise ValueError(f"labels: need {len(self.values)} label names, one per value")
        return self

    def label_names(self) -> list[str]:
        return list(self.labels) if self.labels is not None else list(self.values)


class DerivedTrait(_Strict):
    """Computed from the rendered pixels (integer arithmetic only), so anyone re-derives it.

    - dominant_colour: the palette name most opaque pixels are nearest to (`palette`, optional).
    - brightness: mean luma (0..255) of opaque pixels, bucketed by ascending `thresholds`.
    - transparency: percent (0..100) of pixels with alpha < 128, bucketed by `thresholds`.
    Bucket i is values[i]: the first whose threshold exceeds the measure, else the last value.
    """

    name: str = Field(min_length=1)
    kind: Literal["derived"]
    source: Literal["dominant_colour", "brightness", "transparency"]
    values: list[str] | None = None
    thresholds: list[int] | None = None
    palette: dict[str, str] | None = None

    @model_validator(mode="after")
    def _shape(self) -> DerivedTrait:
        if self.source == "dominant_colour":
            if self.values is not None or self.thresholds is not None:
                raise ValueError("dominant_colour takes a palette, not values/thresholds")
            for key, colour in (self.palette or {}).items():
                if not HEX_COLOUR.match(colour):
                    raise ValueError(f"palette.{key}: must be a #rrggbb colour, got {colour!r}")
            if self.palette is not None and not self.palette:
                raise ValueError("palette: give at least one colour")
            return self
        if self.palette is not None:
            raise ValueError(f"palette: only for dominant_colour, not {self.source}")
        if not self.values or self.thresholds is None:
            raise ValueError(f"{self.source} needs values and thresholds")
        if len(self.thresholds) != len(self.values) - 1:
            raise ValueError(f"thresholds: need {len(self.values) - 1} (one fewer than values)")
        top = 255 if self.source == "brightness" else 100
        if self.thresholds != sorted(set(self.thresholds)) or any(not 0 < t <= top for t in self.thresholds):
            raise ValueError(f"thresholds: must be strictly ascending integers in 1..{top}")
        return self

    def palette_items(self) -> list[tuple[str, tuple[int, int, int]]]:
        items = (self.palette or DEFAULT_PALETTE).items()
        return [(name, (int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16))) for name, c in items]


Trait = Annotated[ConditioningTrait | DerivedTrait, Field(discriminator="kind")]


class CollectionConfig(_Strict):
    name: str = Field(min_length=1)
    symbol: str = Field("", max_length=10)
    description: str = ""
    size: int = Field(ge=1, le=10_000_000)
    salt: str = Field(min_length=1, description="mixed into every token seed; keep it secret until reveal")
    start_index: Literal[0, 1] = 0
    model: str = Field("default", description="model name on the server, or an ONNX path with --local")
    psi: float | None = Field(None, ge=0.0, le=2.0)
    truncation_cutoff: int | None = Field(
        None, ge=1, description="psi on the first k of the model's ws only (a model with a w space)"
    )
    base_uri: str | None = Field(None, description="prefix of each token's image URI")
    ipfs: bool = Field(False, description="image URI = ipfs://<CIDv1 of the image file>")
    image_scale: int = Field(
        1, ge=1, le=MAX_SCALE, description="whole-number nearest-neighbour upscale of each token's file"
    )
    image_format: Literal["png", "svg"] = Field("png", description="token image files: PNG, or SVG rects")
    external_url: str = ""
    image: str = Field("", description="collection-level image URI (collection.json)")
    royalties: Royalties | None = None
    traits: list[Trait] = Field(default_factory=list)
    curation: Curation | None = Field(
        None, description="the pinned entries to render, in token order (artctl mint --curation)"
    )

    @field_validator("base_uri")
    @classmethod
    def _base_uri(cls, value: str | None, info: ValidationInfo) -> str | None:
        # A drop's recorded config is read as written, so verify can report a bad base URI itself.
        if value is None or (info.context or {}).get("recorded"):
            return value
        problem = base_uri_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _checks(self) -> CollectionConfig:
        if self.ipfs and self.base_uri is not None:
            raise ValueError("base_uri: set base_uri or ipfs = true, not both")
        names = [t.name for t in self.traits]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"traits: duplicate trait name {dupes[0]!r}")
        if sum(isinstance(t, ConditioningTrait) for t in self.traits) > 1:
            raise ValueError("traits: at most one conditioning trait (a model has one label input)")
        if self.curation is not None and len(self.curation.entries) != self.size:
            raise ValueError(f"size: {self.size}, but the curation pins {len(self.curation.entries)} entries")
        return self

    @model_serializer(mode="wrap")
    def _echo(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        """Leave image_scale/image_format out of the echo at their defaults, so drops minted before
        they existed keep their manifest bytes and journal identity (absent means 1 and png)."""
        data: dict[str, object] = handler(self)
        for key, default in (("image_scale", 1), ("image_format", "png")):
            if data.get(key) == default:
                data.pop(key)
        return data

    def token_ids(self) -> range:
        return range(self.start_index, self.start_index + self.size)

    @property
    def has_collection_image(self) -> bool:
        """Whether `image` names a real collection image (not empty, not a <placeholder>)."""
        return bool(self.image) and "<" not in self.image

    def image_uri(self, token_id: int, cid: str) -> str:
        if self.ipfs:
            return f"ipfs://{cid}"
        base = self.base_uri if self.base_uri is not None else PLACEHOLDER_BASE_URI
        return f"{base}{token_id}.{self.image_format}"


def _one_line(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if p not in ("conditioning", "derived")]
        msg = str(err["msg"]).removeprefix("Value error, ")
        inner = re.match(r"^([A-Za-z_][\w.]*): (.*)$", msg)
        if inner and err["type"] == "value_error":  # a check that names its own key
            loc.append(inner.group(1))
            msg = inner.group(2)
        key = ".".join(loc) or "(top level)"
        parts.append(f"{key}: {msg}")
    return f"{source}: " + "; ".join(parts)


def parse_collection(
    raw: dict[str, object], source: str = "collection config", recorded: bool = False
) -> CollectionConfig:
    """Validate an already-parsed config; `recorded`: the echo in a finished drop's manifest, whose
    base_uri is taken as written (verify reports what is wrong with it)."""
    try:
        return CollectionConfig.model_validate(raw, context={"recorded": recorded})
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, source)) from None


def load_collection(path: Path) -> CollectionConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"collection config {path} does not exist") from None
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise ConfigError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_collection(raw, str(path))
