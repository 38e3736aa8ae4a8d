"""Held-out emoji for the restore benchmark: multi-code-point sequences (skin tones, ZWJ professions,
flags), which `artctl data emoji` (single code points) never renders, so no default model saw them.

    python -m bench.heldout_emoji --out data/heldout64
    python -m bench.restore --checkpoint models/emoji64-default --emoji data/heldout64 --steps 100
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import ImageFont

from artctl_trainer.emoji import STRIKE, _render, find_font

SEQUENCES = [
    "\U0001f44d\U0001f3fd",  # thumbs up, medium skin tone
    "\U0001f469\u200d\U0001f52c",  # woman scientist
    "\U0001f1eb\U0001f1f7",  # flag: France
    "\U0001f468\u200d\U0001f373",  # man cook
    "\U0001f3c3\U0001f3ff",  # person running, dark skin tone
    "\U0001f1ef\U0001f1f5",  # flag: Japan
    "\U0001f9d1\u200d\U0001f3a8",  # artist
    "\U0001f44b\U0001f3fb",  # waving hand, light skin tone
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("data/heldout64"))
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    font = ImageFont.truetype(str(find_font()), STRIKE)
    out = args.out / "sequences"
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for i, text in enumerate(SEQUENCES):
        img = _render(font, text, args.size)
        if img is not None:
            img.save(out / f"seq{i}.png")
            written += 1
    print(f"{written} held-out emoji in {out}")


if __name__ == "__main__":
    main()
