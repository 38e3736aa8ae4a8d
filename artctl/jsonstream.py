"""Stream one big top-level array of a JSON document in and out, one element at a time.

A drop's manifest holds one entry per token; building it as a list (or loading it whole) makes
memory grow with the collection. These helpers write exactly the bytes `stable_json` would give
for the whole document, and read the array back element by element, so memory stays flat.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

Write = Callable[[bytes], Any]
Fill = Callable[[Write], object]  # writes a file's bytes, piece by piece, to a sink

_SENTINEL = "\x1eartctl-streamed-array\x1e"
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_READ = 1 << 16


def _dumps(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)


def dump_streamed(doc: dict[str, Any], key: str, items: Iterable[Any], write: Write) -> int:
    """Write `stable_json({**doc, key: list(items)})` without building the list; returns its length.

    The rest of the document is laid out by `json.dumps` around a placeholder element, so only
    the array is assembled here, with the same separators and indentation `json.dumps` uses.
    """
    text = _dumps({**doc, key: [_SENTINEL]})
    probe = f"\n  {json.dumps(key, ensure_ascii=False)}: [\n    {json.dumps(_SENTINEL)}\n  ]"
    if text.count(probe) != 1:
        raise ValueError(f"cannot place the streamed {key!r} array in the document")
    head, _, tail = text.partition(probe)
    write(f"{head}\n  {json.dumps(key, ensure_ascii=False)}: [".encode())
    count = 0
    for item in items:
        write(("\n    " if count == 0 else ",\n    ").encode())
        write(_dumps(item).replace("\n", "\n    ").encode())
        count += 1
    write(("\n  ]" if count else "]").encode())
    write((tail + "\n").encode())
    return count


def constant(data: bytes) -> Fill:
    """A Fill for bytes already in hand."""
    return lambda write: write(data)


def sha256_of_fill(fill: Fill) -> str:
    digest = hashlib.sha256()
    fill(digest.update)
    return digest.hexdigest()


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_READ), b""):
            digest.update(block)
    return digest.hexdigest()


class _Reader:
    """Pulls JSON values off a text file through a sliding buffer (each value must fit in memory)."""

    def __init__(self, handle: TextIO) -> None:
        self.handle = handle
        self.buf = ""
        self.pos = 0

    def _more(self) -> bool:
        block = self.handle.read(_READ)
        if not block:
            return False
        self.buf = self.buf[self.pos :] + block
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-blank character, or "" at the end of the file."""
        while True:
            match = _WS.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos : self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueError(f"expected {char!r} in the JSON document")
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if not self._more():
                    raise
                continue
            # A value that ends the buffer may go on (a number cut in two): read on before trusting it.
            if end < len(self.buf) or not self._more():
                self.pos = end
                return obj


def scan(path: Path, key: str) -> Iterator[tuple[bool, str, Any]]:
    """Walk a top-level JSON object: (False, name, value) per member, except that the array under
    `key` comes as (True, key, element) per element. Raises ValueError if the file is not JSON.
    """
    with open(path, encoding="utf-8") as handle:
        reader = _Reader(handle)
        reader.expect("{")
        if reader.peek() == "}":
            reader.expect("}")
        else:
            while True:
                name = reader.value()
                if not isinstance(name, str):
                    raise ValueError("expected a member name in the JSON object")
                reader.expect(":")
                if name == key and reader.peek() == "[":
                    reader.expect("[")
                    if reader.peek() == "]":
                        reader.expect("]")
                    else:
                        while True:
                            yield True, name, reader.value()
                            if reader.peek() == "]":
                                reader.expect("]")
                                break
                            reader.expect(",")
                else:
                    yield False, name, reader.value()
                if reader.peek() == "}":
                    reader.expect("}")
                    break
                reader.expect(",")
        if reader.peek() != "":
            raise ValueError("extra data after the JSON document")


def read_without(path: Path, key: str) -> dict[str, Any]:
    """The top-level object with the array under `key` left out; checks the whole file parses."""
    doc: dict[str, Any] = {}
    for streamed, name, value in scan(path, key):
        if not streamed and name != key:
            doc[name] = value
    return doc


def iter_array(path: Path, key: str) -> Generator[Any, None, None]:
    """The elements of the top-level array under `key`, one at a time."""
    for streamed, _, value in scan(path, key):
        if streamed:
            yield value
