"""Palette-exact output: `artctl export --palette` snaps every pixel in-graph to the nearest palette
colour (artctl-palette-v1), and what is served, minted and re-derived then uses palette colours only.

Real components throughout: tiny trained models, the real exporter, ONNX Runtime sessions, a real
server, mint, and the re-derivation script exactly as docs/seed-contract.md prints it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from PIL import Image

from artctl.modelcard import ModelCard
from artctl.palette import (
    PaletteError,
    in_palette,
    load_palette,
    palette_array,
    palette_sha256,
    parse_palette,
    snap,
)
from artctl.seeds import latents
from artctl_exporter.export import companion_path, export_checkpoint
from artctl_exporter.graphs import append_snap
from artctl_trainer.nouns import write_palette
from tests.helpers import train_tiny
from tests.test_rederive import run_snippet, snippet

REPO = Path(__file__).resolve().parent.parent
# Six colours with near-ties: the two mid greys are one step apart, so many pixels sit between them.
SIX = ["#000000", "#ffffff", "#7f7f7f", "#808080", "#c03020", "#2040c0"]
SIX_RGBA = ["#000000ff", "#ffffffff", "#7f7f7f80", "#80808080", "#c0302000", "#2040c0ff"]
SEEDS = np.arange(64, dtype=np.uint64)


def brute_snap(pixel: tuple[int, ...], colours: list[str]) -> tuple[int, ...]:
    """The rule in plain Python integers: smallest squared distance, then the lowest index."""
    pal = [tuple(bytes.fromhex(c[1:])) for c in colours]
    width = len(pal[0])
    dist = [sum((pixel[i] - c[i]) ** 2 for i in range(width)) for c in pal]
    best = min(range(len(pal)), key=lambda k: (dist[k], k))
    return tuple(pal[best]) + tuple(pixel[width:])


def snap_graph(colours: list[str], channels: int) -> ort.InferenceSession:
    """A tiny ONNX graph: uint8 pixels in, Identity to `image`, then the exporter's own snap."""
    shape = ["batch", "h", "w", channels]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["pixels"], ["image"], name="to_nhwc")],
        "snap",
        [helper.make_tensor_value_info("pixels", TensorProto.UINT8, shape)],
        [helper.make_tensor_value_info("image", TensorProto.UINT8, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    append_snap(model, colours, channels)
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def render(model: Path, seeds: np.ndarray = SEEDS, z_dim: int = 16) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(["image"], {"z": latents(seeds, z_dim)})[0]


# -- the file format and the reference snap --------------------------------------------------------------


def test_palette_files_are_checked_with_clear_errors(tmp_path: Path) -> None:
    def doc(colors: object) -> dict[str, object]:
        return {"version": "artctl-palette-v1", "colors": colors}

    with pytest.raises(PaletteError, match="257 colours; a palette holds at most 256"):
        parse_palette(doc([f"#{i:06x}" for i in range(257)]))
    assert len(parse_palette(doc([f"#{i:06x}" for i in range(256)]))) == 256
    with pytest.raises(PaletteError, match=r'2 malformed colour\(s\) \("#12345", "red"\)'):
        parse_palette(doc(["#000000", "#12345", "red"]))
    with pytest.raises(PaletteError, match="mixes #rrggbb and #rrggbbaa"):
        parse_palette(doc(["#000000", "#000000ff"]))
    with pytest.raises(PaletteError, match="no colours"):
        parse_palette(doc([]))
    with pytest.raises(PaletteError, match="version must be 'artctl-palette-v1'"):
        parse_palette({"version": "v0", "colors": ["#000000"]})
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(PaletteError, match="not a JSON palette file"):
        load_palette(tmp_path / "bad.json")
    with pytest.raises(PaletteError, match="no such palette file"):
        load_palette(tmp_path / "missing.json")


def test_the_nouns_writer_and_the_loader_agree_and_the_hash_is_canonical(tmp_path: Path) -> None:
    write_palette(tmp_path / "palette.json", ["#00AA00", "#ffffff"], "somewhere@1")
    assert load_palette(tmp_path / "palette.json") == ["#00aa00", "#ffffff"]
    expected = hashlib.sha256(b"artctl-palette-v1:#00aa00,#ffffff").hexdigest()
    assert palette_sha256(["#00AA00", "#ffffff"]) == palette_sha256(["#00aa00", "#ffffff"]) == expected
    assert palette_sha256(["#ffffff", "#00aa00"]) != expected  # order decides ties: it is identity


def test_the_numpy_snap_is_the_rule_in_integers() -> None:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, size=(300, 4), dtype=np.uint8)
    for colours in (SIX, SIX_RGBA):
        snapped = snap(pixels, colours)
        assert [tuple(p) for p in snapped] == [brute_snap(tuple(int(v) for v in p), colours) for p in pixels]
    tie = ["#000000", "#0a0000", "#080000"]  # the docs' example
    assert snap(np.array([[9, 0, 0], [4, 0, 0]], np.uint8), tie).tolist() == [[10, 0, 0], [0, 0, 0]]


# -- the in-graph snap, unit by unit ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("colours", "channels"), [(SIX, 3), (SIX, 4), (SIX_RGBA, 4)], ids=["rgb", "rgb-on-rgba", "rgba"]
)
def test_the_graph_snap_equals_the_reference_and_ties_go_to_the_lower_index(
    colours: list[str], channels: int
) -> None:
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 256, size=(3, 16, 16, channels), dtype=np.uint8)
    pal = palette_array(colours).astype(int)
    # Exact ties, built: the midpoint of two colours whose sum is even in every channel.
    for i, (a, b) in enumerate([(2, 3), (0, 2), (1, 3), (4, 5)]):
        mid = (pal[a] + pal[b]) // 2
        if np.all((pal[a] + pal[b]) % 2 == 0):
            pixels[0, 0, i, : pal.shape[1]] = mid
    pixels[0, 1, 0, :3] = (127, 127, 127)  # on #7f7f7f itself
    pixels[0, 1, 1, :3] = (128, 128, 128)  # on #808080 itself
    session = snap_graph(colours, channels)
    (out,) = session.run(["image"], {"pixels": pixels})
    assert out.dtype == np.uint8 and out.shape == pixels.shape
    np.testing.assert_array_equal(out, snap(pixels, colours))
    assert in_palette(out, colours)
    if channels == 4 and len(colours[0]) == 7:  # an RGB palette keeps the model's alpha
        np.testing.assert_array_equal(out[..., 3], pixels[..., 3])
    # A constructed tie where the lower index holds the larger value: index order wins, not value.
    tie = ["#000000", "#0a0000", "#080000"] if channels == 3 else ["#000000ff", "#0a0000ff", "#080000ff"]
    probe = np.zeros((1, 1, 2, channels), np.uint8)
    probe[0, 0, 0, 0], probe[0, 0, 1, 0] = 9, 4
    probe[..., 3:] = 255
    (tied,) = snap_graph(tie, channels).run(["image"], {"pixels": probe})
    assert tied[0, 0, :, 0].tolist() == [10, 0]
    np.testing.assert_array_equal(tied, snap(probe, tie))


def test_an_rgba_palette_needs_an_rgba_model() -> None:
    with pytest.raises(PaletteError, match="RGBA palette"):
        snap_graph(SIX_RGBA, 3)


# -- exported models -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def palette_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("palette") / "palette.json"
    write_palette(path, SIX, "tests")  # the writer `artctl data nouns` uses
    return path


@pytest.fixture(scope="module")
def exported(tiny_run: Path, palette_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny RGBA model exported with the RGB palette, an RGBA palette, and none (fp32 and fp16)."""
    folder = tmp_path_factory.mktemp("palette-models")
    rgba = folder / "rgba.json"
    rgba.write_text(json.dumps({"version": "artctl-palette-v1", "colors": SIX_RGBA}))
    out = {}
    for name, palette, precision in (
        ("snapped", palette_file, "fp32"),
        ("plain", "none", "fp32"),
        ("rgba", rgba, "fp32"),
        ("snapped16", palette_file, "fp16"),
        ("plain16", "none", "fp16"),
    ):
        out[name] = folder / f"{name}.onnx"
        export_checkpoint(tiny_run, out[name], parity_seeds=16, palette=str(palette), precision=precision)
    return out


def test_an_exported_model_gives_palette_colours_only_and_equals_the_reference_snap(
    exported: dict[str, Path],
) -> None:
    plain = render(exported["plain"])
    for name, colours in (("snapped", SIX), ("rgba", SIX_RGBA)):
        images = render(exported[name])
        assert images.shape == (64, 16, 16, 4) and images.dtype == np.uint8
        assert in_palette(images, colours)
        assert np.count_nonzero(images != snap(plain, colours)) == 0
    # fp16: the snap is appended after the conversion, so it snaps the fp16 model's own pixels exactly.
    images16 = render(exported["snapped16"])
    assert in_palette(images16, SIX)
    assert np.count_nonzero(images16 != snap(render(exported["plain16"]), SIX)) == 0
    model = onnx.load(str(exported["snapped16"]))
    snap_nodes = [n for n in model.graph.node if n.name.startswith("palette_snap")]
    assert [n.op_type for n in snap_nodes][-3:] == ["Gather", "Slice", "Concat"]  # alpha kept
    argmin = next(n for n in snap_nodes if n.op_type == "ArgMin")
    assert {a.name: a.i for a in argmin.attribute}["select_last_index"] == 0
    weights = {t.name: t for t in model.graph.initializer}["palette_snap_weights"]
    assert weights.data_type == TensorProto.FLOAT  # never halved


def test_the_card_records_the_palette_and_its_sha256(exported: dict[str, Path]) -> None:
    session = ort.InferenceSession(str(exported["snapped"]), providers=["CPUExecutionProvider"])
    card = ModelCard.from_metadata(session.get_modelmeta().custom_metadata_map)
    assert card.palette == SIX and card.palette_sha256 == palette_sha256(SIX)
    assert card.contracts["palette"] == "artctl-palette-v1"
    sidecar = json.loads(exported["snapped"].with_suffix(".json").read_text())
    assert sidecar["card"]["palette"] == SIX and sidecar["parity"]["palette_snap_mismatches"] == 0
    plain = ModelCard.from_metadata(
        ort.InferenceSession(str(exported["plain"]), providers=["CPUExecutionProvider"])
        .get_modelmeta()
        .custom_metadata_map
    )
    assert plain.palette == [] and plain.palette_sha256 == "" and "palette" not in plain.contracts


def test_models_without_a_palette_field_still_load() -> None:
    from artctl.models import embedded

    emoji = embedded("emoji")  # exported before palettes existed; the Nouns default has one
    assert emoji is not None
    meta = ort.InferenceSession(str(emoji), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert "palette" not in meta.custom_metadata_map
    card = ModelCard.from_metadata(meta.custom_metadata_map)
    assert card.palette == [] and card.palette_sha256 == ""


def test_auto_uses_the_checkpoints_recorded_palette_and_else_does_not_snap(
    tiny_run: Path, tmp_path: Path
) -> None:
    none = export_checkpoint(tiny_run, tmp_path / "auto-none.onnx", parity_seeds=8)
    assert none.card.palette == [] and "no snap" in none.palette_note
    source = (tiny_run / "checkpoints" / (tiny_run / "latest").read_text().strip()).resolve()
    ck = tmp_path / "ck"
    shutil.copytree(source, ck)
    doc = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**doc, "palette": SIX}))
    auto = export_checkpoint(ck, tmp_path / "auto.onnx", parity_seeds=8)
    assert auto.card.palette == SIX and "recorded in the checkpoint" in auto.palette_note
    assert in_palette(render(auto.path), SIX)


def test_the_cli_refuses_more_than_256_colours_and_says_what_auto_did(tiny_run: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"version": "artctl-palette-v1", "colors": [f"#{i:06x}" for i in range(300)]}))
    cmd = [sys.executable, "-m", "artctl", "export", str(tiny_run), "--parity-seeds", "8"]
    out = subprocess.run(
        [*cmd, "--out", str(tmp_path / "m.onnx"), "--palette", str(big)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("artctl: error: ") and "300 colours; a palette holds at most 256" in lines[-1]
    assert not (tmp_path / "m.onnx").exists()
    ok = subprocess.run(
        [*cmd, "--out", str(tmp_path / "a.onnx")], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert ok.returncode == 0, ok.stderr
    assert "palette: auto: the checkpoint records no palette, so no snap" in ok.stdout


def test_stylegan_synthesis_graphs_snap_the_same_way(palette_file: Path, tmp_path: Path) -> None:
    run = train_tiny(tmp_path / "run", steps=2, architecture="stylegan")
    out = tmp_path / "sg.onnx"
    result = export_checkpoint(run, out, parity_seeds=8, palette=str(palette_file))
    assert result.parity["synthesis_palette_snap_mismatches"] == 0
    seeds = np.arange(16, dtype=np.uint64)
    feeds = {"z": latents(seeds, 16), "psi": np.full(16, 0.7, np.float32)}
    main = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(["image"], feeds)[0]
    ws = ort.InferenceSession(str(companion_path(out, "mapping"))).run(["ws"], feeds)[0]
    synth = ort.InferenceSession(str(companion_path(out, "synthesis"))).run(["image"], {"ws": ws})[0]
    assert in_palette(synth, SIX) and in_palette(main, SIX)
    np.testing.assert_array_equal(synth, main)
    edited = ort.InferenceSession(str(companion_path(out, "synthesis"))).run(["image"], {"ws": ws + 0.3})[0]
    assert in_palette(edited, SIX)  # a creative tool's moved w still gives palette colours


def test_served_equals_minted_equals_the_documented_snippet(
    exported: dict[str, Path], tmp_path: Path
) -> None:
    from artctl.client import GeneratorClient
    from artctl.collection import CollectionConfig
    from artctl.drops.mint import mint
    from artctl.drops.render import ServerRenderer
    from artctl_serving.local import LocalRenderer
    from tests.helpers import running_server

    model = exported["snapped"]
    cfg = CollectionConfig.model_validate({"name": "Palette", "size": 24, "salt": "palette-salt"})
    local = mint(cfg, tmp_path / "local", LocalRenderer(model))
    with running_server([model], max_seeds_per_request=256) as (_, target), GeneratorClient(target) as client:
        served = mint(cfg, tmp_path / "served", ServerRenderer(client, ""))
    hashes = [
        [t["pixel_sha256"] for t in json.loads(r.manifest.read_text())["tokens"]] for r in (local, served)
    ]
    assert hashes[0] == hashes[1]
    script = snippet(tmp_path)
    for result in (local, served):
        done = run_snippet(script, result.out_dir, model)
        assert done.returncode == 0 and done.stdout.strip() == "24 of 24 tokens re-derived", done.stderr
        for png in sorted((result.out_dir / "images").glob("*.png")):
            assert in_palette(np.asarray(Image.open(png)), SIX), png
