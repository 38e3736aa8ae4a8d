"""HTTP on the wire for the hardening tests: raw sockets (to send what no well-behaved client sends:
half a header, a lying Content-Length, a compressed bomb) and urllib for plain calls."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import struct
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from tests.helpers import free_port, running_server

Reply = tuple[int, dict[str, str], bytes]
WAIT_S = 60  # how long a test waits for the server to act; never an assertion about speed
TOKEN = "s3cret+token/for=tests=="  # what `openssl rand -base64` gives: + / and = in it
LIMITS = {
    "http_max_body_mb": 1,
    "http_max_reply_mb": 1,
    # Short, so that the tests of the timeouts end soon; long enough for a busy two-core machine
    # (the server shares this process) to finish a TLS handshake and a request.
    "http_header_timeout_s": 3.0,
    "http_body_timeout_s": 2.0,
    "http_keepalive_s": 4.0,
}
SEED_DOC = {"inputs": [{"name": "SEED", "shape": [1], "datatype": "UINT64", "data": [1]}]}


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


@contextlib.contextmanager
def plain_server(model: Path) -> Iterator[tuple[Any, str]]:
    """A server with small HTTP limits and no token: (server, base URL)."""
    with running_server([model], http_port=free_port(), max_seeds_per_request=1024, **LIMITS) as (server, _):
        yield server, f"http://127.0.0.1:{server.http_port}"


@contextlib.contextmanager
def guarded_server(model: Path, pki: dict[str, Path], folder: Path) -> Iterator[Any]:
    """A server with the token and TLS, and the same limits."""
    token = folder / "token"
    token.write_text(TOKEN + "\n")
    options = {"auth_token_file": token, "tls_cert": pki["server_cert"], "tls_key": pki["server_key"]}
    with running_server([model], http_port=free_port(), **options, **LIMITS) as (server, _):
        yield server


def https(server: Any) -> str:
    return f"https://localhost:{server.http_port}"


def bearer(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", **(extra or {})}


def raw_post(port: int, head: bytes, body: bytes, tls: ssl.SSLContext | None = None) -> tuple[Any, bool]:
    """Send a request whole, then read the reply; returns it and whether the server then closed the
    connection. A server that closed at once on a body it will not read would reset the connection
    while we still send, and the reset can overtake its reply: the server drains such a body (raw,
    for a bounded time) first, so the whole request is sent and the reply arrives every time."""
    sock = connect(port, tls)
    with sock:
        sock.sendall(head + body)
        return read_reply(sock), closed_by_server(sock)


def json_of(reply: Any) -> Any:
    return json.loads(reply[2])


def count(server: Any, route: str, status: int) -> float:
    value = server.metrics.registry.get_sample_value(
        "artctl_http_requests_total", {"route": route, "status": str(status)}
    )
    return value or 0.0


def live(base: str, **kw: Any) -> int:
    return call(f"{base}/v2/health/live", **kw)[0]


def seeds_doc(n: int, binary: bool = False) -> bytes:
    doc: dict[str, Any] = {
        "inputs": [{"name": "SEED", "shape": [n], "datatype": "UINT64", "data": list(range(n))}]
    }
    if binary:
        doc["parameters"] = {"binary_data_output": True}
    return json.dumps(doc).encode()
