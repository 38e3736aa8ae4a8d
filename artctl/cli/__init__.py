"""The `artctl` command line: one module per command group, the only place that imports serving,
trainer or exporter. Heavy modules (torch, onnxruntime) are imported inside each command, so
`artctl --help`, the client and mint stay light.
"""

from __future__ import annotations

import os
import sys

import typer

from artctl import __version__
from artctl.cli import creative, data, demo, drops, export, generate, metrics, serve, train
from artctl.cli.common import DEBUG_ENV, TYPER_SETTINGS, CliError, echo_json, wait_for_server

__all__ = ["CliError", "app", "main", "wait_for_server"]

app = typer.Typer(
    name="artctl",
    help="Train a GAN on your artwork, export it to ONNX, serve it over gRPC and mint reproducible drops.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    **TYPER_SETTINGS,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"artctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
    debug: bool = typer.Option(
        False, "--debug", help=f"Show an error's traceback instead of one line (or {DEBUG_ENV}=1)."
    ),
) -> None:
    """artctl: train -> export -> serve -> mint."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


for module in (train, export, data, metrics, generate, serve, drops, creative, demo):
    for command in getattr(module, "COMMANDS", ()):
        app.command()(command)
    for name, group in getattr(module, "GROUPS", ()):
        app.add_typer(group, name=name)


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    argv = sys.argv[1:]
    if "--json" not in argv[: argv.index("--") if "--" in argv else None]:
        app()
        return
    # With --json a usage error (a bad option value, a missing argument) is also a JSON object on
    # stdout, as every other error is, so that `| jq` sees what went wrong.
    from typer._click.exceptions import ClickException  # typer vendors click

    try:
        code = app(standalone_mode=False)
    except ClickException as exc:
        echo_json({"error": exc.format_message(), "exit_code": exc.exit_code})
        exc.show()
        sys.exit(exc.exit_code)
    except typer.Abort:
        echo_json({"error": "aborted", "exit_code": 1})
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
