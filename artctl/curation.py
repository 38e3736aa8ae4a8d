"""A curation: the seeds an artist pinned in the studio, in order, each with its psi, label and
edits along the model's latent directions. `artctl mint --curation` renders exactly these.

The file (artctl-curation-v1) names the model it was made with by SHA-256, so it cannot be minted
with another; the drop's config echo in manifest.json carries it whole, so `artctl verify` and
anyone re-deriving the drop read every token's inputs from the manifest alone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from artctl.directions import MAX_AMOUNT, MAX_EDITS

CURATION_FORMAT = "artctl-curation-v1"
MAX_ENTRIES = 100_000


class CurationError(ValueError):
    """A curation file that cannot be minted (one readable line)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CuratedEdit(_Strict):
    direction: int = Field(ge=0)
    amount: float = Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)


class CuratedEntry(_Strict):
    seed: str = Field(description="decimal, 0 <= seed < 2**64 (a string: JSON numbers lose digits)")
    psi: float | None = Field(None, ge=0.0, le=2.0)
    label: str | int | None = None  # a label name or index (conditional models)
    edits: list[CuratedEdit] = Field(default_factory=list, max_length=MAX_EDITS)

    @field_validator("seed")
    @classmethod
    def _seed(cls, value: str) -> str:
        if not re.fullmatch(r"\d{1,20}", value) or int(value) >= 2**64:
            raise ValueError("seed must be a decimal string in 0..2**64-1")
        return str(int(value))

    @property
    def edit_pairs(self) -> tuple[tuple[int, float], ...]:
        return tuple((e.direction, e.amount) for e in self.edits)


class CuratedModel(_Strict):
    name: str = ""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Curation(_Strict):
    format: Literal["artctl-curation-v1"] = "artctl-curation-v1"
    model: CuratedModel
    directions_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    entries: list[CuratedEntry] = Field(min_length=1, max_length=MAX_ENTRIES)

    @property
    def has_edits(self) -> bool:
        return any(e.edits for e in self.entries)


def parse_curation(raw: Any, source: str = "curation") -> Curation:
    try:
        curation = Curation.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise CurationError(f"{source}: {where}: {message}{more}") from None
    if curation.has_edits and curation.directions_sha256 is None:
        raise CurationError(
            f"{source}: entries have edits, so directions_sha256 must name the directions file"
        )
    return curation


def load_curation(path: Path) -> Curation:
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CurationError(f"curation {path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CurationError(f"{path}: not a JSON curation file ({exc})") from None
    return parse_curation(raw, str(path))
