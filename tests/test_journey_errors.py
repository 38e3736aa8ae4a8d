"""The documented journey as a newcomer meets it: errors that say what to do instead of a raw
gRPC or socket error, a README mint block that runs in order, and WebP walks that keep what the
docs say they keep."""

from __future__ import annotations

import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from artctl.collection import CollectionConfig
from artctl.drops.mint import mint
from artctl_serving.local import LocalRenderer
from tests.helpers import artctl, free_port

REPO = Path(__file__).resolve().parent.parent


def test_the_readme_client_snippet_with_no_server_says_what_to_do(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    snippet = re.search(r"```python\n(from artctl.client import GeneratorClient\n.*?)```", readme, re.S)
    assert snippet is not None
    target = f"127.0.0.1:{free_port()}"
    code = re.sub(r'\["10\.0\.0\.5:8001", "10\.0\.0\.6:8001"\]', f'["{target}"]', snippet.group(1))
    assert target in code
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 1 and "_InactiveRpcError" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"artctl.client.ServerUnavailable: no artctl server answered at {target}")
    assert "start one with `artctl serve MODEL`" in last


def test_verify_with_the_server_down_suggests_serve_and_local(tiny_model: Path, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    mint(CollectionConfig(name="D", size=2, salt="s"), drop, LocalRenderer(tiny_model))
    down = artctl("verify", str(drop), "--server", f"127.0.0.1:{free_port()}")
    assert down.returncode == 2 and down.stderr.count("\n") == 1
    assert "artctl serve" in down.stderr and "--local" in down.stderr and "Traceback" not in down.stderr


def test_a_busy_metrics_port_names_the_port_and_the_flag(tiny_model: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        done = artctl("serve", str(tiny_model), "--port", str(free_port()), "--metrics-port", str(busy))
    assert done.returncode == 1
    assert f"artctl: error: cannot listen on 127.0.0.1:{busy} for /metrics" in done.stderr
    assert "choose another --metrics-port" in done.stderr


def test_the_readme_mint_block_never_reuses_a_folder_for_another_model() -> None:
    readme = (REPO / "README.md").read_text()
    used: dict[str, tuple[str, ...]] = {}
    for line in readme.splitlines():
        if not line.startswith("artctl mint "):
            continue
        words = shlex.split(line.split("#")[0])
        out = words[words.index("--out") + 1]
        model = words[words.index("--model") + 1] if "--model" in words else "the config's"
        where = "--local" if "--local" in words else "a server"
        renders = (model, where, *[w for w in words if w.startswith("--shard")])
        assert used.setdefault(out, renders) == renders, f"--out {out} is used for {used[out]} and {renders}"


def test_a_webp_walk_keeps_visible_pixels_and_zeroes_transparent_colour(tmp_path: Path) -> None:
    plain = artctl("generate", "--model", "emoji", "--seeds", "1", "--out", "plain", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    render = np.asarray(Image.open(tmp_path / "plain" / "seed0001.png"))
    hidden = render[render[..., 3] == 0]
    assert len(hidden) and hidden[:, :3].any()  # the render has colour under full transparency
    walk = artctl(
        "interpolate",
        "--model",
        "emoji",
        "--seeds",
        "1,2",
        "--frames",
        "3",
        "--out",
        "walk.webp",
        cwd=tmp_path,
    )
    assert walk.returncode == 0, walk.stderr
    with Image.open(tmp_path / "walk.webp") as anim:
        first = np.asarray(anim.convert("RGBA"))
    shown = render[..., 3] > 0
    np.testing.assert_array_equal(first[..., 3], render[..., 3])  # every alpha, as docs/creative.md says
    np.testing.assert_array_equal(first[shown], render[shown])  # every visible pixel
    assert not np.array_equal(first, render)  # the colour under alpha 0 is not kept, as it says too
    assert "keeps no colour under alpha 0" in " ".join((REPO / "docs" / "creative.md").read_text().split())
