"""Package boundaries and generated code: what DESIGN.md §1 promises about the layout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from artctl import protogen

REPO = Path(__file__).resolve().parent.parent


def test_core_and_serving_never_import_torch() -> None:
    code = (
        "import sys\n"
        "import artctl, artctl.seeds, artctl.client, artctl.mint, artctl.cli, artctl.collection\n"
        "import serving, serving.server, serving.runtime, serving.batcher\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_cli_help_does_not_import_torch_or_onnxruntime() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from artctl.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    fresh = protogen.generate(tmp_path)
    committed = protogen.generated_files(REPO)
    assert len(fresh) == len(committed) == 6
    for new, old in zip(fresh, committed):
        assert old.is_file(), f"{old} is not committed; run `make proto`"
        assert new.read_bytes() == old.read_bytes(), f"{old.relative_to(REPO)} is stale; run `make proto`"


def test_stubs_describe_the_services_we_serve() -> None:
    from artctl.kserve.v2 import grpc_service_pb2
    from artctl.v1 import generator_pb2

    kserve = grpc_service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert kserve.full_name == "inference.GRPCInferenceService"
    assert {m.name for m in kserve.methods} == {
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    }
    # Field numbers tritonclient relies on.
    req = grpc_service_pb2.ModelInferRequest.DESCRIPTOR
    assert req.fields_by_name["raw_input_contents"].number == 7
    assert grpc_service_pb2.ModelInferResponse.DESCRIPTOR.fields_by_name["raw_output_contents"].number == 6
    gen = generator_pb2.DESCRIPTOR.services_by_name["Generator"]
    assert {m.name for m in gen.methods} == {"Generate", "GenerateStream", "ListModels", "Mix", "Interpolate"}
