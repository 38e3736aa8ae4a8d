"""IPFS CIDv1 of a file or directory exactly as `ipfs add --cid-version=1` computes it, offline.

Why: a drop's metadata points at `ipfs://CID`; computing the CID before upload lets the manifest
and the metadata be final before anything is pinned, and lets anyone check a pinned file offline.

The defaults of `ipfs add --cid-version=1` (kubo) are reproduced: fixed-size chunks of 262144
bytes, each chunk a raw block (codec 0x55), sha2-256. A file of at most one chunk is that one raw
block. A larger file is a balanced DAG of dag-pb (0x70) nodes carrying UnixFS `File` data, at most
174 links per node, every leaf at the same depth. CIDs print as multibase base32 lowercase ("b...").
A directory (`ipfs add -r`) is a dag-pb node with UnixFS type Directory linking its files by name,
sorted by the names' bytes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

CHUNK_SIZE = 262_144
MAX_LINKS = 174  # kubo's balanced layout: links per node
CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
_SHA2_256 = 0x12
_UNIXFS_FILE = 2


def _varint(value: int) -> bytes:
    """Unsigned LEB128, as protobuf and multiformats both use."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def cid_bytes(codec: int, block: bytes) -> bytes:
    """Binary CIDv1: version, codec, then the sha2-256 multihash of the block."""
    return _varint(1) + _varint(codec) + bytes([_SHA2_256, 32]) + hashlib.sha256(block).digest()


def cid_string(binary: bytes) -> str:
    """Multibase base32 (RFC 4648 alphabet, lowercase, no padding) with the 'b' prefix."""
    return "b" + base64.b32encode(binary).decode("ascii").rstrip("=").lower()


@dataclass(frozen=True)
class _Node:
    cid: bytes
    tsize: int  # bytes of the block plus everything under it (the dag-pb link's Tsize)
    filesize: int  # bytes of file content under it (UnixFS blocksizes)


def _parent(children: list[_Node]) -> _Node:
    """One dag-pb node: Links (field 2) first, then Data (field 1), as kubo writes them."""
    links = b"".join(
        _field_bytes(2, _field_bytes(1, c.cid) + _field_bytes(2, b"") + _field_varint(3, c.tsize))
        for c in children
    )
    filesize = sum(c.filesize for c in children)
    unixfs = _field_varint(1, _UNIXFS_FILE) + _field_varint(3, filesize)
    unixfs += b"".join(_field_varint(4, c.filesize) for c in children)
    block = links + _field_bytes(1, unixfs)
    return _Node(cid_bytes(CODEC_DAG_PB, block), len(block) + sum(c.tsize for c in children), filesize)


def _leaves(chunks: Iterable[bytes]) -> Iterator[_Node]:
    for chunk in chunks:
        yield _Node(cid_bytes(CODEC_RAW, chunk), len(chunk), len(chunk))


def file_node(chunks: Iterable[bytes]) -> _Node:
    """The root of a file's DAG given as consecutive CHUNK_SIZE pieces (the last may be shorter).

    Memory holds one chunk and one pending list of links per tree level, whatever the file size.
    """
    levels: list[list[_Node]] = [[]]  # levels[0]: leaves waiting for a parent; levels[k]: depth-k nodes
    count = 0
    for leaf in _leaves(chunks):
        count += 1
        levels[0].append(leaf)
        depth = 0
        while len(levels[depth]) == MAX_LINKS:  # a full node: seal it and push it up
            node = _parent(levels[depth])
            levels[depth] = []
            if depth + 1 == len(levels):
                levels.append([])
            levels[depth + 1].append(node)
            depth += 1
    if count == 0:
        return _Node(cid_bytes(CODEC_RAW, b""), 0, 0)
    if count == 1:
        return levels[0][0]
    # Seal partial nodes bottom-up; a level holding exactly the whole tree is the root.
    carry: _Node | None = None
    for depth, pending in enumerate(levels):
        if carry is not None:
            pending = [*pending, carry]
        is_top = depth == len(levels) - 1
        if is_top and len(pending) == 1 and depth > 0:
            return pending[0]
        carry = _parent(pending) if pending else None
    assert carry is not None
    return carry


def cid_of_chunks(chunks: Iterable[bytes]) -> str:
    """CIDv1 of a file given as consecutive CHUNK_SIZE pieces (the last may be shorter)."""
    return cid_string(file_node(chunks).cid)


def _split(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), CHUNK_SIZE):
        yield data[start : start + CHUNK_SIZE]


def cid_of_bytes(data: bytes) -> str:
    """CIDv1 (base32) of a file's bytes, as `ipfs add --cid-version=1` prints it."""
    return cid_of_chunks(_split(bytes(data)))


def _read(path: Path) -> Iterator[bytes]:
    with Path(path).open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            yield chunk


def cid_of_file(path: Path) -> str:
    """CIDv1 of a file on disk, read one chunk at a time."""
    return cid_string(file_node(_read(path)).cid)


# A directory node is a plain dag-pb node while the sum over its entries of (name bytes + CID bytes)
# stays within this; above it kubo and the JS importer shard it as a HAMT, which artctl does not build.
HAMT_THRESHOLD = 262_144
_UNIXFS_DIRECTORY = 1


class DirectoryTooLarge(ValueError):
    """A directory that kubo would shard (HAMT): its CID is not computed here."""


def directory_cid(files: Iterable[Path]) -> str:
    """CIDv1 of a directory of files as `ipfs add -r --cid-version=1 DIR` prints it for DIR (raw
    leaves, 256 KiB chunks, links sorted by name bytes, each Tsize the file's whole DAG), read one
    file at a time.

    Raises DirectoryTooLarge for directories kubo shards as a HAMT (about 5,900 files named 0.png
    and up), whose CIDs this module does not compute.
    """
    entries = sorted((Path(f).name.encode("utf-8"), file_node(_read(Path(f)))) for f in files)
    estimate = sum(len(name) + len(node.cid) for name, node in entries)
    if estimate > HAMT_THRESHOLD:
        raise DirectoryTooLarge(
            f"{len(entries)} files: kubo would shard this directory (HAMT), and artctl does not compute "
            "sharded directory CIDs"
        )
    links = b"".join(
        _field_bytes(2, _field_bytes(1, node.cid) + _field_bytes(2, name) + _field_varint(3, node.tsize))
        for name, node in entries
    )
    block = links + _field_bytes(1, _field_varint(1, _UNIXFS_DIRECTORY))
    return cid_string(cid_bytes(CODEC_DAG_PB, block))
