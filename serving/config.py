"""Server options as data: defaults, then a TOML config file, then command-line flags."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ServeConfigError(ValueError):
    """A config file or flag value the server cannot use."""


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 8001
    metrics_port: int | None = None
    max_batch: int = 64
    max_delay_ms: float = 2.0
    queue_size: int = 4096
    max_seeds_per_request: int = 1024
    threads: int = 0
    provider: str = "auto"
    exec_batch: int | None = None  # None: 0 on CPU, 64 on CUDA (see serving/runtime.py)
    encode_workers: int = 0
    encode_pool: str = "thread"  # "thread" or "process": bench/encode.py measures which is faster
    max_message_mb: int = 64
    grace_s: float = 30.0
    max_connection_age_s: float | None = None
    watch_interval_s: float = 2.0  # poll model files for changes; 0 disables (SIGHUP still reloads)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    auth_token_file: Path | None = None
    models: list[Path] = field(default_factory=list)

    def validate(self) -> None:
        checks = [
            (self.max_batch >= 1, "max_batch must be >= 1"),
            (self.queue_size >= 1, "queue_size must be >= 1"),
            (self.max_delay_ms >= 0, "max_delay_ms must be >= 0"),
            (self.max_seeds_per_request >= 1, "max_seeds_per_request must be >= 1"),
            (self.exec_batch is None or self.exec_batch >= 0, "exec_batch must be >= 0"),
            (self.provider in ("auto", "cpu", "cuda"), "provider must be auto, cpu or cuda"),
            (self.encode_pool in ("thread", "process"), "encode_pool must be thread or process"),
            ((self.tls_cert is None) == (self.tls_key is None), "tls_cert and tls_key go together"),
            (
                self.tls_client_ca is None or self.tls_cert is not None,
                "tls_client_ca needs tls_cert and tls_key",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ServeConfigError(message)


PATH_FIELDS = {"tls_cert", "tls_key", "tls_client_ca", "auth_token_file"}


def load_options(config_file: Path | None, overrides: dict[str, Any]) -> ServerOptions:
    """Defaults <- config file (keys = ServerOptions fields) <- overrides that are not None."""
    values: dict[str, Any] = {}
    known = {f.name for f in fields(ServerOptions)}
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
    values.update({k: v for k, v in overrides.items() if v is not None and v != []})
    options = ServerOptions(**values)
    options.validate()
    return options
