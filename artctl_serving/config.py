"""Server options as data, layered: defaults <- a TOML config file <- ARTCTL_SERVE_* environment
variables <- command-line flags (12-factor: a container sets `ARTCTL_SERVE_PORT=9000`).

Each field's description is its help text, so `artctl serve`'s flags are generated from this class
(artctl/cli/serve.py) and the option list exists once. pydantic-settings does the layering.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from artctl.profile import GRAPH_LEVELS, SERVING_LEVEL

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ServeConfigError(ValueError):
    """A config file or flag value the server cannot use."""


MAX_MESSAGE_MB = 2047  # gRPC message limits are signed 32-bit byte counts


def _flag(name: str) -> Any:
    return {"flag": name}


ENV_PREFIX = "ARTCTL_SERVE_"  # not ARTCTL_TLS_*: those are the client's (artctl.client.Security)


class ServerOptions(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 for all interfaces.")
    port: int = Field(8001, description="gRPC port; 0 picks a free one.")
    metrics_port: int | None = Field(None, description="Prometheus /metrics port (off when unset).")
    http_port: int | None = Field(
        None,
        description="HTTP port: the studio (/studio), KServe v2 REST (/v2) and immutable image URLs "
        "(/v1); off when unset. Same TLS and token as gRPC.",
    )
    http_max_body_mb: int = Field(
        64,
        description="Largest HTTP request body in MiB, counted after decompression (gRPC's message limit).",
    )
    http_max_reply_mb: int = Field(
        64,
        description="Largest HTTP JSON reply in MiB; bigger ones get a 400 that points at the binary "
        "tensor extension.",
    )
    http_max_header_kb: int = Field(16, description="Largest HTTP request line and header block in KiB.")
    http_header_timeout_s: float = Field(
        10.0,
        description="Seconds a client has to send a request's headers (and a TLS handshake) before the "
        "connection is closed.",
        json_schema_extra=_flag("--http-header-timeout"),
    )
    http_body_timeout_s: float = Field(
        60.0,
        description="Seconds a client has to send a request body before it gets a 408.",
        json_schema_extra=_flag("--http-body-timeout"),
    )
    http_keepalive_s: float = Field(
        75.0,
        description="Seconds an idle HTTP keep-alive connection is held.",
        json_schema_extra=_flag("--http-keepalive"),
    )
    metrics_auth: bool = Field(
        False,
        description="Require the bearer token (--auth-token-file) on the metrics port too; Prometheus "
        "sends it with `authorization: {credentials_file: ...}`.",
    )
    cache_mb: int = Field(
        256, description="Response cache for rendered images, shared by gRPC and HTTP (MiB; 0: off)."
    )
    max_batch: int = Field(64, description="Most images per inference call.")
    max_delay_ms: float = Field(2.0, description="How long the batcher waits to fill a batch (ms).")
    queue_size: int = Field(4096, description="Images allowed to wait before RESOURCE_EXHAUSTED.")
    max_seeds_per_request: int = Field(1024, description="Most seeds in one request.")
    max_queue_s: float | None = Field(
        None,
        description="Seconds of queued work admitted at most, at the measured rate (unset: half the "
        "shutdown grace, so that SIGTERM can finish everything it admitted).",
    )
    threads: int = Field(0, description="ONNX Runtime intra-op threads (0: its default).")
    provider: str = Field("auto", description="ONNX Runtime execution provider: auto, cpu or cuda.")
    graph_optimization: str = Field(
        SERVING_LEVEL,
        description="ONNX Runtime graph optimisation level: disable, basic, extended or all. It changes "
        "pixels, so it is part of the render profile (docs/seed-contract.md).",
    )
    exec_batch: int | None = Field(
        None,
        description="Canonical batch shape every inference call runs at, padded (unset: 0 on CPU, 64 on "
        "CUDA; see artctl_serving/runtime.py).",
    )
    encode_workers: int = Field(0, description="PNG encoder workers (0: one per core).")
    encode_pool: str = Field(
        "thread", description="PNG encoding in a thread or process pool (bench/encode.py measures which)."
    )
    max_message_mb: int = Field(64, description="Largest gRPC message in MiB.")
    grace_s: float = Field(
        30.0, description="Seconds SIGTERM waits for in-flight requests.", json_schema_extra=_flag("--grace")
    )
    max_connection_age_s: float | None = Field(
        None,
        description="Close connections after N seconds so clients re-balance (off when unset).",
        json_schema_extra=_flag("--max-connection-age"),
    )
    watch_interval_s: float = Field(
        2.0,
        description="Seconds between model-file checks for hot reload; 0 disables (SIGHUP still reloads).",
        json_schema_extra=_flag("--watch-interval"),
    )
    tls_cert: Path | None = Field(None, description="Server certificate (PEM) to serve TLS.")
    tls_key: Path | None = Field(None, description="Server private key (PEM).")
    tls_client_ca: Path | None = Field(
        None, description="CA bundle (PEM): require client certificates (mTLS)."
    )
    auth_token_file: Path | None = Field(
        None, description="File with a bearer token required on every call but health checks."
    )
    collection: Path | None = Field(
        None,
        description="A collection config (TOML, as `artctl mint` reads): the studio then offers its "
        "conditioning trait's values, and only those, for the model it names.",
    )
    log_level: str = Field("INFO", description="Logging level.")
    models: list[Path] = Field(
        default_factory=list,
        description="Model files or folders of .onnx files (default: every embedded model).",
        json_schema_extra={"argument": True},
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ServeConfigError(_one_line(exc)) from None

    @model_validator(mode="after")
    def _checks(self) -> ServerOptions:
        ports = [("port", self.port)] + [
            (name, value)
            for name, value in (("metrics_port", self.metrics_port), ("http_port", self.http_port))
            if value
        ]
        checks = [
            *((0 <= value <= 65535, f"{name} must be in 0..65535, got {value}") for name, value in ports),
            (self.max_batch >= 1, "max_batch must be >= 1"),
            (self.cache_mb >= 0, f"cache_mb must be >= 0 (0: no cache), got {self.cache_mb}"),
            (
                self.cache_mb * 2**20 <= _memory_bytes(),
                f"cache_mb {self.cache_mb} is more than this machine's memory "
                f"({_memory_bytes() // 2**20} MiB)",
            ),
            *(
                (value != self.port or value == 0, f"{name} {value} is the gRPC port too: give each its own")
                for name, value in ports[1:]
            ),
            (
                not (self.metrics_port and self.metrics_port == self.http_port),
                f"metrics_port and http_port are both {self.metrics_port}: give each its own",
            ),
            (
                1 <= self.http_max_body_mb <= MAX_MESSAGE_MB,
                f"http_max_body_mb must be in 1..{MAX_MESSAGE_MB}, got {self.http_max_body_mb}",
            ),
            (
                1 <= self.http_max_reply_mb <= MAX_MESSAGE_MB,
                f"http_max_reply_mb must be in 1..{MAX_MESSAGE_MB}, got {self.http_max_reply_mb}",
            ),
            (
                1 <= self.http_max_header_kb <= 1024,
                f"http_max_header_kb must be in 1..1024, got {self.http_max_header_kb}",
            ),
            *(
                (value > 0, f"{name} must be > 0, got {value}")
                for name, value in (
                    ("http_header_timeout_s", self.http_header_timeout_s),
                    ("http_body_timeout_s", self.http_body_timeout_s),
                    ("http_keepalive_s", self.http_keepalive_s),
                )
            ),
            (
                not self.metrics_auth or self.auth_token_file is not None,
                "metrics_auth needs auth_token_file (the token it asks for)",
            ),
            (self.queue_size >= 1, "queue_size must be >= 1"),
            (self.max_delay_ms >= 0, "max_delay_ms must be >= 0"),
            (self.max_seeds_per_request >= 1, "max_seeds_per_request must be >= 1"),
            (
                self.max_seeds_per_request <= self.queue_size,
                f"max_seeds_per_request ({self.max_seeds_per_request}) must not exceed queue_size "
                f"({self.queue_size}): a request that big could never be admitted",
            ),
            (self.exec_batch is None or self.exec_batch >= 0, "exec_batch must be >= 0"),
            (self.threads >= 0, f"threads must be >= 0 (0: onnxruntime's default), got {self.threads}"),
            (
                self.encode_workers >= 0,
                f"encode_workers must be >= 0 (0: one per core), got {self.encode_workers}",
            ),
            (
                1 <= self.max_message_mb <= MAX_MESSAGE_MB,
                f"max_message_mb must be in 1..{MAX_MESSAGE_MB}, got {self.max_message_mb}",
            ),
            (self.grace_s >= 0, "grace_s must be >= 0"),
            (self.max_queue_s is None or self.max_queue_s > 0, "max_queue_s must be > 0"),
            (self.watch_interval_s >= 0, "watch_interval_s must be >= 0"),
            (
                self.max_connection_age_s is None or self.max_connection_age_s > 0,
                "max_connection_age_s must be > 0 (leave it unset for no limit)",
            ),
            (self.provider in ("auto", "cpu", "cuda"), "provider must be auto, cpu or cuda"),
            (
                self.graph_optimization in GRAPH_LEVELS,
                f"graph_optimization must be one of {', '.join(GRAPH_LEVELS)}",
            ),
            (self.encode_pool in ("thread", "process"), "encode_pool must be thread or process"),
            ((self.tls_cert is None) == (self.tls_key is None), "tls_cert and tls_key go together"),
            (
                self.tls_client_ca is None or self.tls_cert is not None,
                "tls_client_ca needs tls_cert and tls_key",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self

    @property
    def queue_seconds(self) -> float | None:
        """The admission bound in seconds of work (None: none, when there is no grace to respect)."""
        if self.max_queue_s is not None:
            return self.max_queue_s
        return self.grace_s / 2 if self.grace_s > 0 else None

    def check_files(self) -> None:
        """Refuse unreadable or malformed TLS and token files with a message naming the file (gRPC
        itself would only say that it failed to bind)."""
        import ssl

        for name in ("tls_cert", "tls_key", "tls_client_ca", "auth_token_file", "collection"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ServeConfigError(f"{name}: {path} does not exist")
        if self.tls_cert is not None and self.tls_key is not None:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.tls_cert, self.tls_key)
            except (ssl.SSLError, ValueError) as exc:
                raise ServeConfigError(
                    f"tls_cert/tls_key: {self.tls_cert} and {self.tls_key} are not a PEM certificate and its "
                    f"private key ({exc})"
                ) from None
        if self.tls_client_ca is not None:
            try:
                ssl.create_default_context(cafile=str(self.tls_client_ca))
            except (ssl.SSLError, ValueError) as exc:
                raise ServeConfigError(
                    f"tls_client_ca: {self.tls_client_ca} is not a PEM CA bundle ({exc})"
                ) from None


def _memory_bytes() -> int:
    """This machine's physical memory (a cache bigger than it can never be filled, only swapped)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 2**62


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        msg = str(err["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


PATH_FIELDS = {"tls_cert", "tls_key", "tls_client_ca", "auth_token_file"}


def load_options(
    config_file: Path | None, overrides: dict[str, Any], env: dict[str, str] | None = None
) -> ServerOptions:
    """Defaults <- config file (keys = ServerOptions fields) <- ARTCTL_SERVE_* variables of `env`
    (default: the process environment) <- overrides that are not None."""
    import os

    values: dict[str, Any] = {}
    known = set(ServerOptions.model_fields)
    environ = dict(os.environ if env is None else env)
    unknown = sorted(
        k for k in environ if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX) :].lower() not in known
    )
    if unknown:
        raise ServeConfigError(
            f"unknown environment variable {unknown[0]} (the options are {ENV_PREFIX}<OPTION>)"
        )
    if config_file is not None:
        try:
            raw = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ServeConfigError(f"config file {config_file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ServeConfigError(f"{config_file}: not valid TOML ({exc})") from None
        for key, value in raw.items():
            if key not in known:
                raise ServeConfigError(f"{config_file}: unknown key {key!r}")
            if key in PATH_FIELDS and value is not None:
                value = (Path(config_file).parent / value).resolve()
            if key == "models":
                value = [(Path(config_file).parent / v).resolve() for v in value]
            values[key] = value
    flags = {k: v for k, v in overrides.items() if v is not None and v != []}
    file_values = values

    class Layered(ServerOptions):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[Any, ...]:
            return (init_settings, env_settings, lambda: file_values)

    return Layered(**flags)
