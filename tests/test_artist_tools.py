"""What the artist looks at and the small tools around it: grids at the served psi with labelled
rows, contact sheets spread over the drop with ids, colour names, `artctl generate`, z walks for
DCGANs, the example-salt warning, and the docs' claims checked against the code."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from artctl.collection import DerivedTrait
from artctl.imaging import decode_png, display_scale, tile
from artctl.seeds import latents
from artctl.traits import COLOUR_V1, COLOUR_V2, derive
from tests.helpers import artctl

REPO = Path(__file__).resolve().parent.parent


def find_tile(sheet: np.ndarray, cell: np.ndarray) -> bool:
    """Whether `cell` appears in `sheet` pixel for pixel (anywhere)."""
    h, w, _ = cell.shape
    probe = cell[h // 2, w // 2]
    ys, xs = np.nonzero((sheet == probe).all(axis=2))
    for y, x in zip(ys - h // 2, xs - w // 2):
        if (
            0 <= y <= sheet.shape[0] - h
            and 0 <= x <= sheet.shape[1] - w
            and (sheet[y : y + h, x : x + w] == cell).all()
        ):
            return True
    return False


@pytest.fixture(scope="module")
def style_generator(tmp_path_factory: pytest.TempPathFactory) -> object:
    from artctl_trainer.checkpoint import load_checkpoint
    from artctl_trainer.networks import build_generator
    from tests.helpers import train_tiny

    run = tmp_path_factory.mktemp("style") / "run"
    train_tiny(run, steps=2, architecture="stylegan", conditional=True)
    ck = load_checkpoint(run)
    G = build_generator(ck.config.network)
    G.load_state_dict(ck.tensors("G_ema.safetensors"))
    return G.eval()


def test_sample_grids_show_every_label_at_the_psi_the_server_uses(style_generator: object) -> None:
    from artctl_trainer.preview import GRID_COLS, SERVED_PSI, generate, sample_grid

    G = style_generator
    names = ["circle", "square", "triangle", "diamond"]
    sheet = np.asarray(sample_grid(G, names, "step 2"))  # type: ignore[arg-type]
    scale = display_scale(16, 64)
    for label, seed in ((0, 0), (3, 7), (2, 4)):
        served = generate(G, [seed], np.array([label]), psi=SERVED_PSI)[0]  # type: ignore[arg-type]
        assert find_tile(sheet, np.asarray(tile(served, scale))), (label, seed)
    untruncated = generate(G, [3], np.array([1]), psi=None)[0]  # type: ignore[arg-type]
    assert not find_tile(sheet, np.asarray(tile(untruncated, scale))), "the grid is not at psi 1"
    assert sheet.shape[1] > GRID_COLS * 64 and sheet.shape[0] > len(names) * 64  # one row per label


def test_the_contact_sheet_spreads_over_the_drop_with_ids(tiny_model: Path, tmp_path: Path) -> None:
    from artctl.drops.files import sheet_positions

    config = tmp_path / "c.toml"
    config.write_text('name = "Sheet"\nsize = 150\nsalt = "s3cret"\nstart_index = 1\nmodel = "m"\n')
    made = artctl("mint", str(config), "--out", str(tmp_path / "drop"), "--local", "--model", str(tiny_model))
    assert made.returncode == 0, made.stderr
    sheet = np.asarray(Image.open(tmp_path / "drop" / "contact-sheet.png"))
    positions = sorted(sheet_positions(150))
    assert len(positions) == 100 and positions[0] == 0 and positions[-1] == 149
    scale = display_scale(16)
    assert scale * 16 >= 96 and sheet.shape[1] >= 10 * 96
    for token in (1, 150):  # the first and last tokens are on it, at 96 px or more
        pixels = decode_png((tmp_path / "drop" / "images" / f"{token}.png").read_bytes())
        assert find_tile(sheet, np.asarray(tile(pixels, scale))), token
    assert artctl("verify", str(tmp_path / "drop"), "--local", "--model", str(tiny_model)).returncode == 0


def test_muted_colours_are_named_by_hue_not_grey() -> None:
    trait = DerivedTrait(name="Palette", kind="derived", source="dominant_colour")

    def flat(rgb: tuple[int, int, int]) -> np.ndarray:
        return np.full((8, 8, 3), rgb, dtype=np.uint8)

    for rgb, v1, v2 in (
        ((176, 120, 80), "grey", "orange"),  # a muted orange
        ((90, 110, 170), "grey", "blue"),
        ((100, 140, 140), "grey", "teal"),
        ((120, 80, 40), "brown", "brown"),
        ((128, 128, 128), "grey", "grey"),
        ((20, 20, 24), "black", "black"),
    ):
        assert (derive(trait, flat(rgb), COLOUR_V1), derive(trait, flat(rgb), COLOUR_V2)) == (v1, v2), rgb
    own = DerivedTrait(
        name="P", kind="derived", source="dominant_colour", palette={"ink": "#000000", "tan": "#b07850"}
    )
    assert derive(own, flat((176, 120, 80)), COLOUR_V2) == "tan"  # an own palette: nearest, as before


def test_generate_renders_seed_ranges_as_the_graph_does(tiny_model: Path, tmp_path: Path) -> None:
    out = artctl(
        "generate", "--seeds", "0-3,9", "--model", str(tiny_model), "--out", str(tmp_path / "g"), "--json"
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    seeds = [i["seed"] for i in doc["images"]]
    assert seeds == [0, 1, 2, 3, 9] and Path(doc["grid"]).is_file()
    session = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    expected = session.run(["image"], {"z": latents(seeds, 16)})[0]
    for image, want in zip(doc["images"], expected):
        assert image["file"].endswith(f"seed{image['seed']:04d}.png")
        np.testing.assert_array_equal(decode_png(Path(image["file"]).read_bytes()), want)
    backwards = artctl("generate", "--seeds", "5-2", "--model", str(tiny_model), "--out", str(tmp_path / "x"))
    assert backwards.returncode == 1 and "runs backwards" in backwards.stderr


def test_a_dcgan_walks_in_z_through_its_own_graph(tiny_model: Path, tmp_path: Path) -> None:
    out = artctl(
        "interpolate",
        "--model",
        str(tiny_model),
        "--seeds",
        "4,8",
        "--frames",
        "6",
        "--out",
        str(tmp_path / "w.webp"),
    )
    assert out.returncode == 0, out.stderr
    session = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    ends = session.run(["image"], {"z": latents([4, 8], 16)})[0]
    with Image.open(tmp_path / "w.webp") as anim:
        assert anim.n_frames == 6
        first = np.asarray(anim.convert("RGBA"))
        anim.seek(5)
        last = np.asarray(anim.convert("RGBA"))
    np.testing.assert_array_equal(first, ends[0])
    np.testing.assert_array_equal(last, ends[1])
    w = artctl(
        "interpolate",
        "--model",
        str(tiny_model),
        "--seeds",
        "4,8",
        "--space",
        "w",
        "--out",
        str(tmp_path / "x.gif"),
    )
    assert w.returncode == 1 and "has no w space" in w.stderr


def test_minting_with_the_example_salt_warns(tmp_path: Path) -> None:
    example = (REPO / "examples" / "collection.toml").read_text()
    config = tmp_path / "c.toml"
    config.write_text(re.sub(r"(?m)^size = \d+", "size = 2", example))
    out = artctl("mint", str(config), "--out", str(tmp_path / "drop"), "--local")
    assert out.returncode == 0, out.stderr
    assert "warning: the salt is the example's" in out.stderr


def test_serving_a_folder_without_models_says_why(tmp_path: Path) -> None:
    out = artctl("serve", "models/", "--port", "0")
    assert out.returncode == 1
    assert (
        "models holds no .onnx file (it is a training run or checkpoint: `artctl export` it first)"
        in out.stderr
    )


def test_the_docs_say_what_the_code_does() -> None:
    from artctl.models import embedded
    from artctl.stylemix import parse_layers
    from artctl_serving.styles import open_style_graphs
    from artctl_trainer.config import NetworkConfig

    creative = (REPO / "docs" / "creative.md").read_text()
    said = re.search(
        r"A 64 px model \(the embedded emoji model\) has (\d+) layers: "
        r"coarse\s+(\S+), middle (\S+), fine\s+(\S+)\.",
        creative,
    )
    assert said, "creative.md no longer states the layer split"
    emoji = embedded("emoji")
    assert emoji is not None
    graphs = open_style_graphs(emoji)
    assert int(said.group(1)) == graphs.num_ws
    for group, text in zip(("coarse", "middle", "fine"), said.groups()[1:]):
        span = parse_layers(group, graphs.num_ws)
        assert text == f"{span.lo}-{span.hi}", group
    assert "model.json" not in creative and (emoji.with_suffix(".json")).is_file()  # the sidecar is NAME.json
    sizes = re.search(r"Folders or zips of images, (\d+)–(\d+) px", (REPO / "README.md").read_text())
    assert (
        sizes
        and NetworkConfig(resolution=int(sizes.group(1)))
        and NetworkConfig(resolution=int(sizes.group(2)))
    )
    with pytest.raises(ValueError):
        NetworkConfig(resolution=int(sizes.group(1)) // 2)
    make_help = subprocess.run(["make", "-s", "help"], capture_output=True, text=True, cwd=REPO).stdout
    assert "serve the embedded default model" in make_help and "train a small model, export" not in make_help
    serving = (REPO / "docs" / "serving.md").read_text()
    assert "artctl serve models/" not in serving
