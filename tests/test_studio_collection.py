"""The studio knows the collection: started with a config (or given one in the page) it offers the
conditioning trait's values, and only those, so that what a person pins is what `artctl mint`
accepts; and mint's refusal of any other label lists the allowed ones."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from artctl.collection import load_collection
from artctl.models import embedded
from tests.test_studio import collection_studio, wait_for

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "collection.toml"
SUBSET = """name = "Three noggles"
size = 1
salt = "s"
model = "default"

[[traits]]
name = "Noggles"
kind = "conditioning"
values = ["Teal", "Red", "Grass"]
weights = [1, 1, 1]
labels = ["square-teal", "square-red", "grass"]
"""


@pytest.fixture(scope="module")
def studio() -> Iterator[tuple[Any, str]]:
    """`artctl serve --collection examples/collection.toml` with every embedded model."""
    with collection_studio(EXAMPLE) as pair:
        yield pair


def open_studio(driver: Any, base: str) -> None:
    driver.get(f"{base}/studio")
    wait_for(driver, "return window.artctlStudio && window.artctlStudio.state.collection")
    wait_for(driver, "return document.querySelectorAll('.tile').length > 0")


def row_titles(driver: Any) -> list[str]:
    titles: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('.row-title')].map(t => t.textContent)"
    )
    return titles


def test_a_served_collection_shows_its_trait_values_for_its_model(studio: tuple[Any, str]) -> None:
    driver, base = studio
    open_studio(driver, base)
    trait = next(t for t in load_collection(EXAMPLE).traits if t.name == "Noggles")
    assert row_titles(driver) == list(trait.values)  # "Deep Teal", not "deep-teal"
    labels = driver.execute_script(
        "return [...new Set([...document.querySelectorAll('.tile')].map(t => t.dataset.label))]"
    )
    assert labels == trait.label_names()  # the URLs and the curation still say the model's label
    assert driver.find_element("id", "collection-name").text == "artctl Nouns: 23 Noggles"


def test_a_config_given_in_the_page_offers_only_the_labels_it_maps(
    studio: tuple[Any, str], tmp_path: Path
) -> None:
    driver, base = studio
    open_studio(driver, base)
    assert len(row_titles(driver)) == 23
    config = tmp_path / "three.toml"
    config.write_text(SUBSET)
    driver.find_element("id", "collection-file").send_keys(str(config))
    wait_for(driver, "return document.querySelectorAll('.row-title').length === 3")
    assert row_titles(driver) == ["Teal", "Red", "Grass"]
    driver.execute_script("const s = window.artctlStudio; s.select(4, 'square-red'); s.togglePin();")
    exported = driver.execute_script("return window.artctlStudio.curation()")
    assert exported["entries"] == [{"seed": "4", "label": "square-red"}]
    assert "seed 4 · Red" in driver.find_element("id", "detail-title").text


def test_a_config_the_model_cannot_show_is_a_400_naming_the_label(studio: tuple[Any, str]) -> None:
    _, base = studio
    bad = SUBSET.replace('"grass"]', '"monocle"]')
    request = urllib.request.Request(f"{base}/v1/collection", data=bad.encode(), method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 400
    assert "no label 'monocle'" in json.loads(caught.value.read())["error"]


def test_mint_refuses_a_label_the_config_does_not_map_and_lists_the_allowed(tmp_path: Path) -> None:
    model = embedded("default")
    assert model is not None
    curation = {
        "format": "artctl-curation-v1",
        "model": {"name": "default", "sha256": hashlib.sha256(model.read_bytes()).hexdigest()},
        "entries": [{"seed": "4", "label": "square-blue"}],  # a label of the model, not of the config
    }
    (tmp_path / "c.json").write_text(json.dumps(curation))
    (tmp_path / "c.toml").write_text(SUBSET)
    curated = ["--curation", str(tmp_path / "c.json"), "--out", str(tmp_path / "drop")]
    done = subprocess.run(
        [sys.executable, "-m", "artctl", "mint", str(tmp_path / "c.toml"), "--local", *curated],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode != 0
    line = done.stderr.strip().splitlines()[-1]
    assert "'square-blue' is no value of the trait 'Noggles'" in line
    assert "allowed labels: square-teal (Teal), square-red (Red), grass (Grass)" in line
