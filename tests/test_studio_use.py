"""The studio as a person uses it, in a real browser: the chosen tile shows, the grid works from the
keyboard, a phone's 390 px fit without sideways scrolling, a walk stops, bans leave the page, and
a direction slider moves the picture while it is dragged. Screenshots at 1280 and 390 px are taken
each run; with ARTCTL_STUDIO_SHOTS=docs they are the ones docs/ shows."""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_studio import collection_studio, wait_for

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "collection.toml"
TILES = "[...document.querySelectorAll('#grid .tile')]"
SIDEWAYS = "const e = document.documentElement; return e.scrollWidth - e.clientWidth"  # px it scrolls


@pytest.fixture(scope="module")
def studio() -> Iterator[tuple[Any, str]]:
    """`artctl serve --collection examples/collection.toml`: the Nouns model under its trait values."""
    with collection_studio(EXAMPLE) as pair:
        yield pair


def viewport(driver: Any, width: int, height: int) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )


def fresh(driver: Any, base: str, width: int = 1280, height: int = 900) -> None:
    """The studio at this viewport, with nothing pinned or banned yet."""
    viewport(driver, width, height)
    driver.get(f"{base}/studio")
    driver.execute_script("localStorage.clear()")
    driver.get(f"{base}/studio")
    wait_for(driver, "return window.artctlStudio && window.artctlStudio.state.collection")
    wait_for(driver, f"return {TILES}.length > 0 && {TILES}.every(t => t.querySelector('img').complete)")


def active_tile(driver: Any) -> int:
    index: int = driver.execute_script(f"return {TILES}.indexOf(document.activeElement)")
    return index


def keys(driver: Any, *sequence: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*sequence).perform()


def test_the_chosen_tile_is_highlighted(studio: tuple[Any, str]) -> None:
    driver, base = studio
    fresh(driver, base)
    tiles = driver.find_elements("css selector", "#grid .tile")
    tiles[11].click()
    wait_for(driver, "return !document.getElementById('detail').hidden")
    chosen = driver.execute_script(
        f"return {TILES}.filter(t => t.classList.contains('selected')).map(t => {TILES}.indexOf(t))"
    )
    assert chosen == [11]
    style = driver.execute_script(
        "const s = getComputedStyle(document.querySelector('.tile.selected'));"
        "return [s.outlineStyle, s.outlineWidth]"
    )
    assert style[0] == "solid" and style[1] != "0px"
    tiles[12].click()  # the highlight moves with the choice
    wait_for(
        driver,
        f"return {TILES}[12].classList.contains('selected') && !{TILES}[11].classList.contains('selected')",
    )


def test_the_grid_is_used_by_keyboard(studio: tuple[Any, str]) -> None:
    from selenium.webdriver.common.keys import Keys

    driver, base = studio
    fresh(driver, base)
    driver.execute_script("document.getElementById('jump').focus()")
    keys(driver, Keys.TAB)  # the grid is the next stop after "go to seed"
    assert active_tile(driver) == 0
    keys(driver, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_DOWN)
    assert active_tile(driver) == 2 + 8
    keys(driver, Keys.ENTER)
    wait_for(driver, "return !document.getElementById('detail').hidden")
    tile = driver.execute_script(
        f"const t = {TILES}[10]; return [t.dataset.seed, t.dataset.label, t.className]"
    )
    assert tile[:2] == ["2", "grass"] and "selected" in tile[2]
    assert driver.find_element("id", "detail-title").text == "seed 2 · Grass"
    keys(driver, "p")  # pin, and the keyboard keeps its place in the re-drawn grid
    wait_for(driver, "return document.getElementById('pin-count').textContent === '1'")
    assert active_tile(driver) == 10
    keys(driver, Keys.ARROW_LEFT, "b")
    wait_for(driver, f"return {TILES}[9].classList.contains('banned')")
    assert driver.execute_script("return [...window.artctlStudio.state.bans]") == ["1|grass"]
    keys(driver, Keys.TAB)  # and Tab leaves the grid in one step, not 184
    assert active_tile(driver) == -1


def test_at_390_px_nothing_scrolls_sideways_and_the_detail_is_reachable(
    studio: tuple[Any, str], tmp_path: Path
) -> None:
    driver, base = studio
    shots = Path(os.environ.get("ARTCTL_STUDIO_SHOTS") or tmp_path)
    fresh(driver, base)  # 1280 px first: the picture docs/studio.png shows
    driver.execute_script("const s = window.artctlStudio; s.select(1, 'square-black'); s.togglePin();")
    driver.find_elements("css selector", "#grid .tile")[11].click()
    wait_for(driver, "return document.getElementById('detail-image').complete")
    assert driver.execute_script(SIDEWAYS) == 0  # grid and detail side by side, tiles shrunk to fit
    driver.save_screenshot(str(shots / "studio.png"))
    try:
        fresh(driver, base, 390, 844)
        assert driver.execute_script("return window.innerWidth") == 390
        assert driver.execute_script(SIDEWAYS) == 0  # on main: 549 px
        tops = driver.execute_script(
            f"return {TILES}.slice(0, 5).map(t => Math.round(t.getBoundingClientRect().top))"
        )
        assert len(set(tops[:4])) == 1 and tops[4] > tops[0]  # 4 tiles a row on a phone
        driver.find_elements("css selector", "#grid .tile")[5].click()
        wait_for(driver, "return !document.getElementById('detail').hidden")
        box = wait_for(
            driver,
            "const r = document.getElementById('detail').getBoundingClientRect();"
            "return r.top >= 0 && r.top < innerHeight && [r.left, r.right]",
        )
        assert box[0] >= 0 and box[1] <= 390  # on screen, scrolled to, and all of it in width
        wait_for(driver, "return document.getElementById('detail-image').complete")
        assert driver.execute_script(SIDEWAYS) == 0  # nor with the detail open
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(shots / "studio-390.png"))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    for name, width in (("studio.png", 1280), ("studio-390.png", 390)):
        head = (shots / name).read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">I", head[16:20])[0] == width


def test_a_walk_can_be_stopped(studio: tuple[Any, str]) -> None:
    driver, base = studio
    fresh(driver, base)
    driver.find_elements("css selector", "#grid .tile")[3].click()
    play = driver.find_element("id", "walk-play")
    play.click()
    wait_for(driver, "return document.getElementById('walk-image').src.includes('/walk/3/')")
    assert play.text == "Stop"
    play.click()
    assert play.text == "Play"
    shown = driver.execute_script("return document.getElementById('walk-image').src")
    time.sleep(0.6)  # seven frames' time at 12 frames a second: none is shown
    assert driver.execute_script("return document.getElementById('walk-image').src") == shown


def test_bans_are_exported_beside_the_curation(studio: tuple[Any, str]) -> None:
    driver, base = studio
    fresh(driver, base)
    tiles = driver.find_elements("css selector", "#grid .tile")
    for index, button in ((2, "pin"), (9, "ban"), (17, "ban")):
        tiles[index].click()
        driver.find_element("id", button).click()
        tiles = driver.find_elements("css selector", "#grid .tile")
    driver.find_element("id", "export").click()
    bans = json.loads(wait_for(driver, "return document.getElementById('bans').value"))
    curation = json.loads(driver.execute_script("return document.getElementById('curation').value"))
    assert bans["format"] == "artctl-studio-bans-v1" and bans["model"] == curation["model"]
    assert bans["entries"] == [{"seed": "1", "label": "grass"}, {"seed": "1", "label": "hip-rose"}]
    assert curation["entries"] == [{"seed": "2", "label": "deep-teal"}]


def test_a_direction_slider_moves_the_picture_while_it_is_dragged(studio: tuple[Any, str]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    driver, base = studio
    fresh(driver, base)
    driver.find_elements("css selector", "#grid .tile")[4].click()
    slider = driver.find_element("id", "direction-0")
    wait_for(driver, "return document.getElementById('detail-image').src.includes('/images/4.png')")
    drag = ActionChains(driver).click_and_hold(slider).move_by_offset(slider.size["width"] // 3, 0)
    drag.perform()  # the button is still down: no change event yet
    try:
        wait_for(driver, "return /edit=0%3A[1-9]/.test(document.getElementById('detail-image').src)")
        assert driver.execute_script("return document.getElementById('direction-0').value") != "0"
    finally:
        ActionChains(driver).release().perform()
