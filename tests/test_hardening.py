"""The faults a hostile or unlucky client finds, each on a real server over loopback (issue list:
busy port, bad model files, shutdown under load, request cost, queue accounting, KServe edge cases,
undecodable bytes, health watchers, metric labels)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from artctl.kserve.v2 import grpc_service_pb2 as kpb
from artctl.kserve.v2 import grpc_service_pb2_grpc as kpb_grpc
from artctl.v1 import generator_pb2 as pb
from artctl.v1 import generator_pb2_grpc as pb_grpc
from artctl_serving.errors import ModelLoadError
from artctl_serving.runtime import load_model
from artctl_serving.server import ArtServer, ServerOptions
from tests.helpers import free_port, model_folder, running_server


def in_loop(server: Any, coro: Any, timeout: float = 60) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, server.loop).result(timeout)


def slow_down(server: Any, seconds: float) -> None:
    """Make every inference call of the served model take `seconds` longer (the real model still runs)."""
    (model,) = list(server.registry)
    real = model.batcher._render
    model.batcher._render = lambda rows: (time.sleep(seconds), real(rows))[1]


def with_card(model: Path, out: Path, **fields: str) -> Path:
    """A copy of `model` whose card says otherwise in `fields` (no sidecar: it would not match)."""
    doc = onnx.load(str(model))
    for prop in doc.metadata_props:
        if prop.key in fields:
            prop.value = fields[prop.key]
    onnx.save(doc, str(out))
    return out


# -- 1. a busy port is refused -------------------------------------------------------------------------


def test_a_second_server_on_a_busy_port_is_refused(tiny_model: Path) -> None:
    with running_server([tiny_model]) as (server, _):
        loop = asyncio.new_event_loop()
        second = ArtServer(ServerOptions(host="127.0.0.1", port=server.port, models=[tiny_model]))
        with pytest.raises(OSError, match="in use"):
            loop.run_until_complete(second.start())
        loop.run_until_complete(second.stop())
        loop.close()


# -- 2. one bad model file never stops the server or the watcher ---------------------------------------


def test_bad_model_files_are_refused_one_by_one(tiny_model: Path, tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    not_object = tmp_path / "bad" / "listed.onnx"
    shutil.copy(tiny_model, not_object)
    not_object.with_suffix(".json").write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="not a JSON object"):
        load_model(not_object)
    wrong_z = with_card(tiny_model, tmp_path / "bad" / "wrongz.onnx", z_dim="99")
    with pytest.raises(ModelLoadError, match="z_dim is 99 but input z has shape"):
        load_model(wrong_z)
    letters = with_card(tiny_model, tmp_path / "bad" / "letters.onnx", label_names='"notalist"')
    with pytest.raises(ModelLoadError, match="label_names must be a list of names"):
        load_model(letters)


def test_the_watcher_survives_a_bad_file_and_loads_later_good_ones(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served = model_folder(tmp_path / "models", tiny_model, "first")
    with running_server([served], watch_interval_s=0.1) as (server, target):
        with_card(tiny_model, served / "broken.onnx", z_dim="99")
        time.sleep(1.0)
        shutil.copy(tiny_model, served / "second.onnx")
        deadline = time.monotonic() + 20
        while "second" not in server.registry.names() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(server.registry.names()) == ["first", "second"]
        with grpc.insecure_channel(target) as ch:
            reply = pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(model="second", seeds=[1]))
        assert reply.model == "second" and reply.artworks
    refusals = [r.getMessage() for r in caplog.records if "broken.onnx" in r.getMessage()]
    assert refusals and all("card does not fit" in m for m in refusals)


# -- 9. two folders with one name: the first file keeps the name, on reload too -------------------------


def test_a_name_never_switches_files_on_reload(tiny_model: Path, tmp_path: Path) -> None:
    from artctl_exporter.export import export_checkpoint
    from tests.helpers import train_tiny

    train_tiny(tmp_path / "run", steps=5)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    shutil.copy(tiny_model, tmp_path / "a" / "art.onnx")
    other = export_checkpoint(tmp_path / "run", tmp_path / "b" / "art.onnx", parity_seeds=8)
    with running_server([tmp_path / "a", tmp_path / "b"], watch_interval_s=0) as (server, _):
        first = server.registry.get("art").runtime.sha256
        assert first != other.sha256
        assert in_loop(server, server.reload()) == []
        assert server.registry.get("art").runtime.sha256 == first


# -- 3. SIGTERM under load finishes every admitted request ----------------------------------------------


def test_shutdown_under_load_finishes_what_it_admitted(tiny_model: Path) -> None:
    # Admission keeps 1 s of work at the measured rate; the grace allows 6: room for a slow machine.
    options = {
        "grace_s": 6.0,
        "max_queue_s": 1.0,
        "max_batch": 16,
        "queue_size": 4096,
        "max_seeds_per_request": 16,
        "cache_mb": 0,  # every request reaches the batcher (its first one repeats the probe's seeds)
    }
    codes: list[grpc.StatusCode] = []
    with running_server([tiny_model], **options) as (server, target):
        slow_down(server, 0.05)  # about 300 images/s: the offered load is far beyond what 1 s drains
        with grpc.insecure_channel(target) as ch:
            pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=list(range(16))))  # measure a rate

            def call(i: int) -> grpc.StatusCode:
                try:
                    pb_grpc.GeneratorStub(ch).Generate(
                        pb.GenerateRequest(seeds=list(range(i, i + 16))), timeout=60
                    )
                    return grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    return exc.code()

            with ThreadPoolExecutor(48) as pool:
                futures = [pool.submit(call, i * 16) for i in range(200)]
                time.sleep(0.8)
                stopping = time.monotonic()
                in_loop(server, server.stop())
                stopped_in = time.monotonic() - stopping
                codes = [f.result() for f in futures]
        (model,) = list(server.registry)
        stats = model.batcher.stats
    ok = codes.count(grpc.StatusCode.OK)
    refused = [c for c in codes if c != grpc.StatusCode.OK]
    assert set(refused) <= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}, set(refused)
    assert refused, "the load should exceed what the grace can drain"
    assert stats.admitted == stats.completed == ok + 1  # + the rate probe: no admitted request lost
    assert stopped_in < 6.0


# -- 7. cancelled and expired requests give their place back at once ------------------------------------


def test_expired_requests_do_not_starve_the_queue(tiny_model: Path) -> None:
    with running_server([tiny_model], queue_size=64, max_seeds_per_request=64, max_batch=16) as (
        server,
        target,
    ):
        slow_down(server, 0.2)
        with grpc.insecure_channel(target) as ch:
            stub = pb_grpc.GeneratorStub(ch)

            def impatient(i: int) -> grpc.StatusCode:
                try:
                    stub.Generate(pb.GenerateRequest(seeds=list(range(i, i + 32))), timeout=0.001)
                    return grpc.StatusCode.OK
                except grpc.RpcError as exc:
                    return exc.code()

            with ThreadPoolExecutor(16) as pool:
                codes = list(pool.map(impatient, range(200)))
            assert set(codes) <= {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED}
            time.sleep(0.3)
            reply = stub.Generate(pb.GenerateRequest(seeds=list(range(64))), timeout=30)
            assert len(reply.artworks) == 64


# -- 4. a request's cost is bounded before any work -----------------------------------------------------


def test_request_cost_is_bounded_before_rendering(tiny_model: Path) -> None:
    with running_server([tiny_model], max_message_mb=4, max_seeds_per_request=1024) as (server, target):
        (model,) = list(server.registry)
        with grpc.insecure_channel(target) as ch:
            stub = pb_grpc.GeneratorStub(ch)
            big_trait = {"story": "x" * (2 << 20)}
            with pytest.raises(grpc.RpcError) as info:
                stub.Generate(
                    pb.GenerateRequest(seeds=list(range(256)), include_metadata=True, traits=big_trait)
                )
            assert (
                info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                and "traits hold" in info.value.details()
            )
            trait = {"story": "y" * 15000}
            request = pb.GenerateRequest(seeds=list(range(1024)), include_metadata=True, traits=trait)
            with pytest.raises(grpc.RpcError) as info:
                stub.Generate(request)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "over this server's message limit of 4 MiB" in info.value.details()
            streamed = list(stub.GenerateStream(request))  # one artwork per message: that fits
            assert len(streamed) == 1024
            assert '"story": "yyy' in streamed[0].metadata_json
        assert model.batcher.stats.admitted == 1  # only the stream was admitted


# -- 8. a request bigger than the whole queue can never succeed -----------------------------------------


def test_a_request_bigger_than_the_queue_is_invalid_not_retryable(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="must not exceed queue_size"):
        ServerOptions(queue_size=8, max_seeds_per_request=9)
    with (
        running_server([tiny_model], queue_size=8, max_seeds_per_request=8) as (_, target),
        grpc.insecure_channel(target) as ch,
        pytest.raises(grpc.RpcError) as info,
    ):
        pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=list(range(9))))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# -- 10. KServe: the protocol's rules ---------------------------------------------------------------------


def test_kserve_refuses_contents_with_raw_contents_and_unknown_versions(server: tuple[Any, str]) -> None:
    _, target = server
    tensor = kpb.ModelInferRequest.InferInputTensor(name="SEED", datatype="UINT64", shape=[1])
    tensor.contents.uint64_contents.append(7)
    request = kpb.ModelInferRequest(model_name="tiny", inputs=[tensor])
    request.raw_input_contents.append(np.asarray([7], dtype="<u8").tobytes())
    with grpc.insecure_channel(target) as ch:
        stub = kpb_grpc.GRPCInferenceServiceStub(ch)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not both" in info.value.details()
        assert stub.ModelReady(kpb.ModelReadyRequest(name="tiny", version="1")).ready
        assert not stub.ModelReady(kpb.ModelReadyRequest(name="tiny", version="2")).ready
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelMetadata(kpb.ModelMetadataRequest(name="tiny", version="2"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


# -- 11. bytes that are no request: INVALID_ARGUMENT and one log line at most ----------------------------


def test_undecodable_bytes_are_invalid_argument_without_a_traceback(
    server: tuple[Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, target = server
    caplog.set_level(logging.INFO)
    with grpc.insecure_channel(target) as ch:
        call = ch.unary_unary("/artctl.v1.Generator/Generate")
        for garbage in (b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x08" + b"\xff" * 11):
            with pytest.raises(grpc.RpcError) as info:
                call(garbage, timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, garbage
            assert "cannot decode the request" in info.value.details()
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


# -- 12. an open health Watch does not hold a stop up ------------------------------------------------------


def test_an_open_health_watch_does_not_delay_shutdown(tiny_model: Path) -> None:
    seen: list[int] = []
    with running_server([tiny_model], grace_s=30.0) as (server, target):
        channel = grpc.insecure_channel(target)
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())

        def watch() -> None:
            try:
                for reply in stream:
                    seen.append(reply.status)
            except grpc.RpcError:
                pass

        watcher = threading.Thread(target=watch)
        watcher.start()
        time.sleep(0.3)
        started = time.monotonic()
        in_loop(server, server.stop())
        took = time.monotonic() - started
        watcher.join(10)
        channel.close()
    assert took < 5.0, took
    assert seen[0] == health_pb2.HealthCheckResponse.SERVING
    assert seen[-1] == health_pb2.HealthCheckResponse.NOT_SERVING


# -- 13 and 16. metrics: unknown names add no series; one stream is one request ---------------------------


def test_unknown_names_create_no_series_and_are_escaped_in_errors(tiny_model: Path) -> None:
    port = free_port()
    scrape = f"http://127.0.0.1:{port}/metrics"
    with running_server([tiny_model], metrics_port=port) as (_, target), grpc.insecure_channel(target) as ch:
        stub = pb_grpc.GeneratorStub(ch)

        def unknown(name: str) -> grpc.RpcError:
            with pytest.raises(grpc.RpcError) as info:
                stub.Generate(pb.GenerateRequest(model=name, seeds=[1]))
            return info.value

        unknown("first-made-up")  # every series this test touches now exists
        list(stub.GenerateStream(pb.GenerateRequest(seeds=list(range(256)))))
        before = urllib.request.urlopen(scrape, timeout=5).read().decode()
        for i in range(300):
            unknown(f"made-up-{i}")
        evil = unknown("evil\x00\x1b[31m" + "z" * 500)
        after = urllib.request.urlopen(scrape, timeout=5).read().decode()
    details = evil.details()
    assert evil.code() == grpc.StatusCode.NOT_FOUND
    assert "\x00" not in details and "\x1b" not in details and "\\x00" in details and len(details) < 200
    assert len(after.splitlines()) == len(before.splitlines()), "unknown names must not become series"
    assert 'artctl_requests_total{code="NOT_FOUND",model="unknown",rpc="Generate"} 302.0' in after
    assert 'artctl_requests_total{code="OK",model="tiny",rpc="GenerateStream"} 1.0' in after
    assert "made-up" not in after


def test_label_errors_name_the_served_model(tmp_path: Path) -> None:
    from artctl.models import embedded

    model = embedded("emoji")
    assert model is not None
    for suffix in (".onnx", ".json", ".mapping.onnx", ".synthesis.onnx"):
        shutil.copy(model.with_name(f"emoji{suffix}"), tmp_path / f"renamed{suffix}")
    with (
        running_server([tmp_path / "renamed.onnx"]) as (_, target),
        grpc.insecure_channel(target) as ch,
        pytest.raises(grpc.RpcError) as info,
    ):
        pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=[1], labels=[99]))
    assert "model 'renamed' has labels 0..8" in info.value.details()
