"""HTTP on the wire for the hardening tests: raw sockets (to send what no well-behaved client sends:
half a header, a lying Content-Length, a compressed bomb) and urllib for plain calls."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import urllib.error
import urllib.request
import zlib
from functools import cache
from typing import Any

Reply = tuple[int, dict[str, str], bytes]
WAIT_S = 60  # how long a test waits for the server to act; never an assertion about speed


def call(url: str, data: bytes | None = None, headers: dict[str, str] | None = None, **kw: Any) -> Reply:
    request = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S, **kw) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def error_of(reply: Reply) -> str:
    status, headers, body = reply
    assert headers.get("Content-Type", "").startswith("application/json"), (status, headers, body[:200])
    return str(json.loads(body)["error"])


def connect(port: int, tls: ssl.SSLContext | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
    return tls.wrap_socket(sock, server_hostname="localhost") if tls else sock


def read_reply(sock: socket.socket) -> Reply:
    """One HTTP/1.1 reply off the socket (Content-Length framed, as every artctl reply is)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a reply: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("Content-Length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:length]


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (waiting up to WAIT_S for it to do so)."""
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def send_all(sock: socket.socket, data: bytes) -> bool:
    """Send as much as the server takes; False when it closed the connection first."""
    try:
        sock.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        return False
    return True


@cache
def gzip_bomb(inflated: int = 2**26) -> bytes:
    """A small gzip body that inflates to `inflated` zero bytes (64 MiB: 64 times the test servers'
    body limit). Built from one compressed block of zeros repeated (each block ends in a full flush,
    so the next one does not depend on it): fast even on a busy machine."""
    mib = bytes(2**20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = packer.compress(mib) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(mib) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(inflated // len(mib)):
        crc = zlib.crc32(mib, crc)
    blocks = inflated // len(mib) - 1
    trailer = struct.pack("<II", crc, inflated & 0xFFFFFFFF)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + first + block * blocks + packer.flush() + trailer
