"""Streaming: the manifest and rarity.json are written and read one token entry at a time, yet their
bytes are exactly what serialising the whole document in one go gives (the way mint used to work).
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from artctl import jsonstream
from artctl.collection import CollectionConfig
from artctl.drops.files import DropTally, directory_cids, manifest_doc
from artctl.drops.mint import mint
from artctl.drops.tokens import DropContext, render_chunk, render_inputs
from artctl.jsonstream import dump_streamed, iter_array, read_without
from artctl.metadata import stable_json
from artctl.rarity import RarityTally, rarity_report
from artctl.seeds import provenance
from artctl.traits import plan_traits
from artctl_serving.local import LocalRenderer
from tests.helpers import DERIVED as HELPER_DERIVED

DERIVED = HELPER_DERIVED[:2]  # Palette and Brightness


def whole(doc: Any) -> bytes:
    """The old way: the whole document through `json` at once."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def old_rarity_report(tokens: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """rarity_report as it was before streaming (whole lists and dicts), kept as the reference."""
    n = len(tokens)
    counts: dict[str, Counter[str]] = {name: Counter() for name in names}
    for token in tokens:
        for name in names:
            counts[name][str(token["traits"][name])] += 1
    bits = {name: {v: -math.log2(c / n) for v, c in table.items()} for name, table in counts.items()}
    scored = [
        (round(sum(bits[name][str(t["traits"][name])] for name in names), 6), int(t["id"])) for t in tokens
    ]
    ranks = {tid: i + 1 for i, (_, tid) in enumerate(sorted(scored, key=lambda s: (-s[0], s[1])))}
    return {
        "method": "information-content-v1",
        "tokens_total": n,
        "traits": {
            name: {
                v: {"count": c, "information_bits": round(bits[name][v], 6) + 0.0}
                for v, c in sorted(table.items())
            }
            for name, table in counts.items()
        },
        "tokens": [{"id": tid, "rank": ranks[tid], "score": score} for score, tid in scored],
    }


@pytest.mark.parametrize("count", [0, 1, 2, 5])
def test_dump_streamed_gives_the_bytes_of_the_whole_document(count: int) -> None:
    items = [
        {"id": i, "name": f'ünï\n"{i}"', "nested": {"z": [1, 2.5, None], "a": {}}, "empty": []}
        for i in range(count)
    ]
    doc = {"zeta": {"tokens": [1]}, "alpha": "α", "tokens_total": count, "list": [[], {}], "n": 1e-7}
    out = bytearray()
    assert dump_streamed(doc, "tokens", iter(items), out.extend) == count
    assert bytes(out) == whole({**doc, "tokens": items}) == stable_json({**doc, "tokens": items})


def test_reading_streams_any_layout_across_buffer_edges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonstream, "_READ", 3)  # every value straddles reads
    tokens = [{"id": i, "v": 12345.678 * i, "s": "ü" * i} for i in range(7)]
    doc = {"a": 1234567, "tokens": tokens, "z": {"tokens": [9]}, "b": [True, None]}
    for text in (
        json.dumps(doc),
        json.dumps(doc, indent=4),
        whole(doc).decode(),
        " \n" + json.dumps(doc) + "\n",
    ):
        path = tmp_path / "doc.json"
        path.write_text(text, encoding="utf-8")
        assert list(iter_array(path, "tokens")) == tokens
        assert read_without(path, "tokens") == {k: v for k, v in doc.items() if k != "tokens"}
    path.write_text('{"tokens": []}')
    assert list(iter_array(path, "tokens")) == [] and read_without(path, "tokens") == {}
    for bad in ('{"a": 1', '{"tokens": [1, 2}', '{"a": 1} x', "[1]", "", '{"a": 12'):
        path.write_text(bad)
        with pytest.raises(ValueError):
            read_without(path, "tokens")


def test_rarity_tally_matches_the_whole_list_report() -> None:
    rng = random.Random(6)
    names = ["A", "B", "C"]
    tokens = [
        {"id": i, "traits": {"A": rng.choice("xyz"), "B": rng.choice(["p", "q"] * 5 + ["r"]), "C": i % 4}}
        for i in range(1, 3001)
    ]
    assert rarity_report(tokens, names) == old_rarity_report(tokens, names)
    tally = RarityTally(names)
    for token in tokens:
        tally.add(token)
    out = bytearray()
    tally.write(out.extend)
    assert bytes(out) == whole(old_rarity_report(tokens, names))


def test_streamed_drop_files_equal_the_whole_document_serialised(tiny_model: Path, tmp_path: Path) -> None:
    cfg = CollectionConfig(name="Stream", symbol="ST", size=37, salt="s", start_index=1, traits=DERIVED)
    drop = tmp_path / "drop"
    renderer = LocalRenderer(tiny_model)
    result = mint(cfg, drop, renderer, chunk=8)  # several journal chunks, the last one short
    # The old way: every entry in a list, the manifest and rarity.json as one `json` document each.
    plan = plan_traits(cfg, renderer.model_card())
    inputs = render_inputs(cfg, renderer.model_card())
    ctx = DropContext(cfg, plan, renderer.model_card()["sha256"], "erc721", inputs)
    entries = [entry for entry, _ in render_chunk(ctx, cfg.token_ids(), renderer)]
    tally = DropTally(plan.order, len(cfg.token_ids()))
    for entry in entries:
        tally.add(entry)
    directories = directory_cids(drop, ctx.layout, cfg.token_ids())
    card, profile = renderer.model_card(), renderer.profile()
    doc = manifest_doc(cfg, "erc721", card, profile, plan, tally, inputs=inputs, directories=directories)
    assert doc["provenance"] == provenance(e["file_sha256"] for e in entries) == result.provenance
    manifest = (drop / "manifest.json").read_bytes()
    assert manifest == whole({**doc, "tokens": entries})
    assert manifest == whole(json.loads(manifest))
    assert (drop / "rarity.json").read_bytes() == whole(old_rarity_report(entries, plan.order))
    assert list(result.entries) == json.loads(manifest)["tokens"]
    assert not (drop / ".artctl-mint").exists()
    # A re-run of the finished drop (journal gone) resumes from the manifest, streamed, to the same bytes.
    again = mint(cfg, drop, renderer, chunk=8)
    assert again.rendered == 0 and (drop / "manifest.json").read_bytes() == manifest
