"""The whole journey through the real CLI: train -> export -> serve (loopback) -> mint -> check,
then SIGTERM with requests in flight."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from artctl.cli import wait_for_server
from artctl.client import GeneratorClient
from artctl.imaging import decode_png
from artctl.seeds import latents, pixel_sha256, provenance, token_seed

pytestmark = pytest.mark.e2e


def artctl(*args: str) -> list[str]:
    return [sys.executable, "-m", "artctl", *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("journey")
    subprocess.run(
        artctl(
            "train",
            "synthetic:shapes",
            "--out",
            str(work / "run"),
            "--steps",
            "20",
            "--batch",
            "16",
            "--resolution",
            "32",
            "--channels",
            "4",
            "--z-dim",
            "32",
            "--sample-every",
            "20",
        ),
        check=True,
        timeout=300,
    )
    model = work / "drop-model.onnx"
    subprocess.run(artctl("export", str(work / "run"), "--out", str(model)), check=True, timeout=300)
    return model


def start_server(model: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        artctl("serve", str(model), "--port", str(port), "--log-level", "WARNING", *extra)
    )
    target = f"127.0.0.1:{port}"
    wait_for_server(target, timeout=60, proc=proc)
    return proc, target


def test_train_export_serve_mint_and_check(exported: Path, tmp_path: Path) -> None:
    proc, target = start_server(exported)
    try:
        collection = tmp_path / "collection.toml"
        collection.write_text('name = "Journey"\nsize = 16\nsalt = "e2e-salt"\nstart_index = 0\n')
        out = subprocess.run(
            artctl("mint", str(collection), "--out", str(tmp_path / "drop"), "--server", target),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr
        assert "provenance" in out.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0

    manifest = json.loads((tmp_path / "drop" / "manifest.json").read_text())
    assert len(manifest["tokens"]) == 16
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    z_dim = int(session.get_inputs()[0].shape[1])
    file_hashes = []
    for entry in manifest["tokens"]:
        seed = token_seed("e2e-salt", entry["id"])
        (expected,) = session.run(["image"], {"z": latents([seed], z_dim)})[0]
        png = (tmp_path / "drop" / "images" / f"{entry['id']}.png").read_bytes()
        assert entry["seed"] == str(seed)
        assert entry["pixel_sha256"] == pixel_sha256(expected)
        np.testing.assert_array_equal(decode_png(png), expected)
        file_hashes.append(entry["file_sha256"])
    assert manifest["provenance"] == provenance(file_hashes)
    assert (tmp_path / "drop" / "provenance.txt").read_text().strip() == manifest["provenance"]


def test_sigterm_finishes_requests_in_flight(exported: Path) -> None:
    proc, target = start_server(exported, "--max-seeds-per-request", "2048", "--queue-size", "65536")
    results: list[int] = []
    errors: list[BaseException] = []

    def call(i: int) -> None:
        try:
            with GeneratorClient(target, retries=0) as client:
                results.append(len(client.generate(range(i * 2048, (i + 1) * 2048)).artworks))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # the requests are now queued or rendering
    proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=120)
    assert proc.wait(timeout=60) == 0
    assert not errors, errors
    assert results == [2048] * 6


def test_sighup_reloads_a_replaced_model(exported: Path, tmp_path: Path) -> None:
    import shutil

    served = tmp_path / "models"
    served.mkdir()
    shutil.copy(exported, served / "art.onnx")
    proc, target = start_server(served, "--watch-interval", "0")
    try:
        with GeneratorClient(target) as client:
            before = client.list_models()[0]["sha256"]
            first = client.generate([42]).artworks[0].pixel_sha256
            # Re-export the same run without EMA: a different, valid model under the same name.
            replacement = tmp_path / "staging" / "art.onnx"
            subprocess.run(
                artctl("export", str(exported.parent / "run"), "--out", str(replacement), "--no-ema"),
                check=True,
                timeout=300,
            )
            shutil.copy(replacement, served / ".art.onnx.tmp")
            (served / ".art.onnx.tmp").replace(served / "art.onnx")
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            after = before
            while after == before and time.monotonic() < deadline:
                time.sleep(0.2)
                after = client.list_models()[0]["sha256"]
            assert after != before
            assert client.generate([42]).artworks[0].pixel_sha256 != first
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_demo_runs_the_whole_journey(tmp_path: Path) -> None:
    """`make demo` runs `artctl demo`: it must end with a drop and say where it is."""
    out = subprocess.run(
        artctl("demo", "--out", str(tmp_path / "demo"), "--steps", "20", "--tokens", "6"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    drop = tmp_path / "demo" / "drop"
    manifest = json.loads((drop / "manifest.json").read_text())
    assert len(manifest["tokens"]) == 6 and (drop / "contact-sheet.png").is_file()
    assert f"The drop is in {drop}" in out.stdout and "contact-sheet.png" in out.stdout
