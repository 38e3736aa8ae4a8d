"""The collection config (TOML), validated with errors that name the bad key."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


class ConfigError(ValueError):
    """A collection config that cannot be used; the message names the file and the key."""


class CollectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    symbol: str = ""
    description: str = ""
    size: int = Field(ge=1, le=10_000_000)
    salt: str = Field(min_length=1, description="mixed into every token seed; keep it secret until reveal")
    start_index: Literal[0, 1] = 0
    model: str = Field("default", description="model name on the server, or an ONNX path with --local")
    psi: float | None = Field(None, ge=0.0, le=2.0)
    base_uri: str = Field("ipfs://<images-CID>/", description="prefix of each token's image URI")
    external_url: str = ""

    def token_ids(self) -> range:
        return range(self.start_index, self.start_index + self.size)


def _one_line(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{key}: {err['msg']}")
    return f"{source}: " + "; ".join(parts)


def load_collection(path: Path) -> CollectionConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"collection config {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return CollectionConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, str(path))) from None
