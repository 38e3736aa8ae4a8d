"""The HTTP front at curl level: every route of a real server on a loopback port, good and bad
input, immutable image URLs with ETag/304, KServe v2 REST in JSON and in Triton's binary
extension, the token and TLS. Expected pixels come from a plain ONNX Runtime session."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from artctl.directions import directions_path, load_directions
from artctl.imaging import decode_png
from artctl.seeds import latents, pixel_sha256
from tests.helpers import free_port, running_server, write_pki

Reply = tuple[int, dict[str, str], bytes]


def call(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None, context: Any = None
) -> Reply:
    request = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def error_of(reply: Reply) -> str:
    _, headers, body = reply
    assert headers["Content-Type"].startswith("application/json"), headers
    return str(json.loads(body)["error"])


@pytest.fixture(scope="module")
def web(tiny_model: Path) -> Iterator[tuple[Any, str]]:
    with running_server([tiny_model], http_port=free_port(), max_seeds_per_request=64) as (server, _):
        yield server, f"http://127.0.0.1:{server.http_port}"


def render(model: Path, z: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(["image"], {"z": z})[0]


def test_image_urls_are_immutable_with_the_pixel_hash_as_etag(web: tuple[Any, str], tiny_model: Path) -> None:
    server, base = web
    status, headers, body = call(f"{base}/v1/models/tiny/images/7.png")
    expected = render(tiny_model, latents([7], 16))[0]
    assert status == 200 and headers["Content-Type"] == "image/png"
    np.testing.assert_array_equal(decode_png(body), expected)
    assert headers["ETag"] == f'"{pixel_sha256(expected)}"' and headers["X-Pixel-Sha256"] == pixel_sha256(
        expected
    )
    assert headers["Cache-Control"] == "public, max-age=60"  # the name alone may be reloaded
    sha = server.registry.get("tiny").runtime.sha256
    pinned = call(f"{base}/v1/models/tiny/images/7.png?v={sha[:12]}")
    assert pinned[0] == 200 and pinned[1]["Cache-Control"] == "public, max-age=31536000, immutable"
    assert pinned[2] == body  # byte for byte
    again = call(
        f"{base}/v1/models/tiny/images/7.png?v={sha[:12]}", headers={"If-None-Match": headers["ETag"]}
    )
    assert again[0] == 304 and again[2] == b"" and again[1]["ETag"] == headers["ETag"]
    other = call(f"{base}/v1/models/tiny/images/7.png?v={'0' * 12}")
    assert other[0] == 404 and "is now version" in error_of(other)
    assert call(f"{base}/v1/models/tiny/images/7.png", headers={"If-None-Match": '"nope"'})[0] == 200


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v1/models/tiny/images/x.png", 400, "seed must be a whole number"),
        (f"/v1/models/tiny/images/{2**64}.png", 400, "seed must be in 0..2**64-1"),
        ("/v1/models/tiny/images/1.png?psi=0.5", 400, "has no truncation input"),
        ("/v1/models/tiny/images/1.png?label=cats", 400, "unknown label 'cats'"),
        ("/v1/models/tiny/images/1.png?label=0", 400, "is unconditional; omit labels"),
        ("/v1/models/tiny/images/1.png?edit=99:1", 400, "direction 99 does not exist"),
        ("/v1/models/tiny/images/1.png?edit=0:1000000000", 400, "finite number in [-20, 20]"),
        ("/v1/models/tiny/images/1.png?edit=zero", 400, "DIRECTION:AMOUNT"),
        ("/v1/models/nope/images/1.png", 404, "unknown model"),
        ("/v1/models/tiny/mix/1/2.png", 400, "no mapping/synthesis graphs"),
        ("/v1/models/tiny/walk/1/2/9.png?frames=4", 400, "frame index"),
        ("/v1/models/tiny/walk/1/2/0.png?space=w", 400, "space must be z"),
        ("/nowhere", 404, "Not Found"),
    ],
)
def test_bad_urls_are_4xx_json_with_a_message(
    web: tuple[Any, str], path: str, status: int, message: str
) -> None:
    _, base = web
    reply = call(base + path)
    assert reply[0] == status and message in error_of(reply)


def test_edits_and_walk_frames_are_the_latents_they_name(web: tuple[Any, str], tiny_model: Path) -> None:
    _, base = web
    directions = load_directions(directions_path(tiny_model))
    assert directions.space == "z"  # a DCGAN's directions move z
    _, _, body = call(f"{base}/v1/models/tiny/images/5.png?edit=0:3,2:-1.5")
    moved = directions.apply(latents([5], 16), [(0, 3.0), (2, -1.5)])
    np.testing.assert_array_equal(decode_png(body), render(tiny_model, moved)[0])
    ends = render(tiny_model, latents([1, 2], 16))
    for frame, want in ((0, ends[0]), (5, ends[1])):
        _, _, png = call(f"{base}/v1/models/tiny/walk/1/2/{frame}.png?frames=6")
        np.testing.assert_array_equal(decode_png(png), want)
    models = json.loads(call(f"{base}/v1/models")[2])
    (card,) = models["models"]
    assert (
        card["name"] == "tiny" and card["directions"]["count"] == len(directions.vectors) and not card["mix"]
    )


def test_kserve_rest_json_and_binary(web: tuple[Any, str], tiny_model: Path) -> None:
    _, base = web
    assert json.loads(call(f"{base}/v2")[2])["name"] == "artctl"
    assert call(f"{base}/v2/health/live")[0] == 200 and call(f"{base}/v2/health/ready")[0] == 200
    meta = json.loads(call(f"{base}/v2/models/tiny")[2])
    assert meta["inputs"] == [{"name": "SEED", "datatype": "UINT64", "shape": [-1, 1]}]
    assert json.loads(call(f"{base}/v2/models/tiny/versions/1/ready")[2])["ready"] is True
    assert json.loads(call(f"{base}/v2/models/tiny/config")[2])["max_batch_size"] == 64
    doc = {
        "id": "r1",
        "inputs": [{"name": "SEED", "shape": [2], "datatype": "UINT64", "data": [3, 2**64 - 1]}],
    }
    status, _, body = call(f"{base}/v2/models/tiny/infer", json.dumps(doc).encode())
    reply = json.loads(body)
    assert status == 200 and reply["id"] == "r1" and reply["outputs"][0]["shape"] == [2, 16, 16, 4]
    expected = render(tiny_model, latents([3, 2**64 - 1], 16))
    np.testing.assert_array_equal(
        np.array(reply["outputs"][0]["data"], np.uint8).reshape(2, 16, 16, 4), expected
    )
    # Triton's binary tensor extension, both ways.
    raw = np.array([3, 2**64 - 1], np.uint64).tobytes()
    head = {
        "inputs": [
            {
                "name": "SEED",
                "shape": [2, 1],
                "datatype": "UINT64",
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "outputs": [{"name": "IMAGE", "parameters": {"binary_data": True}}],
    }
    header = json.dumps(head).encode()
    length = {"Inference-Header-Content-Length": str(len(header))}
    status, headers, body = call(f"{base}/v2/models/tiny/versions/1/infer", header + raw, length)
    split = int(headers["Inference-Header-Content-Length"])
    out = json.loads(body[:split])["outputs"][0]
    assert status == 200 and out["parameters"]["binary_data_size"] == expected.nbytes
    np.testing.assert_array_equal(np.frombuffer(body[split:], np.uint8).reshape(expected.shape), expected)


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/tiny/infer", b"{not json", 400, "not JSON"),
        ("/v2/models/tiny/infer", b"{}", 400, "inputs"),
        (
            "/v2/models/tiny/infer",
            b'{"inputs":[{"name":"SEED","shape":[1],"datatype":"INT64","data":[1]}]}',
            400,
            "UINT64",
        ),
        (
            "/v2/models/tiny/infer",
            b'{"inputs":[{"name":"SEED","shape":[1],"datatype":"UINT64","data":[-1]}]}',
            400,
            "UINT64 numbers",
        ),
        (
            "/v2/models/tiny/infer",
            b'{"inputs":[{"name":"SEED","shape":[3],"datatype":"UINT64","data":[1]}]}',
            400,
            "do not match shape [3]",
        ),
        (
            "/v2/models/tiny/infer",
            b'{"inputs":[{"name":"SEED","shape":[1],"datatype":"UINT64","parameters":{"binary_data_size":8}}]}',
            400,
            "binary",
        ),
        (
            "/v2/models/nope/infer",
            b'{"inputs":[{"name":"SEED","shape":[1],"datatype":"UINT64","data":[1]}]}',
            404,
            "unknown model",
        ),
        (
            "/v2/models/tiny/versions/9/infer",
            b'{"inputs":[{"name":"SEED","shape":[1],"datatype":"UINT64","data":[1]}]}',
            404,
            "no version",
        ),
    ],
)
def test_kserve_rest_refuses_bad_requests(
    web: tuple[Any, str], path: str, body: bytes, status: int, message: str
) -> None:
    _, base = web
    reply = call(base + path, body)
    assert reply[0] == status and message in error_of(reply), error_of(reply)


def test_http_is_counted_by_route_not_by_url(web: tuple[Any, str]) -> None:
    server, base = web
    for seed in (100, 101, 100):
        call(f"{base}/v1/models/tiny/images/{seed}.png")
    requests = server.metrics.requests  # the gRPC counter is untouched by HTTP
    text = "\n".join(str(m) for m in server.metrics.registry.collect())
    assert "/v1/models/{model}/images/{seed}.png" in text and "/images/100.png" not in text
    hits = server.cache.lookups.labels("hit")._value.get()
    assert hits >= 1 and requests is not None


def test_the_token_and_tls_guard_http_as_they_guard_grpc(tiny_model: Path, tmp_path: Path) -> None:
    pki = write_pki(tmp_path)
    token = tmp_path / "token"
    token.write_text("s3cret-token-for-tests\n")
    options = {
        "http_port": free_port(),
        "auth_token_file": token,
        "tls_cert": pki["server_cert"],
        "tls_key": pki["server_key"],
    }
    with running_server([tiny_model], **options) as (server, _):
        base = f"https://localhost:{server.http_port}"
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        assert call(f"{base}/v2/health/live", context=context)[0] == 200  # probes carry no token
        denied = call(f"{base}/v1/models", context=context)
        assert denied[0] == 401 and "bearer token" in error_of(denied)
        assert (
            call(
                f"{base}/v1/models",
                headers={"Authorization": "Bearer s3cret-token-for-tests"},
                context=context,
            )[0]
            == 200
        )
        cookie = {"Cookie": "artctl_token=s3cret-token-for-tests"}  # what the studio page sets
        assert call(f"{base}/v1/models/tiny/images/1.png", headers=cookie, context=context)[0] == 200
        with pytest.raises(OSError):  # no plain HTTP on a TLS port
            urllib.request.urlopen(f"http://localhost:{server.http_port}/v2/health/live", timeout=5)
