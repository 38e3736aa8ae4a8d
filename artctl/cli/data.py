"""`artctl data`: make training data sets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from artctl.cli.common import TYPER_SETTINGS, run_command

data_app = typer.Typer(**TYPER_SETTINGS, help="Make training data sets.", no_args_is_help=True)


@data_app.command("emoji")
def data_emoji(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one sub-folder per label."),
    size: int = typer.Option(64, help="Image size in pixels (square, RGBA)."),
    labels: str = typer.Option(
        "group", help="group (emoji groups: Smileys & Emotion, Animals & Nature...) or block (Unicode block)."
    ),
    font: Path | None = typer.Option(
        None, help="NotoColorEmoji.ttf (default: the Debian package fonts-noto-color-emoji's)."
    ),
    emoji_test: Path | None = typer.Option(
        None, help="Unicode's emoji-test.txt, naming the groups (default: Debian package unicode-data's)."
    ),
    limit: int = typer.Option(0, help="Stop after N glyphs (0: all)."),
) -> None:
    """Render every single-code-point emoji the Noto Color Emoji font can draw, one folder per label."""

    def body() -> None:
        from artctl_trainer.emoji import render_emoji

        if labels not in ("group", "block"):
            raise ValueError(f"--labels must be group or block, got {labels!r}")
        if labels == "block" and emoji_test is not None:
            raise ValueError("--emoji-test names the groups; it has no use with --labels block")
        by: Literal["group", "block"] = "group" if labels == "group" else "block"
        report = render_emoji(out, size=size, font_path=font, limit=limit, labels=by, emoji_test=emoji_test)
        typer.echo(f"{report.count} emoji in {len(report.labels)} labels -> {report.out}")
        for label, count in report.labels.items():
            typer.echo(f"  {label:40} {count}")

    run_command(body)


@data_app.command("nouns")
def data_nouns(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one sub-folder per value of --labels."),
    n: int = typer.Option(20000, "--n", help="Number of compositions."),
    seed: int = typer.Option(0, help="Seed of the trait draws (the held-out set: --seed 999 --n 10000)."),
    size: int = typer.Option(32, help="Image size in pixels: the art is 32 x 32."),
    labels: str = typer.Option(
        "glasses",
        help="The trait whose values name the sub-folders: glasses, head, body, accessory, "
        "background, or none (one flat folder).",
    ),
    assets: Path | None = typer.Option(
        None,
        help="A @nouns/assets folder, tarball or image-data.json (default: the pinned version, via npm).",
    ),
) -> None:
    """Random compositions of the Nouns art (CC0), 32 x 32 RGB, with parts.jsonl and palette.json."""

    def body() -> None:
        from artctl_trainer.nouns import SIZE, make_nouns

        if size != SIZE:
            raise ValueError(f"--size must be {SIZE}: the Nouns art is drawn on a {SIZE} x {SIZE} grid")
        report = make_nouns(out, n=n, seed=seed, labels=labels, assets=assets)
        typer.echo(
            f"{report.count} compositions in {len(report.labels)} folder(s), "
            f"{report.palette_size} palette colours -> {report.out}"
        )

    run_command(body)


GROUPS = (("data", data_app),)
