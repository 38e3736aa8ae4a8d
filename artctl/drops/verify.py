"""`artctl verify`: re-render every token of a drop and check everything a buyer could be shown.

Checked per token: seed (contract), re-rendered pixels vs the manifest, the image file's SHA-256,
decoded pixels and IPFS CID (an upscaled or SVG file must also be exactly the bytes mint writes
from the re-rendered pixels at the drop's image_scale and image_format), traits, image URI and the
metadata file's exact bytes. Each token is
also classified against its image file (identical, within 1 LSB, different image), and the
renderer's profile is compared with the drop's, so a re-render on another runtime says what
differs and by how much. Checked per drop: token ids, provenance (manifest and provenance.txt),
collection.json, rarity.json, the contact sheet and stray files. Every mismatch is reported, not just
the first.

The manifest's token entries are streamed (a few passes, one entry at a time), never loaded whole,
so memory stays flat whatever the size of the drop.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from artctl.cid import cid_of_bytes
from artctl.collection import CollectionConfig, ConfigError, base_uri_problem, parse_collection
from artctl.delivery import native_pixels, visible
from artctl.drops import MintError, sugar
from artctl.drops.files import DropTally, directory_cids, final_files
from artctl.drops.journal import read_manifest_head
from artctl.drops.render import Renderer
from artctl.drops.sugar_config import check_sugar_config
from artctl.drops.tokens import (
    CHUNK,
    DropContext,
    chunks,
    prepare_curation,
    render_chunk,
    render_inputs,
)
from artctl.imaging import decode_png
from artctl.jsonstream import iter_array, sha256_of_file, sha256_of_fill
from artctl.metadata import stable_json
from artctl.profile import EXACT_CONTRACT, profile_differences
from artctl.seeds import pixel_sha256
from artctl.traits import COLOUR_V1, plan_traits

IDENTICAL, NEAR, DIFFERENT = "identical", "within 1 LSB", "different image"


@dataclass
class VerifyReport:
    tokens: int = 0
    problems: list[str] = field(default_factory=list)
    # Each token's re-render against its image file: identical, within 1 LSB, or a different image.
    classes: Counter[str] = field(default_factory=Counter)
    near_pixels: int = 0  # pixels (channel values) that differ by 1 in the "within 1 LSB" tokens
    # Pixel-deciding profile fields where the renderer differs from the drop: {field: (drop, here)}.
    profile_differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    isa: str = ""  # the instruction set the re-render ran on (the renderer's profile)
    drop_isa: str = ""  # ... and the one the drop was minted on
    exact: bool = False  # the model is an exact graph (artctl-exact-v1): the same pixels on any CPU

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: how the re-rendered pixels compare with the drop's images."""
        near = f"{self.classes[NEAR]} within 1 LSB ({self.near_pixels} values)"
        return f"{self.classes[IDENTICAL]} identical, {near}, {self.classes[DIFFERENT]} different images"

    def where(self) -> str:
        """One line: the instruction set re-rendered on, the drop's, and what that means for pixels."""
        line = f"re-rendered on {self.isa or 'an unknown CPU'} (the drop: {self.drop_isa or 'not recorded'})"
        if self.exact:
            return f"{line}; {EXACT_CONTRACT} model: identical pixels expected on any CPU"
        if self.isa != self.drop_isa:
            return f"{line}; a float model: values within 1 LSB can differ on another CPU"
        return line


def classify(fresh: npt.NDArray[np.uint8], stored: npt.NDArray[np.uint8] | None) -> tuple[str, int]:
    """How a re-render compares with the image a buyer holds, and how many values differ by one."""
    if stored is None or stored.shape != fresh.shape:
        return DIFFERENT, 0
    diff = np.abs(fresh.astype(np.int16) - stored.astype(np.int16))
    if not diff.any():
        return IDENTICAL, 0
    return (NEAR, int(np.count_nonzero(diff))) if int(diff.max()) <= 1 else (DIFFERENT, 0)


def _diff_keys(expected: dict[str, Any], actual: Any) -> str:
    if not isinstance(actual, dict):
        return "not a JSON object"
    keys = sorted(k for k in expected.keys() | actual.keys() if expected.get(k) != actual.get(k))
    return "fields " + ", ".join(keys) if keys else "formatting"


def load_manifest(drop: Path) -> tuple[dict[str, Any], CollectionConfig]:
    """The manifest without its token entries (stream those with `iter_array`), and its config."""
    doc = read_manifest_head(drop, "drop")
    try:
        config = parse_collection(doc["collection"], f"{drop}/manifest.json collection", recorded=True)
    except (ConfigError, KeyError, TypeError) as exc:
        raise MintError(f"{drop}/manifest.json: no usable collection config ({exc})") from None
    return doc, config


def _check_token(
    drop: Path,
    ctx: DropContext,
    entry: dict[str, Any],
    fresh: dict[str, Any],
    pixels: npt.NDArray[np.uint8],
    report: VerifyReport,
) -> None:
    tid = entry.get("id")
    add = report.problems.append
    stored = None
    for key in ("seed", "pixel_sha256", "traits", "label", "label_name"):
        if entry.get(key) != fresh.get(key):
            what = {"pixel_sha256": "re-rendered pixels"}.get(key, key)
            add(f"token {tid}: {what} differ from manifest.json ({fresh.get(key)!r} != {entry.get(key)!r})")
    layout = ctx.layout
    token_id = int(str(tid))
    # What the image file can hold of the pixels: an SVG drops the RGB of fully transparent ones.
    kept = visible(pixels) if ctx.config.image_format == "svg" else pixels
    image_name, metadata_name = layout.image_name(token_id), layout.metadata_name(token_id)
    try:
        data = layout.image(drop, token_id).read_bytes()
    except OSError:
        add(f"{image_name}: missing")
    else:
        if hashlib.sha256(data).hexdigest() != entry.get("file_sha256"):
            add(f"{image_name}: file SHA-256 does not match manifest.json (swapped or edited image)")
        scale, fmt = ctx.config.image_scale, ctx.config.image_format
        if not ctx.plain and data != ctx.image_file(pixels):
            add(
                f"{image_name}: is not the file mint writes from token {tid}'s re-rendered pixels "
                f"({fmt} at scale {scale})"
            )
        try:
            stored = native_pixels(data, scale, fmt, pixels.shape[2])
            if pixel_sha256(stored) != pixel_sha256(kept):
                add(f"{image_name}: its pixels are not token {tid}'s re-rendered image")
        except (OSError, ValueError) as exc:
            stored = None
            add(f"{image_name}: not a readable {fmt.upper()} at scale {scale} ({exc})")
        cid = cid_of_bytes(data)
        if cid != entry.get("cid"):
            add(f"{image_name}: IPFS CID {cid} does not match manifest.json ({entry.get('cid')})")
    kind, near = classify(kept, stored)
    report.classes[kind] += 1
    report.near_pixels += near
    expected_uri = layout.image_uri(ctx.config, token_id, str(entry.get("cid")))
    if entry.get("image") != expected_uri:
        add(f"token {tid}: image URI {entry.get('image')!r} should be {expected_uri!r}")
    uri_problem = layout.uri_problem(ctx.config, token_id, entry.get("image"))
    if uri_problem:
        add(f"token {tid}: {uri_problem}")
    meta_path = layout.metadata(drop, token_id)
    expected = ctx.metadata(entry)
    try:
        raw = meta_path.read_bytes()
    except OSError:
        add(f"{metadata_name}: missing")
        return
    if raw != stable_json(expected):
        try:
            actual = json.loads(raw)
        except ValueError:
            actual = None
        add(f"{metadata_name}: differs from the metadata the manifest gives ({_diff_keys(expected, actual)})")


def verify(
    drop: Path,
    renderer: Renderer,
    on_progress: Callable[[int, int], None] | None = None,
    chunk: int = CHUNK,
) -> VerifyReport:
    """Re-render and check a finished drop; returns every mismatch found."""
    drop = Path(drop)
    doc, config = load_manifest(drop)
    report = VerifyReport()
    add = report.problems.append
    card = renderer.model_card()
    model_sha = str(card.get("sha256", ""))
    if model_sha != (doc.get("model") or {}).get("sha256"):
        add(f"model: the renderer's model (sha256 {model_sha[:12]}…) is not the one in manifest.json")
    colour = (doc.get("contracts") or {}).get("colour", COLOUR_V1)  # drops before v4 named by RGB
    plan = plan_traits(config, card, colour)
    fmt = str(doc.get("metadata_format", "erc721"))
    expected_inputs = render_inputs(config, card)
    recorded_inputs = doc.get("inputs")  # absent from drops older than artctl-manifest-v3
    if recorded_inputs is not None and recorded_inputs != expected_inputs:
        add(f"manifest.json: inputs {recorded_inputs} should be {expected_inputs}")
    inputs = expected_inputs if recorded_inputs is not None else {}
    ctx = DropContext(config, plan, str((doc.get("model") or {}).get("sha256", "")), fmt, inputs)
    try:
        prepare_curation(ctx, card)
    except MintError as exc:
        add(f"curation: {exc}")
        return report
    base_problem = base_uri_problem(config.base_uri) if config.base_uri is not None else None
    if base_problem and not ctx.layout.sugar:
        add(f"manifest.json: base_uri {base_problem}")
    if doc.get("traits", {}).get("active") != plan.order:
        add(f"manifest.json: active traits {doc.get('traits', {}).get('active')} should be {plan.order}")
    manifest = drop / "manifest.json"
    shard = doc.get("shard")
    want_ids = range(shard["first_id"], shard["stop_id"]) if shard else config.token_ids()
    in_order = _ids_are(manifest, want_ids)
    if not in_order:
        add(f"manifest.json: token ids are not {want_ids[0]}..{want_ids[-1]} in order")
    # In order (the normal case) the entries are read in step with the chunks; else looked up by id.
    tokens = iter_array(manifest, "tokens") if in_order else None
    by_id = {} if in_order else {t.get("id"): t for t in iter_array(manifest, "tokens")}
    done = 0
    for ids in chunks(want_ids, chunk):
        entries = [next(tokens) for _ in ids] if tokens else [by_id.get(i) for i in ids]
        for (fresh, item), entry in zip(render_chunk(ctx, ids, renderer), entries):
            if entry is None:
                add(f"token {fresh['id']}: missing from manifest.json")
                continue
            if entry.get("seed") != fresh["seed"]:
                why = "the curation's entry" if config.curation else "token_seed(salt, id)"
                add(f"token {fresh['id']}: seed is not {why}")
            pixels = item.pixels if item.pixels is not None else decode_png(item.png)
            _check_token(drop, ctx, entry, fresh, pixels, report)
        done += len(ids)
        report.tokens = done
        if on_progress:
            on_progress(done, len(want_ids))
    for sub in ctx.layout.folders:
        folder = drop / sub
        names = [e.name for e in os.scandir(folder)] if folder.is_dir() else []
        for name in sorted(n for n in names if not ctx.layout.is_drop_file(sub, n, want_ids)):
            add(f"{sub}/{name}: not a file of this drop")
    if shard is None:
        _check_drop_files(drop, config, doc, report.problems)
        if "ipfs_directories" in doc:  # recorded since artctl-manifest-v3
            try:
                found = directory_cids(drop, ctx.layout, want_ids)
            except OSError:  # a missing file, already reported above by its token
                add("manifest.json: ipfs_directories cannot be rebuilt while a file is missing")
            else:
                if doc["ipfs_directories"] != found:
                    add(f"manifest.json: ipfs_directories {doc['ipfs_directories']} should be {found}")
        if ctx.layout.sugar:
            report.problems += sugar.check_assets(drop / "assets") + check_sugar_config(drop, config)
    here, recorded = renderer.profile(), doc.get("render_profile") or {}
    report.exact = (card.get("contracts") or {}).get("arithmetic") == EXACT_CONTRACT
    report.isa, report.drop_isa = str(here.get("cpu_isa", "")), str(recorded.get("cpu_isa", ""))
    report.profile_differences = profile_differences(recorded, here, report.exact)
    return report


def _ids_are(manifest: Path, want: range) -> bool:
    """Whether the manifest's token ids are exactly `want`, in order (streamed)."""
    count = 0
    for token in iter_array(manifest, "tokens"):
        if count >= len(want) or token.get("id") != want[count]:
            return False
        count += 1
    return count == len(want)


def _check_drop_files(drop: Path, config: CollectionConfig, doc: dict[str, Any], problems: list[str]) -> None:
    add = problems.append
    manifest = drop / "manifest.json"
    tally = DropTally(doc["traits"]["active"], len(config.token_ids()))
    try:
        for token in iter_array(manifest, "tokens"):
            tally.add(token)
    except (KeyError, TypeError, ValueError) as exc:
        add(f"manifest.json: cannot rebuild provenance and rarity from its tokens ({exc})")
        return
    prov = tally.provenance
    if doc.get("provenance") != prov:
        add(f"manifest.json: provenance {doc.get('provenance')} should be {prov}")
    try:
        text = (drop / "provenance.txt").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        text = None
    if text != prov:
        add(f"provenance.txt: {text!r} is not the provenance of the image files ({prov})")
    expected_doc = {**doc, "provenance": prov}
    try:
        fills = final_files(drop, config, expected_doc, tally, lambda: iter_array(manifest, "tokens"))
        expected = {name: sha256_of_fill(fill) for name, fill in fills.items()}
    except (OSError, ValueError) as exc:
        add(f"contact-sheet.png: cannot rebuild it ({exc})")
        return
    for name in fills:
        if name == "provenance.txt":
            continue  # checked above, with its own message
        try:
            ok = sha256_of_file(drop / name) == expected[name]
        except OSError:
            add(f"{name}: missing")
            continue
        if ok:
            continue
        if name != "manifest.json":
            add(f"{name}: differs from what the manifest gives")
        elif doc.get("provenance") == prov:  # a wrong provenance is reported above already
            add("manifest.json: not in canonical form (edited by hand?)")
