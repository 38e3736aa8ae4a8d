"""Exporting the zoo: StyleGAN's psi/label inputs, companion graphs, and no randomness in any graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from artctl.modelcard import ModelCard, file_sha256
from artctl.seeds import latents
from artctl_exporter.export import ExportResult, companion_path, export_checkpoint
from artctl_trainer.checkpoint import load_checkpoint
from artctl_trainer.networks import build_generator
from artctl_trainer.preview import quantize
from tests.helpers import train_tiny

RANDOM_OPS = {
    "RandomNormal",
    "RandomNormalLike",
    "RandomUniform",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
}
BRANCH_OPS = {"If", "Loop", "Scan"}
LABELS = 4  # synthetic:shapes


@pytest.fixture(scope="module")
def stylegan_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExportResult]:
    base = tmp_path_factory.mktemp("stylegan")
    train = {"r1_gamma": 1.0, "r1_interval": 2}
    train_tiny(base / "run", steps=4, train=train, architecture="stylegan", conditional=True, w_avg_beta=0.5)
    return base / "run", export_checkpoint(base / "run", base / "sg.onnx", parity_seeds=32, default_psi=0.6)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _feeds(seeds: list[int], psi: float, label: int) -> dict[str, np.ndarray]:
    n = len(seeds)
    return {
        "z": latents(np.array(seeds, dtype=np.uint64), 16),
        "psi": np.full(n, psi, dtype=np.float32),
        "label": np.full(n, label, dtype=np.int64),
    }


def test_stylegan_graph_signature_and_card(stylegan_export: tuple[Path, ExportResult]) -> None:
    _, result = stylegan_export
    model = onnx.load(str(result.path))
    onnx.checker.check_model(model, full_check=True)
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert list(inputs) == ["z", "psi", "label"]
    assert (
        inputs["psi"].elem_type == onnx.TensorProto.FLOAT
        and inputs["label"].elem_type == onnx.TensorProto.INT64
    )
    for t in inputs.values():
        assert t.shape.dim[0].dim_param == "batch"
    ops = {n.op_type for n in model.graph.node}
    assert not ops & RANDOM_OPS, "no randomness inside the graph"
    assert not ops & BRANCH_OPS, "no data-dependent branch"
    card = ModelCard.from_metadata(_session(result.path).get_modelmeta().custom_metadata_map)
    assert card.architecture == "stylegan" and card.has_psi and card.has_label
    assert card.default_psi == pytest.approx(0.6) and card.label_names == [
        "circle",
        "square",
        "triangle",
        "diamond",
    ]
    assert card.extra["graph"] == "generator" and int(card.extra["num_ws"]) == 6
    sidecar = json.loads(result.path.with_suffix(".json").read_text())
    for graph in ("mapping", "synthesis"):
        assert sidecar["companions"][graph]["sha256"] == file_sha256(companion_path(result.path, graph))
    assert sidecar["parity"]["inputs"] == ["label", "psi", "z"]


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_stylegan_dynamic_batch_matches_pytorch(
    stylegan_export: tuple[Path, ExportResult], batch: int
) -> None:
    run, result = stylegan_export
    seeds = list(range(500, 500 + batch))
    feeds = _feeds(seeds, 0.8, 2)
    (images,) = _session(result.path).run(["image"], feeds)
    assert images.shape == (batch, 16, 16, 4)
    G = build_generator(load_checkpoint(run).config.network)
    G.load_state_dict(load_checkpoint(run).tensors("G_ema.safetensors"))
    G.eval()
    with torch.no_grad():
        ref = quantize(
            G(torch.from_numpy(feeds["z"]), torch.from_numpy(feeds["label"]), torch.from_numpy(feeds["psi"]))
        )
    assert np.abs(images.astype(int) - ref.numpy().astype(int)).max() <= 1
    again = _session(result.path).run(["image"], feeds)[0]
    assert np.array_equal(images, again), "noise is constant: same inputs, same pixels"


def test_truncation_psi_semantics(stylegan_export: tuple[Path, ExportResult]) -> None:
    run, result = stylegan_export
    session = _session(result.path)
    seeds = list(range(8))
    at_zero = {label: session.run(["image"], _feeds(seeds, 0.0, label))[0] for label in range(LABELS)}
    for images in at_zero.values():
        assert all(np.array_equal(images[0], img) for img in images), "psi=0: every seed renders w_avg"
    assert not np.array_equal(at_zero[0][0], at_zero[1][0]), "each label has its own w_avg"
    # psi = 1 is plain sampling: the same pixels as the generator without truncation.
    G = build_generator(load_checkpoint(run).config.network)
    G.load_state_dict(load_checkpoint(run).tensors("G_ema.safetensors"))
    G.eval()
    feeds = _feeds(seeds, 1.0, 3)
    with torch.no_grad():
        plain = G(torch.from_numpy(feeds["z"]), torch.from_numpy(feeds["label"]))
    (images,) = session.run(["image"], feeds)
    assert np.count_nonzero(images != quantize(plain).numpy()) <= 2
    spread0 = session.run(["image"], _feeds(seeds, 0.0, 3))[0].astype(float).std(axis=0).mean()
    spread1 = images.astype(float).std(axis=0).mean()
    assert spread0 == 0 < spread1


def test_mapping_and_synthesis_compose_to_the_generator(stylegan_export: tuple[Path, ExportResult]) -> None:
    _, result = stylegan_export
    mapping = _session(companion_path(result.path, "mapping"))
    synthesis = _session(companion_path(result.path, "synthesis"))
    assert [i.name for i in mapping.get_inputs()] == ["z", "psi", "label"]
    assert [i.name for i in synthesis.get_inputs()] == ["ws"]
    feeds = _feeds(list(range(20, 27)), 0.7, 1)
    (ws,) = mapping.run(["ws"], feeds)
    assert ws.shape == (7, 6, 16)
    (composed,) = synthesis.run(["image"], {"ws": ws})
    (direct,) = _session(result.path).run(["image"], feeds)
    assert np.abs(composed.astype(int) - direct.astype(int)).max() <= 1
    # Style mixing: coarse layers from one seed, fine layers from another.
    mixed = np.concatenate([ws[:1, :3], ws[1:2, 3:]], axis=1)
    (img,) = synthesis.run(["image"], {"ws": mixed})
    assert img.shape == (1, 16, 16, 4)
    for graph in ("mapping", "synthesis"):
        model = onnx.load(str(companion_path(result.path, graph)))
        assert not {n.op_type for n in model.graph.node} & (RANDOM_OPS | BRANCH_OPS)
        card = ModelCard.from_metadata({p.key: p.value for p in model.metadata_props})
        assert card.extra["graph"] == graph


def test_stylegan_reexport_gives_identical_bytes(
    stylegan_export: tuple[Path, ExportResult], tmp_path: Path
) -> None:
    run, result = stylegan_export
    again = export_checkpoint(run, tmp_path / "sg.onnx", parity_seeds=8, default_psi=0.6)
    assert again.sha256 == result.sha256
    for graph in ("mapping", "synthesis"):
        assert file_sha256(companion_path(again.path, graph)) == file_sha256(
            companion_path(result.path, graph)
        )


def test_unconditional_dcgan_keeps_its_single_input(tmp_path: Path) -> None:
    train_tiny(tmp_path / "run", steps=1)
    result = export_checkpoint(tmp_path / "run", tmp_path / "d.onnx", parity_seeds=8)
    assert [i.name for i in _session(result.path).get_inputs()] == ["z"]
    assert not result.card.has_psi and result.card.default_psi == 1.0
    assert not companion_path(result.path, "mapping").exists()
