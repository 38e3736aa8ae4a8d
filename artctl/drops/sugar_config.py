"""Sugar's config.json beside a Metaplex drop's assets/: where Sugar reads the royalties from.

Off-chain `creators` are deprecated, so Sugar (Candy Machine v3, Sugar 2.x) takes the royalty and
its recipients from this file only. The drop decides `number`, `symbol` and `sellerFeeBasisPoints`
(re-written on every mint, merge or rebase, and checked by verify); `creators`, `tokenStandard`,
`isMutable` and the rest are written once and then left to the user, who must also choose the
upload method: its value is a placeholder Sugar refuses until it is replaced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from artctl.collection import SOLANA_ADDRESS, CollectionConfig
from artctl.fileio import write_bytes_atomic
from artctl.metadata import stable_json

NAME = "config.json"
UPLOAD_METHODS = ("bundlr", "aws", "nft_storage", "shdw", "pinata", "sdrive")
UPLOAD_SETTINGS = ("awsConfig", "nftStorageAuthToken", "shdwStorageAccount", "pinataConfig", "sdriveApiKey")
UPLOAD_PLACEHOLDER = "<choose: " + " | ".join(UPLOAD_METHODS) + ">"
TOKEN_STANDARDS = ("nft", "pnft")
MAX_CREATORS = 4  # the Candy Machine adds itself as a fifth creator
SYMBOL_BYTES, MAX_BPS = 10, 10_000
OWNED = ("number", "symbol", "sellerFeeBasisPoints")


def owned_fields(config: CollectionConfig) -> dict[str, Any]:
    """What the drop decides: its size, symbol and royalty."""
    bps = config.royalties.basis_points if config.royalties else 0
    return {"number": config.size, "symbol": config.symbol, "sellerFeeBasisPoints": bps}


def initial_config(config: CollectionConfig) -> dict[str, Any]:
    """A complete Sugar config for the drop, the upload method still to be chosen."""
    recipient = config.royalties.recipient if config.royalties else ""
    return {
        "tokenStandard": "nft",
        **owned_fields(config),
        "isMutable": True,
        "isSequential": False,
        "creators": [{"address": recipient, "share": 100}],
        "hiddenSettings": None,
        "uploadMethod": UPLOAD_PLACEHOLDER,
        **dict.fromkeys(UPLOAD_SETTINGS),
        "guards": None,
    }


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write_sugar_config(drop: Path, config: CollectionConfig) -> Path:
    """Write config.json, or bring the drop's fields of an existing one up to date (the user's
    own settings, such as the upload method, are kept)."""
    path = Path(drop) / NAME
    found = _read(path)
    doc = initial_config(config) if found is None else {**found, **owned_fields(config)}
    if doc != found:
        write_bytes_atomic(path, stable_json(doc))
    return path


def upload_note(drop: Path) -> str | None:
    """What is left for the user before `sugar upload`, or None when the upload method is chosen."""
    doc = _read(Path(drop) / NAME) or {}
    if doc.get("uploadMethod") in UPLOAD_METHODS:
        return None
    return (
        f"{Path(drop) / NAME}: choose uploadMethod ({', '.join(UPLOAD_METHODS)}) and fill its settings "
        f"({', '.join(UPLOAD_SETTINGS)}), review creators and guards, then run sugar from {drop}"
    )


def check_sugar_config(drop: Path, config: CollectionConfig) -> list[str]:
    """Every way config.json breaks Sugar's config rules or disagrees with the drop."""
    doc = _read(Path(drop) / NAME)
    if doc is None:
        return [f"{NAME}: missing or not a JSON object (Sugar reads the royalties from it)"]
    problems = [
        f"{NAME}: {key} is {doc.get(key)!r}, the drop's is {value!r}"
        for key, value in owned_fields(config).items()
        if doc.get(key) != value
    ]
    symbol, bps = doc.get("symbol"), doc.get("sellerFeeBasisPoints")
    if not isinstance(symbol, str) or len(symbol.encode()) > SYMBOL_BYTES:
        problems.append(f"{NAME}: symbol must be a string of at most {SYMBOL_BYTES} bytes")
    if isinstance(bps, bool) or not isinstance(bps, int) or not 0 <= bps <= MAX_BPS:
        problems.append(f"{NAME}: sellerFeeBasisPoints must be an integer in 0..{MAX_BPS}")
    if doc.get("tokenStandard") not in TOKEN_STANDARDS:
        problems.append(f"{NAME}: tokenStandard must be one of {', '.join(TOKEN_STANDARDS)}")
    if not isinstance(doc.get("isMutable"), bool):
        problems.append(f"{NAME}: isMutable must be true or false")
    method = doc.get("uploadMethod")
    if method != UPLOAD_PLACEHOLDER and method not in UPLOAD_METHODS:
        problems.append(f"{NAME}: uploadMethod must be one of {', '.join(UPLOAD_METHODS)}")
    return problems + _creator_problems(doc.get("creators"))


def _creator_problems(creators: Any) -> list[str]:
    if not isinstance(creators, list) or not 1 <= len(creators) <= MAX_CREATORS:
        return [f"{NAME}: creators must list 1 to {MAX_CREATORS} creators"]
    problems = []
    shares = 0
    for n, creator in enumerate(creators):
        address = creator.get("address") if isinstance(creator, dict) else None
        share = creator.get("share") if isinstance(creator, dict) else None
        if not isinstance(address, str) or not SOLANA_ADDRESS.match(address):
            problems.append(f"{NAME}: creators[{n}].address must be a Solana base58 address")
        if isinstance(share, bool) or not isinstance(share, int) or not 0 <= share <= 100:
            problems.append(f"{NAME}: creators[{n}].share must be an integer percentage")
        else:
            shares += share
    if not problems and shares != 100:
        problems.append(f"{NAME}: creators' shares add up to {shares}, not 100")
    return problems
