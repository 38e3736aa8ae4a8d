"""Rarity by information content: a token's score is the sum over its traits of -log2(share of
tokens with that value). It rewards rare combinations without weighting traits by hand, and it is a
pure function of the manifest, so anyone can recompute `rarity.json`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

RARITY_METHOD = "information-content-v1"
SCORE_DIGITS = 6  # scores are rounded before ranking, so the last float bit cannot reorder tokens


def rarity_report(tokens: Sequence[Mapping[str, Any]], trait_names: Sequence[str]) -> dict[str, Any]:
    """Per-trait value counts, and per token its score and rank (1 = rarest; ties by token id)."""
    n = len(tokens)
    counts: dict[str, Counter[str]] = {name: Counter() for name in trait_names}
    for token in tokens:
        for name in trait_names:
            counts[name][str(token["traits"][name])] += 1
    bits = {name: {v: -math.log2(c / n) for v, c in table.items()} for name, table in counts.items()}
    scored = [
        (round(sum(bits[name][str(t["traits"][name])] for name in trait_names), SCORE_DIGITS), int(t["id"]))
        for t in tokens
    ]
    ranks = {token_id: i + 1 for i, (_, token_id) in enumerate(sorted(scored, key=lambda s: (-s[0], s[1])))}
    return {
        "method": RARITY_METHOD,
        "tokens_total": n,
        "traits": {
            name: {
                v: {"count": c, "information_bits": round(bits[name][v], SCORE_DIGITS)}
                for v, c in sorted(table.items())
            }
            for name, table in counts.items()
        },
        "tokens": [{"id": token_id, "rank": ranks[token_id], "score": score} for score, token_id in scored],
    }
