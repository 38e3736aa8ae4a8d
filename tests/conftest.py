"""Shared fixtures: a tiny trained run, its exported model, and a real server on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def train_tiny(
    run_dir: Path,
    steps: int = 4,
    train: dict[str, Any] | None = None,
    resume: Path | None = None,
    **network: Any,
) -> Path:
    """A few steps of a tiny model on synthetic shapes; `network` and `train` override config fields."""
    from trainer.config import NetworkConfig, TrainConfig
    from trainer.training_loop import training_loop

    net = {"resolution": 16, "channels": 4, "z_dim": 16, "g_base": 8, "d_base": 8, **network}
    if net.get("architecture") == "stylegan":
        net = {"max_channels": 32, "mapping_layers": 2, **net}
    options: dict[str, Any] = {"batch": 8, "synthetic_size": 64, "sample_every": steps, "log_every": 1}
    cfg = TrainConfig(network=NetworkConfig(**net), steps=steps, **{**options, **(train or {})})
    return training_loop(cfg, run_dir, resume=resume)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("tiny") / "run"
    train_tiny(run)
    return run


@pytest.fixture(scope="session")
def tiny_model(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from exporter.export import export_checkpoint

    out = tmp_path_factory.mktemp("model") / "tiny.onnx"
    export_checkpoint(tiny_run, out, parity_seeds=64)
    return out


@contextlib.contextmanager
def running_server(models: list[Path], **options: Any) -> Iterator[tuple[Any, str]]:
    """An ArtServer on a free loopback port, its event loop in a background thread."""
    from serving.server import ArtServer, ServerOptions

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-server-loop", daemon=True)
    thread.start()
    server = ArtServer(ServerOptions(host="127.0.0.1", port=0, models=list(models), **options))
    try:
        port = asyncio.run_coroutine_threadsafe(server.start(), loop).result(60)
        yield server, f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(server.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[tuple[Any, str]]:
    with running_server([tiny_model], max_batch=16, max_seeds_per_request=256, queue_size=1024) as srv:
        yield srv
