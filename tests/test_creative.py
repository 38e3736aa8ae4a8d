"""Style mixing and latent walks: library, CLI and the Mix / Interpolate RPCs agree, pixel for pixel."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from artctl.latentwalk import WalkError, schedule
from artctl.seeds import pixel_sha256
from artctl.stylemix import LayerRange, LayerRangeError, group_range, parse_layers
from tests.helpers import running_server

SEEDS = np.array([0, 1, 7, 42, 2**64 - 1], dtype=np.uint64)


@pytest.fixture(scope="module")
def runtime(style_model: Path) -> Any:
    from artctl_serving.runtime import load_model

    return load_model(style_model)


@pytest.fixture(scope="module")
def graphs(runtime: Any) -> Any:
    from artctl_serving.styles import load_style_graphs

    return load_style_graphs(runtime)


def _hashes(images: np.ndarray) -> list[str]:
    return [pixel_sha256(img) for img in images]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "artctl", *args], capture_output=True, text=True, timeout=120
    )


# -- layer ranges -------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_ws", range(3, 21))
def test_groups_split_the_layers_into_thirds(num_ws: int) -> None:
    spans = [group_range(g, num_ws) for g in ("coarse", "middle", "fine")]
    covered = [i for s in spans for i in range(s.lo, s.hi + 1)]
    assert covered == list(range(num_ws))  # each layer in exactly one group, in order
    assert all(s.hi >= s.lo for s in spans)
    if num_ws == 12:  # 64 px StyleGAN
        assert spans == [LayerRange(0, 3), LayerRange(4, 7), LayerRange(8, 11)]


@pytest.mark.parametrize("spec", ["3-2", "0-6", "6", "-1-2", "1-", "a-b", "coarse-fine", ""])
def test_bad_layer_ranges_are_refused(spec: str) -> None:
    with pytest.raises(LayerRangeError):
        parse_layers(spec, 6)


# -- mixing -------------------------------------------------------------------------------------------


def test_mixing_a_seed_with_itself_is_its_plain_render_for_every_range(runtime: Any, graphs: Any) -> None:
    from artctl_serving.creative import mixed_ws

    plain = _hashes(runtime.render(SEEDS))
    ranges = [LayerRange(i, j) for i in range(graphs.num_ws) for j in range(i, graphs.num_ws)]
    ranges += [parse_layers(g, graphs.num_ws) for g in ("coarse", "middle", "fine")]
    for span in ranges:
        mixed = graphs.synthesize(mixed_ws(graphs, SEEDS, SEEDS, span))
        assert _hashes(mixed) == plain, span


def test_mixing_changes_only_with_a_different_style(runtime: Any, graphs: Any) -> None:
    from artctl_serving.creative import mixed_ws

    content, style = np.array([1], dtype=np.uint64), np.array([2], dtype=np.uint64)
    full = graphs.synthesize(mixed_ws(graphs, content, style, LayerRange(0, graphs.num_ws - 1)))
    assert _hashes(full) == _hashes(runtime.render(style))  # all layers = the style seed
    fine = graphs.synthesize(mixed_ws(graphs, content, style, parse_layers("fine", graphs.num_ws)))
    assert _hashes(fine) != _hashes(runtime.render(content))


def test_cli_mix_and_grid(runtime: Any, style_model: Path, graphs: Any, tmp_path: Path) -> None:
    from artctl.imaging import decode_png

    same = _cli(
        "mix",
        "--model",
        str(style_model),
        "--content",
        "7",
        "--style",
        "7",
        "--layers",
        "1-3",
        "--out",
        str(tmp_path / "m.png"),
    )
    assert same.returncode == 0, same.stderr
    plain = runtime.render(np.array([7], dtype=np.uint64))[0]
    assert f"pixel_sha256 {pixel_sha256(plain)}" in same.stdout

    grid = _cli(
        "mix",
        "--model",
        str(style_model),
        "--content",
        "1,2,3",
        "--style",
        "4,5",
        "--grid",
        "--layers",
        "coarse",
        "--out",
        str(tmp_path / "g.png"),
    )
    assert grid.returncode == 0, grid.stderr
    sheet = decode_png((tmp_path / "g.png").read_bytes())
    h, w, _ = runtime.image_shape
    assert sheet.shape[:2] == (4 * h, 3 * w)
    renders = runtime.render(np.array([1, 2, 3, 4, 5], dtype=np.uint64))
    assert np.array_equal(sheet[h : 2 * h, 0:w], renders[0])  # content seeds down the left
    assert np.array_equal(sheet[0:h, 2 * w : 3 * w], renders[4])  # style seeds along the top


def test_cli_mix_errors_are_one_line(style_model: Path, tiny_model: Path, tmp_path: Path) -> None:
    bad = _cli(
        "mix",
        "--model",
        str(style_model),
        "--content",
        "1",
        "--style",
        "2",
        "--layers",
        "4-9",
        "--out",
        str(tmp_path / "x.png"),
    )
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0 and "0 <= i <= j < 6" in bad.stderr
    dcgan = _cli(
        "mix", "--model", str(tiny_model), "--content", "1", "--style", "2", "--out", str(tmp_path / "y.png")
    )
    assert dcgan.returncode != 0 and "StyleGAN-type" in dcgan.stderr and dcgan.stderr.count("\n") == 1
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "y.png").exists()


def test_model_exported_without_companions_is_refused(style_model: Path, tmp_path: Path) -> None:
    style_run = style_model.parent / "run"
    from artctl_exporter.export import export_checkpoint

    bare = tmp_path / "bare.onnx"
    export_checkpoint(style_run, bare, parity_seeds=8, companions=False)
    walk = [
        "interpolate",
        "--model",
        str(bare),
        "--seeds",
        "1,2",
        "--frames",
        "3",
        "--out",
        str(tmp_path / "w.gif"),
    ]
    res = _cli(*walk, "--space", "w")
    assert res.returncode != 0 and "no mapping graph" in res.stderr
    z = _cli(*walk)  # a z walk needs no companions: it runs through the main graph
    assert z.returncode == 0, z.stderr


# -- walks --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "frames", "loop"), [(2, 2, False), (3, 10, False), (4, 9, True), (5, 5, True)]
)
def test_schedule_puts_every_seed_on_a_frame(keys: int, frames: int, loop: bool) -> None:
    specs = schedule(keys, frames, loop)
    assert [s.index for s in specs] == list(range(frames))
    at_key = {s.a for s in specs if s.t == 0.0} | {s.b for s in specs if s.t == 1.0}
    assert at_key == set(range(keys))
    assert specs[0].a == 0 and specs[0].t == 0.0
    if not loop:
        assert specs[-1].b == keys - 1 and specs[-1].t == 1.0
    assert all(0.0 <= s.t <= 1.0 for s in specs)


def test_schedule_refuses_too_few_seeds_or_frames() -> None:
    with pytest.raises(WalkError):
        schedule(1, 10)
    with pytest.raises(WalkError):
        schedule(4, 3)


@pytest.mark.parametrize(("space", "loop"), [("z", False), ("w", False), ("z", True), ("w", True)])
def test_walk_keyframes_equal_plain_renders(runtime: Any, graphs: Any, space: str, loop: bool) -> None:
    from artctl_serving.creative import walk_ws

    seeds = [3, 2**64 - 2, 11]
    plan = walk_ws(graphs, seeds, 7, space, loop)
    frames = graphs.synthesize(plan.ws)
    plain = _hashes(runtime.render(np.array(seeds, dtype=np.uint64)))
    got = _hashes(frames)
    for spec in plan.specs:
        if spec.t == 0.0:
            assert got[spec.index] == plain[spec.a]
        if spec.t == 1.0:
            assert got[spec.index] == plain[spec.b]
    assert got[0] == plain[0]
    assert len(set(got)) > len(seeds)  # in-between frames are new images
    again = walk_ws(graphs, seeds, 7, space, loop)
    assert np.array_equal(again.ws, plan.ws)


def test_cli_interpolate_writes_animation(style_model: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "walk.webp"
    res = _cli(
        "interpolate",
        "--model",
        str(style_model),
        "--seeds",
        "1,2,3",
        "--frames",
        "8",
        "--space",
        "w",
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    with Image.open(out) as img:
        assert img.n_frames == 8
    bad = _cli("interpolate", "--model", str(style_model), "--seeds", "1", "--frames", "8", "--out", str(out))
    assert bad.returncode != 0 and "at least two seeds" in bad.stderr
    huge = _cli(
        "interpolate",
        "--model",
        str(style_model),
        "--seeds",
        "1,2",
        "--frames",
        "20000000",
        "--out",
        str(out),
    )
    lines = huge.stderr.strip().splitlines()
    assert (
        huge.returncode == 1 and len(lines) == 1 and "would need" in lines[0] and "give at most" in lines[0]
    )


# -- gRPC ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def style_server(style_model: Path, tiny_model: Path) -> Any:
    with running_server(
        [style_model, tiny_model], max_batch=8, max_delay_ms=5, max_seeds_per_request=64
    ) as srv:
        yield srv


def test_mix_rpc_equals_library_and_is_batch_invariant(style_server: Any, graphs: Any) -> None:
    from artctl.v1 import generator_pb2 as pb
    from artctl.v1 import generator_pb2_grpc as pb_grpc
    from artctl_serving.creative import mixed_ws

    _, target = style_server
    rng = np.random.default_rng(5)
    jobs = []
    for k in range(12):
        n = int(rng.integers(1, 7))
        content = rng.integers(0, 2**63, n, dtype=np.uint64)
        style = rng.integers(0, 2**63, n, dtype=np.uint64)
        jobs.append((content, style, LayerRange(k % 3, 3 + k % 3)))

    def call(job: tuple[np.ndarray, np.ndarray, LayerRange]) -> list[str]:
        content, style, span = job
        with grpc.insecure_channel(target) as channel:
            reply = pb_grpc.GeneratorStub(channel).Mix(
                pb.MixRequest(
                    model="sty",
                    content_seeds=content.tolist(),
                    style_seeds=style.tolist(),
                    first_layer=span.lo,
                    last_layer=span.hi,
                ),
                timeout=60,
            )
        assert [a.index for a in reply.artworks] == list(range(len(content)))
        return [a.pixel_sha256 for a in reply.artworks]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, jobs))
    for (content, style, span), hashes in zip(jobs, results):
        for i in range(len(content)):  # one pair at a time: batch of 1
            alone = graphs.synthesize(mixed_ws(graphs, content[i : i + 1], style[i : i + 1], span))
            assert hashes[i] == pixel_sha256(alone[0])


def test_mix_rpc_groups_and_errors(runtime: Any, style_server: Any, graphs: Any) -> None:
    from artctl.v1 import generator_pb2 as pb
    from artctl.v1 import generator_pb2_grpc as pb_grpc

    _, target = style_server
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        reply = stub.Mix(
            pb.MixRequest(model="sty", content_seeds=[5, 6], style_seeds=[5, 6], group=pb.LAYER_GROUP_FINE)
        )
        assert (reply.first_layer, reply.last_layer, reply.num_ws) == (4, 5, 6)
        plain = _hashes(runtime.render(np.array([5, 6], dtype=np.uint64)))
        assert [a.pixel_sha256 for a in reply.artworks] == plain
        for request, needle in [
            (
                pb.MixRequest(model="sty", content_seeds=[1], style_seeds=[2], first_layer=2, last_layer=6),
                "< 6",
            ),
            (
                pb.MixRequest(model="sty", content_seeds=[1], style_seeds=[2], first_layer=3, last_layer=1),
                "3-1",
            ),
            (pb.MixRequest(model="sty", content_seeds=[1, 2], style_seeds=[3, 4, 5]), "equal counts"),
            (pb.MixRequest(model="sty", content_seeds=[1], style_seeds=[2], psi=3.0), "psi"),
            (pb.MixRequest(model="sty", content_seeds=[1], style_seeds=[2], labels=[1]), "unconditional"),
            (pb.MixRequest(model="tiny", content_seeds=[1], style_seeds=[2]), "mapping/synthesis"),
        ]:
            with pytest.raises(grpc.RpcError) as err:
                stub.Mix(request, timeout=30)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert needle in err.value.details()


def test_interpolate_streams_frames_in_order(runtime: Any, style_server: Any, graphs: Any) -> None:
    from artctl.v1 import generator_pb2 as pb
    from artctl.v1 import generator_pb2_grpc as pb_grpc
    from artctl_serving.creative import walk_ws

    _, target = style_server
    seeds = [9, 10, 11]
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GeneratorStub(channel)
        for space, name in ((pb.LATENT_SPACE_Z, "z"), (pb.LATENT_SPACE_W, "w")):
            frames = list(
                stub.Interpolate(
                    pb.InterpolateRequest(model="sty", seeds=seeds, frames=21, space=space), timeout=60
                )
            )
            assert [f.index for f in frames] == list(range(21))  # 21 frames over three batches of 8
            expected = _hashes(graphs.synthesize(walk_ws(graphs, seeds, 21, name).ws))
            assert [f.pixel_sha256 for f in frames] == expected
            plain = _hashes(runtime.render(np.array(seeds, dtype=np.uint64)))
            assert (frames[0].pixel_sha256, frames[10].pixel_sha256, frames[20].pixel_sha256) == tuple(plain)
            assert (frames[20].seed_from, frames[20].seed_to, frames[20].t) == (10, 11, 1.0)
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Interpolate(pb.InterpolateRequest(model="sty", seeds=[1, 2, 3], frames=2)))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "frames" in err.value.details()
