"""Reduced precision and offline optimisation keep the exporter's promises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from artctl.modelcard import ModelCard
from artctl.seeds import latents
from artctl_exporter.export import ExportError, export_checkpoint
from tests.helpers import train_tiny


@pytest.fixture(scope="module")
def style_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("style") / "run"
    train_tiny(run, steps=2, architecture="stylegan", resolution=32)
    return run


def _render(path: Path, seeds: list[int]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    z_dim = session.get_inputs()[0].shape[1]
    feeds = {"z": latents(seeds, z_dim)}
    if any(i.name == "psi" for i in session.get_inputs()):
        feeds["psi"] = np.full(len(seeds), 0.7, dtype=np.float32)
    return session.run(["image"], feeds)[0]


def test_fp16_export_passes_its_gate_and_stays_close_to_fp32(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_tiny(run, steps=40, resolution=32)
    fp32 = export_checkpoint(run, tmp_path / "a.onnx", parity_seeds=32)
    fp16 = export_checkpoint(run, tmp_path / "b.onnx", parity_seeds=32, precision="fp16")
    assert fp16.parity["max_abs_diff"] <= 1e-2 and fp16.parity["precision"] == "fp16"
    assert fp16.card.precision == "fp16" and fp32.parity["precision"] == "fp32"
    model = onnx.load(str(tmp_path / "b.onnx"))
    weights = {t.data_type for t in model.graph.initializer if len(t.dims) >= 2}
    assert onnx.TensorProto.FLOAT16 in weights, "conv weights should be half precision"
    session = ort.InferenceSession(str(tmp_path / "b.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("z", "tensor(float)")]
    assert ModelCard.from_metadata(session.get_modelmeta().custom_metadata_map).precision == "fp16"
    seeds = list(range(16))
    a, b = _render(tmp_path / "a.onnx", seeds).astype(int), _render(tmp_path / "b.onnx", seeds).astype(int)
    assert np.abs(a - b).max() <= 3


def test_fp16_stylegan_companions_follow_the_precision(style_run: Path, tmp_path: Path) -> None:
    """The gate decides: a passing fp16 StyleGAN export has fp16 synthesis; a refused one writes nothing."""
    from artctl_exporter.export import ParityError

    try:
        result = export_checkpoint(style_run, tmp_path / "s.onnx", parity_seeds=16, precision="fp16")
    except ParityError:
        assert not list(tmp_path.iterdir()), "a refused export must leave no file behind"
        return
    assert result.parity["synthesis_max_abs_diff"] <= 1e-2
    synthesis = onnx.load(str(tmp_path / "s.synthesis.onnx"))
    assert onnx.TensorProto.FLOAT16 in {t.data_type for t in synthesis.graph.initializer}


@pytest.mark.parametrize("level", ["none", "basic", "extended"])
def test_every_optimisation_level_renders_the_same_pixels(tiny_run: Path, tmp_path: Path, level: str) -> None:
    result = export_checkpoint(tiny_run, tmp_path / f"{level}.onnx", parity_seeds=32, optimize=level)
    assert result.parity["optimization"] == level
    reference = _render(
        export_checkpoint(tiny_run, tmp_path / "ref.onnx", parity_seeds=16, optimize="none").path, [1, 2, 3]
    )
    diff = np.abs(_render(result.path, [1, 2, 3]).astype(int) - reference.astype(int))
    assert diff.max() <= 1


def test_bad_precision_and_level_are_refused(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="unknown precision"):
        export_checkpoint(tiny_run, tmp_path / "m.onnx", precision="int4")
    with pytest.raises(ExportError, match="unknown optimisation level"):
        export_checkpoint(tiny_run, tmp_path / "m.onnx", optimize="max")
    assert not list(tmp_path.iterdir())


def test_reexport_without_companions_removes_stale_ones(style_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    export_checkpoint(style_run, out, parity_seeds=8)
    assert (tmp_path / "m.mapping.onnx").is_file() and (tmp_path / "m.synthesis.onnx").is_file()
    assert (tmp_path / "m.directions.json").is_file()  # w directions: usable only with the style graphs
    export_checkpoint(style_run, out, parity_seeds=8, companions=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.onnx"]
