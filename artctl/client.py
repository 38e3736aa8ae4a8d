"""A small synchronous client for artctl.v1.Generator, with client-side round robin over servers."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import grpc

from artctl.v1 import generator_pb2 as pb
from artctl.v1 import generator_pb2_grpc as pb_grpc

FORMATS = {"png": pb.IMAGE_FORMAT_PNG, "raw": pb.IMAGE_FORMAT_RAW}
RETRYABLE = {grpc.StatusCode.UNAVAILABLE}


@dataclass
class Artwork:
    seed: int
    image: bytes
    mime: str
    width: int
    height: int
    channels: int
    pixel_sha256: str
    metadata: dict[str, Any] | None
    psi: float
    label: int
    index: int


@dataclass
class GenerateResult:
    model: str
    profile: dict[str, Any]
    artworks: list[Artwork] = field(default_factory=list)
    target: str = ""


@dataclass(frozen=True)
class Security:
    """How to reach a secured server: a bearer token, TLS (with the CA that signed the server's
    certificate) and, for mTLS, a client certificate and key. Files are PEM."""

    token: str | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls: bool = False  # TLS with the system's CAs when no tls_ca is given
    server_name: str | None = None  # the name the server's certificate is for, if not the target's

    ENV: ClassVar[dict[str, str]] = {
        "token_file": "ARTCTL_AUTH_TOKEN_FILE",
        "tls_ca": "ARTCTL_TLS_CA",
        "tls_cert": "ARTCTL_TLS_CERT",
        "tls_key": "ARTCTL_TLS_KEY",
        "server_name": "ARTCTL_TLS_SERVER_NAME",
    }

    @classmethod
    def from_options(
        cls,
        token_file: Path | None = None,
        tls_ca: Path | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        server_name: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Security:
        """Explicit options first, then the ARTCTL_* environment variables (see ENV)."""
        env = os.environ if env is None else env

        def pick(value: Any, key: str) -> Any:
            return value if value is not None else (env.get(cls.ENV[key]) or None)

        token_path = pick(token_file, "token_file")
        token = None
        if token_path is not None:
            try:
                token = Path(token_path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read the bearer token file {token_path} ({exc.strerror})") from None
        ca, cert, key = pick(tls_ca, "tls_ca"), pick(tls_cert, "tls_cert"), pick(tls_key, "tls_key")
        if (cert is None) != (key is None):
            raise ValueError("a client certificate and its key go together (--tls-cert and --tls-key)")
        return cls(
            token=token,
            tls_ca=None if ca is None else Path(ca),
            tls_cert=None if cert is None else Path(cert),
            tls_key=None if key is None else Path(key),
            tls=ca is not None or cert is not None,
            server_name=pick(server_name, "server_name"),
        )

    def credentials(self) -> grpc.ChannelCredentials | None:
        if not self.tls:
            return None

        def read(path: Path | None) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise ValueError(f"cannot read {path} ({exc.strerror})") from None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.tls_ca),
            private_key=read(self.tls_key),
            certificate_chain=read(self.tls_cert),
        )

    def metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")] if self.token else []


def _profile(msg: pb.RenderProfile) -> dict[str, Any]:
    return {f.name: getattr(msg, f.name) for f in msg.DESCRIPTOR.fields}


class ServerUnavailable(ConnectionError, grpc.RpcError):
    """No server answered at any target after the retries: nothing serves there, or the address is
    wrong. Still a grpc.RpcError (code() is UNAVAILABLE) for callers that count status codes."""

    def __init__(self, message: str, cause: grpc.RpcError) -> None:
        super().__init__(message)
        self.cause = cause

    def code(self) -> grpc.StatusCode:
        return self.cause.code()  # type: ignore[attr-defined, no-any-return]

    def details(self) -> str:
        return str(self.cause.details())  # type: ignore[attr-defined]


class GeneratorClient:
    """Calls go to the targets in turn; UNAVAILABLE is retried on the next target with backoff."""

    def __init__(
        self,
        targets: str | Sequence[str],
        timeout: float = 120.0,
        retries: int = 4,
        max_message_mb: int = 64,
        security: Security | None = None,
    ) -> None:
        self.targets = [targets] if isinstance(targets, str) else list(targets)
        if not self.targets:
            raise ValueError("give at least one server address (HOST:PORT)")
        limit = max_message_mb * 1024 * 1024
        # round_robin: a name that resolves to many addresses (a headless Service) spreads calls over
        # all of them instead of pinning every call to the first pod.
        opts: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.lb_policy_name", "round_robin"),
        ]
        self.security = security or Security()
        if self.security.server_name:
            opts.append(("grpc.ssl_target_name_override", self.security.server_name))
        credentials = self.security.credentials()
        self._channels = [
            grpc.insecure_channel(t, options=opts)
            if credentials is None
            else grpc.secure_channel(t, credentials, options=opts)
            for t in self.targets
        ]
        self._metadata = self.security.metadata()
        self._stubs = [pb_grpc.GeneratorStub(ch) for ch in self._channels]
        self._next = itertools.cycle(range(len(self.targets)))
        self.timeout = timeout
        self.retries = retries

    def _call(self, method: str, request: Any) -> tuple[Any, str]:
        delay = 0.2
        for attempt in range(self.retries + 1):
            i = next(self._next)
            try:
                call = getattr(self._stubs[i], method)
                return call(request, timeout=self.timeout, metadata=self._metadata), self.targets[i]
            except grpc.RpcError as err:
                if err.code() not in RETRYABLE:
                    raise
                if attempt == self.retries:
                    where = ", ".join(self.targets)
                    raise ServerUnavailable(
                        f"no artctl server answered at {where} ({err.details()}); "  # type: ignore[attr-defined]
                        "start one with `artctl serve MODEL`, or check the address",
                        err,
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def generate(
        self,
        seeds: Iterable[int],
        model: str = "",
        psi: float | None = None,
        labels: Sequence[int] = (),
        fmt: str = "png",
        include_metadata: bool = False,
        traits: dict[str, str] | None = None,
        edits: Sequence[tuple[int, float]] = (),
        truncation_cutoff: int = 0,
    ) -> GenerateResult:
        """Images of `seeds`; `edits` move every seed along the model's latent directions, and a
        `truncation_cutoff` k applies psi to the first k ws only (0: every layer)."""
        request = pb.GenerateRequest(
            model=model,
            seeds=list(seeds),
            labels=list(labels),
            format=FORMATS[fmt],
            include_metadata=include_metadata,
            traits=traits or {},
            edits=[pb.DirectionEdit(direction=d, amount=a) for d, a in edits],
            truncation_cutoff=truncation_cutoff,
        )
        if psi is not None:
            request.psi = psi
        response, target = self._call("Generate", request)
        artworks = [
            Artwork(
                seed=a.seed,
                image=a.image,
                mime=a.mime,
                width=a.width,
                height=a.height,
                channels=a.channels,
                pixel_sha256=a.pixel_sha256,
                metadata=json.loads(a.metadata_json) if a.metadata_json else None,
                psi=a.psi,
                label=a.label,
                index=a.index,
            )
            for a in response.artworks
        ]
        return GenerateResult(
            model=response.model, profile=_profile(response.profile), artworks=artworks, target=target
        )

    def list_models(self) -> list[dict[str, Any]]:
        """Model cards, the default model's first."""
        response, _ = self._call("ListModels", pb.ListModelsRequest())
        out = []
        for card in response.models:
            doc = {f.name: getattr(card, f.name) for f in card.DESCRIPTOR.fields if f.name != "profile"}
            doc["label_names"] = list(card.label_names)
            doc["contracts"] = dict(card.contracts)
            doc["metadata"] = dict(card.metadata)
            doc["profile"] = _profile(card.profile)
            out.append(doc)
        out.sort(key=lambda d: d["name"] != response.default_model)
        return out

    def close(self) -> None:
        for ch in self._channels:
            ch.close()

    def __enter__(self) -> GeneratorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
