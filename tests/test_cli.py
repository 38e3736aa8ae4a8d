"""The command line as a user meets it: help, and one readable line (exit != 0) for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import artctl

REPO = Path(__file__).resolve().parent.parent


def test_help_lists_the_journey() -> None:
    out = artctl("--help")
    assert out.returncode == 0
    for command in ("train", "export", "serve", "mint", "inspect", "demo"):
        assert command in out.stdout
    for command in ("train", "export", "serve", "mint"):
        sub = artctl(command, "--help")
        assert sub.returncode == 0 and "Usage" in sub.stdout


def test_latent_one_liner_prints_the_spec_values() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from artctl.seeds import latent; print(latent(0, 4))"],
        capture_output=True,
        text=True,
        check=True,
    )
    values = [float(v) for v in out.stdout.strip(" []\n").split()]
    assert values == pytest.approx([0.9911377, -0.9246626, -0.61760896, -0.4820686], abs=1e-7)


def one_line_error(out: subprocess.CompletedProcess[str], text: str) -> None:
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("artctl: error: ") and text in lines[0], lines[0]


def test_export_errors_are_one_line(tmp_path: Path) -> None:
    one_line_error(
        artctl("export", str(tmp_path / "nope"), "--out", str(tmp_path / "m.onnx")), "does not exist"
    )
    (tmp_path / "model.pth").write_bytes(b"\x80\x04")
    one_line_error(artctl("export", str(tmp_path / "model.pth")), "pickle")
    assert not list(tmp_path.glob("*.onnx"))


def test_export_unknown_architecture(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    ck = tmp_path / "ck"
    shutil.copytree(tiny_run / "checkpoints" / "step-000004", ck)
    doc = json.loads((ck / "config.json").read_text())
    doc["train"]["network"]["architecture"] = "biggan"
    (ck / "config.json").write_text(json.dumps(doc))
    one_line_error(artctl("export", str(ck), "--out", str(tmp_path / "m.onnx")), "architecture")


def test_mint_and_serve_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text('name = "x"\nsize = -3\nsalt = "s"\n')
    one_line_error(artctl("mint", str(bad), "--out", str(tmp_path / "drop"), "--local"), "size")
    one_line_error(artctl("serve", str(tmp_path / "missing.onnx"), "--port", "0"), "does not exist")
    good = tmp_path / "g.toml"
    good.write_text('name = "x"\nsize = 3\nsalt = "s"\n')
    one_line_error(artctl("mint", str(good), "--out", str(tmp_path / "drop")), "--server")


def test_train_bad_data_is_one_line(tmp_path: Path) -> None:
    one_line_error(
        artctl("train", str(tmp_path / "none"), "--out", str(tmp_path / "run"), "--steps", "1"),
        "does not exist",
    )


def test_inspect_prints_the_card(tiny_model: Path) -> None:
    out = artctl("inspect", str(tiny_model))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["card"]["architecture"] == "dcgan" and doc["outputs"]["image"][0] == "tensor(uint8)"


def test_train_has_a_flag_for_every_config_field_with_its_choices() -> None:
    from artctl_trainer.config import NetworkConfig, TrainConfig

    shown = artctl("train", "-h").stdout
    fields = [*TrainConfig.model_fields, *NetworkConfig.model_fields]
    missing = [
        name
        for name in fields
        if name not in ("network", "data", "label_names", "palette", "trait_values")
        and f"--{name.replace('_', '-')}" not in shown
    ]
    assert missing == []
    assert "<bce|hinge|wgan-gp|lsgan|rpgan>" in shown and "<rgb|snap>" in shown and "<0|3|4>" in shown
    dry = artctl(
        *("train", "synthetic:shapes", "--dry-run", "--lr", "0.001", "--output", "snap"),
        *("--mapping-layers", "4", "--unconditional", "--ema-decay", "0.99"),
    )
    assert dry.returncode == 0, dry.stderr
    cfg = json.loads(dry.stdout)
    assert (cfg["lr_g"], cfg["lr_d"], cfg["ema_decay"]) == (0.001, 0.001, 0.99)
    assert (cfg["network"]["output"], cfg["network"]["mapping_layers"]) == ("snap", 4)
    assert cfg["network"]["conditional"] is False
    for bad in (("--loss", "nope"), ("--channels", "5"), ("--memory-format", "nhwc")):
        refused = artctl("train", "--dry-run", *bad)
        assert refused.returncode == 2 and "is not one of" in refused.stderr, bad
