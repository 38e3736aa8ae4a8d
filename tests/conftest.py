"""Shared fixtures: a tiny trained run, its exported model, and a real server on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import running_server, train_tiny


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


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[tuple[Any, str]]:
    with running_server([tiny_model], max_batch=16, max_seeds_per_request=256, queue_size=1024) as srv:
        yield srv
