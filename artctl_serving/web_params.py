"""The image URLs' parameters, each with exactly one spelling.

An image URL is a cache key (the browser's, a CDN's, ours), so one picture must have one URL: a
value written any other way than its canonical form (`+1`, `01`, `1_000`, `٣`, `0.50`, `frames=2.9`)
is a 400 whose message gives that form, never a second name for the same bytes. Numbers are
written the way the model sees them: whole numbers in plain ASCII digits without sign or leading
zeros, real numbers as the shortest decimal that reads back to the same float32.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np

from artctl.delivery import MAX_SCALE
from artctl.directions import Edit, parse_edits
from artctl.modelcard import label_index
from artctl_serving.errors import InvalidRequestError


def canonical_float(value: float) -> str:
    """The shortest decimal that reads back to `value` as a float32 ("0.5", "2", "-1.25")."""
    return str(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def whole(text: str, what: str, lo: int = 0, hi: int = 2**64 - 1) -> int:
    """A whole number in lo..hi, written as plain ASCII digits (no sign, spaces, `_` or leading 0)."""
    if text.isascii() and text.isdigit() and (text == "0" or text[0] != "0"):
        value = int(text)
        if lo <= value <= hi:
            return value
        raise InvalidRequestError(f"{what} must be in {lo}..{_bound(hi)}, got {text[:24]}")
    try:
        value = int(text.strip().replace("_", "") or "x")
    except ValueError:
        try:
            number = float(text)
        except ValueError:
            raise InvalidRequestError(f"{what} must be a whole number, got {text[:24]!r}") from None
        if not number.is_integer():
            raise InvalidRequestError(f"{what} must be a whole number, got {text[:24]!r}") from None
        value = int(number)
    if lo <= value <= hi:
        raise InvalidRequestError(
            f"write {what} as {value}, not {text[:24]!r} (plain digits, no sign, leading zeros or decimals)"
        )
    raise InvalidRequestError(f"{what} must be in {lo}..{_bound(hi)}, got {text[:24]!r}")


def _bound(hi: int) -> str:
    return "2**64-1" if hi == 2**64 - 1 else str(hi)


def real(text: str, what: str) -> float:
    """A finite number written as canonical_float writes it."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidRequestError(f"{what} must be a number, got {text[:24]!r}") from None
    if not np.isfinite(np.float32(value)):
        raise InvalidRequestError(f"{what} must be a finite number, got {text[:24]!r}")
    canonical = canonical_float(value)
    if text != canonical:
        raise InvalidRequestError(f"write {what} as {canonical}, not {text[:24]!r}")
    return float(np.float32(value))


class Query:
    """A URL's query: each parameter at most once, none that the route does not take, none empty."""

    def __init__(self, query: Any, allowed: Collection[str]) -> None:
        self.values: dict[str, str] = {}
        for key in query:
            if key not in allowed:
                raise InvalidRequestError(
                    f"unknown parameter {key[:24]!r}; this URL takes {', '.join(sorted(allowed))}"
                )
            given = query.getall(key)
            if len(given) > 1:
                raise InvalidRequestError(f"give {key} once")
            if given[0] == "":
                raise InvalidRequestError(f"{key} is empty: give it a value or leave it out")
            self.values[key] = given[0]

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def whole(self, key: str, default: int, lo: int, hi: int) -> int:
        text = self.values.get(key)
        return default if text is None else whole(text, key, lo, hi)

    def real(self, key: str) -> float | None:
        text = self.values.get(key)
        return None if text is None else real(text, key)

    def label(self, names: list[str]) -> int | None:
        """The label by name (by index only for a model without names)."""
        text = self.values.get("label")
        try:
            index = label_index(text, names)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        if index is None or text in names:
            return index
        assert text is not None
        if 0 <= index < len(names):
            raise InvalidRequestError(f"write label={names[index]}, not label={text[:24]}")
        if text != str(index):
            raise InvalidRequestError(f"write label as {index}, not {text[:24]!r}")
        return index

    def edits(self) -> list[Edit]:
        text = self.values.get("edit", "")
        edits = parse_edits(text)
        canonical = ",".join(f"{int(i)}:{canonical_float(a)}" for i, a in edits)
        if text != canonical:
            raise InvalidRequestError(f"write edit={canonical}, not {text[:48]!r}")
        return edits


def scale(query: Any) -> int:
    """The URL's `scale`, 1 when absent; 400 for anything but its canonical spelling."""
    given = query.getall("scale", [])
    if not given:
        return 1
    if len(given) > 1:
        raise InvalidRequestError("give scale once")
    text = str(given[0])
    if text.isascii() and text.isdigit() and text[0] != "0" and int(text) <= MAX_SCALE:
        return int(text)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value.is_integer() and 1 <= value <= MAX_SCALE:
        raise InvalidRequestError(
            f"scale must be written scale={int(value)}, not {text[:24]!r} "
            "(a whole number without sign, leading zeros or decimals)"
        )
    raise InvalidRequestError(f"scale must be a whole number in 1..{MAX_SCALE}, got {text[:24]!r}")
