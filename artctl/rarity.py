"""Rarity by information content: a token's score is the sum over its traits of -log2(share of
tokens with that value). It rewards rare combinations without weighting traits by hand, and it is a
pure function of the manifest, so anyone can recompute `rarity.json`.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from artctl.jsonstream import Write, dump_streamed

RARITY_METHOD = "information-content-v1"
SCORE_DIGITS = 6  # scores are rounded before ranking, so the last float bit cannot reorder tokens


class RarityTally:
    """Counts trait values as tokens stream past, keeping per token only its id and value codes
    (a few machine words), so a 100k-token drop is scored without holding its manifest.
    """

    def __init__(self, trait_names: Sequence[str]) -> None:
        self.names = list(trait_names)
        self.codes: dict[str, dict[str, int]] = {name: {} for name in self.names}  # value -> code
        self.counts: dict[str, list[int]] = {name: [] for name in self.names}  # code -> tokens
        self.ids = array("q")
        self.values = array("I")  # len(names) codes per token, in token order

    def add(self, token: Mapping[str, Any]) -> None:
        traits = token["traits"]
        row = [str(traits[name]) for name in self.names]
        self.ids.append(int(token["id"]))
        for name, value in zip(self.names, row):
            code = self.codes[name].setdefault(value, len(self.codes[name]))
            if code == len(self.counts[name]):
                self.counts[name].append(0)
            self.counts[name][code] += 1
            self.values.append(code)

    def _bits(self) -> dict[str, list[float]]:
        n = len(self.ids)
        return {name: [-math.log2(c / n) for c in counts] for name, counts in self.counts.items()}

    def summary(self) -> dict[str, Any]:
        """rarity.json without its per-token list."""
        bits = self._bits()
        return {
            "method": RARITY_METHOD,
            "tokens_total": len(self.ids),
            "traits": {
                name: {
                    value: {
                        "count": self.counts[name][code],
                        "information_bits": round(bits[name][code], SCORE_DIGITS) + 0.0,  # never -0.0
                    }
                    for value, code in sorted(codes.items())
                }
                for name, codes in self.codes.items()
            },
        }

    def ranked(self) -> Iterator[dict[str, Any]]:
        """Per token, in token order: its score and rank (1 = rarest; ties by token id)."""
        n, width = len(self.ids), len(self.names)
        table = self._bits()
        bits = [table[name] for name in self.names]
        scores = array("d")
        for i in range(n):
            codes = self.values[i * width : (i + 1) * width]
            scores.append(round(sum(b[c] for b, c in zip(bits, codes)), SCORE_DIGITS))
        ranks = np.zeros(n, dtype=np.int64)
        if n:
            order = np.lexsort((np.frombuffer(self.ids, dtype=np.int64), -np.frombuffer(scores)))
            ranks[order] = np.arange(1, n + 1)
        for i in range(n):
            yield {"id": self.ids[i], "rank": int(ranks[i]), "score": scores[i]}

    def write(self, write: Write) -> None:
        """rarity.json, streamed: the bytes `stable_json(rarity_report(...))` gives."""
        dump_streamed(self.summary(), "tokens", self.ranked(), write)


def rarity_report(tokens: Sequence[Mapping[str, Any]], trait_names: Sequence[str]) -> dict[str, Any]:
    """Per-trait value counts, and per token its score and rank (1 = rarest; ties by token id)."""
    tally = RarityTally(trait_names)
    for token in tokens:
        tally.add(token)
    return {**tally.summary(), "tokens": list(tally.ranked())}
