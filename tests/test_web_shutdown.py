"""A graceful stop as both protocols see it: from the moment it begins, new work is refused with
UNAVAILABLE rather than admitted into a queue that the grace period may not finish, while what was
admitted before still completes. (Over HTTP the listening socket closes at once, and aiohttp reads
no more of a request it is shutting down.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from artctl.v1 import generator_pb2 as pb
from artctl.v1 import generator_pb2_grpc as pb_grpc
from tests.helpers import free_port, running_server
from tests.web_wire import call, connect


def test_work_sent_after_the_stop_began_is_refused_not_admitted(tiny_model: Path) -> None:
    body = json.dumps(
        {"inputs": [{"name": "SEED", "shape": [1], "datatype": "UINT64", "data": [4]}]}
    ).encode()
    head = f"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    with running_server([tiny_model], http_port=free_port(), http_body_timeout_s=120.0) as (server, target):
        base = f"http://127.0.0.1:{server.http_port}"
        with grpc.insecure_channel(target) as channel:
            generator = pb_grpc.GeneratorStub(channel)
            assert len(generator.Generate(pb.GenerateRequest(model="tiny", seeds=[1])).artworks) == 1
            slow = connect(server.http_port)  # an HTTP request still sending its body holds the stop open
            slow.sendall(head.encode() + body[:5])
            assert call(f"{base}/v2/health/live")[0] == 200  # the slow request's head has been read
            stopping = asyncio.run_coroutine_threadsafe(server.stop(), server.loop)
            health = health_pb2_grpc.HealthStub(channel)
            status = health_pb2.HealthCheckResponse.SERVING
            while status == health_pb2.HealthCheckResponse.SERVING:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=30).status
            try:
                generator.Generate(pb.GenerateRequest(model="tiny", seeds=[2]), timeout=30)
                raise AssertionError("a request sent after the stop began was admitted")
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE and "shutting down" in str(exc.details())
            slow.close()  # its client gives up: the stop need not wait for its body
            stopping.result(60)
