"""The exporter: graph signature, dynamic batch, in-graph quantisation, parity gate, model card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from artctl.modelcard import ModelCard, file_sha256
from artctl.seeds import latents
from artctl_exporter.export import ExportError, ParityError, export_checkpoint, parity_check
from artctl_trainer.checkpoint import CheckpointError, load_checkpoint
from artctl_trainer.networks import build_generator
from artctl_trainer.preview import quantize


def test_graph_signature_and_checker(tiny_model: Path) -> None:
    model = onnx.load(str(tiny_model))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["z"]
    assert [o.name for o in model.graph.output] == ["image"]
    out = model.graph.output[0].type.tensor_type
    assert out.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in out.shape.dim]
    assert dims == ["batch", 16, 16, 4]
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    ops = [n.op_type for n in model.graph.node]
    assert ops[-5:] == ["Mul", "Clip", "Round", "Cast", "Transpose"]


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_dynamic_batch_matches_pytorch(tiny_run: Path, tiny_model: Path, batch: int) -> None:
    session = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    z = latents(np.arange(batch, dtype=np.uint64) + 1000, 16)
    (images,) = session.run(["image"], {"z": z})
    assert images.shape == (batch, 16, 16, 4) and images.dtype == np.uint8
    ck = load_checkpoint(tiny_run)
    G = build_generator(ck.config.network)
    G.load_state_dict(ck.tensors("G_ema.safetensors"))
    G.eval()
    with torch.no_grad():
        ref = quantize(G(torch.from_numpy(z))).numpy()
    # Float outputs agree to ~1e-6, so at most a rare pixel sits on a rounding boundary.
    assert np.count_nonzero(images != ref) <= max(1, images.size // 10_000)
    assert np.abs(images.astype(int) - ref.astype(int)).max() <= 1


def test_metadata_round_trips_through_onnxruntime(tiny_model: Path) -> None:
    meta = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"]).get_modelmeta()
    card = ModelCard.from_metadata(meta.custom_metadata_map)
    assert (card.architecture, card.resolution, card.channels, card.z_dim) == ("dcgan", 16, 4, 16)
    assert card.contracts["latent"] == "artctl-latent-v1" and card.name == "tiny"
    assert len(card.data_fingerprint) == 64 and card.exporter_version
    sidecar = json.loads(tiny_model.with_suffix(".json").read_text())
    assert sidecar["sha256"] == file_sha256(tiny_model)
    assert sidecar["card"] == card.to_json()
    assert sidecar["parity"]["max_abs_diff"] <= 1e-4


def test_reexport_gives_identical_bytes(tiny_run: Path, tmp_path: Path) -> None:
    a = export_checkpoint(tiny_run, tmp_path / "a" / "m.onnx", parity_seeds=16)
    b = export_checkpoint(tiny_run, tmp_path / "b" / "m.onnx", parity_seeds=16)
    assert a.sha256 == b.sha256


def test_parity_gate_catches_a_perturbed_weight(tiny_run: Path, tiny_model: Path) -> None:
    ck = load_checkpoint(tiny_run)
    G = build_generator(ck.config.network)
    G.load_state_dict(ck.tensors("G_ema.safetensors"))
    G.eval()
    model = onnx.load(str(tiny_model))
    parity_check(G, model, 16, (16, 16, 4), n_seeds=16)  # passes as exported
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weights = numpy_helper.to_array(init).copy()
    weights.flat[0] += 0.05
    init.CopyFrom(numpy_helper.from_array(weights, init.name))
    with pytest.raises(ParityError, match="differs from PyTorch"):
        parity_check(G, model, 16, (16, 16, 4), n_seeds=16)


def test_export_errors(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        export_checkpoint(tmp_path / "missing", tmp_path / "m.onnx")
    with pytest.raises(ExportError, match="unsupported opset"):
        export_checkpoint(tiny_run, tmp_path / "m.onnx", opset=9)
    with pytest.raises(ExportError, match=r"\.onnx"):
        export_checkpoint(tiny_run, tmp_path / "m.bin")
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*.tmp"))
