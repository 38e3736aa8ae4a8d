"""IPFS and marketplace layouts with the real tools' rules: directory CIDs equal the JS reference
importer's, an ERC-721 drop is rebased onto its uploaded images without rendering, and a Metaplex
drop is a folder Sugar accepts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from artctl.cid import directory_cid
from artctl.collection import CollectionConfig
from artctl.drops import MintError
from artctl.drops.mint import mint
from artctl.drops.rebase import rebase
from artctl.drops.sugar import check_assets
from artctl.drops.verify import verify
from artctl_serving.local import LocalRenderer
from tests.helpers import DERIVED

IPFS = Path(__file__).resolve().parent / "ipfs"
SOL = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"


@pytest.fixture(scope="module")
def js_importer() -> Path:
    if not (IPFS / "node_modules" / "ipfs-unixfs-importer").is_dir() or shutil.which("node") is None:
        if os.environ.get("CI"):
            pytest.fail("the JS IPFS importer is missing: make test installs it (npm ci in tests/ipfs)")
        pytest.skip("the JS IPFS importer is not installed (cd tests/ipfs && npm ci)")
    return IPFS / "directory-cid.mjs"


def js_cid(script: Path, folder: Path) -> str:
    done = subprocess.run(
        ["node", str(script), str(folder)], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


def config(**fields: object) -> CollectionConfig:
    base = {
        "name": "Pinned",
        "symbol": "PIN",
        "size": 12,
        "salt": "ipfs",
        "start_index": 1,
        "traits": DERIVED,
    }
    return CollectionConfig.model_validate({**base, **fields})


def test_directory_cids_equal_the_reference_importers(js_importer: Path, tmp_path: Path) -> None:
    odd = tmp_path / "odd"
    odd.mkdir()
    for name, data in (
        ("10.png", b"ten"),
        ("2.png", b"two"),
        ("big.bin", os.urandom(700_000)),
        ("é.json", b"{}"),
    ):
        (odd / name).write_bytes(data)  # byte-order sorting, a multi-chunk file, a non-ASCII name
    assert directory_cid(sorted(odd.iterdir())) == js_cid(js_importer, odd)


def test_a_drop_records_its_folders_cids_and_rebases_onto_them(
    js_importer: Path, tiny_model: Path, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    result = mint(config(), drop, LocalRenderer(tiny_model))  # no base_uri: the placeholder
    assert any("placeholder" in note and "rebase" in note for note in result.notes)
    head = json.loads((drop / "manifest.json").read_text())
    images_cid = head["ipfs_directories"]["images"]
    assert images_cid == js_cid(js_importer, drop / "images")
    assert head["ipfs_directories"]["metadata"] == js_cid(js_importer, drop / "metadata")
    images_before = {p.name: p.read_bytes() for p in (drop / "images").iterdir()}
    with pytest.raises(
        MintError, match="artctl rebase"
    ):  # the same drop, other URIs: refused, with the way out
        mint(config(base_uri="https://example.com/art/"), drop, LocalRenderer(tiny_model))

    rebased = rebase(drop, images_cid=True)
    assert rebased.provenance == result.provenance
    assert {p.name: p.read_bytes() for p in (drop / "images").iterdir()} == images_before
    token = json.loads((drop / "metadata" / "5.json").read_text())
    assert token["image"] == f"ipfs://{images_cid}/5.png"
    head = json.loads((drop / "manifest.json").read_text())
    assert head["collection"]["base_uri"] == f"ipfs://{images_cid}/"
    assert head["ipfs_directories"]["metadata"] == js_cid(js_importer, drop / "metadata")
    assert verify(drop, LocalRenderer(tiny_model)).ok
    assert rebase(drop, base_uri="https://cdn.example/img/").tokens == 12  # again, elsewhere
    assert json.loads((drop / "metadata" / "5.json").read_text())["image"] == "https://cdn.example/img/5.png"


def test_a_metaplex_drop_is_a_folder_sugar_accepts(tiny_model: Path, tmp_path: Path) -> None:
    royalties = {"basis_points": 500, "recipient": SOL}
    drop = tmp_path / "sol"
    mint(config(royalties=royalties), drop, LocalRenderer(tiny_model), fmt="metaplex")
    assets = drop / "assets"
    assert check_assets(assets) == []
    names = sorted(p.name for p in assets.iterdir())
    assert names[:4] == ["0.json", "0.png", "1.json", "1.png"] and "collection.png" in names
    first = json.loads((assets / "0.json").read_text())
    assert first["name"] == "Pinned #1" and first["image"] == "0.png"  # asset 0 is token 1
    assert first["properties"]["files"] == [{"uri": "0.png", "type": "image/png"}]
    assert "creators" not in first["properties"] and first["seller_fee_basis_points"] == 500
    assert not (drop / "images").exists() and not (drop / "metadata").exists()
    assert verify(drop, LocalRenderer(tiny_model)).ok


@pytest.mark.parametrize(
    ("what", "breakage", "problem"),
    [
        ("a gap", lambda a: (a / "3.json").unlink(), "without gaps"),
        ("an extra json", lambda a: (a / "manifest.json").write_text("{}"), "accepts only N.json"),
        ("two images", lambda a: shutil.copy(a / "2.png", a / "2.jpg"), "exactly one image"),
        (
            "a number value",
            lambda a: _edit(a / "4.json", attributes=[{"trait_type": "n", "value": 3}]),
            "non-string",
        ),
        ("no files", lambda a: _edit(a / "5.json", properties={"category": "image"}), "properties.files"),
        ("a long name", lambda a: _edit(a / "6.json", name="x" * 33), "over 32"),
        ("bad shares", lambda a: _edit(a / "7.json", properties=_shares(a / "7.json")), "add up to 100"),
    ],
)
def test_the_sugar_check_catches(
    tiny_model: Path, tmp_path: Path, what: str, breakage: object, problem: str
) -> None:
    drop = tmp_path / "sol"
    mint(
        config(royalties={"basis_points": 0, "recipient": SOL}),
        drop,
        LocalRenderer(tiny_model),
        fmt="metaplex",
    )
    breakage(drop / "assets")  # type: ignore[operator]
    found = check_assets(drop / "assets")
    assert any(problem in p for p in found), (what, found)


def _edit(path: Path, **fields: object) -> None:
    doc = json.loads(path.read_text())
    doc.update(fields)
    path.write_text(json.dumps(doc))


def _shares(path: Path) -> dict[str, object]:
    properties = json.loads(path.read_text())["properties"]
    return {**properties, "creators": [{"address": SOL, "share": 60}]}
