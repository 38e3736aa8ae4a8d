"""A ready-made training set: every single-code-point emoji the Noto Color Emoji font can draw.

Glyphs are rendered from the font's colour bitmaps (CBDT, one strike at 109 px), cropped to their
ink, centred on a transparent square and resized with Lanczos; one sub-folder per label, so the
folder trains conditional models as it is. Labels are emoji groups (Smileys & Emotion, Animals &
Nature, ...) read from Unicode's emoji-test.txt, the list of emoji and their groups (Debian package
unicode-data); `labels="block"` labels by Unicode block instead and needs no list. Rendering is
deterministic: the same font file gives the same PNG bytes. Needs the Debian package
fonts-noto-color-emoji (or the font file given by path).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

FONT_PACKAGE = "fonts-noto-color-emoji"
FONT_PATHS = (
    Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),
    Path("/usr/share/fonts/noto/NotoColorEmoji.ttf"),
    Path("/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf"),
)
EMOJI_TEST_PACKAGE = "unicode-data"
EMOJI_TEST_PATHS = (
    Path("/usr/share/unicode/emoji/emoji-test.txt"),
    Path("/usr/share/unicode-data/emoji/emoji-test.txt"),
)
STRIKE = 109  # the font's only bitmap size; other sizes fail to load
MIN_PER_LABEL = 8  # smaller blocks are pooled under "other-symbols" (block labels only)
VARIATION_SELECTOR_16 = 0xFE0F  # "draw as emoji": not part of a glyph's identity

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


class EmojiListError(ValueError):
    """Unicode's emoji-test.txt (the emoji groups) is missing, unreadable or not that file."""


@dataclass
class EmojiReport:
    out: Path
    count: int
    labels: dict[str, int]
    font: Path
    font_sha256: str
    labels_by: str = "group"


def _first_file(
    given: Path | None, defaults: tuple[Path, ...], error: type[Exception], what: str, package: str, hint: str
) -> Path:
    """The given file, or the first default that exists; else `error` naming where was looked."""
    candidates = [Path(given)] if given else list(defaults)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        where = ", ".join(str(c) for c in candidates)
        install = f"install the Debian package {package} (apt-get install {package})"
        raise error(f"{what} not found ({where}); {install}, {hint}")
    return found


def find_font(path: Path | None = None) -> Path:
    """The given font file, or the first standard location of Noto Color Emoji."""
    return _first_file(
        path, FONT_PATHS, EmojiFontError, "Noto Color Emoji font", FONT_PACKAGE, "or pass --font PATH"
    )


def find_emoji_test(path: Path | None = None) -> Path:
    """The given emoji-test.txt, or the one the Debian package unicode-data installs."""
    hint = "pass --emoji-test PATH, or use --labels block"
    return _first_file(path, EMOJI_TEST_PATHS, EmojiListError, "emoji-test.txt", EMOJI_TEST_PACKAGE, hint)


def group_slug(group: str) -> str:
    """'Smileys & Emotion' -> 'smileys-emotion': a folder name that is also a readable label."""
    return re.sub(r"[^a-z0-9]+", "-", group.lower()).strip("-")


def emoji_groups(path: Path) -> dict[int, str]:
    """Single-code-point emoji -> group slug, in the list's order (its first listing wins).

    Entries are `CODE [CODE...] ; status # ...` under `# group: NAME` headers; U+FE0F is dropped,
    so the emoji and text presentations of one code point are one glyph, and entries with status
    `component` (skin-tone swatches, hair parts) are left out.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise EmojiListError(f"{path}: cannot read it ({exc})") from None
    groups: dict[int, str] = {}
    group = None
    for line in lines:
        if line.startswith("# group:"):
            group = group_slug(line.split(":", 1)[1])
            continue
        if not line.strip() or line.startswith("#") or ";" not in line:
            continue
        code_field, rest = line.split(";", 1)
        try:
            codes = [int(h, 16) for h in code_field.split()]
        except ValueError:
            raise EmojiListError(f"{path}: not an emoji-test.txt line: {line[:60]!r}") from None
        if rest.split("#", 1)[0].strip() == "component":
            continue  # skin-tone swatches and hair parts: pieces of sequences, not emoji of their own
        codes = [c for c in codes if c != VARIATION_SELECTOR_16]
        if len(codes) == 1 and group is not None:
            groups.setdefault(codes[0], group)
    if not groups:
        raise EmojiListError(f"{path}: no emoji found; is it Unicode's emoji-test.txt?")
    return groups


def _check_output(out: Path, labels: str, size: int) -> None:
    """Re-rendering a set in place is fine; mixing two label sets or sizes in one folder is not."""
    if not out.exists() or not any(out.iterdir()):
        return
    about = out / "emoji.json"
    try:
        previous = json.loads(about.read_text())
        same = previous.get("labels_by", "block") == labels and previous.get("size") == size
    except (OSError, ValueError):
        same = False
    if not same:
        raise ValueError(
            f"{out} already holds other files (not a {size} px emoji set labelled by {labels}); "
            "choose an empty or new --out"
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


def render_emoji(
    out: Path,
    size: int = 64,
    font_path: Path | None = None,
    limit: int = 0,
    labels: Literal["group", "block"] = "group",
    emoji_test: Path | None = None,
) -> EmojiReport:
    """Render every drawable single-code-point emoji to out/<label>/u<hex>.png (RGBA, size x size).

    labels="group": the emoji groups of emoji-test.txt, every emoji it lists that the font draws.
    labels="block": every code point of the emoji-holding Unicode blocks that the font draws.
    """
    if not 8 <= size <= 1024:
        raise ValueError(f"size must be in 8..1024, got {size}")
    if labels not in ("group", "block"):
        raise ValueError(f"labels must be 'group' or 'block', got {labels!r}")
    _check_output(Path(out), labels, size)
    path = find_font(font_path)
    listing = find_emoji_test(emoji_test) if labels == "group" else None
    candidates = (
        list(emoji_groups(listing).items())
        if listing is not None
        else [(code, block) for block, first, last in BLOCKS for code in range(first, last + 1)]
    )
    try:
        font = ImageFont.truetype(str(path), STRIKE)
    except OSError as exc:
        raise EmojiFontError(f"{path} is not a usable colour emoji font ({exc})") from exc
    rendered: list[tuple[str, int, Image.Image]] = []
    for code, label in candidates:
        image = _render(font, chr(code), size)
        if image is not None:
            rendered.append((label, code, image))
            if limit and len(rendered) >= limit:
                break
    counts = Counter(label for label, _, _ in rendered)
    pooled = "other-symbols" if labels == "block" else None  # groups are kept whole
    label_of = {b: (b if n >= MIN_PER_LABEL or pooled is None else pooled) for b, n in counts.items()}
    out = Path(out)
    per_label: Counter[str] = Counter()
    for label, code, image in rendered:
        folder = out / label_of[label]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"u{code:05x}.png", optimize=False)
        per_label[label_of[label]] += 1
    font_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    report = EmojiReport(
        out=out,
        count=len(rendered),
        labels=dict(sorted(per_label.items())),
        font=path,
        font_sha256=font_sha,
        labels_by=labels,
    )
    about: dict[str, object] = {
        "count": report.count,
        "labels_by": labels,
        "labels": report.labels,
        "size": size,
        "font": str(path),
        "font_sha256": font_sha,
    }
    if listing is not None:
        about["emoji_test"] = str(listing)
        about["emoji_test_sha256"] = hashlib.sha256(listing.read_bytes()).hexdigest()
        version = re.search(r"^# Version: (\S+)", listing.read_text(encoding="utf-8"), re.MULTILINE)
        about["emoji_version"] = version.group(1) if version else None
    (out / "emoji.json").write_text(json.dumps(about, indent=2) + "\n")
    return report
