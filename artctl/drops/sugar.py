"""Sugar's rules for an asset folder (Metaplex Candy Machine uploads), checked offline.

What `sugar validate` and `sugar upload` require, as their sources and the Metaplex docs state it:
assets named 0..N-1 without gaps, `{n}.json` beside exactly one image `{n}.png|jpg|jpeg|gif`, an
optional `collection.json` with its `collection` image, no other JSON file; each JSON with a name
(at most 32 bytes), a description, an image, `properties.files` of {uri, type} whose first entry is
the image (mplx rewrites that entry), string attribute values, a symbol of at most 10 bytes,
seller_fee_basis_points at most 10000, URIs of at most 200 bytes, a known category, and creator
shares summing to 100 where creators are given (deprecated in off-chain JSON).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

NAME_BYTES, SYMBOL_BYTES, URI_BYTES, MAX_BPS = 32, 10, 200, 10_000
CATEGORIES = ("image", "video", "audio", "vr", "html")
IMAGE = re.compile(r"^(?P<stem>\d+|collection)\.(png|jpg|jpeg|gif)$", re.IGNORECASE)


def _text(doc: dict[str, Any], key: str, where: str, limit: int | None, problems: list[str]) -> None:
    value = doc.get(key)
    if not isinstance(value, str):
        problems.append(f"{where}: {key} must be a string")
    elif limit is not None and len(value.encode()) > limit:
        problems.append(f"{where}: {key} is {len(value.encode())} bytes, over {limit}")


def check_metadata(doc: Any, where: str) -> list[str]:
    """The fields of one asset JSON (item or collection)."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        return [f"{where}: not a JSON object"]
    _text(doc, "name", where, NAME_BYTES, problems)
    _text(doc, "description", where, None, problems)
    _text(doc, "image", where, URI_BYTES, problems)
    for key, limit in (("symbol", SYMBOL_BYTES), ("external_url", URI_BYTES), ("animation_url", URI_BYTES)):
        if key in doc:
            _text(doc, key, where, limit, problems)
    bps = doc.get("seller_fee_basis_points", 0)
    if isinstance(bps, bool) or not isinstance(bps, int) or not 0 <= bps <= MAX_BPS:
        problems.append(f"{where}: seller_fee_basis_points must be an integer in 0..{MAX_BPS}")
    for attribute in doc.get("attributes", []):
        if not (isinstance(attribute, dict) and isinstance(attribute.get("trait_type"), str)):
            problems.append(f"{where}: every attribute needs a string trait_type")
        elif not isinstance(attribute.get("value"), str):
            problems.append(f"{where}: attribute {attribute['trait_type']!r} has a non-string value")
    properties = doc.get("properties")
    if not isinstance(properties, dict):
        return [*problems, f"{where}: properties must be an object listing the image in files"]
    files = properties.get("files")
    if not isinstance(files, list) or not files:
        problems.append(f"{where}: properties.files must list the image")
    else:
        if not all(
            isinstance(f, dict) and isinstance(f.get("uri"), str) and isinstance(f.get("type"), str)
            for f in files
        ):
            problems.append(f"{where}: every properties.files entry needs a string uri and type")
        elif files[0]["uri"] != doc.get("image"):
            problems.append(f"{where}: properties.files[0] must be the image (Sugar and mplx rewrite it)")
        category = properties.get("category", "image")
        if category not in CATEGORIES:
            problems.append(f"{where}: properties.category must be one of {', '.join(CATEGORIES)}")
        creators = properties.get("creators")
        if creators is not None and sum(int(c.get("share", 0)) for c in creators) != 100:
            problems.append(f"{where}: creator shares must add up to 100")
    return problems


def check_assets(folder: Path) -> list[str]:
    """Every way `folder` falls short of a Sugar asset folder (empty: ready to upload)."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return [f"{folder}: missing or empty"]
    names = sorted(p.name for p in folder.iterdir())
    problems = [f"{folder.name}/{n}: Sugar accepts only N.json and collection.json" for n in names
                if n.endswith(".json") and not re.fullmatch(r"\d+\.json|collection\.json", n)]  # fmt: skip
    numbered = sorted(int(n[:-5]) for n in names if re.fullmatch(r"\d+\.json", n))
    if not numbered:
        problems.append(f"{folder.name}: no N.json assets")
    elif numbered != list(range(len(numbered))):
        missing = sorted(set(range(len(numbered))) - set(numbered))[:5]
        problems.append(
            f"{folder.name}: assets must be numbered 0..{len(numbered) - 1} without gaps (missing {missing})"
        )
    images: dict[str, list[str]] = {}
    for name in names:
        match = IMAGE.match(name)
        if match:
            images.setdefault(match["stem"], []).append(name)
    stems = [str(n) for n in numbered] + (["collection"] if "collection.json" in names else [])
    for stem in stems:
        found = images.get(stem, [])
        if len(found) != 1:
            problems.append(
                f"{folder.name}/{stem}.json: needs exactly one image {stem}.png|jpg|jpeg|gif, has {found}"
            )
        try:
            doc = json.loads((folder / f"{stem}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{folder.name}/{stem}.json: not readable JSON ({exc})")
            continue
        problems += check_metadata(doc, f"{folder.name}/{stem}.json")
    return problems
