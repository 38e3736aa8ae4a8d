"""Operating the server: TLS/mTLS, bearer tokens, hot reload, config files, deadlines, big messages."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from artctl.capabilities import Capabilities
from artctl.modelcard import ModelCard
from artctl.v1 import generator_pb2 as pb
from artctl.v1 import generator_pb2_grpc as pb_grpc
from artctl_serving.config import ServeConfigError, ServerOptions, load_options
from artctl_serving.errors import InvalidRequestError
from artctl_serving.requests import check_labels, check_psi
from tests.helpers import model_folder, running_server, train_tiny


def _secure_channel(target: str, pki: dict[str, Path], client_cert: bool) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].read_bytes(),
        private_key=pki["client_key"].read_bytes() if client_cert else None,
        certificate_chain=pki["client_cert"].read_bytes() if client_cert else None,
    )
    port = target.rsplit(":", 1)[1]
    return grpc.secure_channel(f"localhost:{port}", creds)


def test_tls_serves_and_plaintext_is_refused(tiny_model: Path, pki: dict[str, Path]) -> None:
    with running_server([tiny_model], tls_cert=pki["server_cert"], tls_key=pki["server_key"]) as (_, target):
        with _secure_channel(target, pki, client_cert=False) as ch:
            resp = pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=[1]), timeout=10)
            assert len(resp.artworks) == 1
        with grpc.insecure_channel(target) as ch, pytest.raises(grpc.RpcError) as info:
            pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=[1]), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_requires_a_client_certificate(tiny_model: Path, pki: dict[str, Path]) -> None:
    opts = {"tls_cert": pki["server_cert"], "tls_key": pki["server_key"], "tls_client_ca": pki["ca"]}
    with running_server([tiny_model], **opts) as (_, target):
        with _secure_channel(target, pki, client_cert=True) as ch:
            assert pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=[1]), timeout=10).artworks
        with _secure_channel(target, pki, client_cert=False) as ch, pytest.raises(grpc.RpcError) as info:
            pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=[1]), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_bearer_token_guards_everything_but_health(tiny_model: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token-with-enough-entropy\n")
    with (
        running_server([tiny_model], auth_token_file=token_file) as (_, target),
        grpc.insecure_channel(target) as ch,
    ):
        stub = pb_grpc.GeneratorStub(ch)
        good = [("authorization", "Bearer s3cret-token-with-enough-entropy")]
        assert stub.Generate(pb.GenerateRequest(seeds=[3]), metadata=good).artworks
        assert list(stub.GenerateStream(pb.GenerateRequest(seeds=[3, 4]), metadata=good))
        for metadata in (
            [],
            [("authorization", "Bearer wrong")],
            [("authorization", "s3cret-token-with-enough-entropy")],
        ):
            with pytest.raises(grpc.RpcError) as info:
                stub.Generate(pb.GenerateRequest(seeds=[3]), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as info:
            list(stub.GenerateStream(pb.GenerateRequest(seeds=[3])))
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status
        assert status == health_pb2.HealthCheckResponse.SERVING


def test_short_tokens_are_refused(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "t").write_text("short")
    with (
        pytest.raises(ValueError, match="at least 16"),
        running_server([tiny_model], auth_token_file=tmp_path / "t"),
    ):
        pass


def _generate_hashes(target: str, seeds: list[int]) -> list[str]:
    with grpc.insecure_channel(target) as ch:
        resp = pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=seeds, format=pb.IMAGE_FORMAT_RAW))
    return [a.pixel_sha256 for a in resp.artworks]


def test_reload_swaps_a_changed_model_without_dropping_requests(
    tiny_model: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from artctl_exporter.export import export_checkpoint

    other_run = tmp_path_factory.mktemp("other") / "run"
    train_tiny(other_run, steps=6)
    other = export_checkpoint(other_run, tmp_path / "staging" / "tiny.onnx", parity_seeds=16).path
    served = tmp_path / "models"
    served.mkdir()
    shutil.copy(tiny_model, served / "tiny.onnx")
    shutil.copy(tiny_model.with_suffix(".json"), served / "tiny.json")
    seeds = list(range(64))
    with running_server([served], watch_interval_s=0, max_batch=8) as (server, target):
        before = _generate_hashes(target, seeds)
        failures: list[BaseException] = []
        done = threading.Event()

        def hammer() -> None:
            while not done.is_set():
                try:
                    assert len(_generate_hashes(target, seeds[:16])) == 16
                except BaseException as exc:
                    failures.append(exc)
                    return

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for w in workers:
            w.start()
        time.sleep(0.2)
        # Replace the file the way a deploy does: sidecar first, then the model, each by rename.
        shutil.copy(other.with_suffix(".json"), served / ".tiny.json.tmp")
        shutil.copy(other, served / ".tiny.onnx.tmp")
        (served / ".tiny.json.tmp").replace(served / "tiny.json")
        (served / ".tiny.onnx.tmp").replace(served / "tiny.onnx")
        changes = _run_in_server_loop(server, server.reload())
        time.sleep(0.2)
        done.set()
        for w in workers:
            w.join(30)
        assert not failures, failures
        assert changes and changes[0].startswith("reloaded tiny")
        after = _generate_hashes(target, seeds)
        assert after != before
        # A corrupt replacement is refused and the working model stays.
        (served / "tiny.onnx").write_bytes(b"garbage")
        assert _run_in_server_loop(server, server.reload()) == []
        assert _generate_hashes(target, seeds) == after


def test_a_bad_model_among_good_ones_is_refused_and_the_rest_serve(
    tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served = model_folder(tmp_path / "models", tiny_model, "good")
    (served / "broken.onnx").write_bytes(b"not onnx")
    with running_server([served]) as (server, _):
        assert server.registry.names() == ["good"]
    assert any("refusing model" in r.getMessage() and "broken.onnx" in r.getMessage() for r in caplog.records)


def _run_in_server_loop(server: Any, coro: Any) -> Any:
    """Run a coroutine on the server's event loop (it lives in the fixture's thread)."""
    return asyncio.run_coroutine_threadsafe(coro, server.loop).result(60)


def test_deadline_expired_work_is_not_computed(tiny_model: Path) -> None:
    with running_server([tiny_model], max_batch=16) as (server, target):
        (model,) = list(server.registry)
        real_render = model.batcher._render

        def slow_render(*args: Any) -> Any:  # the real model, made slow so work piles up in the queue
            time.sleep(0.2)
            return real_render(*args)

        model.batcher._render = slow_render
        with grpc.insecure_channel(target) as ch:
            stub = pb_grpc.GeneratorStub(ch)
            big = stub.Generate.future(pb.GenerateRequest(seeds=list(range(64))))  # 4 batches, ~0.8 s
            time.sleep(0.05)
            with pytest.raises(grpc.RpcError) as info:
                stub.Generate(pb.GenerateRequest(seeds=[10**6]), timeout=0.3)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert len(big.result(timeout=60).artworks) == 64
        deadline = time.monotonic() + 10
        while model.batcher.stats.dropped < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert model.batcher.stats.dropped == 1
        assert model.batcher.stats.images == 64, "the expired request's image was computed"


def test_oversized_message_is_refused(tiny_model: Path) -> None:
    with running_server([tiny_model], max_message_mb=1, max_seeds_per_request=10**6, queue_size=10**6) as (
        _,
        target,
    ):
        with grpc.insecure_channel(target) as ch, pytest.raises(grpc.RpcError) as info:
            pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=list(range(2**60, 2**60 + 200_000))))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_exec_batch_pads_without_changing_pixels(tiny_model: Path) -> None:
    seeds = list(range(2**40, 2**40 + 21))
    with running_server([tiny_model]) as (_, plain):
        expected = _generate_hashes(plain, seeds)
    with running_server([tiny_model], exec_batch=8) as (server, padded):
        assert _generate_hashes(padded, seeds) == expected
        (model,) = list(server.registry)
        assert model.runtime.profile.exec_batch == 8


def test_process_pool_encoding_gives_the_same_pngs(tiny_model: Path) -> None:
    seeds = list(range(30))
    with running_server([tiny_model]) as (_, target), grpc.insecure_channel(target) as ch:
        threads = pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=seeds))
    with (
        running_server([tiny_model], encode_pool="process", encode_workers=2) as (_, target),
        grpc.insecure_channel(target) as ch,
    ):
        processes = pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=seeds))
    assert [a.image for a in processes.artworks] == [a.image for a in threads.artworks]


def test_config_file_then_flags(tmp_path: Path, tiny_model: Path) -> None:
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'port = 9000\nmax_batch = 8\nmodels = ["{tiny_model}"]\n')
    opts = load_options(cfg, {"port": 9100, "threads": None})
    assert (opts.port, opts.max_batch, opts.models) == (9100, 8, [tiny_model])
    cfg.write_text("max_batchh = 8\n")
    with pytest.raises(ServeConfigError, match="unknown key 'max_batchh'"):
        load_options(cfg, {})
    with pytest.raises(ServeConfigError, match="max_batch must be >= 1"):
        load_options(None, {"max_batch": 0})
    with pytest.raises(ServeConfigError, match="go together"):
        ServerOptions(tls_cert=tmp_path / "c.pem")


def test_psi_and_label_validation_for_conditional_models() -> None:
    card = ModelCard(
        name="cond",
        architecture="stylegan",
        resolution=16,
        channels=4,
        z_dim=8,
        label_names=["a", "b"],
        default_psi=0.7,
        has_psi=True,
        has_label=True,
    )
    card = Capabilities.from_card(card)
    np.testing.assert_allclose(check_psi(card, None, 3), [0.7, 0.7, 0.7])
    np.testing.assert_allclose(check_psi(card, [0.5], 2), [0.5, 0.5])
    for bad in (float("nan"), float("inf"), -0.1, 2.5):
        with pytest.raises(InvalidRequestError, match="psi must be a finite number"):
            check_psi(card, [bad], 1)
    with pytest.raises(InvalidRequestError, match="one psi or one per seed"):
        check_psi(card, [0.5, 0.6], 3)
    assert check_labels(card, [1], 3).tolist() == [1, 1, 1]
    with pytest.raises(InvalidRequestError, match="label 2 out of range"):
        check_labels(card, [2], 1)
    with pytest.raises(InvalidRequestError, match="label -1 out of range"):
        check_labels(card, [0, -1], 2)


def test_a_model_named_default_is_served_as_the_default(tiny_model: Path, tmp_path: Path) -> None:
    """The embedded model is default.onnx: a model may be called `default` and is then the default."""
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_model, models / "another.onnx")
    shutil.copy(tiny_model, models / "default.onnx")
    with running_server([models]) as (server, target), grpc.insecure_channel(target) as ch:
        assert server.registry.default_name == "default"
        resp = pb_grpc.GeneratorStub(ch).Generate(pb.GenerateRequest(seeds=[1]))
        assert resp.model == "default"
