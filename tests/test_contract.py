"""The model contract: capabilities made once (from the network at export, from the card at load),
equal on both sides, and read everywhere else without probing networks or sessions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from artctl.capabilities import Capabilities, WSpace
from artctl.modelcard import ModelCard, ModelCardError
from tests.test_layout import GENERATED, REPO


def test_the_card_carries_the_networks_capabilities(
    tiny_run: Path, tiny_model: Path, style_model: Path
) -> None:
    """What the exporter derived from the network's declared interface is what the server reads
    back from the card: for a DCGAN (z space) and for a StyleGAN-type model (w space, psi)."""
    from artctl_serving.runtime import load_model
    from artctl_trainer.checkpoint import load_checkpoint
    from artctl_trainer.contract import StyleGeneratorNet, capabilities
    from artctl_trainer.networks import build_generator

    for run, model in ((tiny_run, tiny_model), (style_model.with_name("run"), style_model)):
        net = load_checkpoint(run).config.network
        G = build_generator(net)
        served = load_model(model).caps
        made = capabilities(G, net, list(served.palette), served.default_psi)
        assert made == served
        assert (served.w_space is not None) == isinstance(G, StyleGeneratorNet)
    style = load_model(style_model).caps
    assert style.psi and style.directions_space == "w" and style.inputs[:2] == ("z", "psi")
    assert style.w_space is not None and style.w_space.num_ws >= 2
    tiny = load_model(tiny_model).caps
    assert not tiny.psi and tiny.w_space is None and tiny.directions_space == "z"


def test_a_card_that_contradicts_itself_is_refused() -> None:
    base = {"name": "m", "architecture": "stylegan", "resolution": 16, "channels": 3, "z_dim": 8}
    with pytest.raises(ModelCardError, match="label_names is empty"):
        Capabilities.from_card(ModelCard(**base, has_label=True))
    with pytest.raises(ModelCardError, match="num_ws/w_dim"):
        Capabilities.from_card(ModelCard(**base, has_psi=True, extra={"num_ws": "6"}))
    caps = Capabilities.from_card(
        ModelCard(**base, has_psi=True, default_psi=0.7, extra={"num_ws": "6", "w_dim": "8"})
    )
    assert caps.w_space == WSpace(6, 8) and caps.inputs == ("z", "psi")
    assert (
        set(caps.conditioning(3)) == {"psi"} and caps.conditioning(3)["psi"].tolist() == [np.float32(0.7)] * 3
    )


# What a model can do is decided by the contract modules only (artctl.capabilities at load,
# artctl_trainer.contract at export). Every other hasattr/getattr in the packages is listed here
# with its count and what it reads; none of them asks a network or a session what it can do.
CONTRACT_MODULES = {"artctl/capabilities.py", "artctl_trainer/contract.py"}
ATTRIBUTE_READS = {
    "artctl/client.py": (3, "protobuf fields by descriptor name; a stub's method by RPC name"),
    "artctl/cli/__init__.py": (2, "each CLI module's COMMANDS and GROUPS lists"),
    "artctl/profile.py": (3, "numpy's CPU feature table; onnxruntime enum members by name"),
    "artctl_trainer/networks.py": (1, "spectral norm: each submodule's weight parameter, if any"),
    "artctl_exporter/exact.py": (1, "an onnxruntime optimisation level by name"),
    "artctl_serving/requests.py": (1, "a KServe tensor's contents field by datatype"),
    "artctl_serving/web_conn.py": (1, "an aiohttp error's message"),
    "artctl_serving/config.py": (1, "ServerOptions' own path fields by name"),
    "artctl_serving/interceptors.py": (2, "the model-name field of a request message"),
    "artctl_serving/runtime.py": (1, "onnxruntime.preload_dlls, present in newer builds only"),
    "artctl_serving/web_kserve.py": (1, "protobuf fields by descriptor name"),
}


def attribute_reads(root: Path = REPO) -> dict[str, int]:
    """File -> how many hasattr/getattr calls it makes, for every package module outside the contract."""
    import ast

    counts: dict[str, int] = {}
    for top in ("artctl", "artctl_serving", "artctl_trainer", "artctl_exporter"):
        for path in (root / top).rglob("*.py"):
            rel = path.relative_to(root).as_posix()
            if path.name.endswith(GENERATED) or rel in CONTRACT_MODULES:
                continue
            calls = [
                node
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("hasattr", "getattr")
            ]
            if calls:
                counts[rel] = len(calls)
    return counts


def test_no_capability_probing_outside_the_contract_modules() -> None:
    listed = {path: count for path, (count, _why) in ATTRIBUTE_READS.items()}
    assert attribute_reads() == listed


def test_the_probing_check_sees_a_new_probe(tmp_path: Path) -> None:
    (tmp_path / "artctl_exporter").mkdir()
    (tmp_path / "artctl_exporter" / "export.py").write_text("def f(G):\n    return hasattr(G, 'map')\n")
    (tmp_path / "artctl_trainer").mkdir()
    (tmp_path / "artctl_trainer" / "contract.py").write_text("x = getattr(object, 'y', 1)\n")
    assert attribute_reads(tmp_path) == {"artctl_exporter/export.py": 1}


def test_a_truncation_cutoff_renders_alike_over_grpc_http_and_mint(
    style_model: Path, tiny_model: Path, tmp_path: Path
) -> None:
    """The capability added through the contract: psi on the first k ws only. Its definition written
    out here (the first k ws truncated, the rest of the same latents at psi 1) is what Generate,
    the HTTP image URL and a locally minted (and verified) drop all render."""
    import json
    import urllib.request

    import grpc

    from artctl.drops.tokens import token_seed
    from artctl.seeds import pixel_sha256
    from artctl.v1 import generator_pb2 as pb
    from artctl.v1 import generator_pb2_grpc as pb_grpc
    from artctl_serving.styles import open_style_graphs
    from tests.helpers import artctl, free_port, running_server

    graphs = open_style_graphs(style_model)
    k, num_ws = 2, graphs.num_ws
    assert num_ws > k

    def expected(seeds: list[int]) -> list[str]:
        keys = np.array(seeds, dtype=np.uint64)
        truncated = graphs.map_seeds(keys, np.full(len(keys), 0.5, np.float32))
        ws = truncated.copy()
        ws[:, k:] = graphs.map_seeds(keys, np.ones(len(keys), np.float32))[:, k:]
        return [pixel_sha256(img) for img in graphs.synthesize(ws)]

    seeds = [3, 11, 2**63 + 5]
    plain = [pixel_sha256(img) for img in graphs.synthesize(graphs.map_seeds(np.array(seeds, np.uint64)))]
    with running_server([style_model, tiny_model], http_port=free_port()) as (server, target):
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.GeneratorStub(channel)

            def generate(model: str, cutoff: int, psi: float | None = 0.5) -> list[str]:
                request = pb.GenerateRequest(model=model, seeds=seeds, truncation_cutoff=cutoff)
                if psi is not None:
                    request.psi = psi
                return [a.pixel_sha256 for a in stub.Generate(request, timeout=60).artworks]

            assert generate("sty", k) == expected(seeds)
            assert generate("sty", k) != generate("sty", 0)  # the cutoff changes the pixels
            assert generate("sty", num_ws) == generate("sty", 0)  # every layer: psi as usual
            stream = pb.GenerateRequest(model="sty", seeds=seeds, psi=0.5, truncation_cutoff=k)
            assert [a.pixel_sha256 for a in stub.GenerateStream(stream)] == expected(seeds)
            for model, cutoff, psi, message in (
                ("tiny", 1, None, "no w space"),
                ("sty", num_ws + 1, 0.5, "must be in 1.."),
            ):
                with pytest.raises(grpc.RpcError) as err:
                    generate(model, cutoff, psi)
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert message in err.value.details()
        url = f"http://127.0.0.1:{server.http_port}/v1/models/sty/images/{seeds[0]}.png?psi=0.5&cutoff={k}"
        with urllib.request.urlopen(url, timeout=30) as reply:
            assert reply.headers["X-Pixel-Sha256"] == expected(seeds)[0]
    assert plain != expected(seeds)

    config = tmp_path / "cut.toml"
    config.write_text(
        f'name = "Cut"\nsize = 4\nsalt = "s"\nmodel = "sty"\npsi = 0.5\ntruncation_cutoff = {k}\n'
    )
    drop = tmp_path / "drop"
    made = artctl("mint", str(config), "--out", str(drop), "--local", "--model", str(style_model))
    assert made.returncode == 0, made.stderr
    manifest = json.loads((drop / "manifest.json").read_text())
    assert manifest["inputs"]["truncation_cutoff"] == k
    tokens = [token_seed("s", i) for i in range(4)]
    assert [t["pixel_sha256"] for t in manifest["tokens"]] == expected(tokens)
    assert artctl("verify", str(drop), "--local", "--model", str(style_model)).returncode == 0
