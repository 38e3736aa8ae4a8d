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
    assert meta["inputs"] == [{"name": "SEED", "datatype": "UINT64", "shape": ["-1", "1"]}]
    assert meta["outputs"] == [{"name": "IMAGE", "datatype": "UINT8", "shape": ["-1", "16", "16", "4"]}]
    assert report["id"] == "abc"
    assert report["bad_status"] == "StatusCode.INVALID_ARGUMENT" and "UINT64" in report["bad_message"]
    assert report["missing_status"] == "StatusCode.NOT_FOUND"
    images = np.load(out)
    session = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    expected = session.run(["image"], {"z": latents([0, 7, 2**64 - 1], 16)})[0]
    np.testing.assert_array_equal(images, expected)


EXTENSIONS_SCRIPT = r"""
import json, queue, sys
import numpy as np
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

url, out = sys.argv[1], sys.argv[2]
client = tc.InferenceServerClient(url=url)
report = {
    "config": client.get_model_config("tiny", as_json=True)["config"],
    "index": client.get_model_repository_index(as_json=True),
}
try:
    client.get_model_config("tiny", model_version="7")
except InferenceServerException as exc:
    report["bad_version"] = exc.status()
try:
    client.load_model("tiny")
except InferenceServerException as exc:
    report["load_status"] = exc.status()

results = queue.Queue()
client.start_stream(callback=lambda result, error: results.put((result, error)))
for batch in ([3, 4], [5], [2**64 - 1]):
    inp = tc.InferInput("SEED", [len(batch)], "UINT64")
    inp.set_data_from_numpy(np.array(batch, dtype=np.uint64))
    client.async_stream_infer("tiny", [inp], request_id=str(batch[0]))
bad = tc.InferInput("SEED", [1], "INT64")
bad.set_data_from_numpy(np.array([1], dtype=np.int64))
client.async_stream_infer("tiny", [bad], request_id="bad")
streamed, errors = [], []
for _ in range(4):
    result, error = results.get(timeout=60)
    if error is not None:
        errors.append(str(error))
    else:
        streamed.append((result.get_response().id, result.as_numpy("IMAGE")))
client.stop_stream()
report["stream_ids"] = [i for i, _ in streamed]
report["stream_errors"] = errors
np.save(out, np.concatenate([images for _, images in streamed]))
report["stats"] = client.get_inference_statistics("tiny", as_json=True)["model_stats"]
print(json.dumps(report))
"""


def test_triton_extensions_config_statistics_index_and_stream(
    server: tuple[Any, str], tiny_model: Path, tmp_path: Path
) -> None:
    """What Triton's tools call besides ModelInfer: the config (dims without the batch dimension),
    the repository index, the bidirectional stream, statistics that count what was just done,
    and an RPC artctl does not serve refused as UNIMPLEMENTED and counted."""
    srv, target = server
    out = tmp_path / "streamed.npy"
    before = srv.metrics.requests.labels("unknown", "RepositoryModelLoad", "UNIMPLEMENTED")._value.get()
    proc = subprocess.run(
        [triton_python(), "-c", EXTENSIONS_SCRIPT, target, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    config = report["config"]
    assert config["name"] == "tiny" and config["platform"] == "onnxruntime_onnx"
    assert config["max_batch_size"] == 256  # the server's max_seeds_per_request
    assert config["input"] == [{"name": "SEED", "data_type": "TYPE_UINT64", "dims": ["1"]}]  # a seed a row
    assert config["output"] == [{"name": "IMAGE", "data_type": "TYPE_UINT8", "dims": ["16", "16", "4"]}]
    assert config["dynamic_batching"]["preferred_batch_size"] == [16]
    assert config["parameters"]["artctl_graph_optimization"]["string_value"] == "ORT_ENABLE_ALL"
    assert report["index"]["models"] == [{"name": "tiny", "version": "1", "state": "READY"}]
    assert report["bad_version"] == "StatusCode.NOT_FOUND"
    assert report["load_status"] == "StatusCode.UNIMPLEMENTED"
    after = srv.metrics.requests.labels("unknown", "RepositoryModelLoad", "UNIMPLEMENTED")._value.get()
    assert after == before + 1

    assert report["stream_ids"] == ["3", "5", str(2**64 - 1)]  # in order, the bad one left out
    assert len(report["stream_errors"]) == 1 and "UINT64" in report["stream_errors"][0]
    session = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    seeds = [3, 4, 5, 2**64 - 1]
    np.testing.assert_array_equal(np.load(out), session.run(["image"], {"z": latents(seeds, 16)})[0])

    (stats,) = report["stats"]
    assert stats["name"] == "tiny" and stats["version"] == "1"
    assert int(stats["inference_count"]) >= 4  # images, as Triton counts them
    infer = stats["inference_stats"]
    assert int(infer["success"]["count"]) >= 3 and int(infer["success"]["ns"]) > 0
    assert int(infer["fail"]["count"]) >= 1  # the refused stream request
    assert int(stats["execution_count"]) >= 1
    assert sum(int(b["compute_infer"]["count"]) for b in stats["batch_stats"]) == int(
        stats["execution_count"]
    )


HTTP_SCRIPT = r"""
import json, sys
import numpy as np
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

url, out = sys.argv[1], sys.argv[2]
client = th.InferenceServerClient(url=url)
report = {
    "live": client.is_server_live(),
    "ready": client.is_server_ready(),
    "model_ready": client.is_model_ready("tiny"),
    "metadata": client.get_model_metadata("tiny"),
    "config": client.get_model_config("tiny"),
}
inp = th.InferInput("SEED", [3, 1], "UINT64")
inp.set_data_from_numpy(np.array([[0], [7], [2**64 - 1]], dtype=np.uint64))  # binary by default
binary = client.infer("tiny", [inp], request_id="h1")
as_json = th.InferInput("SEED", [3, 1], "UINT64")
as_json.set_data_from_numpy(np.array([[0], [7], [2**64 - 1]], dtype=np.uint64), binary_data=False)
plain = client.infer("tiny", [as_json], outputs=[th.InferRequestedOutput("IMAGE", binary_data=False)])
np.save(out, np.stack([binary.as_numpy("IMAGE"), plain.as_numpy("IMAGE")]))
report["id"] = binary.get_response()["id"]
bad = th.InferInput("SEED", [1], "INT64")
bad.set_data_from_numpy(np.array([1], dtype=np.int64))
try:
    client.infer("tiny", [bad])
except InferenceServerException as exc:
    report["bad"] = [exc.status(), exc.message()]
print(json.dumps(report))
"""


def test_tritonclient_http_talks_kserve_rest_to_artctl(tiny_model: Path, tmp_path: Path) -> None:
    from tests.helpers import free_port, running_server

    with running_server([tiny_model], http_port=free_port()) as (server, _):
        out = tmp_path / "images.npy"
        proc = subprocess.run(
            [triton_python(), "-c", HTTP_SCRIPT, f"127.0.0.1:{server.http_port}", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["live"] and report["ready"] and report["model_ready"]
    assert report["metadata"]["inputs"] == [{"name": "SEED", "datatype": "UINT64", "shape": [-1, 1]}]
    assert report["config"]["max_batch_size"] == 1024 and report["id"] == "h1"
    assert report["bad"][0] == "400" and "UINT64" in report["bad"][1]
    session = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    expected = session.run(["image"], {"z": latents([0, 7, 2**64 - 1], 16)})[0]
    binary, plain = np.load(out)
    np.testing.assert_array_equal(binary, expected)
    np.testing.assert_array_equal(plain, expected)
