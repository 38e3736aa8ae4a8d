"""Re-derivable by anyone: the standalone script in docs/seed-contract.md re-renders every token of
a freshly minted drop from manifest.json and the model file alone (numpy, onnxruntime, hashlib;
no artctl), and `artctl verify` says what differs when a drop was rendered under another profile."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from artctl.collection import CollectionConfig
from artctl.drops.mint import mint
from artctl.drops.render import ServerRenderer
from artctl.drops.verify import DIFFERENT, IDENTICAL, NEAR, verify
from artctl.models import embedded, embedded_default
from artctl_serving.local import LocalRenderer
from tests.helpers import running_server

REPO = Path(__file__).resolve().parent.parent
CONTRACT = REPO / "docs" / "seed-contract.md"
ALLOWED_IMPORTS = {"hashlib", "json", "sys", "numpy", "onnxruntime"}
FAMILY = {
    "name": "Family",
    "kind": "conditioning",
    "values": ["Faces", "Animals", "Food", "Travel"],
    "weights": [40, 30, 20, 10],
    "labels": ["smileys-emotion", "animals-nature", "food-drink", "travel-places"],
}


def snippet(tmp: Path) -> Path:
    """The re-derivation script, exactly as the contract document shows it."""
    text = CONTRACT.read_text(encoding="utf-8")
    section = text.split("## Re-derive a drop yourself", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.DOTALL)
    path = tmp / "rederive.py"
    path.write_text(code)
    return path


@pytest.fixture(scope="module")
def emoji_model() -> Path:
    """The embedded StyleGAN-type model: these drops use psi and its emoji labels."""
    model = embedded("emoji")
    assert model is not None, "the package ships emoji.onnx"
    return model


def config(size: int, salt: str, psi: float | None = None) -> CollectionConfig:
    return CollectionConfig.model_validate(
        {"name": "Rederive", "size": size, "salt": salt, "psi": psi, "traits": [FAMILY]}
    )


def run_snippet(script: Path, drop: Path, model: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), str(drop), str(model)], capture_output=True, text=True, timeout=600
    )


def test_the_snippet_is_short_and_needs_no_artctl(tmp_path: Path) -> None:
    code = snippet(tmp_path).read_text()
    assert len(code.strip().splitlines()) <= 50  # one screen
    imported = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(str(node.module).split(".")[0])
    assert imported <= ALLOWED_IMPORTS, imported


def test_local_and_served_drops_of_1000_tokens_rederive_with_the_documented_snippet(
    emoji_model: Path, tmp_path: Path
) -> None:
    script = snippet(tmp_path)
    renderer = LocalRenderer(emoji_model)
    z_dim = renderer.model_card()["z_dim"]
    local = mint(config(1000, "local-salt"), tmp_path / "local", renderer)
    with running_server([emoji_model], max_seeds_per_request=256) as (_, target):
        from artctl.client import GeneratorClient

        with GeneratorClient(target) as client:
            served = mint(
                config(1000, "served-salt", psi=0.55), tmp_path / "served", ServerRenderer(client, "")
            )
    for result, psi in ((local, 0.7), (served, 0.55)):
        manifest = json.loads(result.manifest.read_text())
        assert manifest["format"] == "artctl-manifest-v4"
        assert manifest["inputs"]["psi"] == psi and manifest["inputs"]["z_dim"] == z_dim
        assert all(t["label_name"] == manifest["inputs"]["labels"][t["label"]] for t in manifest["tokens"])
        done = run_snippet(script, result.out_dir, emoji_model)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip() == "1000 of 1000 tokens re-derived"


def test_a_drop_of_the_nouns_default_rederives_with_the_documented_snippet(tmp_path: Path) -> None:
    """The product's face: a palette-snapped DCGAN without psi, re-derived by a plain session."""
    model = embedded_default()
    assert model is not None, "the package ships default.onnx"
    renderer = LocalRenderer(model)
    card = renderer.model_card()
    assert card["architecture"] == "dcgan" and not card["has_psi"] and card["palette"]
    noggles = {
        "name": "Noggles",
        "kind": "conditioning",
        "values": ["Deep Teal", "Grass", "Hip Rose", "Square Black"],
        "weights": [1, 1, 1, 1],
        "labels": ["deep-teal", "grass", "hip-rose", "square-black"],
    }
    cfg = CollectionConfig.model_validate(
        {"name": "Nouns", "size": 200, "salt": "nouns-salt", "traits": [noggles]}
    )
    result = mint(cfg, tmp_path / "drop", renderer)
    manifest = json.loads(result.manifest.read_text())
    assert manifest["inputs"]["psi"] is None
    assert {t["label_name"] for t in manifest["tokens"]} == set(noggles["labels"])
    done = run_snippet(snippet(tmp_path), result.out_dir, model)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "200 of 200 tokens re-derived"


def test_the_snippet_catches_a_wrong_pixel_hash(emoji_model: Path, tmp_path: Path) -> None:
    result = mint(config(3, "tamper"), tmp_path / "drop", LocalRenderer(emoji_model))
    manifest = json.loads(result.manifest.read_text())
    manifest["tokens"][1]["pixel_sha256"] = "0" * 64
    (result.out_dir / "manifest.json").write_text(json.dumps(manifest))
    done = run_snippet(snippet(tmp_path), result.out_dir, emoji_model)
    assert done.returncode == 1 and done.stdout.strip() == "2 of 3 tokens re-derived"


def test_verify_classifies_a_drop_rendered_under_another_optimisation_level(
    emoji_model: Path, tmp_path: Path
) -> None:
    drop = mint(config(128, "levels"), tmp_path / "drop", LocalRenderer(emoji_model, level="all")).out_dir
    assert (
        json.loads((drop / "manifest.json").read_text())["render_profile"]["graph_optimization"]
        == "ORT_ENABLE_ALL"
    )
    report = verify(drop, LocalRenderer(emoji_model, level="extended"))
    assert report.profile_differences == {"graph_optimization": ("ORT_ENABLE_ALL", "ORT_ENABLE_EXTENDED")}
    assert sum(report.classes.values()) == 128
    assert report.classes[NEAR] + report.classes[DIFFERENT] > 0 and report.problems
    if report.classes[NEAR]:
        assert report.near_pixels >= report.classes[NEAR]
    # The same drop, re-rendered under its own recorded profile: every token identical.
    same = verify(drop, LocalRenderer(emoji_model, level="all"))
    assert same.ok and same.classes[IDENTICAL] == 128 and not same.profile_differences
    cli = subprocess.run(
        [sys.executable, "-m", "artctl", "verify", str(drop), "--local", "--model", str(emoji_model)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr


def test_a_plain_onnxruntime_session_renders_what_the_server_renders(emoji_model: Path) -> None:
    """A collector's first try: onnxruntime with no options at all (its default, ENABLE_ALL)."""
    import grpc
    import numpy as np
    import onnxruntime as ort

    from artctl.seeds import latents, pixel_sha256
    from artctl.v1 import generator_pb2 as pb
    from artctl.v1 import generator_pb2_grpc as pb_grpc

    seeds = list(range(256))
    session = ort.InferenceSession(str(emoji_model), providers=["CPUExecutionProvider"])
    feeds = {
        "z": latents(seeds, 128),
        "psi": np.full(256, 0.7, np.float32),
        "label": np.array([s % 9 for s in seeds], np.int64),
    }
    plain = [pixel_sha256(img) for img in session.run(["image"], feeds)[0]]
    served = []
    with running_server([emoji_model]) as (_, target), grpc.insecure_channel(target) as ch:
        for half in (slice(0, 128), slice(128, 256)):  # raw 64 px RGBA: two replies under 4 MiB each
            labels = [int(v) for v in feeds["label"][half]]
            request = pb.GenerateRequest(
                seeds=seeds[half], psi=0.7, labels=labels, format=pb.IMAGE_FORMAT_RAW
            )
            reply = pb_grpc.GeneratorStub(ch).Generate(request)
            served += [a.pixel_sha256 for a in reply.artworks]
        (card,) = pb_grpc.GeneratorStub(ch).ListModels(pb.ListModelsRequest()).models
    assert served == plain
    for profile in (reply.profile, card.profile):
        assert profile.graph_optimization == "ORT_ENABLE_ALL" and profile.execution_mode == "ORT_SEQUENTIAL"
        assert profile.cpu_isa and profile.runtime.startswith("onnxruntime ")


def test_renders_at_enable_all_do_not_depend_on_threads_or_batch(emoji_model: Path) -> None:
    import numpy as np

    from artctl_serving.runtime import Engine, load_model

    seeds = np.arange(24, dtype=np.uint64)
    one_thread = load_model(emoji_model, engine=Engine.choose("cpu", threads=1)).render(seeds)
    four = load_model(emoji_model, engine=Engine.choose("cpu", threads=4))
    alone = np.stack([four.render(seeds[i : i + 1])[0] for i in range(len(seeds))])
    np.testing.assert_array_equal(alone, one_thread)
