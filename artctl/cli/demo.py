"""`artctl demo`: the whole journey in one command, through the real CLI in subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import typer

from artctl.cli.common import fail, free_port, run_command, wait_for_server

PIXEL_ART_SIZE = 320  # px a pixel-art token is delivered at (32 px art: image_scale 10)


def demo_collection(card: Any, tokens: int, trait: str = "Family") -> dict[str, Any]:
    """A collection config for the demo: a conditioning trait over the model's own labels, if any;
    pixel art (a model with a palette) is scaled up by whole pixels, so a viewer shows it crisp."""
    pixel_art = bool(card.palette)
    doc: dict[str, Any] = {
        "name": "artctl demo",
        "symbol": "DEMO",
        "description": f"Artworks by the model {card.name}, each re-derivable from its seed.",
        "size": tokens,
        "salt": "demo-salt",
        "model": "default",
        "traits": [],
    }
    if pixel_art:
        doc["image_scale"] = max(1, PIXEL_ART_SIZE // card.resolution)
    if card.has_label and card.label_names:
        names = list(card.label_names)
        doc["traits"].append(
            {
                "name": trait,
                "kind": "conditioning",
                "values": [n.replace("-", " ").title() for n in names],
                "weights": [1] * len(names),
                "labels": names,
            }
        )
    doc["traits"].append(
        {
            "name": "Brightness",
            "kind": "derived",
            "source": "brightness",
            "values": ["Muted", "Soft", "Bright", "Radiant"]
            if pixel_art
            else ["Dark", "Dim", "Bright", "Radiant"],
            "thresholds": [170, 182, 194] if pixel_art else [64, 128, 192],  # pixel art: light backgrounds
        }
    )
    return doc


def _train_small_model(exe: list[str], out: Path, steps: int) -> Path:
    """Only when the install ships no default model: a small DCGAN on synthetic shapes."""
    model = out / "model.onnx"
    typer.echo(
        f"[1/4] no default model ships with this install: training a small DCGAN on synthetic shapes "
        f"({steps} steps, about a minute on 2 cores)"
    )
    train = ["train", "synthetic:shapes", "--out", str(out / "run"), "--steps", str(steps), "--batch", "64"]
    train += ["--resolution", "32", "--channels", "4", "--sample-every", str(steps)]
    subprocess.run([*exe, *train], check=True)
    typer.echo("[2/4] exporting the generator to ONNX (parity-checked against PyTorch)")
    subprocess.run([*exe, "export", str(out / "run"), "--out", str(model), "--name", "demo"], check=True)
    return model


def demo(
    out: Path = typer.Option(Path("demo"), "--out", "-o", help="Where the run, model and drop go."),
    steps: int = typer.Option(600, help="Training steps for the demo model."),
    tokens: int = typer.Option(16, help="Tokens to mint."),
) -> None:
    """The whole journey: serve the embedded default model (Nouns-style pixel art; or train and export
    a small one when the install has none), then mint a drop through the server."""

    def body() -> None:
        import tomli_w

        from artctl.models import embedded_default
        from artctl_serving.runtime import load_model

        out.mkdir(parents=True, exist_ok=True)
        exe = [sys.executable, "-m", "artctl"]
        model = embedded_default()
        trait = "Family"
        if model is not None:
            total, trait = 3, "Noggles"  # the embedded default's labels are the Nouns glasses
            typer.echo(f"[1/{total}] using the embedded default model {model} (Nouns-style pixel art)")
        else:
            total = 4
            model = _train_small_model(exe, out, steps)
        port = free_port()
        target = f"127.0.0.1:{port}"
        typer.echo(f"[{total - 1}/{total}] serving {model.name} on {target}")
        proc = subprocess.Popen([*exe, "serve", str(model), "--port", str(port), "--log-level", "WARNING"])
        try:
            wait_for_server(target, proc=proc)
            collection = out / "collection.toml"
            config = demo_collection(load_model(model).card, tokens, trait)
            collection.write_text(tomli_w.dumps(config))
            scale = config.get("image_scale", 1)
            typer.echo(
                f"[{total}/{total}] minting {tokens} tokens through the server"
                + (f" (pixel art at image_scale {scale}: whole-pixel blocks, no blur)" if scale > 1 else "")
            )
            subprocess.run(
                [*exe, "mint", str(collection), "--out", str(out / "drop"), "--server", target], check=True
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        drop = out / "drop"
        typer.echo("")
        typer.echo(f"Done. The drop is in {drop}/:")
        typer.echo(f"  {drop}/images/*.png      the artworks")
        typer.echo(f"  {drop}/metadata/*.json   ERC-721 metadata per token")
        typer.echo(f"  {drop}/manifest.json     seeds, pixel and file hashes, render profile")
        typer.echo(f"  {drop}/provenance.txt    the provenance hash")
        typer.echo(f"Open {drop}/contact-sheet.png to see it (any image viewer or a browser).")

    try:
        run_command(body)
    except subprocess.CalledProcessError as exc:
        raise fail(f"step failed: {' '.join(map(str, exc.cmd[2:4]))} exited with {exc.returncode}") from None


COMMANDS = (demo,)
