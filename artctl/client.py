"""A small synchronous client for artctl.v1.Generator, with client-side round robin over servers."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

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


def _profile(msg: pb.RenderProfile) -> dict[str, Any]:
    return {f.name: getattr(msg, f.name) for f in msg.DESCRIPTOR.fields}


class GeneratorClient:
    """Calls go to the targets in turn; UNAVAILABLE is retried on the next target with backoff."""

    def __init__(
        self, targets: str | Sequence[str], timeout: float = 120.0, retries: int = 4, max_message_mb: int = 64
    ) -> None:
        self.targets = [targets] if isinstance(targets, str) else list(targets)
        if not self.targets:
            raise ValueError("give at least one server address (HOST:PORT)")
        limit = max_message_mb * 1024 * 1024
        # round_robin: a name that resolves to many addresses (a headless Service) spreads calls over
        # all of them instead of pinning every call to the first pod.
        opts = [
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            ("grpc.lb_policy_name", "round_robin"),
        ]
        self._channels = [grpc.insecure_channel(t, options=opts) for t in self.targets]
        self._stubs = [pb_grpc.GeneratorStub(ch) for ch in self._channels]
        self._next = itertools.cycle(range(len(self.targets)))
        self.timeout = timeout
        self.retries = retries

    def _call(self, method: str, request: Any) -> tuple[Any, str]:
        delay = 0.2
        for attempt in range(self.retries + 1):
            i = next(self._next)
            try:
                return getattr(self._stubs[i], method)(request, timeout=self.timeout), self.targets[i]
            except grpc.RpcError as err:
                if err.code() not in RETRYABLE or attempt == self.retries:
                    raise
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
    ) -> GenerateResult:
        request = pb.GenerateRequest(
            model=model,
            seeds=list(seeds),
            labels=list(labels),
            format=FORMATS[fmt],
            include_metadata=include_metadata,
            traits=traits or {},
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
