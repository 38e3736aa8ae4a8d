"""Stock tritonclient.grpc (the KServe v2 client most users have) against a real artctl server.

tritonclient pins protobuf < 7 and so runs from its own venv (`make test` builds .venv-triton);
the script below runs there, in another process, and talks to our server over loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from artctl.seeds import latents

REPO = Path(__file__).resolve().parent.parent

CLIENT_SCRIPT = r"""
import json, sys
import numpy as np
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

url, out = sys.argv[1], sys.argv[2]
client = tc.InferenceServerClient(url=url)
report = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "model_ready": client.is_model_ready("tiny"),
    "server": client.get_server_metadata(as_json=True),
    "metadata": client.get_model_metadata("tiny", as_json=True),
}
seeds = np.array([0, 7, 2**64 - 1], dtype=np.uint64)
inp = tc.InferInput("SEED", [3], "UINT64")
inp.set_data_from_numpy(seeds)
result = client.infer("tiny", [inp], outputs=[tc.InferRequestedOutput("IMAGE")], request_id="abc")
np.save(out, result.as_numpy("IMAGE"))
report["id"] = result.get_response().id
bad = tc.InferInput("SEED", [1], "INT64")
bad.set_data_from_numpy(np.array([1], dtype=np.int64))
try:
    client.infer("tiny", [bad])
except InferenceServerException as exc:
    report["bad_status"] = exc.status()
    report["bad_message"] = exc.message()
try:
    client.infer("missing", [inp])
except InferenceServerException as exc:
    report["missing_status"] = exc.status()
print(json.dumps(report))
"""


def triton_python() -> str:
    path = os.environ.get("ARTCTL_TRITON_PYTHON", str(REPO / ".venv-triton" / "bin" / "python"))
    if not Path(path).is_file():
        pytest.fail(f"tritonclient's venv is missing ({path}); `make test` builds it")
    return path


def test_tritonclient_grpc_talks_to_artctl(server: tuple[Any, str], tiny_model: Path, tmp_path: Path) -> None:
    _, target = server
    out = tmp_path / "images.npy"
    proc = subprocess.run(
        [triton_python(), "-c", CLIENT_SCRIPT, target, str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["live"] and report["ready"] and report["model_ready"]
    assert report["server"]["name"] == "artctl"
    meta = report["metadata"]
    assert meta["inputs"] == [{"name": "SEED", "datatype": "UINT64", "shape": ["-1"]}]
    assert meta["outputs"] == [{"name": "IMAGE", "datatype": "UINT8", "shape": ["-1", "16", "16", "4"]}]
    assert report["id"] == "abc"
    assert report["bad_status"] == "StatusCode.INVALID_ARGUMENT" and "UINT64" in report["bad_message"]
    assert report["missing_status"] == "StatusCode.NOT_FOUND"
    images = np.load(out)
    session = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    expected = session.run(["image"], {"z": latents([0, 7, 2**64 - 1], 16)})[0]
    np.testing.assert_array_equal(images, expected)
