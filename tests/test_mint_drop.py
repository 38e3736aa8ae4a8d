"""Whole drops through the real CLI and library: schemas, conditioning, kill -9 + resume, shards,
verify. Real files, real ONNX Runtime, a real server on loopback; expectations are computed here
(ONNX Runtime called directly, the seed contract, hashes of the files) rather than recorded.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import onnxruntime as ort
import pytest

from artctl.cid import cid_of_bytes
from artctl.client import GeneratorClient
from artctl.collection import CollectionConfig
from artctl.drops.mint import mint
from artctl.drops.render import ServerRenderer
from artctl.drops.verify import verify
from artctl.imaging import decode_png
from artctl.seeds import latents, pixel_sha256, provenance, token_seed, trait_draw
from artctl_serving.local import LocalRenderer
from tests.helpers import DERIVED, artctl

REPO = Path(__file__).resolve().parent.parent

DATA = Path(__file__).resolve().parent / "data"
EVM = "0x000000000000000000000000000000000000dEaD"
SOL = "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"

SUBJECT = {
    "name": "Subject",
    "kind": "conditioning",
    "values": ["Circle", "Square", "Triangle"],
    "weights": [60, 30, 10],
    "labels": ["circle", "square", "triangle"],
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def write_config(path: Path, model: Path | str, **kw: Any) -> Path:
    """A collection TOML (top-level keys, [royalties], [[traits]])."""
    doc: dict[str, Any] = {"name": "Drop", "symbol": "DRP", "size": 40, "salt": "pepper", "start_index": 1}
    doc.update(model=str(model), **kw)
    royalties = doc.pop("royalties", None)
    traits = doc.pop("traits", [])
    lines = [f"{k} = {toml_value(v)}" for k, v in doc.items()]
    if royalties:
        lines += ["[royalties]", *(f"{k} = {toml_value(v)}" for k, v in royalties.items())]
    for trait in traits:
        lines += ["[[traits]]", *(f"{k} = {toml_value(v)}" for k, v in trait.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_same_tree(a: Path, b: Path) -> None:
    ta, tb = tree(a), tree(b)
    assert sorted(ta) == sorted(tb)
    for name in ta:
        assert ta[name] == tb[name], name


@pytest.fixture(scope="module")
def cond_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny conditional model (labels circle, square, triangle, diamond)."""
    from artctl_exporter.export import export_checkpoint
    from tests.helpers import train_tiny

    run = tmp_path_factory.mktemp("cond") / "run"
    train_tiny(run, conditional=True)
    out = run.parent / "cond.onnx"
    export_checkpoint(run, out, parity_seeds=16)
    return out


def test_metadata_validates_against_erc721_and_metaplex_schemas(tiny_model: Path, tmp_path: Path) -> None:
    erc721 = json.loads((DATA / "erc721-metadata.schema.json").read_text())
    metaplex = json.loads((DATA / "metaplex-metadata.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(erc721)
    jsonschema.Draft7Validator.check_schema(metaplex)
    base = {"name": "Drop", "symbol": "DRP", "size": 12, "salt": "s", "start_index": 1, "traits": DERIVED}
    cfg = CollectionConfig(**base, ipfs=True, royalties={"basis_points": 750, "recipient": EVM})
    mint(cfg, tmp_path / "evm", LocalRenderer(tiny_model))
    manifest = json.loads((tmp_path / "evm" / "manifest.json").read_text())
    for entry in manifest["tokens"]:
        meta = json.loads((tmp_path / "evm" / "metadata" / f"{entry['id']}.json").read_text())
        jsonschema.validate(meta, erc721)
        png = (tmp_path / "evm" / "images" / f"{entry['id']}.png").read_bytes()
        assert meta["image"] == f"ipfs://{cid_of_bytes(png)}" == f"ipfs://{entry['cid']}"
        assert [a["trait_type"] for a in meta["attributes"]] == ["Palette", "Brightness", "Background"]
        assert {a["trait_type"]: a["value"] for a in meta["attributes"]} == entry["traits"]
    collection = json.loads((tmp_path / "evm" / "collection.json").read_text())
    assert collection["seller_fee_basis_points"] == 750 and collection["fee_recipient"] == EVM
    assert collection["artctl"]["provenance"] == manifest["provenance"]

    cfg = CollectionConfig(**base, base_uri="ar://xyz/", royalties={"basis_points": 500, "recipient": SOL})
    mint(cfg, tmp_path / "sol", LocalRenderer(tiny_model), fmt="metaplex")
    for i in range(1, 13):  # Sugar's asset folder: numbered from 0, images named by file
        meta = json.loads((tmp_path / "sol" / "assets" / f"{i - 1}.json").read_text())
        jsonschema.validate(meta, metaplex)
        assert meta["name"] == f"Drop #{i}"
        assert meta["image"] == f"{i - 1}.png" == meta["properties"]["files"][0]["uri"]
        assert meta["seller_fee_basis_points"] == 500
        assert "creators" not in meta["properties"]  # deprecated off-chain: Sugar's config holds them
    with pytest.raises(jsonschema.ValidationError):  # the schema has teeth
        jsonschema.validate({"name": "x", "description": "y"}, erc721)


def test_conditioning_trait_steers_a_conditional_model(cond_model: Path, tmp_path: Path) -> None:
    cfg = CollectionConfig(name="Cond", size=24, salt="c", traits=[SUBJECT, *DERIVED])
    result = mint(cfg, tmp_path / "drop", LocalRenderer(cond_model))
    session = ort.InferenceSession(str(cond_model), providers=["CPUExecutionProvider"])
    z_dim = int(session.get_inputs()[0].shape[1])
    names = ["circle", "square", "triangle", "diamond"]
    for entry in result.entries:
        value = trait_draw("c", entry["id"], "Subject", SUBJECT["values"], SUBJECT["weights"])
        label = names.index(SUBJECT["labels"][SUBJECT["values"].index(value)])
        assert entry["traits"]["Subject"] == value and entry["label"] == label
        feeds = {
            "z": latents([token_seed("c", entry["id"])], z_dim),
            "label": np.array([label], dtype=np.int64),
        }
        (expected,) = session.run(["image"], feeds)[0]
        png = (tmp_path / "drop" / "images" / f"{entry['id']}.png").read_bytes()
        np.testing.assert_array_equal(decode_png(png), expected)
    assert verify(tmp_path / "drop", LocalRenderer(cond_model)).ok
    bad = CollectionConfig(
        name="Cond", size=4, salt="c", traits=[{**SUBJECT, "labels": ["circle", "star", "square"]}]
    )
    with pytest.raises(ValueError, match="no label 'star'"):
        mint(bad, tmp_path / "bad", LocalRenderer(cond_model))
    assert not (tmp_path / "bad").exists()


def _wait_for(predicate: Any, proc: subprocess.Popen[bytes], timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    raise AssertionError("timed out")


def _count(folder: Path) -> int:
    try:
        return sum(1 for p in os.scandir(folder) if p.name.endswith(".png"))
    except FileNotFoundError:
        return 0


def test_kill_9_then_resume_gives_the_same_bytes(tiny_model: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", tiny_model, size=700, traits=DERIVED, ipfs=True)
    ref = artctl("mint", str(config), "--out", str(tmp_path / "ref"), "--local")
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "drop"
    cmd = [sys.executable, "-m", "artctl", "mint", str(config), "--out", str(out), "--local"]
    kills = 0
    for stop_at in (40, 330, 10_000):  # mid-render twice, then as soon as the manifest appears
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if stop_at < 10_000:
            hit = _wait_for(lambda n=stop_at: _count(out / "images") >= n, proc)
        else:
            hit = _wait_for(lambda: (out / "manifest.json").exists(), proc)
        if hit and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
    assert kills >= 2  # the two mid-render kills landed
    # Damage that is not a crash: a stray temp file and a finished token overwritten in place.
    # A half-written file exactly as our atomic writer names it (mkstemp), left by a killed run.
    fd, _ = tempfile.mkstemp(dir=out / "images", prefix=".7.png.", suffix=".tmp")
    os.write(fd, b"half")
    os.close(fd)
    if (out / "images" / "3.png").exists():
        (out / "images" / "3.png").write_bytes(b"not a png")
    done = artctl("mint", str(config), "--out", str(out), "--local")
    assert done.returncode == 0, done.stderr
    assert_same_tree(tmp_path / "ref", out)
    again = artctl("mint", str(config), "--out", str(out), "--local")
    assert again.returncode == 0 and "(700 were done, verified)" in again.stdout
    assert_same_tree(tmp_path / "ref", out)


def test_shards_merged_equal_a_single_run(tiny_model: Path, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.toml",
        tiny_model,
        size=150,
        traits=DERIVED,
        royalties={"basis_points": 5, "recipient": EVM},
    )
    single = artctl("mint", str(config), "--out", str(tmp_path / "single"), "--local")
    assert single.returncode == 0, single.stderr
    shards = []
    for i in range(3):
        out = tmp_path / f"shard{i}"
        res = artctl("mint", str(config), "--out", str(out), "--local", "--shard", f"{i}/3")
        assert res.returncode == 0, res.stderr
        shards.append(str(out))
        part = json.loads((out / "manifest.json").read_text())
        assert [t["id"] for t in part["tokens"]] == list(range(1 + i * 50, 1 + (i + 1) * 50))
    missing = artctl("merge", str(tmp_path / "partial"), shards[0], shards[2])
    assert missing.returncode != 0 and "missing [1]" in missing.stderr
    merged = artctl("merge", str(tmp_path / "merged"), *reversed(shards))
    assert merged.returncode == 0, merged.stderr
    assert_same_tree(tmp_path / "single", tmp_path / "merged")
    assert json.loads((tmp_path / "merged" / "manifest.json").read_text())["provenance"] == provenance(
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((tmp_path / "merged" / "images").iterdir(), key=lambda p: int(p.stem))
    )
    bad = artctl("mint", str(config), "--out", str(tmp_path / "x"), "--local", "--shard", "3/3")
    assert bad.returncode != 0 and "need 0 <= i < n" in bad.stderr


@pytest.fixture()
def drop(tiny_model: Path, tmp_path: Path) -> Iterator[Path]:
    config = write_config(tmp_path / "c.toml", tiny_model, size=20, traits=DERIVED, ipfs=True)
    res = artctl("mint", str(config), "--out", str(tmp_path / "drop"), "--local")
    assert res.returncode == 0, res.stderr
    yield tmp_path / "drop"


def test_verify_passes_a_clean_drop_locally_and_through_a_server(
    drop: Path, tiny_model: Path, server: tuple[Any, str]
) -> None:
    ok = artctl("verify", str(drop), "--local")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "verified 20 tokens" in ok.stdout
    remote = artctl("verify", str(drop), "--server", server[1], "--model", "default")
    assert remote.returncode == 0, remote.stdout + remote.stderr


def test_verify_catches_a_swapped_image(drop: Path) -> None:
    a, b = drop / "images" / "4.png", drop / "images" / "5.png"
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    res = artctl("verify", str(drop), "--local")
    assert res.returncode != 0
    assert "images/4.png: file SHA-256 does not match" in res.stdout
    assert "images/5.png: its pixels are not token 5's" in res.stdout
    assert "mismatches in 20 tokens" in res.stderr


def test_verify_catches_an_edited_metadata_file(drop: Path) -> None:
    path = drop / "metadata" / "7.json"
    doc = json.loads(path.read_text())
    doc["attributes"][0]["value"] = "gold"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    res = artctl("verify", str(drop), "--local")
    assert res.returncode != 0
    assert "metadata/7.json: differs from the metadata the manifest gives (fields attributes)" in res.stdout


def test_verify_catches_a_wrong_provenance(drop: Path) -> None:
    (drop / "provenance.txt").write_text("0" * 64 + "\n")
    res = artctl("verify", str(drop), "--local")
    assert res.returncode != 0 and "provenance.txt: '" + "0" * 64 + "' is not the provenance" in res.stdout
    manifest = json.loads((drop / "manifest.json").read_text())
    right = manifest["provenance"]
    (drop / "provenance.txt").write_text(right + "\n")
    manifest["provenance"] = "f" * 64
    (drop / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    res = artctl("verify", str(drop), "--local")
    assert res.returncode != 0 and f"manifest.json: provenance {'f' * 64} should be {right}" in res.stdout


def test_a_folder_holding_another_drop_is_never_touched(drop: Path, tiny_model: Path, tmp_path: Path) -> None:
    # Hidden files that look like temporaries, but are someone else's, must survive too.
    (drop / ".important-draft.tmp").write_bytes(b"mine")
    (drop / "images" / ".upload.png.tmp").write_bytes(b"mine too")
    before = tree(drop)
    other = write_config(tmp_path / "other.toml", tiny_model, size=20, salt="other-salt")
    res = artctl("mint", str(other), "--out", str(drop), "--local")
    assert res.returncode != 0
    assert len(res.stderr.strip().splitlines()) == 1 and "already holds a different drop" in res.stderr
    assert tree(drop) == before


def test_server_mint_round_robin_resumes_and_matches_local(
    server: tuple[Any, str], tiny_model: Path, tmp_path: Path
) -> None:
    cfg = CollectionConfig(name="Srv", size=70, salt="srv", traits=DERIVED)
    local = mint(cfg, tmp_path / "local", LocalRenderer(tiny_model))
    with GeneratorClient([server[1], server[1]]) as client:
        remote = mint(cfg, tmp_path / "remote", ServerRenderer(client, "default"))
        assert [e["pixel_sha256"] for e in remote.entries] == [e["pixel_sha256"] for e in local.entries]
        assert [e["traits"] for e in remote.entries] == [e["traits"] for e in local.entries]
        assert remote.provenance == local.provenance
        (tmp_path / "remote" / "metadata" / "65.json").unlink()  # one chunk must be redone
        again = mint(cfg, tmp_path / "remote", ServerRenderer(client, "default"))
    assert again.rendered == 6 and again.provenance == remote.provenance
    for entry in again.entries:
        png = (tmp_path / "remote" / "images" / f"{entry['id']}.png").read_bytes()
        assert pixel_sha256(decode_png(png)) == entry["pixel_sha256"]
