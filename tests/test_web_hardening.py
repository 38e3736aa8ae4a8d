"""The HTTP front against what a hostile or broken client sends, on a real server over loopback:
compressed bombs, credentials that are not UTF-8, inputs that used to be 500s, non-canonical image
URLs and replies too big for JSON. Every refusal is a 4xx with a JSON message, the server closes
what it will not read, and it stays healthy. (Slow clients and HTTP conformance:
tests/test_web_conformance.py.)"""

from __future__ import annotations

import functools
import json
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.helpers import free_port, running_server
from tests.web_wire import (
    SEED_DOC,
    TOKEN,
    bearer,
    call,
    connect,
    count,
    error_of,
    gzip_bomb,
    https,
    json_of,
    live,
    raw_post,
    read_reply,
    seeds_doc,
)

# -- 1. compressed bodies ---------------------------------------------------------------------------


def test_a_compressed_bomb_without_the_token_is_refused_and_never_inflated(
    guarded: Any, tls: ssl.SSLContext
) -> None:
    bomb = gzip_bomb()
    head = (
        f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: localhost\r\nContent-Encoding: gzip\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(bomb)}\r\n\r\n"
    ).encode()
    reply, closed = raw_post(guarded.http_port, head, bomb, tls)
    assert reply[0] == 401 and "bearer token" in error_of(reply)
    assert reply[1].get("Connection") == "close" and closed, "a refused body is drained raw, then closed on"
    assert live(https(guarded), context=tls) == 200


def test_a_compressed_bomb_with_the_token_stops_at_the_body_limit(guarded: Any, tls: ssl.SSLContext) -> None:
    bomb = gzip_bomb()
    head = (
        f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
    ).encode()
    reply, closed = raw_post(guarded.http_port, head, bomb, tls)
    assert reply[0] == 413 and "over the 1 MiB limit (after decompression" in error_of(reply)
    assert reply[1].get("Connection") == "close" and closed and live(https(guarded), context=tls) == 200


def test_a_bomb_under_a_large_body_limit_is_stopped_by_its_inflation(tiny_model: Path) -> None:
    bomb = gzip_bomb(2**28)  # 256 MiB of zeros in a few hundred KB: far past 64 times
    with running_server([tiny_model], http_port=free_port(), http_max_body_mb=512) as (server, _):
        head = (
            f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
            f"Content-Length: {len(bomb)}\r\n\r\n"
        ).encode()
        reply, closed = raw_post(server.http_port, head, bomb)
    assert reply[0] == 413 and "inflates more than 64 times" in error_of(reply) and closed


def test_a_compressed_body_over_the_limit_once_inflated_is_a_413(plain: tuple[Any, str]) -> None:
    import gzip

    import numpy as np

    digits = np.random.default_rng(5).integers(0, 4, 3 * 2**20).astype(np.uint8) + ord("0")
    body = gzip.compress(digits.tobytes())  # about 4x: no bomb, but 3 MiB once inflated
    assert len(body) < 2**20
    reply = call(f"{plain[1]}/v2/models/tiny/infer", body, {"Content-Encoding": "gzip"})
    assert reply[0] == 413 and "over the 1 MiB limit (after decompression" in error_of(reply)


def test_a_gzip_header_on_a_body_that_is_not_gzip_is_a_400(plain: tuple[Any, str]) -> None:
    _, base = plain
    body = json.dumps(SEED_DOC).encode()
    reply = call(f"{base}/v2/models/tiny/infer", body, {"Content-Encoding": "gzip"})
    assert reply[0] == 400 and "cannot be read" in error_of(reply)


def test_a_small_gzip_body_is_served(plain: tuple[Any, str]) -> None:
    import gzip

    _, base = plain
    body = gzip.compress(json.dumps(SEED_DOC).encode())
    reply = call(f"{base}/v2/models/tiny/infer", body, {"Content-Encoding": "gzip"})
    assert reply[0] == 200 and json_of(reply)["outputs"][0]["shape"] == [1, 16, 16, 4]


@pytest.mark.parametrize("wbits", [15, -15], ids=["zlib-wrapped", "raw"])
def test_a_deflate_body_is_served_zlib_wrapped_or_raw(plain: tuple[Any, str], wbits: int) -> None:
    import zlib

    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    body = packer.compress(json.dumps(SEED_DOC).encode()) + packer.flush()
    reply = call(f"{plain[1]}/v2/models/tiny/infer", body, {"Content-Encoding": "deflate"})
    assert reply[0] == 200 and json_of(reply)["outputs"][0]["shape"] == [1, 16, 16, 4]


@pytest.mark.parametrize(
    ("cut", "message"),
    [(slice(0, -9), "ends early"), (slice(0, None), "bytes after the gzip data")],
    ids=["truncated", "trailing-bytes"],
)
def test_a_gzip_body_cut_short_or_followed_by_bytes_is_a_400(
    plain: tuple[Any, str], cut: slice, message: str
) -> None:
    import gzip

    body = gzip.compress(json.dumps(SEED_DOC).encode())[cut]
    body += b"" if cut.stop else b"junk"
    reply = call(f"{plain[1]}/v2/models/tiny/infer", body, {"Content-Encoding": "gzip"})
    assert reply[0] == 400 and message in error_of(reply)


def test_an_unsupported_content_encoding_is_a_415_naming_the_supported_ones(plain: tuple[Any, str]) -> None:
    reply = call(f"{plain[1]}/v2/models/tiny/infer", b"\x00" * 64, {"Content-Encoding": "br"})
    assert reply[0] == 415 and "send gzip, deflate or identity" in error_of(reply)


def test_a_refused_body_is_drained_so_its_reply_is_never_lost(tiny_model: Path, tmp_path: Path) -> None:
    """Closing at once on an unread body makes the kernel reset the connection while the client
    still sends, and the reset can overtake the 401 already sent. The server drains the raw bytes
    (never inflating them) before it closes, so a client that sends its whole request first, as most
    do, always reads the reply. 8 MiB: far more than the sockets' buffers hold."""
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    body = bytes(8 * 2**20)
    head = (
        f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with running_server([tiny_model], http_port=free_port(), auth_token_file=token) as (server, _):
        for _ in range(3):
            reply, closed = raw_post(server.http_port, head, body)
            assert reply[0] == 401 and reply[1].get("Connection") == "close" and closed


# -- 2. and 3. token mode: private images, a studio that loads ---------------------------------------


def test_token_protected_images_are_private_and_vary_on_the_credentials(
    guarded: Any, tls: ssl.SSLContext
) -> None:
    base, sha = https(guarded), guarded.registry.get("tiny").runtime.sha256
    named = call(f"{base}/v1/models/tiny/images/3.png", headers=bearer(), context=tls)
    assert named[0] == 200 and named[1]["Cache-Control"] == "private, max-age=60"
    assert named[1]["Vary"] == "Authorization, Cookie"
    pinned = call(f"{base}/v1/models/tiny/images/3.png?v={sha[:12]}", headers=bearer(), context=tls)
    assert pinned[1]["Cache-Control"] == "private, max-age=31536000, immutable"
    again = call(
        f"{base}/v1/models/tiny/images/3.png?v={sha[:12]}",
        headers=bearer({"If-None-Match": pinned[1]["ETag"]}),
        context=tls,
    )
    assert again[0] == 304 and again[1]["Cache-Control"].startswith("private") and "Vary" in again[1]


def test_the_studio_loads_without_the_token_and_takes_a_base64_one(guarded: Any, tls: ssl.SSLContext) -> None:
    base = https(guarded)
    page = call(f"{base}/studio", context=tls)
    assert page[0] == 200 and page[1]["Content-Type"].startswith("text/html")
    script = call(f"{base}/studio/static/studio.js", context=tls)
    assert script[0] == 200 and b"artctl_token" in script[2]
    assert call(f"{base}/v1/models", context=tls)[0] == 401  # the data stays behind the token
    for cookie in (quote(TOKEN, safe=""), TOKEN):  # as the page stores it, and as set by hand
        got = call(f"{base}/v1/models", headers={"Cookie": f"artctl_token={cookie}"}, context=tls)
        assert got[0] == 200, cookie
    assert call(f"{base}/v1/models", headers={"Cookie": "artctl_token=wrong"}, context=tls)[0] == 401


@pytest.mark.parametrize(
    "header",
    [b"Authorization: Bearer \xff\xfe-not-utf-8", b"Cookie: artctl_token=\xff\xfe", b"Cookie: \xc3("],
)
def test_credentials_that_are_not_utf8_are_a_401(guarded: Any, tls: ssl.SSLContext, header: bytes) -> None:
    sock = connect(guarded.http_port, tls)
    with sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: localhost\r\n" + header + b"\r\n\r\n")
        reply = read_reply(sock)
    assert reply[0] == 401 and "bearer token" in error_of(reply)


# -- 4. what used to be a 500 --------------------------------------------------------------------------


@pytest.mark.parametrize("frames", ["nan", "inf", "1e400", "-inf"])
def test_walk_frames_that_are_not_numbers_are_a_400(plain: tuple[Any, str], frames: str) -> None:
    reply = call(f"{plain[1]}/v1/models/tiny/walk/1/2/0.png?frames={frames}")
    assert reply[0] == 400 and "frames must be a whole number" in error_of(reply)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
        (b'{"inputs":[{"name":"SEED","shape":[true],"datatype":"UINT64","data":[1]}]}', "shape must be"),
        (
            b'{"inputs":[{"name":"SEED","shape":[1],"datatype":"UINT64","data":[1],"parameters":[1]}]}',
            "parameters",
        ),
        (
            b'{"inputs":[{"name":"SEED","shape":[1],"datatype":"UINT64","data":[1]}],"parameters":"x"}',
            "parameters",
        ),
        (
            b'{"inputs":[{"name":"SEED","shape":[1],"datatype":"UINT64","data":[1]}],"outputs":7}',
            "outputs must",
        ),
        (
            b'{"inputs":[{"name":"SEED","shape":[1],"datatype":"UINT64","data":[1]}],"outputs":"IMAGE"}',
            "outputs must",
        ),
        (
            b'{"inputs":[{"name":"SEED","shape":[1],"datatype":"UINT64","data":[1]}],"outputs":[{"parameters":5}]}',
            "name",
        ),
    ],
)
def test_rest_bodies_that_were_500s_are_400s(plain: tuple[Any, str], body: bytes, message: str) -> None:
    reply = call(f"{plain[1]}/v2/models/tiny/infer", body)
    assert reply[0] == 400 and message in error_of(reply), error_of(reply)


def test_a_client_that_leaves_mid_body_is_no_500(plain: tuple[Any, str]) -> None:
    server, base = plain
    route = "/v2/models/{model}/infer"
    before = count(server, route, 400)
    sock = connect(server.http_port)
    sock.sendall(b'POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"inp')
    sock.close()
    waited = threading.Event()
    for _ in range(600):  # the server notices the close on its own time; poll its counter
        if count(server, route, 400) > before:
            break
        waited.wait(0.1)
    assert count(server, route, 400) == before + 1 and count(server, route, 500) == 0
    assert live(base) == 200


# -- 5. large replies ----------------------------------------------------------------------------------


def test_a_json_reply_over_the_limit_is_a_400_that_points_at_the_binary_extension(
    plain: tuple[Any, str],
) -> None:
    _, base = plain
    reply = call(f"{base}/v2/models/tiny/infer", seeds_doc(512))
    message = error_of(reply)
    assert reply[0] == 400 and "over the 1 MiB limit (--http-max-reply-mb)" in message
    assert "binary_data_output" in message
    status, headers, body = call(f"{base}/v2/models/tiny/infer", seeds_doc(512, binary=True))
    split = int(headers["Inference-Header-Content-Length"])
    assert status == 200 and len(body) - split == 512 * 16 * 16 * 4


class RecordingExecutor(ThreadPoolExecutor):
    """A default executor that notes the functions the event loop hands to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=4)
        self.names: list[str] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        target = fn.args[0] if isinstance(fn, functools.partial) and fn.args else fn  # to_thread: ctx.run(f)
        self.names.append(getattr(target, "__name__", repr(target)))
        return super().submit(fn, *args, **kwargs)


def test_a_large_json_reply_is_encoded_off_the_event_loop(plain: tuple[Any, str], tiny_model: Path) -> None:
    server, base = plain
    executor = RecordingExecutor()
    server.loop.call_soon_threadsafe(server.loop.set_default_executor, executor)
    live(base)  # the loop has run the call above
    reply = call(f"{base}/v2/models/tiny/infer", seeds_doc(200))
    assert reply[0] == 200 and len(json_of(reply)["outputs"][0]["data"]) == 200 * 16 * 16 * 4
    assert "encode_reply" in executor.names, executor.names


# -- 7. one image, one URL -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("images/%201.png", "write seed as 1, not ' 1'"),
        ("images/+1.png", "write seed as 1, not '+1'"),
        ("images/1_000.png", "write seed as 1000, not '1_000'"),
        ("images/%D9%A1.png", "write seed as 1, not '\u0661'"),  # ARABIC-INDIC DIGIT ONE
        ("images/007.png", "write seed as 7, not '007'"),
        ("images/1.0.png", "write seed as 1, not '1.0'"),
        ("walk/1/2/0.png?frames=0", "frames must be in 2..1024"),
        ("walk/1/2/0.png?frames=2.9", "frames must be a whole number"),
        ("walk/1/2/0.png?frames=02", "write frames as 2, not '02'"),
        ("walk/01/2/0.png", "write a as 1, not '01'"),
        ("walk/1/2/%2B0.png", "write the frame index as 0, not '+0'"),
        ("images/1.png?psi=0.50", "write psi as 0.5, not '0.50'"),
        ("images/1.png?edit=0:2.50", "write edit=0:2.5, not '0:2.50'"),
        ("images/1.png?edit=0:1,%202:-1", "write edit=0:1,2:-1"),
        ("images/1.png?edit=0:1&edit=0:1", "give edit once"),
        ("images/1.png?edit=", "edit is empty"),
        ("images/1.png?cachebust=1", "unknown parameter 'cachebust'"),
    ],
)
def test_non_canonical_image_urls_get_a_400_naming_the_canonical_form(
    plain: tuple[Any, str], path: str, message: str
) -> None:
    reply = call(f"{plain[1]}/v1/models/tiny/{path}")
    assert reply[0] == 400 and message in error_of(reply), error_of(reply)


@pytest.mark.parametrize("value", ['"0.5"', "true", "null"])
def test_rest_fp32_takes_json_numbers_only(plain: tuple[Any, str], value: str) -> None:
    psi = f'{{"name":"TRUNCATION_PSI","shape":[1],"datatype":"FP32","data":[{value}]}}'
    body = f'{{"inputs":[{{"name":"SEED","shape":[1],"datatype":"UINT64","data":[1]}},{psi}]}}'.encode()
    reply = call(f"{plain[1]}/v2/models/tiny/infer", body)
    assert reply[0] == 400 and "data must be FP32 numbers" in error_of(reply)
