"""The exact graph (artctl-exact-v1): the same pixels on every CPU, checked against answers that do
not come from ONNX Runtime (onnx's reference evaluator, an emulated older CPU)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from artctl.models import embedded
from artctl.profile import EXACT_CONTRACT, profile_differences
from artctl_exporter.exact import EXACT_LIMIT, ExactError, make_exact, round_up_3, tanh_table, term_bound
from bench.isa_portable import _feeds, portable_graph
from tests.helpers import require_system

REPO = Path(__file__).resolve().parent.parent
QEMU_CPU = "Nehalem"  # SSE4.2, no AVX, no FMA: the oldest x86-64 level ONNX Runtime's kernels tell apart


@pytest.fixture(scope="module")
def portable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default's exact graph (the default itself when it is one), as a file."""
    default = embedded("default")
    assert default is not None
    path = tmp_path_factory.mktemp("exact") / "portable.onnx"
    onnx.save(portable_graph(onnx.load(str(default))), str(path))
    return path


def _render(path: Path, seeds: range, level: str = "ORT_ENABLE_ALL", batch: int = 64) -> np.ndarray:
    model = onnx.load(str(path))
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    card = {p.key: p.value for p in model.metadata_props}
    parts = []
    for start in range(seeds.start, seeds.stop, batch):
        parts.append(session.run(["image"], _feeds(card, range(start, min(seeds.stop, start + batch))))[0])
    return np.concatenate(parts)


def test_the_card_names_the_contract(portable: Path) -> None:
    meta = ort.InferenceSession(str(portable), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert json.loads(meta.custom_metadata_map["contracts"])["arithmetic"] == EXACT_CONTRACT


def test_onnx_reference_evaluator_renders_the_same_pixels(portable: Path) -> None:
    """numpy's arithmetic in onnx's reference operators, not ONNX Runtime's kernels, gives the same bytes."""
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(str(portable))
    feeds = _feeds({p.key: p.value for p in model.metadata_props}, range(4))
    assert np.array_equal(ReferenceEvaluator(model).run(["image"], feeds)[0], _render(portable, range(4)))


def test_every_sum_stays_below_two_to_the_24(portable: Path) -> None:
    """Integer weights and biases, and per output the sum of |terms| below 2^24, for every layer."""
    model = onnx.load(str(portable))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    clips = {n.output[0]: float(inits[n.input[2]]) for n in model.graph.node if n.op_type == "Clip"}
    convs = [n for n in model.graph.node if n.op_type == "ConvTranspose"]
    assert convs and all(n.input[0] in clips for n in convs), "every layer reads clipped integers"
    for node in convs:
        weight, bias = inits[node.input[1]], inits[node.input[2]]
        assert np.array_equal(weight, np.round(weight)) and np.array_equal(bias, np.round(bias))
        stride = next(a.ints[0] for a in node.attribute if a.name == "strides")
        assert (
            term_bound(weight.astype(np.float64), stride) * clips[node.input[0]] + np.abs(bias)
        ).max() < EXACT_LIMIT
    # Linear heads on the latent (the colour slots' colours, a backdrop's pick): integer and bounded too.
    producers = {out: n for n in model.graph.node for out in n.output}
    consumers = {name: n for n in model.graph.node for name in n.input}
    for node in (n for n in model.graph.node if n.op_type == "MatMul" and "snap" not in n.name):
        source, add = producers[node.input[0]], consumers[node.output[0]]
        assert source.op_type == "Flatten" and source.input[0] in clips, node.name
        weight, bias = inits[node.input[1]], inits[add.input[1]]
        assert np.array_equal(weight, np.round(weight)) and np.array_equal(bias, np.round(bias))
        terms = np.abs(weight.astype(np.float64)).sum(axis=0) * clips[source.input[0]] + np.abs(bias)
        assert terms.max() < EXACT_LIMIT, node.name
    assert not any(n.op_type in ("Tanh", "Conv") and "snap" not in n.name for n in model.graph.node)


def test_same_pixels_at_every_level_and_batch(portable: Path) -> None:
    base = _render(portable, range(40))
    assert np.array_equal(base, _render(portable, range(40), "ORT_DISABLE_ALL", batch=1))
    assert np.array_equal(base, _render(portable, range(40), "ORT_ENABLE_BASIC", batch=7))


def test_references_made_on_other_instruction_sets_match_this_cpu(portable: Path) -> None:
    """bench/results keeps the portable path's hashes as rendered on two or more instruction sets
    (`python -m bench.isa_portable render --reference`); this CPU renders the same bytes."""
    import hashlib

    from artctl.modelcard import file_sha256

    default = embedded("default")
    assert default is not None
    references = [
        json.loads(p.read_text()) for p in sorted((REPO / "bench" / "results").glob("isa-reference-*.json"))
    ]
    assert len({r["isa"] for r in references}) >= 2, "references from at least two instruction sets"
    images = _render(portable, range(16))
    here = [hashlib.sha256(image.tobytes()).hexdigest() for image in images]
    for reference in references:
        assert reference["default_sha256"] == file_sha256(default), "re-make the references for this default"
        assert reference["candidates"]["portable ORT_ENABLE_ALL"][:16] == here, reference["isa"]


def test_tanh_table_and_rounding_known_answers() -> None:
    table = tanh_table()
    middle = len(table) // 2
    assert len(table) == 2 * 8 * 1024 + 1 and table[0] == 0 and table[-1] == 255
    assert table[middle] == 128  # tanh(0) = 0 -> 127.5 -> 128 (half to even)
    # 127.5 (1 + tanh(8 / 1024)) = 128.496 -> 128; 127.5 (1 + tanh(9 / 1024)) = 128.62 -> 129
    assert table[middle + 8] == 128 and table[middle + 9] == 129
    assert [round_up_3(v) for v in (7.4933, 9.487, 13.0998, 0.000123)] == [7.5, 9.49, 13.1, 0.000123]


def test_a_stylegan_type_graph_is_refused() -> None:
    emoji = embedded("emoji")
    assert emoji is not None
    with pytest.raises(ExactError, match="DCGAN-type"):
        make_exact(onnx.load(str(emoji)), {})


def test_cpu_isa_is_not_a_pixel_field_for_exact_drops() -> None:
    drop = {"cpu_isa": "x86_64 avx512f fma", "graph_optimization": "ORT_ENABLE_ALL", "runtime": "1.32.0"}
    here = {**drop, "cpu_isa": "x86_64 sse4_1", "graph_optimization": "ORT_DISABLE_ALL"}
    assert profile_differences(drop, here, exact=True) == {}
    assert set(profile_differences(drop, here)) == {"cpu_isa", "graph_optimization"}


def _qemu() -> str:
    found = shutil.which("qemu-x86_64")
    require_system(found is not None, "qemu-x86_64", "qemu-user")
    assert found is not None
    return found


def test_a_drop_verifies_identically_on_an_older_cpu_under_qemu(portable: Path, tmp_path: Path) -> None:
    """Mint here, then `artctl verify --local` on an emulated CPU without AVX or FMA: 0 mismatches."""
    qemu = _qemu()
    if os.uname().machine != "x86_64":
        pytest.skip("qemu-x86_64 emulates an x86-64 CPU for x86-64 Python only")
    from artctl.collection import CollectionConfig
    from artctl.drops.mint import mint
    from artctl_serving.local import LocalRenderer

    cfg = CollectionConfig(
        name="Any CPU", symbol="ANY", size=3, salt="isa", start_index=1, model=str(portable)
    )
    mint(cfg, tmp_path / "drop", LocalRenderer(portable))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [qemu, "-cpu", QEMU_CPU, sys.executable, "-m", "artctl", "verify", str(tmp_path / "drop")]
    done = subprocess.run(
        [*command, "--local", "--model", str(portable), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["isa"] == "x86_64 sse4_1" and report["exact"] is True
    assert report["pixels"] == {"identical": 3} and report["profile_differences"] == {}
