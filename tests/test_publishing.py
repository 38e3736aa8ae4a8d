"""What cannot be undone once a drop is on chain: token URIs that name real files, a collection
image that is not a placeholder, and the Sugar config that carries a Metaplex drop's royalties."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from artctl.cid import cid_of_bytes
from artctl.collection import CollectionConfig, parse_collection
from artctl.drops.mint import mint
from artctl.drops.sugar_config import check_sugar_config
from artctl.drops.verify import verify
from artctl_serving.local import LocalRenderer
from tests.helpers import DERIVED, artctl

REPO = Path(__file__).resolve().parent.parent
SOL = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"
CID = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


def write_config(path: Path, model: Path, extra: str = "") -> Path:
    path.write_text(f'name = "Pub"\nsymbol = "PUB"\nsize = 6\nsalt = "s"\nmodel = "{model}"\n{extra}')
    return path


def config(**fields: object) -> CollectionConfig:
    base = {"name": "Pub", "symbol": "PUB", "size": 6, "salt": "s", "start_index": 1, "traits": DERIVED}
    return CollectionConfig.model_validate({**base, **fields})


@pytest.mark.parametrize(
    ("base_uri", "message"),
    [
        (
            f"ipfs://{CID}",
            f"lacks its trailing slash (token URIs are base_uri + '1.png'); use 'ipfs://{CID}/'",
        ),
        ("not a uri", "is not a URI"),
        ("https://cdn.example/art/?v=1", "has a query or fragment"),
    ],
)
def test_mint_refuses_a_base_uri_that_names_no_files(
    tiny_model: Path, tmp_path: Path, base_uri: str, message: str
) -> None:
    cfg = write_config(tmp_path / "c.toml", tiny_model, f'base_uri = "{base_uri}"\n')
    out = tmp_path / "drop"
    done = artctl("mint", str(cfg), "--out", str(out), "--local")
    assert done.returncode == 1 and message in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("artctl: error: ")
    assert not out.exists()  # refused before anything was written


def test_rebase_refuses_a_bad_base_uri_and_leaves_the_drop_as_it_was(
    tiny_model: Path, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    mint(config(), drop, LocalRenderer(tiny_model))
    before = {p.name: p.read_bytes() for p in (drop / "metadata").iterdir()}
    manifest = (drop / "manifest.json").read_bytes()
    usage = artctl("rebase", str(drop), "--base-uri", "not a uri")
    assert usage.returncode == 2 and "is not a URI" in usage.stderr
    slash = artctl("rebase", str(drop), "--base-uri", f"ipfs://{CID}")
    assert slash.returncode == 2 and f"use 'ipfs://{CID}/'" in slash.stderr
    assert {p.name: p.read_bytes() for p in (drop / "metadata").iterdir()} == before
    assert (drop / "manifest.json").read_bytes() == manifest


def test_verify_catches_token_uris_without_the_slash_offline(tiny_model: Path, tmp_path: Path) -> None:
    # What an older artctl wrote for base_uri = "ipfs://CID": every token's URI is ipfs://CID1.png.
    raw = {**config().model_dump(mode="json", exclude_none=True), "base_uri": f"ipfs://{CID}"}
    legacy = parse_collection(raw, recorded=True)
    drop = tmp_path / "drop"
    mint(legacy, drop, LocalRenderer(tiny_model))
    assert json.loads((drop / "metadata" / "1.json").read_text())["image"] == f"ipfs://{CID}1.png"
    report = verify(drop, LocalRenderer(tiny_model))
    assert not report.ok
    assert any("base_uri" in p and f"use 'ipfs://{CID}/'" in p for p in report.problems)
    assert any(p.startswith("token 1: image URI") and "'/1.png'" in p for p in report.problems)
    good = tmp_path / "good"
    mint(config(base_uri=f"ipfs://{CID}/"), good, LocalRenderer(tiny_model))
    assert verify(good, LocalRenderer(tiny_model)).ok


def test_ipfs_true_names_the_collection_image_by_its_own_cid(tiny_model: Path, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    result = mint(config(ipfs=True, image="ipfs://<collection-image-CID>"), drop, LocalRenderer(tiny_model))
    image = json.loads((drop / "collection.json").read_text())["image"]
    assert image == f"ipfs://{cid_of_bytes((drop / 'contact-sheet.png').read_bytes())}"
    assert not any("collection.json" in note for note in result.notes)
    assert verify(drop, LocalRenderer(tiny_model)).ok
    (drop / "collection.json").write_text(
        (drop / "collection.json").read_text().replace(image, "ipfs://<collection-image-CID>")
    )
    assert any(p.startswith("collection.json") for p in verify(drop, LocalRenderer(tiny_model)).problems)


def test_mint_says_the_collection_image_is_a_placeholder_and_rebase_fills_it(
    tiny_model: Path, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path / "c.toml", tiny_model, 'image = "ipfs://<collection-image-CID>"\n')
    drop = tmp_path / "drop"
    minted = artctl("mint", str(cfg), "--out", str(drop), "--local")
    assert minted.returncode == 0, minted.stderr
    sheet_cid = cid_of_bytes((drop / "contact-sheet.png").read_bytes())
    assert "collection.json's image is the placeholder 'ipfs://<collection-image-CID>'" in minted.stdout
    assert f"ipfs://{sheet_cid}" in minted.stdout
    rebased = artctl("rebase", str(drop), "--images-cid")
    assert rebased.returncode == 0, rebased.stderr
    assert json.loads((drop / "collection.json").read_text())["image"] == f"ipfs://{sheet_cid}"
    assert verify(drop, LocalRenderer(tiny_model)).ok
    again = artctl("mint", str(cfg), "--out", str(drop), "--local")  # the original config: the way out
    assert again.returncode == 1 and "artctl rebase" in again.stderr


def test_a_metaplex_drop_carries_sugars_config(tiny_model: Path, tmp_path: Path) -> None:
    royalties = f'[royalties]\nbasis_points = 550\nrecipient = "{SOL}"\n'
    cfg = write_config(tmp_path / "c.toml", tiny_model, royalties)
    drop = tmp_path / "sol"
    minted = artctl("mint", str(cfg), "--out", str(drop), "--local", "--format", "metaplex")
    assert minted.returncode == 0, minted.stderr
    sugar = json.loads((drop / "config.json").read_text())
    assert (sugar["number"], sugar["symbol"], sugar["sellerFeeBasisPoints"]) == (6, "PUB", 550)
    assert sugar["creators"] == [{"address": SOL, "share": 100}]
    assert (sugar["tokenStandard"], sugar["isMutable"]) == ("nft", True)
    assert "uploadMethod" in minted.stdout and "awsConfig" in minted.stdout  # left to the user, named
    assert (
        check_sugar_config(
            drop, parse_collection(json.loads((drop / "manifest.json").read_text())["collection"])
        )
        == []
    )

    sugar.update(uploadMethod="aws", awsConfig={"bucket": "b", "profile": "p", "directory": "d"})
    (drop / "config.json").write_text(json.dumps(sugar))
    resumed = artctl("mint", str(cfg), "--out", str(drop), "--local", "--format", "metaplex")
    assert resumed.returncode == 0 and "uploadMethod" not in resumed.stdout
    assert json.loads((drop / "config.json").read_text())["uploadMethod"] == "aws"  # the user's choice kept
    assert verify(drop, LocalRenderer(tiny_model)).ok

    sugar.update(sellerFeeBasisPoints=0, creators=[{"address": SOL, "share": 60}])
    (drop / "config.json").write_text(json.dumps(sugar))
    problems = verify(drop, LocalRenderer(tiny_model)).problems
    assert "config.json: sellerFeeBasisPoints is 0, the drop's is 550" in problems
    assert "config.json: creators' shares add up to 60, not 100" in problems


def test_metaplex_without_a_royalty_recipient_is_refused_before_writing(
    tiny_model: Path, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path / "c.toml", tiny_model)
    done = artctl("mint", str(cfg), "--out", str(tmp_path / "sol"), "--local", "--format", "metaplex")
    assert done.returncode == 1 and "needs [royalties] with a Solana recipient" in done.stderr
    assert not (tmp_path / "sol").exists()
