"""A ready-made training set: every single-code-point emoji the Noto Color Emoji font can draw.

Glyphs are rendered from the font's colour bitmaps (CBDT, one strike at 109 px), cropped to their
ink, centred on a transparent square and resized with Lanczos; one sub-folder per Unicode block, so
the folder trains conditional models as it is. Rendering is deterministic: the same font file gives
the same PNG bytes. Needs the Debian package fonts-noto-color-emoji (or the font file given by path).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_PACKAGE = "fonts-noto-color-emoji"
FONT_PATHS = (
    Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),
    Path("/usr/share/fonts/noto/NotoColorEmoji.ttf"),
    Path("/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf"),
)
STRIKE = 109  # the font's only bitmap size; other sizes fail to load
MIN_PER_LABEL = 8  # smaller blocks are pooled under "other-symbols"

# Unicode blocks that hold emoji (name, first, last), from the Unicode Character Database.
BLOCKS = (
    ("arrows", 0x2190, 0x21FF),
    ("misc-technical", 0x2300, 0x23FF),
    ("enclosed-alphanumerics", 0x2460, 0x24FF),
    ("geometric-shapes", 0x25A0, 0x25FF),
    ("misc-symbols", 0x2600, 0x26FF),
    ("dingbats", 0x2700, 0x27BF),
    ("misc-symbols-and-arrows", 0x2B00, 0x2BFF),
    ("mahjong-and-cards", 0x1F000, 0x1F0FF),
    ("enclosed-alphanumeric-supplement", 0x1F100, 0x1F1FF),
    ("enclosed-ideographic-supplement", 0x1F200, 0x1F2FF),
    ("misc-symbols-and-pictographs", 0x1F300, 0x1F5FF),
    ("emoticons", 0x1F600, 0x1F64F),
    ("transport-and-map", 0x1F680, 0x1F6FF),
    ("geometric-shapes-extended", 0x1F7E0, 0x1F7FF),
    ("supplemental-symbols-and-pictographs", 0x1F900, 0x1F9FF),
    ("symbols-and-pictographs-extended-a", 0x1FA70, 0x1FAFF),
)


class EmojiFontError(FileNotFoundError):
    """The colour emoji font is not installed."""


@dataclass
class EmojiReport:
    out: Path
    count: int
    labels: dict[str, int]
    font: Path
    font_sha256: str


def find_font(path: Path | None = None) -> Path:
    """The given font file, or the first standard location of Noto Color Emoji."""
    candidates = [Path(path)] if path else list(FONT_PATHS)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    where = str(path) if path else ", ".join(str(p) for p in FONT_PATHS)
    raise EmojiFontError(
        f"Noto Color Emoji font not found ({where}); install the Debian package {FONT_PACKAGE} "
        f"(apt-get install {FONT_PACKAGE}) or pass --font PATH"
    )


def _render(font: ImageFont.FreeTypeFont, char: str, size: int) -> Image.Image | None:
    canvas = Image.new("RGBA", (STRIKE * 2, STRIKE * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((STRIKE // 4, STRIKE // 4), char, font=font, embedded_color=True)
    bbox = canvas.getbbox()
    if bbox is None:  # the font has no glyph for it: FreeType draws nothing
        return None
    glyph = canvas.crop(bbox)
    side = max(glyph.size)
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
    return square.resize((size, size), Image.Resampling.LANCZOS)


def render_emoji(out: Path, size: int = 64, font_path: Path | None = None, limit: int = 0) -> EmojiReport:
    """Render every drawable emoji code point to out/<unicode-block>/u<hex>.png (RGBA, size x size)."""
    if not 8 <= size <= 1024:
        raise ValueError(f"size must be in 8..1024, got {size}")
    path = find_font(font_path)
    try:
        font = ImageFont.truetype(str(path), STRIKE)
    except OSError as exc:
        raise EmojiFontError(f"{path} is not a usable colour emoji font ({exc})") from exc
    rendered: list[tuple[str, int, Image.Image]] = []
    for block, first, last in BLOCKS:
        for code in range(first, last + 1):
            image = _render(font, chr(code), size)
            if image is not None:
                rendered.append((block, code, image))
                if limit and len(rendered) >= limit:
                    break
        if limit and len(rendered) >= limit:
            break
    counts = Counter(block for block, _, _ in rendered)
    label_of = {b: (b if n >= MIN_PER_LABEL else "other-symbols") for b, n in counts.items()}
    out = Path(out)
    labels: Counter[str] = Counter()
    for block, code, image in rendered:
        folder = out / label_of[block]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"u{code:05x}.png", optimize=False)
        labels[label_of[block]] += 1
    font_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    report = EmojiReport(
        out=out, count=len(rendered), labels=dict(sorted(labels.items())), font=path, font_sha256=font_sha
    )
    (out / "emoji.json").write_text(
        json.dumps(
            {
                "count": report.count,
                "labels": report.labels,
                "size": size,
                "font": str(path),
                "font_sha256": font_sha,
            },
            indent=2,
        )
        + "\n"
    )
    return report
