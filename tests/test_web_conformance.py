"""The HTTP front's connections and HTTP itself, on a real server over loopback: headers, bodies
and TLS handshakes that never finish, idle keep-alive connections, request lines and headers too
long for the parser, Expect: 100-continue, conditional requests, redirects, and KServe's status
codes. Every refusal is JSON; nothing waits on a slow client past its timeout."""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import free_port, running_server
from tests.web_wire import (
    SEED_DOC,
    call,
    closed_by_server,
    connect,
    error_of,
    json_of,
    raw_post,
    read_reply,
    seeds_doc,
)

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
