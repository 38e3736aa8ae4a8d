"""KServe v2 REST (and Triton's HTTP extensions) over the same servicer as gRPC.

A REST call is translated into the gRPC message and answered by artctl_serving.kserve_service, so both
protocols validate, batch and fail alike. Tensors come as JSON `data` or, with Triton's binary
tensor extension (the `Inference-Header-Content-Length` header), as raw bytes after the JSON,
which is what tritonclient.http sends and asks for by default.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
from aiohttp import web
from google.protobuf.json_format import MessageToDict

from artctl.kserve.v2 import grpc_service_pb2 as pb
from artctl_serving.errors import InvalidRequestError
from artctl_serving.kserve_service import InferenceServicer, _check_version
from artctl_serving.requests import KSERVE_DTYPES
from artctl_serving.web_conn import HttpLimits, read_body

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
        if dtype.kind == "f":  # JSON numbers only: "0.5" and true would give one tensor two spellings
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
                raise ValueError
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


def _object(value: Any, what: str) -> dict[str, Any]:
    """An optional JSON object (`parameters`): absent is empty, anything but an object is a 400."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{what} must be a JSON object")
    return value


async def _read(request: web.Request, limits: HttpLimits) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the binary tail (empty without the extension)."""
    body = await read_body(request, limits)
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
    except RecursionError:
        raise InvalidRequestError("the request's JSON is nested too deeply") from None
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
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**63 for d in shape
        ):
            raise InvalidRequestError(f"input {str(tensor.get('name'))[:32]}: shape must be a list of sizes")
        size = _object(tensor.get("parameters"), "an input's parameters").get("binary_data_size")
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
    for output in _outputs(doc):
        message.outputs.add(name=str(output.get("name", "")))  # the servicer refuses unknown names
    return message


def _outputs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    outputs = doc.get("outputs")
    if outputs is None:
        return []
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise InvalidRequestError("outputs must be a list of JSON objects")
    for o in outputs:
        if not isinstance(o.get("name"), str):
            raise InvalidRequestError("each requested output needs its name")
    return outputs


def _binary_output(doc: dict[str, Any]) -> bool:
    if _object(doc.get("parameters"), "parameters").get("binary_data_output"):
        return True
    return any(
        _object(o.get("parameters"), "an output's parameters").get("binary_data") for o in _outputs(doc)
    )


def _digit_table() -> tuple[np.ndarray, np.ndarray]:
    """Each byte value's JSON text with its comma ("7," ... "255,"), padded to 4 bytes, and which
    of those 4 bytes are text."""
    table = np.zeros((256, 4), dtype=np.uint8)
    for v in range(256):
        text = f"{v},".encode()
        table[v, : len(text)] = np.frombuffer(text, dtype=np.uint8)
    return table, table != 0


DIGITS, DIGITS_KEPT = _digit_table()


def json_list(values: np.ndarray) -> bytes:
    """uint8 values as a JSON list, byte for byte what json.dumps(values.tolist()) gives minus its
    spaces. Written with numpy (table lookups that release the GIL) rather than a Python list of
    millions of ints, so a large reply does not hold the event loop's thread for seconds."""
    if values.size == 0:
        return b"[]"
    text = DIGITS[values][DIGITS_KEPT[values]]
    return b"[" + text[:-1].tobytes() + b"]"


def json_size(values: np.ndarray) -> int:
    """Bytes of json_list(values), without writing it."""
    return int(DIGITS_KEPT[values].sum()) + 1


def encode_reply(head: dict[str, Any], raw: bytes, binary: bool, limit: int) -> tuple[bytes, int | None]:
    """The reply body (and the JSON header's length for the binary extension). It runs in a worker
    thread: a thousand images as JSON is tens of megabytes of text that must not hold the event loop."""
    tensor = head["outputs"][0]
    if binary:
        tensor["parameters"] = {"binary_data_size": len(raw)}
        header = json.dumps(head).encode()
        if len(header) + len(raw) > limit:
            raise InvalidRequestError(
                f"the reply would be {(len(header) + len(raw)) / 2**20:.1f} MiB, over the "
                f"{limit // 2**20} MiB limit (--http-max-reply-mb): ask for fewer seeds"
            )
        return header + raw, len(header)
    values = np.frombuffer(raw, dtype=np.uint8)
    size = json_size(values)
    if size > limit:
        raise InvalidRequestError(
            f"the JSON reply would be {size / 2**20:.1f} MiB, over the {limit // 2**20} MiB limit "
            "(--http-max-reply-mb): ask for Triton's binary tensor extension "
            '("parameters": {"binary_data_output": true}), which sends the pixels as bytes, or fewer seeds'
        )
    tensor["data"] = None  # a placeholder: the numbers are written by json_list
    before, _, after = json.dumps(head, separators=(",", ":")).partition('"data":null')
    return b"".join((before.encode(), b'"data":', json_list(values), after.encode())), None


class KServeRoutes:
    def __init__(self, servicer: InferenceServicer, limits: HttpLimits | None = None) -> None:
        self.servicer = servicer
        self.limits = limits or HttpLimits()

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
        self.servicer.registry.get(name)  # an unknown model is 404 (KServe v2), not "not ready"
        _check_version(name, version)
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
        doc, tail = await _read(request, self.limits)
        message = _infer_message(name, version, doc, tail)
        binary = _binary_output(doc)
        reply = await self.servicer.infer(message, None)
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
        body, split = await asyncio.to_thread(encode_reply, head, raw, binary, self.limits.reply_bytes)
        if split is None:
            return web.Response(body=body, content_type="application/json")
        return web.Response(
            body=body, content_type="application/octet-stream", headers={HEADER_LENGTH: str(split)}
        )
