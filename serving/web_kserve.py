"""KServe v2 REST (and Triton's HTTP extensions) over the same servicer as gRPC.

A REST call is translated into the gRPC message and answered by serving.kserve_service, so both
protocols validate, batch and fail alike. Tensors come as JSON `data` or, with Triton's binary
tensor extension (the `Inference-Header-Content-Length` header), as raw bytes after the JSON,
which is what tritonclient.http sends and asks for by default.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from aiohttp import web
from google.protobuf.json_format import MessageToDict

from artctl.kserve.v2 import grpc_service_pb2 as pb
from serving.errors import InvalidRequestError
from serving.kserve_service import InferenceServicer
from serving.requests import KSERVE_DTYPES

HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_JSON_VALUES = 1 << 20  # numbers in one JSON tensor; bigger inputs go binary


def _dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _numbers(message: Any) -> dict[str, Any]:
    """A message as Triton writes its statistics: every field, zeros included, and 64-bit counts
    as JSON numbers (MessageToDict writes them as strings, which perf_analyzer misreads)."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        nested = field.type == field.TYPE_MESSAGE
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            inner = field.message_type.fields_by_name["value"].type == field.TYPE_MESSAGE
            out[field.name] = {k: _numbers(v) if inner else v for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [_numbers(v) if nested else v for v in value]
        else:
            out[field.name] = _numbers(value) if nested else value
    return out


def _raw(tensor: dict[str, Any], data: Any) -> bytes:
    """A JSON tensor's values as the little-endian bytes its datatype says."""
    name = str(tensor.get("name", ""))
    if name not in KSERVE_DTYPES:
        raise InvalidRequestError(f"unknown input {name[:32]!r}; inputs are {', '.join(KSERVE_DTYPES)}")
    datatype, dtype, _ = KSERVE_DTYPES[name]
    if tensor.get("datatype") != datatype:
        raise InvalidRequestError(
            f"input {name} must have datatype {datatype}, got {tensor.get('datatype')!r}"
        )
    flat = np.asarray(data, dtype=object).reshape(-1)
    if flat.size > MAX_JSON_VALUES:
        raise InvalidRequestError(f"input {name}: more than {MAX_JSON_VALUES} JSON values; send it binary")
    try:
        if dtype.kind == "f":
            values = np.array([float(v) for v in flat], dtype=dtype)
        else:
            ints = [
                int(v)
                for v in flat
                if (isinstance(v, int) and not isinstance(v, bool))
                or (isinstance(v, float) and v.is_integer())
            ]
            if len(ints) != flat.size:
                raise ValueError
            info = np.iinfo(dtype)
            if any(not info.min <= v <= info.max for v in ints):
                raise ValueError
            values = np.array(ints, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise InvalidRequestError(f"input {name}: data must be {datatype} numbers") from None
    return values.tobytes()


async def _read(request: web.Request) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the binary tail (empty without the extension)."""
    body = await request.read()
    length = request.headers.get(HEADER_LENGTH)
    try:
        split = int(length) if length is not None else len(body)
    except ValueError:
        raise InvalidRequestError(f"{HEADER_LENGTH} must be a number of bytes") from None
    if not 0 <= split <= len(body):
        raise InvalidRequestError(f"{HEADER_LENGTH} {split} is beyond the body's {len(body)} bytes")
    try:
        doc = json.loads(body[:split] or b"{}")
    except ValueError as exc:
        raise InvalidRequestError(f"the request is not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InvalidRequestError("the request must be a JSON object")
    return doc, body[split:]


def _infer_message(model: str, version: str, doc: dict[str, Any], tail: bytes) -> pb.ModelInferRequest:
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequestError("inputs: give a list of input tensors")
    message = pb.ModelInferRequest(model_name=model, model_version=version, id=str(doc.get("id", ""))[:256])
    offset = 0
    for tensor in inputs:
        if not isinstance(tensor, dict):
            raise InvalidRequestError("each input must be a JSON object")
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise InvalidRequestError(f"input {str(tensor.get('name'))[:32]}: shape must be a list of sizes")
        size = (tensor.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(tail):
                raise InvalidRequestError("binary_data_size runs past the request's binary data")
            raw, offset = tail[offset : offset + size], offset + size
        elif "data" in tensor:
            raw = _raw(tensor, tensor["data"])
        else:
            raise InvalidRequestError(f"input {str(tensor.get('name'))[:32]}: give data or binary_data_size")
        message.inputs.add(
            name=str(tensor.get("name", "")), datatype=str(tensor.get("datatype", "")), shape=shape
        )
        message.raw_input_contents.append(raw)
    return message


def _binary_output(doc: dict[str, Any]) -> bool:
    if (doc.get("parameters") or {}).get("binary_data_output"):
        return True
    return any(
        (o.get("parameters") or {}).get("binary_data")
        for o in doc.get("outputs") or []
        if isinstance(o, dict)
    )


class KServeRoutes:
    def __init__(self, servicer: InferenceServicer) -> None:
        self.servicer = servicer

    def routes(self) -> list[web.RouteDef]:
        s = self
        out = [
            web.get("/v2", s.server_metadata),
            web.get("/v2/health/live", s.live),
            web.get("/v2/health/ready", s.ready),
            web.get("/v2/repository/index", s.index),
            web.post("/v2/repository/index", s.index),
            web.get("/v2/models/stats", s.stats),  # every model's; before {model} would take "stats"
        ]
        for base in ("/v2/models/{model}", "/v2/models/{model}/versions/{version}"):
            out += [
                web.get(base, s.metadata),
                web.get(f"{base}/ready", s.model_ready),
                web.get(f"{base}/config", s.config),
                web.get(f"{base}/stats", s.stats),
                web.post(f"{base}/infer", s.infer),
            ]
        return out

    async def server_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(_dict(await self.servicer.ServerMetadata(pb.ServerMetadataRequest(), None)))  # type: ignore[arg-type]

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        ready = (await self.servicer.ServerReady(pb.ServerReadyRequest(), None)).ready  # type: ignore[arg-type]
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def index(self, request: web.Request) -> web.Response:
        reply = await self.servicer.RepositoryIndex(pb.RepositoryIndexRequest(), None)  # type: ignore[arg-type]
        return web.json_response(_dict(reply).get("models", []))

    @staticmethod
    def _names(request: web.Request) -> tuple[str, str]:
        return request.match_info["model"], request.match_info.get("version", "")

    async def metadata(self, request: web.Request) -> web.Response:
        name, version = self._names(request)
        reply = await self.servicer.ModelMetadata(pb.ModelMetadataRequest(name=name, version=version), None)  # type: ignore[arg-type]
        doc = _dict(reply)
        for tensor in doc.get("inputs", []) + doc.get("outputs", []):
            tensor["shape"] = [
                int(d) for d in tensor.get("shape", [])
            ]  # JSON numbers, as the spec writes them
        return web.json_response(doc)

    async def model_ready(self, request: web.Request) -> web.Response:
        name, version = self._names(request)
        reply = await self.servicer.ModelReady(pb.ModelReadyRequest(name=name, version=version), None)  # type: ignore[arg-type]
        return web.json_response({"name": name, "ready": reply.ready}, status=200 if reply.ready else 503)

    async def config(self, request: web.Request) -> web.Response:
        name, version = self._names(request)
        reply = await self.servicer.ModelConfig(pb.ModelConfigRequest(name=name, version=version), None)  # type: ignore[arg-type]
        return web.json_response(_dict(reply.config))

    async def stats(self, request: web.Request) -> web.Response:
        name, version = request.match_info.get("model", ""), request.match_info.get("version", "")
        reply = await self.servicer.ModelStatistics(
            pb.ModelStatisticsRequest(name=name, version=version), None
        )  # type: ignore[arg-type]
        return web.json_response(_numbers(reply))

    async def infer(self, request: web.Request) -> web.Response:
        name, version = self._names(request)
        doc, tail = await _read(request)
        reply = await self.servicer.infer(_infer_message(name, version, doc, tail), None)
        (output,) = reply.outputs
        tensor: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": list(output.shape),
        }
        head: dict[str, Any] = {
            "model_name": reply.model_name,
            "model_version": reply.model_version,
            "outputs": [tensor],
        }
        if reply.id:
            head["id"] = reply.id
        raw = reply.raw_output_contents[0]
        if not _binary_output(doc):
            tensor["data"] = np.frombuffer(raw, dtype=np.uint8).tolist()
            return web.json_response(head)
        tensor["parameters"] = {"binary_data_size": len(raw)}
        header = json.dumps(head).encode()
        return web.Response(
            body=header + raw,
            content_type="application/octet-stream",
            headers={HEADER_LENGTH: str(len(header))},
        )
