"""Traits and the collection config: weighted draws, pixel-derived traits, label mapping, errors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artctl.collection import CollectionConfig, ConfigError, DerivedTrait, load_collection
from artctl.metadata import check_format
from artctl.rarity import rarity_report
from artctl.seeds import trait_draw
from artctl.traits import derive, plan_traits

REPO = Path(__file__).resolve().parent.parent


def conditioning(**kw: Any) -> dict[str, Any]:
    return {"name": "Subject", "kind": "conditioning", "values": ["a", "b", "c"], "weights": [6, 3, 1], **kw}


def cfg(**kw: Any) -> CollectionConfig:
    return CollectionConfig(**{"name": "T", "size": 10, "salt": "s", **kw})


def test_trait_draws_follow_their_weights_over_100k_tokens() -> None:
    values, weights = ["common", "uncommon", "rare", "legendary", "never"], [600, 250, 100, 50, 0]
    n = 100_000
    counts = dict.fromkeys(values, 0)
    for token_id in range(n):
        counts[trait_draw("stats-salt", token_id, "Tier", values, weights)] += 1
    assert counts["never"] == 0
    total = sum(weights)
    chi2 = 0.0
    for value, weight in zip(values[:-1], weights[:-1]):
        p = weight / total
        sd = math.sqrt(n * p * (1 - p))
        assert abs(counts[value] - n * p) < 5 * sd, (value, counts[value], n * p)  # 5 sigma per value
        chi2 += (counts[value] - n * p) ** 2 / (n * p)
    assert chi2 < 20.5  # chi-square, 3 degrees of freedom: p < 0.00013


def test_plan_maps_values_to_the_models_labels() -> None:
    config = cfg(traits=[conditioning(labels=["cat", "dog", "owl"])])
    plan = plan_traits(config, {"has_label": True, "label_names": ["owl", "cat", "dog"]})
    assert plan.label_index == {"a": 1, "b": 2, "c": 0}
    draws = [plan.draw_label("s", i) for i in range(50)]
    assert all(d is not None and d[1] == plan.label_index[d[0]] for d in draws)
    assert [d[0] for d in draws if d] == [
        trait_draw("s", i, "Subject", ["a", "b", "c"], [6, 3, 1]) for i in range(50)
    ]


def test_plan_refuses_a_label_the_model_lacks_and_skips_on_unconditional_models() -> None:
    with pytest.raises(ConfigError, match=r"traits.0 \(Subject\).labels: the model has no label 'c'"):
        plan_traits(cfg(traits=[conditioning()]), {"has_label": True, "label_names": ["a", "b"]})
    plan = plan_traits(cfg(traits=[conditioning()]), {"has_label": False, "label_names": []})
    assert plan.conditioning is None and plan.order == [] and "skipped" in plan.skipped[0]
    with pytest.raises(ConfigError, match="has no labels"):
        plan_traits(cfg(traits=[conditioning(on_unconditional="error")]), {"has_label": False})


def derived(source: str, **kw: Any) -> DerivedTrait:
    return DerivedTrait(name="X", kind="derived", source=source, **kw)  # type: ignore[arg-type]


def test_derived_traits_read_the_pixels() -> None:
    img = np.zeros((8, 8, 4), dtype=np.uint8)
    img[:, :, 3] = 0  # fully transparent...
    img[:2, :, :] = (220, 30, 30, 255)  # ...but for a red stripe: 25% opaque
    assert derive(derived("dominant_colour"), img) == "red"
    assert derive(derived("dominant_colour", palette={"ink": "#000000", "rose": "#ff0000"}), img) == "rose"
    # luma of (220, 30, 30) = 0.299*220 + 0.587*30 + 0.114*30 = 86.8
    bright = derived("brightness", values=["dark", "mid", "light"], thresholds=[86, 87])
    assert derive(bright, img) == "mid"
    clear = derived("transparency", values=["solid", "cut", "floating"], thresholds=[50, 75])
    assert derive(clear, img) == "floating"  # exactly 75% clear is not below 75
    assert derive(derived("transparency", values=["solid", "cut"], thresholds=[76]), img) == "solid"
    rgb = np.full((4, 4, 3), 250, dtype=np.uint8)
    assert derive(clear, rgb) == "solid" and derive(derived("dominant_colour"), rgb) == "white"
    assert derive(bright, rgb) == "light"


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    def load(text: str) -> CollectionConfig:
        path = tmp_path / "c.toml"
        path.write_text('name = "x"\nsize = 3\nsalt = "s"\n' + text)
        return load_collection(path)

    cases = {
        "[royalties]\nbasis_points = 10001\nrecipient = '0x" + "a" * 40 + "'\n": "royalties.basis_points",
        "[royalties]\nbasis_points = 5\nrecipient = 'nope'\n": "royalties.recipient",
        "[[traits]]\nname='A'\nkind='conditioning'\nvalues=['a','b']\nweights=[1]\n": "traits.0.weights",
        "[[traits]]\nname='A'\nkind='conditioning'\nvalues=['a']\nweights=[0]\n": "traits.0.weights",
        "[[traits]]\nname='A'\nkind='derived'\nsource='brightness'\nvalues=['a','b']\nthresholds=[300]\n": (
            "traits.0.thresholds"
        ),
        "[[traits]]\nname='A'\nkind='derived'\nsource='glow'\n": "traits.0.source",
        "[[traits]]\nname='A'\nkind='magic'\n": "traits.0",
        "[[traits]]\nname='A'\nkind='derived'\nsource='dominant_colour'\npalette={i='black'}\n": "palette.i",
        "ipfs = true\nbase_uri = 'ipfs://x/'\n": "base_uri",
        "start_index = 2\n": "start_index",
        "psi = 3.0\n": "psi",
    }
    for text, key in cases.items():
        with pytest.raises(ConfigError) as info:
            load(text)
        message = str(info.value)
        assert "\n" not in message and key in message, (key, message)
    two = "[[traits]]\nname='A'\nkind='derived'\nsource='dominant_colour'\n"
    with pytest.raises(ConfigError, match="traits: duplicate trait name 'A'"):
        load(two + two)


def test_format_checks_fit_the_chain() -> None:
    evm = {"basis_points": 250, "recipient": "0x" + "1" * 40}
    sol = {"basis_points": 250, "recipient": "7xKXtg2CW87d97TXJSDpbD5jBkheTqA83TZRuJosgAsU"}
    check_format(cfg(royalties=evm), "erc721")
    check_format(cfg(royalties=sol), "metaplex")
    with pytest.raises(ConfigError, match=r"royalties.recipient: erc721 needs an EVM address"):
        check_format(cfg(royalties=sol), "erc721")
    with pytest.raises(ConfigError, match=r"royalties.recipient: metaplex needs a Solana"):
        check_format(cfg(royalties=evm), "metaplex")
    with pytest.raises(ConfigError, match=r"name: .* longer than Metaplex's 32 bytes"):
        check_format(cfg(name="A very long collection name indeed", royalties=sol), "metaplex")
    with pytest.raises(ConfigError, match=r"royalties: --format metaplex needs \[royalties\]"):
        check_format(cfg(), "metaplex")  # Sugar's config.json needs a creator
    with pytest.raises(ConfigError, match="--format must be one of"):
        check_format(cfg(), "erc1155")


def test_rarity_is_information_content() -> None:
    tokens = [
        {"id": 1, "traits": {"A": "x", "B": "p"}},
        {"id": 2, "traits": {"A": "x", "B": "q"}},
        {"id": 3, "traits": {"A": "y", "B": "q"}},
        {"id": 4, "traits": {"A": "x", "B": "q"}},
    ]
    report = rarity_report(tokens, ["A", "B"])
    by_id = {t["id"]: t for t in report["tokens"]}
    assert by_id[3]["score"] == pytest.approx(2 + math.log2(4 / 3), abs=1e-6)  # y: 1/4, q: 3/4
    assert by_id[1]["score"] == pytest.approx(math.log2(4 / 3) + 2, abs=1e-6)
    assert by_id[1]["rank"] == 1 and by_id[3]["rank"] == 2  # equal scores: lower id first
    assert by_id[2]["rank"] == 3 and by_id[4]["rank"] == 4
    assert report["traits"]["A"]["x"]["count"] == 3


def test_example_config_has_conditioning_and_derived_traits() -> None:
    config = load_collection(REPO / "examples" / "collection.toml")
    kinds = {t.kind for t in config.traits}
    assert kinds == {"conditioning", "derived"}
    plan = plan_traits(config, {"has_label": False})  # an unconditional model
    assert plan.conditioning is None and len(plan.order) == len(config.traits) - 1
