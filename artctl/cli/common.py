"""What every command shares: one readable error line, progress bars, seed lists, server readiness."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from artctl.eta import eta_text

T = TypeVar("T")
# Every Typer of the CLI: -h as well as --help, and help text shown as written (rich markup would
# swallow "[default: ...]" brackets and print <bool> beside every flag).
TYPER_SETTINGS: dict[str, Any] = {
    "context_settings": {"help_option_names": ["-h", "--help"]},
    "rich_markup_mode": None,
}
UNVERIFIABLE = 2  # exit code of a check that could not run at all (1 is a check that failed)


class CliError(Exception):
    """An error to print as one line (exit code 1)."""


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"artctl: error: {message}", err=True)
    return typer.Exit(code=code)


def validation_line(exc: Any) -> str:
    """A pydantic ValidationError as one line: `field: message (got value)` per error, no URLs."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        value = error.get("input")
        got = (
            f" (got {value!r})"
            if isinstance(value, (int, float, str, bool)) and len(repr(value)) < 40
            else ""
        )
        parts.append(f"{where}: {message}{got}" if where else message + got)
    return "; ".join(parts) or str(exc).splitlines()[0]


DEBUG_ENV = "ARTCTL_DEBUG"


def debugging() -> bool:
    """`artctl --debug ...` or ARTCTL_DEBUG=1: errors show their traceback instead of one line."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def run_command(fn: Callable[[], T], error_code: int = 1, as_json: bool = False) -> T:
    """Run a command body; expected failures become one readable line and `error_code` (with
    `as_json`, also a JSON error object on stdout, so `| jq` sees what went wrong); under --debug
    they propagate with their traceback."""
    import grpc
    from pydantic import ValidationError

    if debugging():
        return fn()  # the whole traceback, for a bug report
    try:
        return fn()
    except typer.Exit:  # a command's own exit code (click's Exit is a RuntimeError)
        raise
    except ValidationError as exc:
        message = validation_line(exc)
    except (CliError, ValueError, RuntimeError, OSError, LookupError, ArithmeticError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
    except grpc.RpcError as exc:
        message = f"server said {exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    if as_json:
        echo_json({"error": message, "exit_code": error_code})
    raise fail(message, error_code) from None


def echo_json(doc: Any) -> None:
    """A command's result for --json: one JSON document on stdout, nothing else there."""
    import json

    typer.echo(json.dumps(doc, indent=2, sort_keys=True, default=str))


def unset_flag_type(annotation: Any) -> Any:
    """A config field's type as a flag's: `int | None` and `int` both become `int | None`, so an
    unset flag leaves the config alone (`serve` and `train` generate their flags this way)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    return annotation | None


PLAIN_EVERY_S = 60.0  # without a terminal: a progress line at least this often...
PLAIN_EVERY_FRACTION = 0.1  # ...and at every tenth of the work


class PlainProgress:
    """Progress as plain lines for a log file, nohup, CI or a pod, where a bar prints nothing until
    the end: one line at every tenth of the work or every minute, whichever comes first, and the last."""

    def __init__(self, label: str, unit: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.unit, self.clock = label, unit, clock
        self.started = self.last_time = clock()
        self.last_done = 0

    def update(self, done: int, total: int) -> None:
        now = self.clock()
        step = max(1, int(total * PLAIN_EVERY_FRACTION)) if total else 0
        finished = bool(total) and done >= total
        due = now - self.last_time >= PLAIN_EVERY_S or (step and done - self.last_done >= step)
        if not (due or finished) or done == self.last_done:
            return
        self.last_time, self.last_done = now, done
        rate = done / max(now - self.started, 1e-9)
        left = (total - done) / rate if rate > 0 and total else float("inf")
        of = f"/{total:,}" if total else ""
        typer.echo(
            f"{self.label}: {done:,}{of} {self.unit}  {rate:,.1f} {self.unit}/s  ETA {eta_text(left)}",
            err=True,
        )


class LazyProgress:
    """A rich progress bar that appears with the first progress report, not before: an error found
    while checking the inputs is then one line, with no empty bar above it. Without a terminal on
    stderr, plain lines instead (PlainProgress)."""

    def __init__(self, label: str, total: int, unit: str, enabled: bool = True) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.enabled = enabled
        self.progress = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),  # stdout stays for results (and --json)
        )
        self.task = self.progress.add_task(label, total=total, rate="")
        self.unit = unit
        self.started = time.perf_counter()
        self.shown = False
        self.plain = None if self.progress.console.is_terminal else PlainProgress(label, unit)

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.plain is not None:
            self.plain.update(done, total)
            return
        if not self.shown:
            self.progress.start()
            self.shown = True
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        self.progress.update(self.task, completed=done, total=total, rate=f"{rate:,.0f} {self.unit}/s")

    def __enter__(self) -> LazyProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shown:
            self.progress.stop()


def progress_bar(
    label: str, total: int, unit: str = "tokens", enabled: bool = True
) -> tuple[Any, Callable[[int, int], None]]:
    """A progress bar on stderr with a rate and an ETA; returns (context manager, callback(done, total))."""
    bar = LazyProgress(label, total, unit, enabled)
    return bar, bar.update


MAX_SEED_LIST = 100_000  # seeds one command line may name (a range like 0-99999 included)


def seed_list(text: str, what: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3] and '0-3,7' -> [0, 1, 2, 3, 7]; each a valid seed (0 <= seed < 2**64)."""
    from artctl.seeds import as_seed_array

    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            first, dash, last = part.partition("-")
            if not dash:
                seeds.append(int(part))
                continue
            lo, hi = int(first), int(last)
            if hi < lo:
                raise CliError(f"{what}: range {part!r} runs backwards")
            if hi - lo + len(seeds) >= MAX_SEED_LIST:
                raise CliError(f"{what}: at most {MAX_SEED_LIST:,} seeds at once")
            seeds.extend(range(lo, hi + 1))
    except ValueError:
        raise CliError(f"{what}: cannot read {text!r} as seeds (comma-separated, ranges as 0-15)") from None
    if not seeds:
        raise CliError(f"{what}: give at least one seed")
    return [int(s) for s in as_seed_array(seeds)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_server(target: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until the server's health service says SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise CliError(f"server exited with code {proc.returncode} before it was ready")
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise CliError(f"server at {target} was not ready within {timeout:.0f} s")
