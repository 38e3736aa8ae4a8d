"""The studio in a real browser (Debian's chromium, driven by selenium through chromium-driver):
the grid shows what gRPC renders, pins and an edit become a curation, and the curated drop mints,
verifies and re-derives with the contract's own script."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from artctl.client import GeneratorClient
from artctl.models import embedded, embedded_models
from tests.helpers import free_port, require_system, running_server
from tests.test_rederive import run_snippet, snippet

REPO = Path(__file__).resolve().parent.parent
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def browser() -> Any:
    found = Path(CHROMIUM).is_file() and Path(DRIVER).is_file()
    require_system(found, "chromium with its driver", "chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1500,1000",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


@contextlib.contextmanager
def collection_studio(collection: Path) -> Iterator[tuple[Any, str]]:
    """A browser and the base URL of `artctl serve --collection COLLECTION` with every embedded model."""
    paths = list(embedded_models().values())
    with running_server(paths, http_port=free_port(), collection=collection) as (server, _):
        driver = browser()
        try:
            yield driver, f"http://127.0.0.1:{server.http_port}"
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def studio() -> Iterator[tuple[Any, str, str]]:
    """Every embedded model, as `artctl serve` with no arguments serves them (default first)."""
    models = embedded_models()
    assert list(models)[:1] == ["default"] and "emoji" in models
    paths = list(models.values())
    with running_server(paths, http_port=free_port(), max_seeds_per_request=256) as (server, target):
        driver = browser()
        try:
            yield driver, f"http://127.0.0.1:{server.http_port}", target
        finally:
            driver.quit()


def wait_for(driver: Any, script: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"the page never made true: {script}")


def open_emoji(driver: Any, base: str) -> None:
    """Load the studio and pick the emoji model (psi, mixing and w-space directions are its)."""
    driver.get(f"{base}/studio")
    wait_for(driver, "return window.artctlStudio && window.artctlStudio.state.model.name === 'default'")
    driver.execute_script(
        "const p = document.getElementById('model'); p.value = 'emoji';p.dispatchEvent(new Event('change'))"
    )
    wait_for(driver, "return window.artctlStudio.state.model.name === 'emoji'")
    wait_for(driver, "return document.querySelectorAll('.tile img').length === 72")


def test_the_picker_lists_every_embedded_model_with_the_nouns_default_first(
    studio: tuple[Any, str, str],
) -> None:
    driver, base, _ = studio
    driver.get(f"{base}/studio")
    wait_for(driver, "return window.artctlStudio && window.artctlStudio.state.model.name === 'default'")
    options = driver.execute_script("return [...document.getElementById('model').options].map(o => o.value)")
    assert options[:1] == ["default"] and "emoji" in options
    assert driver.execute_script("return document.getElementById('psi-box').hidden")  # a DCGAN: no psi
    wait_for(
        driver,
        "return [...document.querySelectorAll('.tile img')].every(i => i.complete && i.naturalWidth === 32)",
    )


def test_the_grid_shows_exactly_what_grpc_renders(studio: tuple[Any, str, str]) -> None:
    driver, base, target = studio
    open_emoji(driver, base)
    wait_for(
        driver,
        "return [...document.querySelectorAll('.tile img')].every(i => i.complete && i.naturalWidth === 64)",
    )
    tiles = driver.execute_script(
        "return [...document.querySelectorAll('.tile')]"
        ".map(t => [t.dataset.seed, t.dataset.label, t.querySelector('img').src])"
    )
    labels = driver.execute_script("return window.artctlStudio.state.model.labels")
    assert len(tiles) == 8 * len(labels) == 72
    with GeneratorClient(target) as client:
        for seed, label, src in tiles[::7]:  # every label row, every column, spread
            with urllib.request.urlopen(src, timeout=30) as reply:
                shown = reply.headers["X-Pixel-Sha256"]
            grpc_art = client.generate(
                [int(seed)], model="emoji", psi=0.7, labels=[labels.index(label)]
            ).artworks[0]
            assert shown == grpc_art.pixel_sha256, (seed, label)


def test_pins_and_an_edit_become_a_curation_that_mints_verifies_and_rederives(
    studio: tuple[Any, str, str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    driver, base, target = studio
    driver.get(f"{base}/studio")
    driver.execute_script("localStorage.clear()")
    open_emoji(driver, base)
    tiles = driver.find_elements(By.CSS_SELECTOR, ".tile")
    for index, edit in ((3, False), (20, True), (45, False)):  # three seeds, by clicking
        tiles[index].click()
        wait_for(driver, "return !document.getElementById('detail').hidden")
        if edit:  # move along direction 0, as dragging the slider does
            driver.execute_script(
                "const s = document.getElementById('direction-0'); s.value = 2.5;"
                "s.dispatchEvent(new Event('change'))"
            )
            wait_for(driver, "return document.getElementById('detail-image').src.includes('edit=0%3A2.5')")
        driver.find_element(By.ID, "pin").click()
        tiles = driver.find_elements(By.CSS_SELECTOR, ".tile")
    assert driver.find_element(By.ID, "pin-count").text == "3"
    assert len(driver.find_elements(By.CSS_SELECTOR, ".tile.pinned")) == 3  # each pinned seed marked
    # 47 more, through the page's own pinning (as 47 more clicks would), for a 50-token drop.
    driver.execute_script(
        "const s = window.artctlStudio;"
        "for (let seed = 100; seed < 147; seed++) {"
        "  s.select(seed, s.state.model.labels[seed % 9]); s.togglePin(); }"
    )
    driver.find_element(By.ID, "export").click()
    exported = json.loads(wait_for(driver, "return document.getElementById('curation').value"))
    assert exported["format"] == "artctl-curation-v1" and len(exported["entries"]) == 50
    assert (
        exported["entries"][1]["edits"] == [{"direction": 0, "amount": 2.5}] and exported["directions_sha256"]
    )
    picks = tmp_path / "curation.json"
    picks.write_text(json.dumps(exported))
    config = tmp_path / "c.toml"
    config.write_text(  # the curation was made with the emoji model, so the drop names it
        'name = "Studio picks"\nsize = 50\nsalt = "studio-secret"\nstart_index = 1\nmodel = "emoji"\n'
    )

    def artctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "artctl", *args], capture_output=True, text=True, timeout=300, cwd=REPO
        )

    drop = tmp_path / "drop"
    minted = artctl("mint", str(config), "--curation", str(picks), "--out", str(drop), "--server", target)
    assert minted.returncode == 0, minted.stderr
    manifest = json.loads((drop / "manifest.json").read_text())
    tokens = manifest["tokens"]
    assert [t["seed"] for t in tokens] == [e["seed"] for e in exported["entries"]]
    assert tokens[1]["edits"] == [{"amount": 2.5, "direction": 0}]
    echoed = [{k: v for k, v in e.items() if v != []} for e in manifest["collection"]["curation"]["entries"]]
    assert echoed == exported["entries"]  # the manifest carries the curation whole
    # The browser showed each pinned picture: the drop's pixels are the studio's.
    edited = exported["entries"][1]
    url = f"{base}/v1/models/emoji/images/{edited['seed']}.png?psi=0.7&label={edited['label']}&edit=0:2.5"
    with urllib.request.urlopen(url, timeout=30) as reply:
        assert reply.headers["X-Pixel-Sha256"] == tokens[1]["pixel_sha256"]
    served = artctl("verify", str(drop), "--server", target)
    local = artctl("verify", str(drop), "--local")  # the manifest's config says model = "emoji"
    assert served.returncode == 0 and local.returncode == 0, served.stdout + local.stdout
    model = embedded("emoji")
    assert model is not None
    copy = tmp_path / "model"
    copy.mkdir()
    for part in model.parent.glob("emoji.*"):  # the model file and the files beside it
        shutil.copy(part, copy / part.name)
    done = run_snippet(snippet(tmp_path), drop, copy / "emoji.onnx")
    assert done.returncode == 0 and done.stdout.strip() == "50 of 50 tokens re-derived", (
        done.stdout + done.stderr
    )
