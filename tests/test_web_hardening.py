"""The HTTP front against what a hostile or broken client sends, on a real server over loopback:
compressed bombs, half-sent requests, idle connections, parser-breaking lines, inputs that used to
be 500s, non-canonical image URLs and replies too big for JSON. Every refusal is a 4xx with a JSON
message, the server closes what it will not read, and it stays healthy."""

from __future__ import annotations

import functools
import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest

from tests.helpers import free_port, running_server
from tests.web_wire import (
    call,
    closed_by_server,
    connect,
    error_of,
    gzip_bomb,
    read_reply,
    send_all,
)

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


@pytest.fixture(scope="module")
def plain(tiny_model: Path) -> Iterator[tuple[Any, str]]:
    with running_server([tiny_model], http_port=free_port(), max_seeds_per_request=1024, **LIMITS) as (
        server,
        _,
    ):
        yield server, f"http://127.0.0.1:{server.http_port}"


@pytest.fixture(scope="module")
def guarded(
    tiny_model: Path, pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    token = tmp_path_factory.mktemp("token") / "token"
    token.write_text(TOKEN + "\n")
    options = {"auth_token_file": token, "tls_cert": pki["server_cert"], "tls_key": pki["server_key"]}
    with running_server([tiny_model], http_port=free_port(), **options, **LIMITS) as (server, _):
        yield server


@pytest.fixture(scope="module")
def tls(pki: dict[str, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki["ca"]))


def https(server: Any) -> str:
    return f"https://localhost:{server.http_port}"


def bearer(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", **(extra or {})}


def raw_post(port: int, head: bytes, body: bytes, tls: ssl.SSLContext | None = None) -> tuple[Any, bool]:
    """Send a request's head, its body from a second thread (the server may refuse it half way),
    read the reply; returns it and whether the server then closed the connection."""
    sock = connect(port, tls)
    with sock:
        sock.sendall(head)
        sender = threading.Thread(target=send_all, args=(sock, body), daemon=True)
        sender.start()
        reply = read_reply(sock)
        return reply, closed_by_server(sock)


def json_of(reply: Any) -> Any:
    return json.loads(reply[2])


def count(server: Any, route: str, status: int) -> float:
    value = server.metrics.registry.get_sample_value(
        "artctl_http_requests_total", {"route": route, "status": str(status)}
    )
    return value or 0.0


def live(base: str, **kw: Any) -> int:
    return call(f"{base}/v2/health/live", **kw)[0]


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
    assert closed, "the server must close a body it will not read, not drain (and inflate) it"
    assert live(https(guarded), context=tls) == 200


def test_a_compressed_bomb_with_the_token_stops_at_the_body_limit(guarded: Any, tls: ssl.SSLContext) -> None:
    bomb = gzip_bomb()
    head = (
        f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
    ).encode()
    reply, closed = raw_post(guarded.http_port, head, bomb, tls)
    assert reply[0] == 413 and "over the 1 MiB limit (after decompression" in error_of(reply)
    assert closed and live(https(guarded), context=tls) == 200


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
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
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


def seeds_doc(n: int, binary: bool = False) -> bytes:
    doc: dict[str, Any] = {
        "inputs": [{"name": "SEED", "shape": [n], "datatype": "UINT64", "data": list(range(n))}]
    }
    if binary:
        doc["parameters"] = {"binary_data_output": True}
    return json.dumps(doc).encode()


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


# -- 6. slow clients -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n", b"GET /v2/hea"])
def test_requests_whose_headers_never_finish_are_cut_off(plain: tuple[Any, str], sent: bytes) -> None:
    sock = connect(plain[0].http_port)
    with sock:
        sock.sendall(sent)
        assert closed_by_server(sock)


def test_a_body_that_never_finishes_gets_a_408(plain: tuple[Any, str]) -> None:
    head = b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    reply, closed = raw_post(plain[0].http_port, head, b'{"inputs"')
    assert reply[0] == 408 and "longer than 2 s" in error_of(reply) and closed


def test_an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not(plain: tuple[Any, str]) -> None:
    sock = connect(plain[0].http_port)
    with sock:
        for _ in range(3):  # one connection, several requests
            sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_reply(sock)[0] == 200
        assert closed_by_server(sock)


def test_idle_tls_connections_are_closed(guarded: Any, tls: ssl.SSLContext) -> None:
    raw = connect(guarded.http_port)  # a TCP connection that never starts its TLS handshake
    with raw:
        assert closed_by_server(raw)
    done = connect(guarded.http_port, tls)  # a handshake, then nothing
    with done:
        assert closed_by_server(done)


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


# -- 8. HTTP conformance -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status", "message"),
    [
        (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "request line is too long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n", 431, "header is too long"),
        (
            b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 200) for i in range(100))
            + b"\r\n",
            431,
            "16 KiB limit",
        ),
        (b"\x16\x03\x01\x02\x00 <script>\r\n\r\n", 400, "malformed HTTP request"),
    ],
)
def test_parser_errors_are_json_without_the_request_in_them(
    plain: tuple[Any, str], request_bytes: bytes, status: int, message: str
) -> None:
    sock = connect(plain[0].http_port)
    with sock:
        sock.sendall(request_bytes)
        reply = read_reply(sock)
    assert reply[0] == status and message in error_of(reply), reply
    assert b"aaaa" not in reply[2] and b"bbbb" not in reply[2] and b"script" not in reply[2]


def test_expect_100_continue_is_answered_with_the_refusal(plain: tuple[Any, str]) -> None:
    sock = connect(plain[0].http_port)
    head = (
        "POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n"
    )
    with sock:
        sock.sendall(head.format(2**30).encode())
        reply = read_reply(sock)
        assert reply[0] == 413 and "over the 1 MiB limit" in error_of(reply)
    body = json.dumps(SEED_DOC).encode()
    sock = connect(plain[0].http_port)
    with sock:
        sock.sendall(head.format(len(body)).encode())
        assert read_reply(sock)[0] == 100
        sock.sendall(body)
        assert read_reply(sock)[0] == 200


def test_if_none_match_compares_whole_tags_and_star(plain: tuple[Any, str]) -> None:
    url = f"{plain[1]}/v1/models/tiny/images/9.png"
    etag = call(url)[1]["ETag"]
    sha = etag.strip('"')
    for header, status in (
        ("*", 304),
        (etag, 304),
        (f"W/{etag}", 304),
        (f'"other", {etag}', 304),
        (f'"x{sha}y"', 200),
        (f'"{sha[:-1]}"', 200),
    ):
        assert call(url, headers={"If-None-Match": header})[0] == status, header


def test_the_root_redirects_to_the_studio_with_a_location(plain: tuple[Any, str]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", plain[0].http_port, timeout=30)
    connection.request("GET", "/")
    response = connection.getresponse()
    assert response.status == 302 and response.getheader("Location") == "/studio"
    connection.close()


def test_unknown_outputs_unknown_models_and_wrong_methods(plain: tuple[Any, str]) -> None:
    _, base = plain
    doc = {**SEED_DOC, "outputs": [{"name": "PIXELS"}]}
    reply = call(f"{base}/v2/models/tiny/infer", json.dumps(doc).encode())
    assert reply[0] == 400 and "unknown output 'PIXELS'" in error_of(reply)
    for path in ("/v2/models/nope/ready", "/v2/models/tiny/versions/7/ready"):
        reply = call(base + path)
        assert reply[0] == 404 and error_of(reply), path
    wrong = call(f"{base}/v2/models/tiny/ready", b"{}")
    assert wrong[0] == 405 and "GET" in wrong[1]["Allow"] and error_of(wrong)


def test_an_out_of_range_label_names_the_model() -> None:
    from artctl.models import embedded_default

    model = embedded_default()
    assert model is not None
    with running_server([model], http_port=free_port()) as (server, _):
        seed = {"name": "SEED", "shape": [1], "datatype": "UINT64", "data": [1]}
        label = {"name": "LABEL", "shape": [1], "datatype": "INT64", "data": [99]}
        reply = call(
            f"http://127.0.0.1:{server.http_port}/v2/models/default/infer",
            json.dumps({"inputs": [seed, label]}).encode(),
        )
    assert reply[0] == 400 and "model 'default' has labels 0..22" in error_of(reply), error_of(reply)


def test_the_json_reply_is_the_pixels(plain: tuple[Any, str], tiny_model: Path) -> None:
    import onnxruntime as ort

    from artctl.seeds import latents

    reply = call(f"{plain[1]}/v2/models/tiny/infer", seeds_doc(3))
    session = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    expected = session.run(["image"], {"z": latents([0, 1, 2], 16)})[0]
    got = np.array(json_of(reply)["outputs"][0]["data"], np.uint8).reshape(expected.shape)
    np.testing.assert_array_equal(got, expected)
