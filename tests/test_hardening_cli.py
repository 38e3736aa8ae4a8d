"""The command line against the same faults: a busy port, bad flags, secured servers, collection
configs that only look right, and a drop whose manifest was lost. Each through the real CLI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from artctl.client import GeneratorClient, Security
from tests.helpers import artctl, running_server

REPO = Path(__file__).resolve().parent.parent
TOKEN = "a-bearer-token-long-enough-1234"


def one_line_error(out: subprocess.CompletedProcess[str], text: str) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode != 0 and len(lines) == 1, out.stderr
    assert lines[0].startswith("artctl: error: ") and text in lines[0], lines[0]
    return lines[0]


def collection(path: Path, model: str, size: int = 4, extra: str = "") -> Path:
    path.write_text(f'name = "Hard"\nsize = {size}\nsalt = "s"\nmodel = "{model}"\n{extra}')
    return path


# -- 1 and 14. flags and ports --------------------------------------------------------------------------


def test_a_busy_port_is_one_line(tiny_model: Path) -> None:
    with running_server([tiny_model]) as (server, _):
        out = artctl("serve", str(tiny_model), "--port", str(server.port), "--watch-interval", "0")
    one_line_error(out, "the port is in use")


@pytest.mark.parametrize(
    ("flags", "text"),
    [
        (["--port", "70000"], "port must be in 0..65535, got 70000"),
        (["--metrics-port", "-1"], "metrics_port must be in 0..65535"),
        (["--max-message-mb", "0"], "max_message_mb must be in 1..2047, got 0"),
        (["--max-message-mb", "-1"], "max_message_mb must be in 1..2047"),
        (["--threads", "-3"], "threads must be >= 0"),
        (["--queue-size", "10", "--max-seeds-per-request", "11"], "must not exceed queue_size"),
        (["--max-queue-s", "0"], "max_queue_s must be > 0"),
    ],
)
def test_bad_serve_flags_are_one_line(tiny_model: Path, flags: list[str], text: str) -> None:
    one_line_error(artctl("serve", str(tiny_model), *flags), text)


def test_a_garbage_tls_key_is_named(tiny_model: Path, pki: dict[str, Path], tmp_path: Path) -> None:
    bad_key = tmp_path / "key.pem"
    bad_key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    tls = ["--tls-cert", str(pki["server_cert"]), "--tls-key", str(bad_key), "--port", "0"]
    one_line_error(artctl("serve", str(tiny_model), *tls), "are not a PEM certificate and its private key")
    ca = ["--tls-cert", str(pki["server_cert"]), "--tls-key", str(pki["server_key"]), "--tls-client-ca"]
    one_line_error(artctl("serve", str(tiny_model), *ca, str(bad_key), "--port", "0"), "not a PEM CA bundle")


# -- 6. a secured server is usable by artctl's own tools ---------------------------------------------------


def test_mint_and_verify_through_a_token_guarded_server(tiny_model: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = collection(tmp_path / "c.toml", "tiny")
    with running_server([tiny_model], auth_token_file=token_file) as (_, target):
        refused = artctl("mint", str(config), "--out", str(tmp_path / "x"), "--server", target)
        one_line_error(refused, "UNAUTHENTICATED")
        drop = tmp_path / "drop"
        minted = artctl(
            "mint", str(config), "--out", str(drop), "--server", target, "--auth-token-file", str(token_file)
        )
        assert minted.returncode == 0, minted.stderr
        via_env = artctl(
            "verify", str(drop), "--server", target, env={"ARTCTL_AUTH_TOKEN_FILE": str(token_file)}
        )
        assert via_env.returncode == 0 and "verified 4 tokens" in via_env.stdout, via_env.stderr


def test_mint_and_verify_over_mtls(tiny_model: Path, pki: dict[str, Path], tmp_path: Path) -> None:
    options = {"tls_cert": pki["server_cert"], "tls_key": pki["server_key"], "tls_client_ca": pki["ca"]}
    config = collection(tmp_path / "c.toml", "tiny")
    with running_server([tiny_model], **options) as (server, _):
        target = f"localhost:{server.port}"  # the name on the server's certificate
        tls = [
            "--tls-ca",
            str(pki["ca"]),
            "--tls-cert",
            str(pki["client_cert"]),
            "--tls-key",
            str(pki["client_key"]),
        ]
        drop = tmp_path / "drop"
        minted = artctl("mint", str(config), "--out", str(drop), "--server", target, *tls)
        assert minted.returncode == 0, minted.stderr
        verified = artctl("verify", str(drop), "--server", target, *tls)
        assert verified.returncode == 0, verified.stderr
        no_cert = artctl("verify", str(drop), "--server", target, "--tls-ca", str(pki["ca"]))
        assert no_cert.returncode != 0 and len(no_cert.stderr.strip().splitlines()) == 1
        security = Security.from_options(
            tls_ca=pki["ca"], tls_cert=pki["client_cert"], tls_key=pki["client_key"]
        )
        with GeneratorClient(target, security=security, retries=0) as client:
            assert [a.seed for a in client.generate([7]).artworks] == [7]


def test_client_security_reads_the_environment(pki: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "t").write_text(TOKEN)
    env = {"ARTCTL_AUTH_TOKEN_FILE": str(tmp_path / "t"), "ARTCTL_TLS_CA": str(pki["ca"])}
    security = Security.from_options(env=env)
    assert security.token == TOKEN and security.tls and security.tls_ca == pki["ca"]
    assert Security.from_options(tls_ca=tmp_path / "other.pem", env=env).tls_ca == tmp_path / "other.pem"
    with pytest.raises(ValueError, match="go together"):
        Security.from_options(tls_cert=pki["client_cert"], env={})


# -- 15. collection configs that only look right ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('name = "x"\nsize = "20"\nsalt = "s"\n', "size: Input should be a valid integer"),
        ('name = "x"\nsize = true\nsalt = "s"\n', "size: Input should be a valid integer"),
        (
            'name = "x"\nsize = 3\nsalt = "s"\n[[traits]]\nname = "T"\nkind = "conditioning"\n'
            'values = ["a", "b"]\nweights = ["1", "2"]\n',
            "weights.0: Input should be a valid integer",
        ),
    ],
)
def test_configs_with_the_wrong_types_are_refused(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    one_line_error(artctl("mint", str(path), "--out", str(tmp_path / "drop"), "--local"), error)


def test_a_config_error_found_late_prints_no_progress_bar(tiny_model: Path, tmp_path: Path) -> None:
    trait = 'name = "T"\nkind = "conditioning"\nvalues = ["a"]\nweights = [1]\non_unconditional = "error"\n'
    extra = f"[[traits]]\n{trait}"
    config = collection(tmp_path / "c.toml", str(tiny_model), extra=extra)
    out = artctl("mint", str(config), "--out", str(tmp_path / "drop"), "--local")
    one_line_error(out, "has no labels")
    assert out.stdout == "" and not (tmp_path / "drop" / "images").exists()


def test_a_drop_without_its_manifest_is_repaired(tiny_model: Path, tmp_path: Path) -> None:
    config = collection(tmp_path / "c.toml", str(tiny_model), size=70)
    drop = tmp_path / "drop"
    assert artctl("mint", str(config), "--out", str(drop), "--local").returncode == 0
    manifest = (drop / "manifest.json").read_bytes()
    (drop / "manifest.json").unlink()
    one_line_error(artctl("mint", str(config), "--out", str(drop), "--local"), "add --repair")
    edited = drop / "images" / "3.png"
    original = edited.read_bytes()
    edited.write_bytes(original[:-1] + b"\x00")
    one_line_error(
        artctl("mint", str(config), "--out", str(drop), "--local", "--repair"), "images/3.png is not what"
    )
    assert edited.read_bytes() == original[:-1] + b"\x00", "a file that differs is never overwritten"
    edited.write_bytes(original)
    repaired = artctl("mint", str(config), "--out", str(drop), "--local", "--repair")
    assert repaired.returncode == 0, repaired.stderr
    assert (drop / "manifest.json").read_bytes() == manifest
    (drop / "stray.txt").write_text("not ours")
    (drop / "manifest.json").unlink()
    (drop / "images" / "notes.png").write_bytes(b"x")
    one_line_error(artctl("mint", str(config), "--out", str(drop), "--local", "--repair"), "images/notes.png")
