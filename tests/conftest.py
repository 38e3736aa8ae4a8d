"""Shared fixtures: a tiny trained run, its exported model, and a real server on a loopback port."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.checks import linters, manifests
from tests.helpers import SYSTEM_SKIPS, require_system, running_server, train_tiny, write_pki

Docs = list[dict[str, Any]]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("tiny") / "run"
    train_tiny(run)
    return run


@pytest.fixture(scope="session")
def tiny_model(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from artctl_exporter.export import export_checkpoint

    out = tmp_path_factory.mktemp("model") / "tiny.onnx"
    # The float graph: the tests that use it check the float path's machinery (parity probe,
    # quantisation nodes, serving); the exact graph has tests of its own (tests/test_exact.py).
    export_checkpoint(tiny_run, out, parity_seeds=64, arithmetic="float")
    return out


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[tuple[Any, str]]:
    with running_server([tiny_model], max_batch=16, max_seeds_per_request=256, queue_size=1024) as srv:
        yield srv


# -- deploy/: rendered manifests and the linters (tests/test_deploy*.py) ----------------------------


def _require(found: bool, in_ci: str, locally: str) -> None:
    """A missing tool skips on a developer machine and fails in CI, where it must be installed."""
    if not found:
        if os.environ.get("CI"):
            pytest.fail(in_ci)
        pytest.skip(locally)


@pytest.fixture(scope="session")
def rendered() -> dict[str, Docs]:
    require_system(manifests.kubectl() is not None, "kubectl", "kubernetes-client")
    return {name: manifests.render(path) for name, path in manifests.TARGETS.items()}


@pytest.fixture(scope="session")
def tools() -> Path:
    folder = linters.tools_bin()
    _require(
        folder is not None,
        f"checkov/hadolint are missing: make test installs them and sets {linters.TOOLS_ENV}",
        "checkov and hadolint are not installed (make install puts them into .venv-tools)",
    )
    assert folder is not None
    return folder


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """TLS material: ca, server_cert, server_key, client_cert, client_key (PEM files)."""
    return write_pki(tmp_path_factory.mktemp("pki"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """`make test SYSTEM_PACKAGES=skip` says at the end what it left out."""
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if SYSTEM_SKIPS in str(getattr(report, "longrepr", ""))
    ]
    if skipped:
        terminalreporter.write_line(
            f"SYSTEM_PACKAGES=skip: {len(skipped)} tests skipped for missing Debian packages "
            "(make test without it installs them)",
            yellow=True,
        )


# The HTTP front's servers, shared by tests/test_web_conformance.py and tests/test_web_hardening.py
# (module scope: each module gets its own).
@pytest.fixture(scope="module")
def plain(tiny_model: Path) -> Iterator[tuple[Any, str]]:
    """A server with an HTTP port and no token: (server, base URL)."""
    from tests.web_wire import plain_server

    with plain_server(tiny_model) as served:
        yield served


@pytest.fixture(scope="module")
def guarded(
    tiny_model: Path, pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A server behind TLS and a bearer token."""
    from tests.web_wire import guarded_server

    with guarded_server(tiny_model, pki, tmp_path_factory.mktemp("token")) as server:
        yield server


@pytest.fixture(scope="module")
def tls(pki: dict[str, Path]) -> ssl.SSLContext:
    """A client context that trusts the test CA."""
    return ssl.create_default_context(cafile=str(pki["ca"]))


@pytest.fixture(scope="module")
def style_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny StyleGAN-type model with its companion graphs; its run folder sits beside it."""
    from artctl_exporter.export import export_checkpoint

    work = tmp_path_factory.mktemp("style")
    train_tiny(work / "run", steps=2, architecture="stylegan")
    return export_checkpoint(work / "run", work / "sty.onnx", parity_seeds=16).path
