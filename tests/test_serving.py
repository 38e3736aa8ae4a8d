"""A real server on a loopback port: both APIs, determinism under batching, errors, health, metrics."""

from __future__ import annotations

import json
import random
import shutil
import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from artctl.client import GeneratorClient
from artctl.imaging import decode_png
from artctl.kserve.v2 import grpc_service_pb2 as kpb
from artctl.kserve.v2 import grpc_service_pb2_grpc as kpb_grpc
from artctl.seeds import latents, pixel_sha256
from artctl.v1 import generator_pb2 as pb
from artctl.v1 import generator_pb2_grpc as pb_grpc
from artctl_serving.runtime import ModelLoadError, load_model
from tests.helpers import running_server


def direct_render(model: Path, seeds: list[int]) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(["image"], {"z": latents(seeds, 16)})[0]


def test_generate_matches_a_direct_onnxruntime_render(server: tuple[Any, str], tiny_model: Path) -> None:
    _, target = server
    seeds = [0, 1, 2**64 - 1, 123456789]
    with GeneratorClient(target) as client:
        result = client.generate(seeds, include_metadata=True)
    expected = direct_render(tiny_model, seeds)
    assert [a.seed for a in result.artworks] == seeds
    for art, img in zip(result.artworks, expected):
        pixels = decode_png(art.image)
        assert art.mime == "image/png" and (art.width, art.height, art.channels) == (16, 16, 4)
        np.testing.assert_array_equal(pixels, img)
        assert art.pixel_sha256 == pixel_sha256(img)
        assert art.metadata is not None and art.metadata["seed"] == str(art.seed)
        assert art.metadata["pixel_sha256"] == art.pixel_sha256
    assert result.profile["provider"] == "CPUExecutionProvider"
    assert result.profile["model_sha256"] == json.loads(tiny_model.with_suffix(".json").read_text())["sha256"]


def test_mixed_concurrent_batches_give_the_same_pixels_as_one_by_one(server: tuple[Any, str]) -> None:
    _, target = server
    rng = random.Random(5)
    seeds = [rng.randrange(2**64) for _ in range(256)]
    with GeneratorClient(target) as client:
        alone = {s: client.generate([s], fmt="raw").artworks[0].pixel_sha256 for s in seeds}
        groups: list[list[int]] = []
        pool = seeds[:]
        rng.shuffle(pool)
        while pool:
            k = rng.randint(1, 9)
            groups.append(pool[:k])
            pool = pool[k:]
        with ThreadPoolExecutor(32) as ex:
            results = list(ex.map(lambda g: client.generate(g, fmt="raw"), groups))
    for group, result in zip(groups, results):
        for seed, art in zip(group, result.artworks):
            assert art.seed == seed and art.pixel_sha256 == alone[seed]


def test_raw_format_and_stream(server: tuple[Any, str]) -> None:
    _, target = server
    seeds = list(range(40))
    with grpc.insecure_channel(target) as ch:
        stub = pb_grpc.GeneratorStub(ch)
        raw = stub.Generate(pb.GenerateRequest(seeds=seeds, format=pb.IMAGE_FORMAT_RAW))
        streamed = list(stub.GenerateStream(pb.GenerateRequest(seeds=seeds)))
    assert [a.index for a in streamed] == list(range(40))
    for r, s in zip(raw.artworks, streamed):
        pixels = np.frombuffer(r.image, dtype=np.uint8).reshape(16, 16, 4)
        assert pixel_sha256(pixels) == r.pixel_sha256 == s.pixel_sha256
        np.testing.assert_array_equal(decode_png(s.image), pixels)


def test_list_models_carries_the_card(server: tuple[Any, str]) -> None:
    _, target = server
    with GeneratorClient(target) as client:
        (card,) = client.list_models()
    assert card["name"] == "tiny" and card["architecture"] == "dcgan" and card["z_dim"] == 16
    assert card["contracts"]["latent"] == "artctl-latent-v1"
    assert card["metadata"]["artctl_card"] == "artctl-card-v1"


def kserve_request(seeds: list[int], raw: bool = True, model: str = "tiny") -> kpb.ModelInferRequest:
    tensor = kpb.ModelInferRequest.InferInputTensor(name="SEED", datatype="UINT64", shape=[len(seeds)])
    req = kpb.ModelInferRequest(model_name=model, id="req-1", inputs=[tensor])
    if raw:
        req.raw_input_contents.append(np.asarray(seeds, dtype="<u8").tobytes())
    else:
        req.inputs[0].contents.uint64_contents.extend(seeds)
    return req


@pytest.mark.parametrize("raw", [True, False])
def test_kserve_model_infer(server: tuple[Any, str], tiny_model: Path, raw: bool) -> None:
    _, target = server
    seeds = [5, 2**63 + 11, 0]
    with grpc.insecure_channel(target) as ch:
        resp = kpb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(kserve_request(seeds, raw=raw))
    (out,) = resp.outputs
    assert (out.name, out.datatype, list(out.shape)) == ("IMAGE", "UINT8", [3, 16, 16, 4])
    assert resp.id == "req-1" and resp.model_name == "tiny"
    images = np.frombuffer(resp.raw_output_contents[0], dtype=np.uint8).reshape(3, 16, 16, 4)
    np.testing.assert_array_equal(images, direct_render(tiny_model, seeds))


def test_kserve_health_and_metadata(server: tuple[Any, str]) -> None:
    _, target = server
    with grpc.insecure_channel(target) as ch:
        stub = kpb_grpc.GRPCInferenceServiceStub(ch)
        assert stub.ServerLive(kpb.ServerLiveRequest()).live
        assert stub.ServerReady(kpb.ServerReadyRequest()).ready
        assert stub.ModelReady(kpb.ModelReadyRequest(name="default")).ready
        assert not stub.ModelReady(kpb.ModelReadyRequest(name="nope")).ready
        assert stub.ServerMetadata(kpb.ServerMetadataRequest()).name == "artctl"
        meta = stub.ModelMetadata(kpb.ModelMetadataRequest(name="tiny"))
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("SEED", "UINT64", [-1, 1])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
        ("IMAGE", "UINT8", [-1, 16, 16, 4])
    ]


def _generate_error(target: str, request: pb.GenerateRequest) -> grpc.RpcError:
    with grpc.insecure_channel(target) as ch, pytest.raises(grpc.RpcError) as info:
        pb_grpc.GeneratorStub(ch).Generate(request)
    return info.value


@pytest.mark.parametrize(
    ("request_kwargs", "code", "text"),
    [
        ({"seeds": []}, grpc.StatusCode.INVALID_ARGUMENT, "no seeds"),
        ({"seeds": list(range(257))}, grpc.StatusCode.INVALID_ARGUMENT, "limit is 256"),
        ({"seeds": [1], "model": "nope"}, grpc.StatusCode.NOT_FOUND, "unknown model 'nope'"),
        ({"seeds": [1], "psi": 0.5}, grpc.StatusCode.INVALID_ARGUMENT, "no truncation"),
        ({"seeds": [1], "labels": [0]}, grpc.StatusCode.INVALID_ARGUMENT, "unconditional"),
        ({"seeds": [1], "format": 7}, grpc.StatusCode.INVALID_ARGUMENT, "unknown image format"),
    ],
)
def test_generate_bad_input(
    server: tuple[Any, str], request_kwargs: dict[str, Any], code: Any, text: str
) -> None:
    err = _generate_error(server[1], pb.GenerateRequest(**request_kwargs))
    assert err.code() == code and text in err.details()


@pytest.mark.parametrize(
    ("mutate", "text"),
    [
        (lambda r: setattr(r.inputs[0], "datatype", "INT64"), "datatype UINT64"),
        (lambda r: r.inputs[0].shape.append(2), "shape [N] or [N, 1]"),
        (lambda r: r.raw_input_contents.__setitem__(0, b"123"), "do not match shape"),
        (lambda r: setattr(r.inputs[0], "name", "SEEDS"), "unexpected input"),
        (lambda r: r.outputs.add(name="MASK"), "unknown output"),
    ],
)
def test_kserve_bad_input(server: tuple[Any, str], mutate: Any, text: str) -> None:
    req = kserve_request([1, 2])
    mutate(req)
    with grpc.insecure_channel(server[1]) as ch, pytest.raises(grpc.RpcError) as info:
        kpb_grpc.GRPCInferenceServiceStub(ch).ModelInfer(req)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and text in info.value.details()


def test_health_and_reflection(server: tuple[Any, str]) -> None:
    with grpc.insecure_channel(server[1]) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "artctl.v1.Generator", "inference.GRPCInferenceService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        services = set(ProtoReflectionDescriptorDatabase(ch).get_services())
    assert {"artctl.v1.Generator", "inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_scrape_and_queue_full(tiny_model: Path) -> None:
    port = _free_port()
    options = {"metrics_port": port, "queue_size": 4, "max_batch": 4, "max_seeds_per_request": 4}
    with running_server([tiny_model], **options) as (server, target):
        with GeneratorClient(target) as client:
            client.generate([1, 2, 3])
        (model,) = list(server.registry)
        real_render = model.batcher._render
        model.batcher._render = lambda rows: (time.sleep(0.5), real_render(rows))[1]
        with grpc.insecure_channel(target) as ch:
            busy = pb_grpc.GeneratorStub(ch).Generate.future(pb.GenerateRequest(seeds=[4, 5, 6, 7]))
            time.sleep(0.1)  # the four fill the queue while the render sleeps
            err = _generate_error(target, pb.GenerateRequest(seeds=[8]))
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "queue full" in err.details()
            assert len(busy.result(timeout=30).artworks) == 4
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'artctl_requests_total{code="OK",model="tiny",rpc="Generate"} 2.0' in text
    assert 'artctl_requests_total{code="RESOURCE_EXHAUSTED",model="tiny",rpc="Generate"} 1.0' in text
    assert 'artctl_images_total{model="tiny"} 7.0' in text
    for name in (
        "request_duration_seconds",
        "batch_size",
        "inference_duration_seconds",
        "encode_duration_seconds",
    ):
        assert f"artctl_{name}_bucket" in text
    assert "artctl_queue_depth" in text and 'artctl_model_info{model="tiny"' in text


def test_a_corrupt_model_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    shutil.copy(tiny_model, bad)
    shutil.copy(tiny_model.with_suffix(".json"), bad.with_suffix(".json"))
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="does not match its sidecar"):
        load_model(bad)
    bad.with_suffix(".json").unlink()
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(tmp_path / "junk.onnx")
