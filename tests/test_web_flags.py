"""`artctl serve`'s HTTP flags and the metrics port: a busy or shared port is one clear line (no
traceback after it), impossible sizes are refused before anything loads, the HTTP limits are
options like any other, and the metrics port takes the bearer token when asked to."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from artctl_serving.config import ServeConfigError, ServerOptions, load_options
from tests.helpers import free_port, running_server

REPO = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-long-enough-42"


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "artctl", "serve", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "ARTCTL_SERVE_WATCH_INTERVAL_S": "0"},
    )


def one_error_line(out: subprocess.CompletedProcess[str], text: str) -> None:
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0, out.stderr
    assert "Traceback" not in out.stderr and "Event loop is closed" not in out.stderr, out.stderr
    assert lines and lines[-1].startswith("artctl: error: ") and text in lines[-1], out.stderr


def test_a_busy_http_port_is_one_error_without_a_traceback(tiny_model: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = serve(str(tiny_model), "--port", "0", "--http-port", str(port))
    one_error_line(out, f"cannot listen on 127.0.0.1:{port}")


def test_the_http_port_cannot_be_the_grpc_port(tiny_model: Path) -> None:
    port = str(free_port())
    one_error_line(serve(str(tiny_model), "--port", port, "--http-port", port), "is the gRPC port too")
    with pytest.raises(ServeConfigError, match="give each its own"):
        ServerOptions(port=8001, metrics_port=9000, http_port=9000)


def test_a_cache_bigger_than_the_machine_is_refused() -> None:
    with pytest.raises(ServeConfigError, match="more than this machine's memory"):
        ServerOptions(cache_mb=1_000_000_000_000)
    assert ServerOptions(cache_mb=64).cache_mb == 64


def test_the_http_limits_are_options_with_the_documented_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    options = load_options(None, {}, env={})
    assert (options.http_max_body_mb, options.http_max_reply_mb, options.http_max_header_kb) == (64, 64, 16)
    assert (options.http_header_timeout_s, options.http_body_timeout_s, options.http_keepalive_s) == (
        10,
        60,
        75,
    )
    monkeypatch.setenv("ARTCTL_SERVE_HTTP_KEEPALIVE_S", "5")
    changed = load_options(None, {"http_max_body_mb": 8})
    assert changed.http_max_body_mb == 8 and changed.http_keepalive_s == 5
    for bad, message in (
        ({"http_max_body_mb": 0}, "http_max_body_mb must be in 1..2047"),
        ({"http_header_timeout_s": 0}, "http_header_timeout_s must be > 0"),
        ({"metrics_auth": True}, "metrics_auth needs auth_token_file"),
    ):
        with pytest.raises(ServeConfigError, match=message):
            load_options(None, bad, env={})


def scrape(port: int, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_metrics_port_takes_the_token_when_asked(tiny_model: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    options = {"metrics_port": free_port(), "auth_token_file": token, "metrics_auth": True}
    with running_server([tiny_model], **options) as (server, _):
        port = server.options.metrics_port
        assert scrape(port)[0] == 401 and scrape(port, "wrong-token-of-some-length")[0] == 401
        status, text = scrape(port, TOKEN)
        assert status == 200 and "artctl_model_info" in text
    options["metrics_auth"] = False  # the default: the port stays open, as Prometheus scrapes it
    options["metrics_port"] = free_port()
    with running_server([tiny_model], **options) as (server, _):
        assert scrape(server.options.metrics_port)[0] == 200
