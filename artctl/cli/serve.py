"""`artctl serve`: its flags are generated from artctl_serving.config.ServerOptions (one list of options)."""

from __future__ import annotations

import inspect
import logging
import sys
from pathlib import Path
from typing import Any, Literal

import typer

from artctl.cli.common import run_command, unset_flag_type

# Options with a fixed set of values: a wrong one is a usage error (exit 2), and the shell completes them.
CHOICES: dict[str, Any] = {"provider": Literal["auto", "cpu", "cuda"]}


def _parameters() -> list[inspect.Parameter]:
    from artctl_serving.config import ServerOptions

    params = []
    for name, field in ServerOptions.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        default = field.get_default(call_default_factory=True)
        shown = "" if default in (None, []) else f" (default: {default})"
        help_text = f"{field.description}{shown}"
        if extra.get("argument"):
            info: Any = typer.Argument(None, help=help_text, show_default=False)
            annotation: Any = list[Path]
        else:
            flag = str(extra.get("flag") or "--" + name.replace("_", "-"))
            info = typer.Option(None, flag, help=help_text, show_default=False)
            annotation = unset_flag_type(CHOICES.get(name, field.annotation))
        params.append(
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)
        )
    config = typer.Option(None, "--config", help="TOML file with any of these options; flags override it.")
    params.insert(
        1, inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=config, annotation=Path | None)
    )
    return params


def serve(**flags: Any) -> None:
    """Serve models over gRPC: artctl.v1.Generator, KServe v2, health, reflection (needs `serve`).

    SIGTERM stops gracefully (health NOT_SERVING, in-flight work finished); SIGHUP reloads models.
    """
    config = flags.pop("config", None)

    def body() -> None:
        import asyncio

        from artctl_serving.config import load_options
        from artctl_serving.server import serve_forever

        options = load_options(config, {k: v for k, v in flags.items() if v is not None})
        logging.basicConfig(
            level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
        )
        asyncio.run(serve_forever(options))

    run_command(body)


serve.__signature__ = inspect.Signature(_parameters())  # type: ignore[attr-defined]
COMMANDS = (serve,)
