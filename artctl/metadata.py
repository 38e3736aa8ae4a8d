"""Marketplace JSON: per-token metadata (ERC-721 / OpenSea, or Metaplex for Solana) and the
contract-level collection.json. Pure functions of (config, manifest entry), so a re-run or
`artctl verify` rebuilds the exact bytes and compares.
"""

from __future__ import annotations

import json
from typing import Any

from artctl.collection import EVM_ADDRESS, SOLANA_ADDRESS, CollectionConfig, ConfigError
from artctl.delivery import MIME_TYPES
from artctl.seeds import CONTRACTS

FORMATS = ("erc721", "metaplex")
METAPLEX_NAME_BYTES = 32  # on-chain limits of the Metaplex token-metadata program
METAPLEX_SYMBOL_BYTES = 10


def stable_json(doc: Any) -> bytes:
    """Sorted keys, 2-space indent, trailing newline: the same document always gives the same bytes."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def check_format(config: CollectionConfig, fmt: str) -> None:
    """Refuse a config that the chosen chain cannot represent, before anything is written."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    recipient = config.royalties.recipient if config.royalties else None
    if fmt == "erc721" and recipient and not EVM_ADDRESS.match(recipient):
        raise ConfigError("royalties.recipient: erc721 needs an EVM address (0x + 40 hex digits)")
    if fmt == "metaplex":
        if config.image_format != "png":
            raise ConfigError(
                f"image_format: Sugar (--format metaplex) takes no {config.image_format.upper()} "
                'images; use image_format = "png" or --format erc721'
            )
        if not recipient:
            raise ConfigError(
                "royalties: --format metaplex needs [royalties] with a Solana recipient: Sugar reads the "
                "creator from the drop's config.json (basis_points = 0 for no royalty)"
            )
        if not SOLANA_ADDRESS.match(recipient):
            raise ConfigError("royalties.recipient: metaplex needs a Solana base58 address")
        longest = token_name(config, config.start_index + config.size - 1)
        if len(longest.encode()) > METAPLEX_NAME_BYTES:
            raise ConfigError(
                f"name: {longest!r} is longer than Metaplex's {METAPLEX_NAME_BYTES} bytes; shorten the name"
            )
        if len(config.symbol.encode()) > METAPLEX_SYMBOL_BYTES:
            raise ConfigError(f"symbol: longer than Metaplex's {METAPLEX_SYMBOL_BYTES} bytes")


def token_name(config: CollectionConfig, token_id: int) -> str:
    return f"{config.name} #{token_id}"


def _attributes(traits: dict[str, str], order: list[str]) -> list[dict[str, str]]:
    return [{"trait_type": name, "value": traits[name]} for name in order]


def token_metadata(
    config: CollectionConfig,
    entry: dict[str, Any],
    order: list[str],
    model_sha256: str,
    fmt: str,
    psi: float | None = None,
) -> dict[str, Any]:
    """One token's metadata; `artctl` carries every input a third party needs to re-derive the image
    (seed, psi, label) besides the model and the render profile, which the manifest names."""
    provenance = {
        "seed": entry["seed"],
        "pixel_sha256": entry["pixel_sha256"],
        "model_sha256": model_sha256,
        "contracts": CONTRACTS,
    }
    if psi is not None:
        provenance["psi"] = psi
    for key in ("label", "label_name", "edits"):  # v2 drops have no label_name; curated ones edits
        if key in entry:
            provenance[key] = entry[key]
    doc: dict[str, Any] = {
        "name": token_name(config, entry["id"]),
        "description": config.description,
        "image": entry["image"],
        "attributes": _attributes(entry["traits"], order),
        "artctl": provenance,
    }
    if config.external_url:
        doc["external_url"] = config.external_url
    if fmt == "metaplex":
        doc["symbol"] = config.symbol
        doc["seller_fee_basis_points"] = config.royalties.basis_points if config.royalties else 0
        # Creators are no longer read from off-chain JSON (Sugar warns): they go in Sugar's config.
        doc["properties"] = {
            "category": "image",
            "files": [{"uri": entry["image"], "type": MIME_TYPES[config.image_format]}],
        }
    return doc


def collection_metadata(
    config: CollectionConfig, fmt: str, provenance: str, model_sha256: str, image: str | None = None
) -> dict[str, Any]:
    """Contract-level metadata: OpenSea's contractURI document, or (metaplex) Sugar's
    assets/collection.json for the collection NFT, whose image is assets/collection.png.
    `image`: the collection image's URI when the drop decides it (ipfs = true), else the config's."""
    bps = config.royalties.basis_points if config.royalties else 0
    doc: dict[str, Any] = {
        "name": config.name,
        "symbol": config.symbol,
        "description": config.description,
        "image": (image or config.image) if fmt == "erc721" else "collection.png",
        "seller_fee_basis_points": bps,
        "artctl": {
            "provenance": provenance,
            "model_sha256": model_sha256,
            "size": config.size,
            "start_index": config.start_index,
        },
    }
    if fmt == "erc721":
        doc["external_link"] = config.external_url
        doc["fee_recipient"] = config.royalties.recipient if config.royalties else ""
    else:
        if config.external_url:
            doc["external_url"] = config.external_url
        doc["properties"] = {"category": "image", "files": [{"uri": "collection.png", "type": "image/png"}]}
    return doc
