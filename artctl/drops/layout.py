"""Where a drop's files live, by metadata format.

- erc721: `images/{id}.png` (`.svg` with `image_format = "svg"`) and `metadata/{id}.json` by token
  id, `collection.json` beside them (upload each folder to IPFS; token URIs are `base_uri + id`).
- metaplex: Solana Sugar's (and `mplx`'s) asset folder, ready for `sugar upload`: `assets/{n}.png`
  and `assets/{n}.json` numbered from 0 without gaps whatever the collection's first token id,
  plus `assets/collection.png` and `assets/collection.json` for the collection NFT. Each JSON
  names its image by file name; Sugar uploads the files and writes the final links itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from artctl.collection import CollectionConfig

ASSETS = "assets"


@dataclass(frozen=True)
class Layout:
    sugar: bool  # metaplex: Sugar's numbered asset folder
    start_index: int  # the collection's first token id (asset 0 in Sugar's folder)
    ext: str = "png"  # the image files' extension: the config's image_format

    @classmethod
    def of(cls, fmt: str, config: CollectionConfig) -> Layout:
        return cls(sugar=fmt == "metaplex", start_index=config.start_index, ext=config.image_format)

    @property
    def folders(self) -> tuple[str, ...]:
        """The folders holding token files (relative to the drop)."""
        return (ASSETS,) if self.sugar else ("images", "metadata")

    def _name(self, token_id: int) -> str:
        return str(int(token_id) - self.start_index) if self.sugar else str(token_id)

    def image_name(self, token_id: int) -> str:
        """A token's image, relative to the drop (as messages name it)."""
        folder = ASSETS if self.sugar else "images"
        return f"{folder}/{self._name(token_id)}.{self.ext}"

    def metadata_name(self, token_id: int) -> str:
        folder = ASSETS if self.sugar else "metadata"
        return f"{folder}/{self._name(token_id)}.json"

    def image(self, drop: Path, token_id: int) -> Path:
        return Path(drop) / self.image_name(token_id)

    def metadata(self, drop: Path, token_id: int) -> Path:
        return Path(drop) / self.metadata_name(token_id)

    def image_uri(self, config: CollectionConfig, token_id: int, cid: str) -> str:
        """The `image` a token's metadata names: Sugar's file name, else the config's URI scheme."""
        return f"{self._name(token_id)}.{self.ext}" if self.sugar else config.image_uri(token_id, cid)

    def uri_problem(self, config: CollectionConfig, token_id: int, uri: object) -> str | None:
        """Why a token's recorded image URI is not its base URI + its file name (None: it is).

        Offline, from the drop alone: a URI that merely equals what the config gives would pass a
        base without its trailing slash ("ipfs://CID1.png")."""
        name = f"{self._name(token_id)}.{self.ext}"
        if self.sugar or config.ipfs:
            return None  # a file name Sugar links itself, or the image's own CID (checked with the file)
        if not isinstance(uri, str) or not uri.endswith(f"/{name}"):
            return f"image URI {uri!r} does not end in '/{name}', this token's file name"
        base = uri.removesuffix(name)
        if base != config.base_uri and config.base_uri is not None:
            return f"image URI {uri!r} is not the drop's base_uri {config.base_uri!r} + {name!r}"
        return None

    @property
    def collection_json(self) -> str:
        return f"{ASSETS}/collection.json" if self.sugar else "collection.json"

    def is_drop_file(self, folder: str, name: str, ids: range) -> bool:
        """Whether `folder/name` is one of the drop's files for token `ids` (without listing them all:
        a collection may hold millions)."""
        if self.sugar and name in ("collection.json", "collection.png"):
            return folder == ASSETS
        image = f".{self.ext}"
        suffixes = {"images": (image,), "metadata": (".json",), ASSETS: (image, ".json")}.get(folder, ())
        stem, dot, suffix = name.rpartition(".")
        if not dot or f".{suffix}" not in suffixes or not stem.isdigit() or str(int(stem)) != stem:
            return False
        token_id = int(stem) + self.start_index if self.sugar else int(stem)
        return token_id in ids
