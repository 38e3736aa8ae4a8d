"""Fuzzing the public RPCs of a real server over loopback: generated requests of every method, and
byte-level mutations of valid ones. Whatever arrives, the answer is a status a client can act on
(never INTERNAL or UNKNOWN), and the server stays healthy. Bounded and derandomized: the same
examples every run, so it cannot flake, and it fits CI's budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from artctl.kserve.v2 import grpc_service_pb2 as kpb
from artctl.v1 import generator_pb2 as pb
from tests.helpers import running_server

EXPECTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

served = st.sampled_from(["", "default", "tiny", "sty"])
# Mostly models that exist (three in four draws), so the requests reach the render path too.
names = st.integers(0, 3).flatmap(lambda k: st.text(max_size=40) if k == 0 else served)
seeds = st.lists(st.integers(0, 2**64 - 1), max_size=80)
psis = st.one_of(
    st.none(), st.floats(0, 2, width=32), st.floats(width=32, allow_nan=True, allow_infinity=True)
)
labels = st.one_of(
    st.lists(st.integers(0, 9), max_size=1), st.lists(st.integers(-(2**63), 2**63 - 1), max_size=4)
)
formats = st.integers(0, 5)
traits = st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=3)


@st.composite
def message(draw: Any, kind: Any, fields: dict[str, Any], optional: dict[str, Any]) -> Any:
    """A `kind` message with every field of `fields` drawn, and each of `optional` set unless it
    draws None (proto3 optional fields: unset differs from the default)."""
    request = kind(**{name: draw(strategy) for name, strategy in fields.items()})
    for name, strategy in optional.items():
        value = draw(strategy)
        if value is not None:
            setattr(request, name, value)
    return request


common = {"model": names, "labels": labels, "format": formats}
generate_requests = message(
    pb.GenerateRequest,
    {**common, "seeds": seeds, "include_metadata": st.booleans(), "traits": traits},
    {"psi": psis},
)
mix_requests = message(
    pb.MixRequest,
    {
        **common,
        "content_seeds": seeds,
        "style_seeds": seeds,
        "group": st.integers(0, 6),
        "first_layer": st.integers(0, 2**31 - 1),
        "last_layer": st.integers(0, 2**31 - 1),
    },
    {"psi": psis},
)
walk_requests = message(
    pb.InterpolateRequest,
    {
        "model": names,
        "format": formats,
        "seeds": st.lists(st.integers(0, 2**64 - 1), max_size=6),
        "frames": st.integers(0, 300),
        "space": st.integers(0, 4),
        "loop": st.booleans(),
    },
    {"psi": psis, "label": st.one_of(st.none(), st.integers(-5, 20))},
)


@st.composite
def infer_requests(draw: Any) -> kpb.ModelInferRequest:
    request = kpb.ModelInferRequest(
        model_name=draw(names), model_version=draw(st.sampled_from(["", "1", "2"]))
    )
    for _ in range(draw(st.integers(0, 3))):
        tensor = request.inputs.add(
            name=draw(st.sampled_from(["SEED", "TRUNCATION_PSI", "LABEL", "OTHER"])),
            datatype=draw(st.sampled_from(["UINT64", "FP32", "INT64", "BYTES", ""])),
            shape=draw(st.lists(st.integers(-2, 40), max_size=3)),
        )
        if draw(st.booleans()):
            request.raw_input_contents.append(draw(st.binary(max_size=320)))
        else:
            tensor.contents.uint64_contents.extend(draw(st.lists(st.integers(0, 2**64 - 1), max_size=40)))
    for name in draw(st.lists(st.sampled_from(["IMAGE", "MASK"]), max_size=2)):
        request.outputs.add(name=name)
    return request


@pytest.fixture(scope="module")
def fuzz_server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    from artctl_exporter.export import export_checkpoint
    from tests.helpers import train_tiny

    work = tmp_path_factory.mktemp("fuzz")
    train_tiny(work / "run", steps=2, architecture="stylegan", conditional=True)
    style = export_checkpoint(work / "run", work / "sty.onnx", parity_seeds=8).path
    options = {"max_seeds_per_request": 64, "queue_size": 512, "max_message_mb": 2}
    with running_server([tiny_model, style], **options) as served:
        yield served


def call(target: str, method: str, request: Any, streaming: bool = False) -> grpc.StatusCode:
    with grpc.insecure_channel(target) as ch:
        raw = request if isinstance(request, bytes) else request.SerializeToString()
        try:
            if streaming:
                for _ in ch.unary_stream(method)(raw, timeout=60):
                    pass
            else:
                ch.unary_unary(method)(raw, timeout=60)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def healthy(target: str) -> bool:
    with grpc.insecure_channel(target) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


@FUZZ
@given(request=generate_requests)
def test_fuzz_generate(fuzz_server: tuple[Any, str], request: pb.GenerateRequest) -> None:
    target = fuzz_server[1]
    assert call(target, "/artctl.v1.Generator/Generate", request) in EXPECTED
    assert call(target, "/artctl.v1.Generator/GenerateStream", request, streaming=True) in EXPECTED


@FUZZ
@given(request=mix_requests)
def test_fuzz_mix(fuzz_server: tuple[Any, str], request: pb.MixRequest) -> None:
    assert call(fuzz_server[1], "/artctl.v1.Generator/Mix", request) in EXPECTED


@FUZZ
@given(request=walk_requests)
def test_fuzz_interpolate(fuzz_server: tuple[Any, str], request: pb.InterpolateRequest) -> None:
    assert call(fuzz_server[1], "/artctl.v1.Generator/Interpolate", request, streaming=True) in EXPECTED


@FUZZ
@given(request=infer_requests())
def test_fuzz_kserve_infer(fuzz_server: tuple[Any, str], request: kpb.ModelInferRequest) -> None:
    assert call(fuzz_server[1], "/inference.GRPCInferenceService/ModelInfer", request) in EXPECTED


VALID = {
    "/artctl.v1.Generator/Generate": pb.GenerateRequest(model="sty", seeds=[1, 2], psi=0.5, labels=[1]),
    "/artctl.v1.Generator/Mix": pb.MixRequest(model="sty", content_seeds=[1], style_seeds=[2, 3]),
    "/inference.GRPCInferenceService/ModelMetadata": kpb.ModelMetadataRequest(name="tiny"),
}


@FUZZ
@given(
    method=st.sampled_from(sorted(VALID)),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 64)),
)
def test_fuzz_mutated_bytes(
    fuzz_server: tuple[Any, str], method: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(VALID[method].SerializeToString())
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[:cut]
    assert call(fuzz_server[1], method, bytes(data)) in EXPECTED
    assert healthy(fuzz_server[1])
