"""`scale=N` over HTTP and gRPC on a real server on loopback: N-times-larger PNGs whose
nearest-neighbour downscale is the native picture, the native pixel hash, and clear refusals."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from artctl.imaging import decode_png
from artctl.seeds import pixel_sha256
from artctl.v1 import generator_pb2 as pb
from artctl.v1 import generator_pb2_grpc as pb_grpc
from tests.helpers import free_port, running_server


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def both(tiny_model: Path) -> Iterator[tuple[str, str]]:
    with running_server([tiny_model], http_port=free_port()) as (server, target):
        yield target, f"http://127.0.0.1:{server.http_port}"


def up(pixels: Any, scale: int) -> Any:
    return np.repeat(np.repeat(pixels, scale, axis=0), scale, axis=1)


@pytest.mark.parametrize("path", ["images/5.png", "walk/1/2/3.png?frames=6"])
def test_http_scale_is_an_exact_upscale_with_the_native_hash(both: tuple[str, str], path: str) -> None:
    base = f"{both[1]}/v1/models/tiny/{path}"
    sep = "&" if "?" in path else "?"
    status, headers, body = get(base)
    assert status == 200
    native = decode_png(body)
    for scale in (1, 4):
        status, big_headers, big = get(f"{base}{sep}scale={scale}")
        assert status == 200 and big_headers["Content-Type"] == "image/png"
        image = decode_png(big)
        assert image.shape == (16 * scale, 16 * scale, 4)
        assert np.array_equal(image[::scale, ::scale], native) and np.array_equal(image, up(native, scale))
        assert big_headers["X-Pixel-Sha256"] == headers["X-Pixel-Sha256"] == pixel_sha256(native)
    # Cached replies never cross scales: ask for 1x again after 4x and get 1x bytes.
    assert get(base)[2] == body


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("02", "scale must be written scale=2, not '02'"),
        ("%2B2", "scale must be written scale=2, not '+2'"),
        ("+2", "scale must be written scale=2, not ' 2'"),  # a URL's + is a space
        ("2.0", "scale must be written scale=2, not '2.0'"),
        ("0", "scale must be a whole number in 1..16, got '0'"),
        ("17", "scale must be a whole number in 1..16, got '17'"),
        ("big", "scale must be a whole number in 1..16, got 'big'"),
        ("nan", "scale must be a whole number in 1..16"),
        ("2&scale=2", "give scale once"),
    ],
)
def test_http_bad_scale_is_a_400_naming_the_canonical_form(
    both: tuple[str, str], value: str, message: str
) -> None:
    for path in ("images/5.png", "walk/1/2/3.png?frames=6"):
        sep = "&" if "?" in path else "?"
        status, headers, body = get(f"{both[1]}/v1/models/tiny/{path}{sep}scale={value}")
        assert status == 400 and headers["Content-Type"].startswith("application/json")
        assert message in json.loads(body)["error"]


def test_grpc_generate_scale(both: tuple[str, str]) -> None:
    with grpc.insecure_channel(both[0]) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        plain = stub.Generate(pb.GenerateRequest(seeds=[3, 4]), timeout=30).artworks
        for scale in (0, 1, 3):
            arts = stub.Generate(pb.GenerateRequest(seeds=[3, 4], scale=scale), timeout=30).artworks
            size = 16 * max(scale, 1)
            for art, native in zip(arts, plain):
                image = decode_png(art.image)
                assert (art.width, art.height, image.shape) == (size, size, (size, size, 4))
                assert np.array_equal(image, up(decode_png(native.image), max(scale, 1)))
                assert art.pixel_sha256 == native.pixel_sha256 == pixel_sha256(decode_png(native.image))
        streamed = list(stub.GenerateStream(pb.GenerateRequest(seeds=[3], scale=2), timeout=30))
        assert decode_png(streamed[0].image).shape == (32, 32, 4)
        for bad in (17, 1000):
            with pytest.raises(grpc.RpcError) as err:
                stub.Generate(pb.GenerateRequest(seeds=[3], scale=bad), timeout=30)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert f"scale must be in 1..16 (0 or unset means 1), got {bad}" in str(err.value.details())
