"""What a shell user takes for granted: completion, -h, help text as written, --json, exit codes
that tell a mismatch from a failure, environment configuration, progress on long commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from artctl.collection import ConfigError, parse_collection
from artctl_serving.config import ServeConfigError, load_options
from tests.helpers import artctl, free_port

REPO = Path(__file__).resolve().parent.parent


def test_help_completion_and_short_help() -> None:
    top = artctl("-h")
    assert top.returncode == 0 and "--install-completion" in top.stdout and "--show-completion" in top.stdout
    installed = Path(sys.executable).parent / "artctl"  # the console script a shell completes
    # Typer detects the calling shell, so ask from inside bash as a user would; the trailing
    # `exit` keeps bash from exec-ing the command away, which would hide it from the detection.
    script = subprocess.run(
        ["bash", "-c", f'"{installed}" --show-completion; exit $?'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert script.returncode == 0 and "_ARTCTL_COMPLETE=complete_bash" in script.stdout
    train = artctl("train", "-h")
    assert train.returncode == 0
    assert "[runs/PRESET, numbered when taken; or the resumed run]" in " ".join(
        train.stdout.split()
    )  # brackets survive
    serve = " ".join(artctl("serve", "-h").stdout.split())
    assert "(default: 8001)" in serve and "<bool>" not in serve
    assert "--mirror / --no-mirror" in " ".join(train.stdout.split())


def test_the_server_reads_artctl_serve_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "serve.toml"
    toml.write_text("port = 9000\nmax_batch = 8\n")
    monkeypatch.setenv("ARTCTL_SERVE_PORT", "9100")
    monkeypatch.setenv("ARTCTL_SERVE_QUEUE_SIZE", "2048")
    options = load_options(toml, {})
    assert (options.port, options.max_batch, options.queue_size) == (9100, 8, 2048)  # env over file
    assert load_options(toml, {"port": 9200}).port == 9200  # flags over env
    monkeypatch.setenv("ARTCTL_SERVE_QUEUE_SIZ", "1")
    with pytest.raises(ServeConfigError, match="unknown environment variable ARTCTL_SERVE_QUEUE_SIZ"):
        load_options(None, {})


def test_the_cli_server_takes_its_port_from_the_environment(tiny_model: Path) -> None:
    from artctl.cli.common import wait_for_server

    port = free_port()
    env = {**os.environ, "ARTCTL_SERVE_PORT": str(port), "ARTCTL_SERVE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "artctl", "serve", str(tiny_model)], env=env, cwd=REPO)
    try:
        wait_for_server(f"127.0.0.1:{port}", timeout=60, proc=proc)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_json_output_and_verify_exit_codes(tiny_model: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'name = "J"\nsize = 3\nsalt = "s"\nmodel = "{tiny_model}"\n')
    drop = tmp_path / "drop"
    minted = artctl("mint", str(config), "--out", str(drop), "--local", "--json")
    assert minted.returncode == 0, minted.stderr
    doc = json.loads(minted.stdout)
    assert doc["tokens"] == 3 and doc["provenance"] == (drop / "provenance.txt").read_text().strip()
    verified = artctl("verify", str(drop), "--local", "--model", str(tiny_model), "--json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"] is True
    (drop / "images" / "1.png").write_bytes((drop / "images" / "0.png").read_bytes())  # a swapped image
    mismatch = artctl("verify", str(drop), "--local", "--model", str(tiny_model), "--json")
    assert mismatch.returncode == 1 and json.loads(mismatch.stdout)["problems"]
    unreachable = artctl("verify", str(drop), "--server", f"127.0.0.1:{free_port()}")
    assert unreachable.returncode == 2 and unreachable.stderr.startswith("artctl: error: ")


def test_local_mint_resolves_default_to_the_embedded_model(tmp_path: Path) -> None:
    example = (REPO / "examples" / "collection.toml").read_text().replace("size = 100", "size = 2")
    config = tmp_path / "collection.toml"
    config.write_text(example)
    out = artctl("mint", str(config), "--out", str(tmp_path / "drop"), "--local", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["tokens"] == 2


@pytest.mark.parametrize(
    ("recipient", "ok"),
    [
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", True),  # EIP-55 test vectors
        ("0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", True),
        ("0x52908400098527886E0F7030069857D2E4169EE7", True),  # all caps: no checksum to check
        ("0xde709f2102306220921060314715629080e2fb77", True),  # all lower: no checksum to check
        ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1Beaed", False),  # one letter's case off
        ("0xFB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", False),
    ],
)
def test_royalty_recipients_pass_eip55(recipient: str, ok: bool) -> None:
    raw = {"name": "x", "size": 1, "salt": "s", "royalties": {"basis_points": 5, "recipient": recipient}}
    if ok:
        assert parse_collection(raw).royalties is not None
    else:
        with pytest.raises(ConfigError, match="EIP-55 checksum is wrong"):
            parse_collection(raw)


def test_long_commands_report_progress(tiny_run: Path, tmp_path: Path) -> None:
    exported = artctl("export", str(tiny_run), "--out", str(tmp_path / "m.onnx"), "--parity-seeds", "8")
    assert exported.returncode == 0, exported.stderr
    assert "export: checking parity with PyTorch (8 seeds" in exported.stderr
    import numpy as np
    from PIL import Image

    real = tmp_path / "real"
    real.mkdir()
    for i in range(10):
        pixels = np.random.default_rng(i).integers(0, 256, (16, 16, 4), dtype=np.uint8)
        Image.fromarray(pixels, "RGBA").save(real / f"{i}.png")
    fid = ["metrics", "fid", "--model", str(tmp_path / "m.onnx"), "--data", str(real), "--n", "16"]
    cold = {"HOME": str(tmp_path)}  # an empty feature cache: the real set's features are computed
    scored = artctl(*fid, env=cold)
    assert scored.returncode == 0, scored.stderr
    assert "10 real images" in scored.stderr and "generated" in scored.stderr and "FID" in scored.stdout
    as_json = artctl(*fid, "--json", env=cold)
    assert json.loads(as_json.stdout)["generated"] == 16 and as_json.stderr == ""


def test_json_errors_are_a_json_object_on_stdout(tmp_path: Path) -> None:
    missing = artctl("mint", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "d"), "--local", "--json")
    assert missing.returncode == 1 and missing.stderr.startswith("artctl: error: ")
    doc = json.loads(missing.stdout)
    assert doc["exit_code"] == 1 and "does not exist" in doc["error"]
    unverifiable = artctl("verify", str(tmp_path / "no-drop"), "--local", "--json")
    assert unverifiable.returncode == 2 and json.loads(unverifiable.stdout)["exit_code"] == 2
    usage = artctl("mint", "c.toml", "--out", str(tmp_path / "d"), "--local", "--format", "nft", "--json")
    assert usage.returncode == 2 and "Usage:" in usage.stderr, "a usage error stays one, with its usage line"
    doc = json.loads(usage.stdout)
    assert doc["exit_code"] == 2 and "'nft' is not one of 'erc721', 'metaplex'" in doc["error"]
    no_drop = artctl("verify", "--json")
    assert no_drop.returncode == 2 and "Missing argument" in json.loads(no_drop.stdout)["error"]


def test_debug_shows_the_traceback_that_one_line_hides(tmp_path: Path) -> None:
    args = ("mint", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "d"), "--local")
    plain = artctl(*args)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines() == [f"artctl: error: collection config {args[1]} does not exist"]
    for shown in (artctl("--debug", *args), artctl(*args, env={"ARTCTL_DEBUG": "1"})):
        assert shown.returncode == 1 and "Traceback (most recent call last)" in shown.stderr
        assert "ConfigError: collection config" in shown.stderr


def test_bad_option_values_are_usage_errors_and_the_shell_completes_them(tmp_path: Path) -> None:
    bad_format = artctl("mint", "c.toml", "--out", str(tmp_path / "d"), "--local", "--format", "nft")
    assert bad_format.returncode == 2 and "'nft' is not one of 'erc721', 'metaplex'" in bad_format.stderr
    bad_provider = artctl("serve", "--provider", "gpu")
    assert bad_provider.returncode == 2 and "'gpu' is not one of 'auto', 'cpu', 'cuda'" in bad_provider.stderr
    installed = Path(sys.executable).parent / "artctl"  # the console script a shell completes

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_ARTCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": "3"}
        done = subprocess.run([str(installed)], capture_output=True, text=True, env=env, timeout=60)
        return done.stdout.split()

    assert complete("artctl mint --format ") == ["erc721", "metaplex"]
    assert complete("artctl serve --provider ") == ["auto", "cpu", "cuda"]


def test_the_example_salt_warning_comes_once_per_drop(tiny_model: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'name = "S"\nsize = 2\nsalt = "change-me-before-your-drop"\nmodel = "{tiny_model}"\n')
    first = artctl("mint", str(config), "--out", str(tmp_path / "drop"), "--local")
    assert first.returncode == 0 and "warning: the salt is the example's" in first.stderr
    again = artctl("mint", str(config), "--out", str(tmp_path / "drop"), "--local")  # a resume: same drop
    assert again.returncode == 0 and "salt" not in again.stderr
    other = artctl("mint", str(config), "--out", str(tmp_path / "drop2"), "--local")  # another drop
    assert "warning: the salt is the example's" in other.stderr


def test_without_a_terminal_progress_comes_as_plain_lines(tiny_model: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'name = "P"\nsize = 130\nsalt = "s"\nmodel = "{tiny_model}"\n')
    minted = artctl("mint", str(config), "--out", str(tmp_path / "drop"), "--local")  # stderr: a pipe
    assert minted.returncode == 0, minted.stderr
    lines = [line for line in minted.stderr.splitlines() if line.startswith("mint: ")]
    assert [line.split()[1] for line in lines] == ["64/130", "128/130", "130/130"]
    assert all("tokens/s  ETA " in line for line in lines)

    recipe = tmp_path / "tiny.json"
    tiny = {
        "network": {"resolution": 16, "channels": 4, "z_dim": 8, "g_base": 8, "d_base": 8},
        "data": "synthetic:shapes",
        "synthetic_size": 64,
        "batch": 4,
        "steps": 6,
        "log_every": 2,
        "sample_every": 6,
        "threads": 1,
    }
    recipe.write_text(json.dumps(tiny))
    trained = subprocess.run(
        [sys.executable, "-m", "artctl", "train", "--config", str(recipe), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "COLUMNS"},  # a log file: rich would cut at 80
    )
    assert trained.returncode == 0, trained.stderr
    steps = [line.split()[2] for line in trained.stderr.splitlines() if line.startswith("train: step ")]
    assert steps == ["2/6", "4/6", "6/6"]  # every log_every steps, the last one whole
    last = next(line for line in trained.stderr.splitlines() if line.startswith("train: step 6/6"))
    assert "kimg 0.02" in last and " D " in last and " G " in last and "img/s  ETA " in last
    assert f"recipe:     {tmp_path / 'run'}/config.json" in trained.stdout
