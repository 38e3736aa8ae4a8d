"""`artctl verify` on a drop whose image file was deleted: a mismatch that names the file, exit 1,
never an OS error that stops the check (exit 2)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import artctl

REPO = Path(__file__).resolve().parent.parent


def test_a_deleted_image_is_a_mismatch_naming_it(tiny_model: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'name = "Gone"\nsize = 4\nsalt = "s"\nmodel = "{tiny_model}"\n')
    drop = tmp_path / "drop"
    minted = artctl("mint", str(config), "--out", str(drop), "--local")
    assert minted.returncode == 0, minted.stderr
    (drop / "images" / "2.png").unlink()
    out = artctl("verify", str(drop), "--local", "--model", str(tiny_model))
    assert out.returncode == 1, out.stderr
    assert "images/2.png: missing" in out.stdout + out.stderr
    assert "Errno" not in out.stderr.splitlines()[-1]
