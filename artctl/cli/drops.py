"""`artctl mint`, `merge` and `verify`: drops rendered through servers or in this process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import typer

from artctl.cli.common import UNVERIFIABLE, echo_json, progress_bar, run_command
from artctl.client import Security
from artctl.drops.render import Renderer, RenderError

SERVER_HELP = "HOST:PORT of a server; repeat for round robin."
TOKEN_OPTION = typer.Option(
    None, "--auth-token-file", help="File with the server's bearer token [env ARTCTL_AUTH_TOKEN_FILE]."
)
CA_OPTION = typer.Option(None, "--tls-ca", help="Talk TLS; trust this CA bundle (PEM) [env ARTCTL_TLS_CA].")
CERT_OPTION = typer.Option(
    None, "--tls-cert", help="Client certificate (PEM), for mTLS [env ARTCTL_TLS_CERT]."
)
KEY_OPTION = typer.Option(None, "--tls-key", help="Client private key (PEM), for mTLS [env ARTCTL_TLS_KEY].")
JSON_OPTION = typer.Option(False, "--json", help="Print the result as one JSON document (no progress bar).")
NAME_OPTION = typer.Option(
    None,
    "--tls-server-name",
    help="Name on the server's certificate, if not the host [env ARTCTL_TLS_SERVER_NAME].",
)


def _curated(cfg: Any, path: Path) -> Any:
    """The config with the curation's entries as its tokens (size follows the curation)."""
    from artctl.collection import parse_collection
    from artctl.curation import load_curation

    picks = load_curation(path)
    if cfg.size != len(picks.entries):
        typer.echo(
            f"note: size is {len(picks.entries)}, the curation's entries (the config says {cfg.size})",
            err=True,
        )
    raw = {**cfg.model_dump(mode="python", exclude_none=True), "size": len(picks.entries), "curation": picks}
    return parse_collection(raw, str(path))


def _local_hint(body: Callable[[], None]) -> Callable[[], None]:
    """A command that can render in this process says so when no server answers."""

    def run() -> None:
        from artctl.cli.common import CliError
        from artctl.client import ServerUnavailable

        try:
            body()
        except ServerUnavailable as exc:
            raise CliError(f"{exc}; or render in this process with --local") from None

    return run


def _started(out: Path) -> bool:
    """Whether `out` already holds this drop, finished or not (its manifest or its mint journal)."""
    from artctl.drops.journal import JOURNAL

    return (out / "manifest.json").is_file() or (out / JOURNAL).is_dir()


def resolve_local_model(model: str | Path, base_dir: Path | None = None) -> Path:
    """The .onnx file to render in this process: an embedded model's name (`default` or "", `emoji`)
    is the model this install ships under it, as a server resolves it; a relative path is tried
    against `base_dir` first."""
    from artctl.models import DEFAULT_NAME, embedded, embedded_models

    text = str(model)
    if text in ("", DEFAULT_NAME) or text in embedded_models():
        shipped = embedded(text)
        if shipped is None:
            raise RenderError(f"this install ships no {text or 'default'} model; give an .onnx path")
        return shipped
    path = Path(model)
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if not path.is_file():
        names = ", ".join(embedded_models()) or "none"
        raise RenderError(
            f"the model must be an .onnx file or an embedded model's name ({names}), and "
            f"{str(path)!r} is neither (set model in the config, or pass --model)"
        )
    return path


def open_renderer(
    model: str,
    servers: Sequence[str],
    local: bool,
    base_dir: Path | None = None,
    security: Any = None,
    level: str | None = None,
) -> Renderer:
    """The renderer the flags ask for; with --local, `model` is an .onnx path (relative paths are
    tried against the config's folder first, then the current one) rendered at graph optimisation
    `level` (default: the server's)."""
    if local == bool(servers):
        raise RenderError("choose where to render: --server HOST:PORT (one or more) or --local")
    if local:
        path = resolve_local_model(model, base_dir)
        from artctl.profile import SERVING_LEVEL
        from artctl_serving.local import LocalRenderer

        return LocalRenderer(path, level=level or SERVING_LEVEL)
    from artctl.client import GeneratorClient
    from artctl.drops.render import ServerRenderer

    return ServerRenderer(GeneratorClient(list(servers), security=security), model)


def mint(
    collection: Path = typer.Argument(..., help="Collection config (TOML)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for the drop."),
    server: list[str] = typer.Option(None, "--server", help=SERVER_HELP),
    local: bool = typer.Option(
        False, "--local", help="Render in-process with ONNX Runtime; `model` is an .onnx path."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Override the config's model (name or .onnx path)."
    ),
    shard: str | None = typer.Option(
        None, "--shard", help="Render only slice i of n (0-based, e.g. 0/4); join with `artctl merge`."
    ),
    fmt: Literal["erc721", "metaplex"] = typer.Option(
        "erc721", "--format", help="Token metadata: erc721 (OpenSea) or metaplex (Solana)."
    ),
    curation: Path | None = typer.Option(
        None,
        "--curation",
        help="A studio export (artctl-curation-v1): render exactly its pinned entries, in order.",
    ),
    repair: bool = typer.Option(
        False,
        "--repair",
        help="The folder holds this drop without its manifest: re-render and check, then finish it.",
    ),
    as_json: bool = JSON_OPTION,
    auth_token_file: Path | None = TOKEN_OPTION,
    tls_ca: Path | None = CA_OPTION,
    tls_cert: Path | None = CERT_OPTION,
    tls_key: Path | None = KEY_OPTION,
    tls_server_name: str | None = NAME_OPTION,
) -> None:
    """Render a collection: images, metadata, manifest, provenance, rarity, contact sheet.

    Re-running with the same config resumes: finished tokens are verified on disk and skipped.
    """

    def body() -> None:
        from artctl.collection import EXAMPLE_SALT, load_collection
        from artctl.drops.mint import mint as run_mint
        from artctl.drops.shard import Shard
        from artctl.metadata import check_format

        cfg = load_collection(collection)
        if curation is not None:
            cfg = _curated(cfg, curation)
        check_format(cfg, fmt)
        if cfg.salt == EXAMPLE_SALT and not _started(out):  # said once per drop, not on every resume
            typer.echo(
                "warning: the salt is the example's: anyone can compute every token before the reveal; "
                "set a secret salt of your own in the config",
                err=True,
            )
        part = Shard.parse(shard) if shard else None
        security = Security.from_options(auth_token_file, tls_ca, tls_cert, tls_key, tls_server_name)
        renderer = open_renderer(model or cfg.model, server or [], local, collection.parent, security)
        total = len(part.ids(cfg)) if part else cfg.size
        progress, update = progress_bar("mint", total, enabled=not as_json)
        with progress:
            result = run_mint(cfg, out, renderer, fmt=fmt, shard=part, on_progress=update, repair=repair)
        if as_json:
            echo_json(
                {
                    "out": result.out_dir,
                    "tokens": result.tokens,
                    "rendered": result.rendered,
                    "provenance": result.provenance or None,
                    "manifest": result.manifest,
                    "contact_sheet": result.contact_sheet,
                    "shard": [part.index, part.count] if part else None,
                    "notes": result.notes,
                }
            )
            return
        for note in result.notes:
            typer.echo(f"note: {note}")
        kept = result.tokens - result.rendered
        what = f"shard {part.index}/{part.count}: " if part else ""
        typer.echo(f"{what}minted {result.tokens} tokens into {result.out_dir} ({kept} were done, verified)")
        if fmt == "metaplex":
            typer.echo(
                f"  assets:      {result.out_dir}/assets/  (Sugar's config: {result.out_dir}/config.json)"
            )
        else:
            typer.echo(f"  images:      {result.out_dir}/images/")
            typer.echo(f"  metadata:    {result.out_dir}/metadata/  ({fmt})")
        typer.echo(f"  manifest:    {result.manifest}")
        if part:
            typer.echo("  join the shards with: artctl merge OUT SHARD_DIR...")
            return
        typer.echo(f"  provenance:  {result.provenance}")
        typer.echo(f"  rarity:      {result.out_dir}/rarity.json")
        if result.contact_sheet:
            typer.echo(f"  open {result.contact_sheet} to see the drop at a glance")

    run_command(_local_hint(body), as_json=as_json)


def merge(
    out: Path = typer.Argument(..., help="Folder for the joined drop (new, or a merge to resume)."),
    shards: list[Path] = typer.Argument(..., help="The shard folders written by `artctl mint --shard i/n`."),
) -> None:
    """Join minted shards into one drop, identical to a single `artctl mint` run."""

    def body() -> None:
        from artctl.drops.merge import merge as run_merge

        result = run_merge(out, shards)
        typer.echo(f"merged {len(shards)} shards, {result.tokens} tokens, into {result.out_dir}")
        typer.echo(f"  provenance:  {result.provenance}")

    run_command(body)


def _base_uri(value: str | None) -> str | None:
    """--base-uri is checked as the option is read: a bad value is a usage error (exit 2)."""
    from artctl.collection import base_uri_problem

    problem = base_uri_problem(value) if value is not None else None
    if problem:
        raise typer.BadParameter(problem)
    return value


def rebase(
    drop: Path = typer.Argument(..., help="A finished ERC-721 drop."),
    base_uri: str | None = typer.Option(
        None,
        "--base-uri",
        callback=_base_uri,
        help="The new prefix of every image URI, ending in '/' (+ '{id}.png', or '.svg' for an SVG drop).",
    ),
    images_cid: bool = typer.Option(
        False, "--images-cid", help="Use ipfs://<the images folder's CID>/, which the manifest records."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Point a drop's image URIs somewhere new (e.g. after uploading images/), without re-rendering."""

    def body() -> None:
        from artctl.drops.journal import read_manifest_head
        from artctl.drops.rebase import rebase as run_rebase

        result = run_rebase(drop, base_uri, images_cid)
        head = read_manifest_head(drop, "drop")
        directories, base = head.get("ipfs_directories", {}), head["collection"]["base_uri"]
        if as_json:
            echo_json({"drop": drop, "base_uri": base, "ipfs_directories": directories})
            return
        typer.echo(f"rebased {result.tokens} tokens in {drop} onto {base}")
        if directories.get("metadata"):
            typer.echo(f"  metadata/ directory CID: {directories['metadata']} (token URI base ipfs://<it>/)")

    run_command(body, as_json=as_json)


def verify(
    drop: Path = typer.Argument(..., help="A drop folder written by `artctl mint` (or `merge`)."),
    server: list[str] = typer.Option(None, "--server", help=SERVER_HELP),
    local: bool = typer.Option(False, "--local", help="Re-render in-process with ONNX Runtime."),
    model: str | None = typer.Option(
        None, "--model", help="Model name or .onnx path (default: the one in the drop's config)."
    ),
    auth_token_file: Path | None = TOKEN_OPTION,
    tls_ca: Path | None = CA_OPTION,
    tls_cert: Path | None = CERT_OPTION,
    tls_key: Path | None = KEY_OPTION,
    tls_server_name: str | None = NAME_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Re-render every token; check pixels, files, CIDs, metadata, provenance.

    Exit 0: everything checks out; 1: a mismatch (listed); 2: the drop could not be checked at all
    (no manifest, no such model, server unreachable).
    """

    def body() -> None:
        from artctl.drops.verify import load_manifest
        from artctl.drops.verify import verify as run_verify

        doc, cfg = load_manifest(drop)
        security = Security.from_options(auth_token_file, tls_ca, tls_cert, tls_key, tls_server_name)
        # In this process the drop's own profile can be followed: re-render at its recorded level.
        level = (doc.get("render_profile") or {}).get("graph_optimization")
        renderer = open_renderer(model or cfg.model, server or [], local, None, security, level)
        progress, update = progress_bar("verify", cfg.size, enabled=not as_json)
        with progress:
            report = run_verify(drop, renderer, on_progress=update)
        if as_json:
            differences = report.profile_differences.items()
            echo_json(
                {
                    "drop": drop,
                    "tokens": report.tokens,
                    "ok": report.ok,
                    "problems": report.problems,
                    "pixels": dict(report.classes),
                    "values_within_1_lsb": report.near_pixels,
                    "isa": report.isa,
                    "drop_isa": report.drop_isa,
                    "exact": report.exact,
                    "profile_differences": {k: {"drop": a, "here": b} for k, (a, b) in differences},
                }
            )
            if not report.ok:
                raise typer.Exit(1)
            return
        for problem in report.problems:
            typer.echo(f"MISMATCH {problem}")
        typer.echo(report.where())
        for name, (recorded, here) in report.profile_differences.items():
            typer.echo(f"profile: {name} is {here!r} here, but the drop was rendered with {recorded!r}")
        if report.problems or report.profile_differences:
            typer.echo(f"pixels: {report.summary()}")
        if report.problems:
            typer.echo(
                f"artctl: error: {drop}: {len(report.problems)} mismatches in {report.tokens} tokens",
                err=True,
            )
            raise typer.Exit(1)
        typer.echo(f"verified {report.tokens} tokens in {drop}: pixels, files, CIDs, metadata, provenance")

    run_command(_local_hint(body), error_code=UNVERIFIABLE, as_json=as_json)


COMMANDS = (mint, merge, rebase, verify)
