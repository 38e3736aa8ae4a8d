"""Fuzzing every HTTP route of a real server over loopback, as tests/test_fuzz.py does the RPCs:
generated paths, queries, methods, headers and bodies (JSON of every shape, KServe documents with
wrong types, binary tails with lying lengths, compressed bodies that are not). Whatever arrives,
the answer is a status a client can act on, errors are JSON with a message, never a 500, and the
server stays healthy. Bounded and derandomized: the same examples every run."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import free_port, running_server

ACTIONABLE = {200, 302, 304, 400, 401, 404, 405, 408, 413, 414, 415, 417, 429, 431}
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def web(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    from artctl_exporter.export import export_checkpoint
    from tests.helpers import train_tiny

    work = tmp_path_factory.mktemp("fuzz-http")
    train_tiny(work / "run", steps=2, architecture="stylegan", conditional=True)
    style = export_checkpoint(work / "run", work / "sty.onnx", parity_seeds=8).path
    options = {"max_seeds_per_request": 64, "queue_size": 512, "http_max_body_mb": 1, "http_max_reply_mb": 1}
    with running_server([tiny_model, style], http_port=free_port(), **options) as (server, _):
        yield server.http_port


def send(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def check(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> None:
    status, kind, data = send(port, method, path, body, headers)
    assert status in ACTIONABLE, (status, method, path, data[:300])
    if status >= 400:
        assert kind.startswith("application/json"), (status, path, kind, data[:200])
        assert isinstance(json.loads(data)["error"], str)
    assert send(port, "GET", "/v2/health/live")[0] == 200


numbers = st.one_of(
    st.integers(-3, 2**64 + 3).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr)
)
spellings = st.sampled_from(
    ["0", "1", "+1", "01", " 1", "1_0", "1.0", "\u0661", "nan", "inf", "1e400", "-0", ""]
)
segments = st.one_of(numbers, spellings, st.text(max_size=12)).map(lambda s: quote(s, safe=""))
models = st.one_of(st.sampled_from(["tiny", "sty", "default", "nope"]), st.text(max_size=8)).map(
    lambda s: quote(s, safe="")
)
keys = st.one_of(
    st.sampled_from(["v", "psi", "label", "edit", "scale", "frames", "space", "layers"]), st.text(max_size=6)
)
values = st.one_of(
    numbers,
    spellings,
    st.sampled_from(["z", "w", "coarse", "fine", "0:1", "0:2.5,1:-1", "a"]),
    st.text(max_size=10),
)
queries = st.lists(st.tuples(keys, values), max_size=4).map(lambda pairs: urlencode(pairs))


@st.composite
def image_paths(draw: Any) -> str:
    kind = draw(st.sampled_from(["images/{}.png", "mix/{}/{}.png", "walk/{}/{}/{}.png"]))
    path = f"/v1/models/{draw(models)}/" + kind.format(*(draw(segments) for _ in range(kind.count("{}"))))
    query = draw(queries)
    return f"{path}?{query}" if query else path


@FUZZ
@given(path=image_paths(), etag=st.one_of(st.none(), st.text(max_size=20)))
def test_fuzz_image_urls(web: int, path: str, etag: str | None) -> None:
    headers = {"If-None-Match": etag.encode("utf-8").decode("latin-1")} if etag else {}
    check(web, "GET", path, headers=headers)


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.one_of(
        st.sampled_from(
            [
                "/",
                "/studio",
                "/v1/models",
                "/v2",
                "/v2/health/live",
                "/v2/health/ready",
                "/v2/repository/index",
            ]
        ),
        st.builds(
            lambda m, v, tail: f"/v2/models/{m}{v}{tail}",
            models,
            st.one_of(st.just(""), segments.map(lambda s: f"/versions/{s}")),
            st.sampled_from(["", "/ready", "/config", "/stats", "/infer"]),
        ),
        st.text(max_size=20).map(lambda s: "/" + quote(s)),
    ),
)
def test_fuzz_every_route_and_method(web: int, method: str, path: str) -> None:
    status, kind, data = send(web, method, path, b"{}" if method in ("POST", "PUT", "PATCH") else None)
    assert status in ACTIONABLE, (status, method, path, data[:300])
    if status >= 400 and method != "HEAD":
        assert kind.startswith("application/json") and "error" in json.loads(data)
    assert send(web, "GET", "/v2/health/live")[0] == 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
tensors = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from(["SEED", "TRUNCATION_PSI", "LABEL", "IMAGE"]), json_values),
        "datatype": st.one_of(st.sampled_from(["UINT64", "FP32", "INT64", "BYTES"]), json_values),
        "shape": st.one_of(st.lists(st.integers(-2, 70), max_size=3), json_values),
        "data": st.one_of(st.lists(st.integers(0, 2**64 - 1), max_size=70), json_values),
        "parameters": st.one_of(
            st.fixed_dictionaries({"binary_data_size": st.integers(-1, 600)}), json_values
        ),
    },
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values,
        "inputs": st.one_of(st.lists(tensors, max_size=3), json_values),
        "outputs": st.one_of(
            st.lists(
                st.fixed_dictionaries(
                    {"name": st.sampled_from(["IMAGE", "MASK"]), "parameters": json_values}
                ),
                max_size=2,
            ),
            json_values,
        ),
        "parameters": st.one_of(st.fixed_dictionaries({"binary_data_output": st.booleans()}), json_values),
    },
)


@FUZZ
@given(
    model=st.sampled_from(["tiny", "sty", "nope"]),
    doc=st.one_of(documents, json_values),
    tail=st.binary(max_size=600),
    split=st.one_of(st.none(), st.integers(-5, 2000).map(str), st.text(max_size=5)),
    encoding=st.sampled_from([None, "gzip", "deflate", "br", "identity", "x-unknown"]),
)
def test_fuzz_rest_infer(
    web: int, model: str, doc: Any, tail: bytes, split: str | None, encoding: str | None
) -> None:
    head = json.dumps(doc).encode()
    headers = {"Content-Type": "application/json"}
    if split is not None:
        headers["Inference-Header-Content-Length"] = split.encode("utf-8").decode("latin-1")
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    check(web, "POST", f"/v2/models/{model}/infer", head + (tail if split is not None else b""), headers)
