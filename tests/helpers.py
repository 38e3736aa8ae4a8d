"""Helpers the tests share: a tiny trained run and a real server on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:  # torch stays unimported until a test trains
    from artctl_trainer.config import TrainConfig

# Derived traits (read off the pixels), the ones the drop tests mint with.
DERIVED = [
    {"name": "Palette", "kind": "derived", "source": "dominant_colour"},
    {
        "name": "Brightness",
        "kind": "derived",
        "source": "brightness",
        "values": ["Dark", "Dim", "Bright"],
        "thresholds": [100, 140],
    },
    {
        "name": "Background",
        "kind": "derived",
        "source": "transparency",
        "values": ["Solid", "Cut-out", "Floating"],
        "thresholds": [50, 80],
    },
]


SYSTEM_SKIPS = "system packages"  # in the reason of every skip require_system makes


REPO = Path(__file__).resolve().parent.parent


def artctl(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m artctl ARGS` as a user runs it: exit code, stdout and stderr. COLUMNS=200 keeps
    help and progress lines whole, as on a wide terminal; `env` adds to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "artctl", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def require_system(found: bool, what: str, package: str) -> None:
    """A Debian package a test needs: `make test` installs it (.ci/system-packages), so a missing
    one fails, unless the run chose `make test SYSTEM_PACKAGES=skip`, which skips the test."""
    if found:
        return
    import pytest

    if os.environ.get("ARTCTL_SYSTEM_PACKAGES") == "skip":
        pytest.skip(f"{what} is missing ({SYSTEM_SKIPS}: SYSTEM_PACKAGES=skip; apt-get install {package})")
    pytest.fail(
        f"{what} is missing: `make test` installs {package} as root (or prints the apt-get command); "
        "`make test SYSTEM_PACKAGES=skip` skips the tests that need it"
    )


def require_emoji_font(emoji_list: bool = False) -> None:
    """The Noto Color Emoji font (and, with `emoji_list`, Unicode's emoji-test.txt with its groups)."""
    from artctl_trainer.emoji import EMOJI_TEST_PATHS, FONT_PATHS

    require_system(
        any(p.is_file() for p in FONT_PATHS), "the Noto Color Emoji font", "fonts-noto-color-emoji"
    )
    if emoji_list:
        require_system(any(p.is_file() for p in EMOJI_TEST_PATHS), "emoji-test.txt", "unicode-data")


def tiny_config(steps: int = 4, train: dict[str, Any] | None = None, **network: Any) -> TrainConfig:
    """A tiny model's TrainConfig on synthetic shapes; `network` and `train` override config fields."""
    from artctl_trainer.config import NetworkConfig, TrainConfig

    net = {"resolution": 16, "channels": 4, "z_dim": 16, "g_base": 8, "d_base": 8, **network}
    if net.get("architecture") == "stylegan":
        net = {"max_channels": 32, "mapping_layers": 2, **net}
    options: dict[str, Any] = {"batch": 8, "synthetic_size": 64, "sample_every": steps, "log_every": 1}
    return TrainConfig(network=NetworkConfig(**net), steps=steps, **{**options, **(train or {})})


def train_tiny(
    run_dir: Path,
    steps: int = 4,
    train: dict[str, Any] | None = None,
    resume: Path | None = None,
    **network: Any,
) -> Path:
    """A few steps of a tiny model on synthetic shapes; `network` and `train` override config fields."""
    from artctl_trainer.training_loop import training_loop

    return training_loop(tiny_config(steps, train, **network), run_dir, resume=resume)


@contextlib.contextmanager
def running_server(models: list[Path], **options: Any) -> Iterator[tuple[Any, str]]:
    """An ArtServer on a free loopback port, its event loop in a background thread."""
    from artctl_serving.server import ArtServer, ServerOptions

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- rendered Kubernetes objects (tests/test_deploy*.py) -------------------------------------------------


def find_doc(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))


def pod_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return find_doc(docs, "Deployment")["spec"]["template"]["spec"]


def container_of(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return pod_of(docs)["containers"][0]


# -- a small PKI for TLS and mTLS tests -------------------------------------------------------------------


def _cert(name: str, issuer: tuple[Any, Any] | None = None, ca: bool = False) -> tuple[Any, Any]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def _pem(cert: Any) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_pki(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost and a client certificate, as PEM files in `folder`."""
    ca = _cert("artctl test CA", ca=True)
    server = _cert("localhost", issuer=ca)
    client = _cert("client", issuer=ca)
    files = {
        "ca": _pem(ca[0]),
        "server_cert": _pem(server[0]),
        "server_key": _key_pem(server[1]),
        "client_cert": _pem(client[0]),
        "client_key": _key_pem(client[1]),
    }
    for name, data in files.items():
        (folder / f"{name}.pem").write_bytes(data)
    return {name: folder / f"{name}.pem" for name in files}


def model_folder(folder: Path, model: Path, *names: str) -> Path:
    """`folder` (created) holding copies of `model` under each name (NAME.onnx)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(model, folder / f"{name}.onnx")
    return folder
