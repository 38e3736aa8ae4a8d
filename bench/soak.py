"""Soak: a real `artctl serve` process under twice its capacity for minutes, then SIGTERM under load.

A benchmark, not a test. It measures the server's capacity (closed loop, for a few seconds), then
offers twice that as an open-loop stream (requests arrive on a timetable, whether or not earlier
ones finished) and records every request's status and latency, the server's RSS every second, and
at the end a SIGTERM with the load still running. What a production server must show:
errors only as RESOURCE_EXHAUSTED (refused at admission, retryable) or UNAVAILABLE (after the
SIGTERM), no admitted request lost (the server's own count at stop), flat memory, no crash.
Every seed is new, so the response cache only fills: RSS may grow by --cache-mb and must then
stay flat (the cache's own bytes are read from /metrics before the SIGTERM).

With --http (the default) half the offered requests go over HTTP instead (bench/soak_http.py:
image URLs, REST infer, studio files, large JSON replies and compressed-body bombs), and a
separate process probes /v2/health/live every 250 ms: no HTTP 500, 503 only after the SIGTERM,
and the probe's p99 under 100 ms.

    python -m bench.soak --minutes 3 --out bench/results      # table + soak.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from artctl.cli.common import free_port, wait_for_server
from artctl.models import embedded_default
from artctl.v1 import generator_pb2 as pb
from artctl.v1 import generator_pb2_grpc as pb_grpc
from bench.serve import serve_command
from bench.soak_http import HttpLoad, LiveProbe

ADMITTED = re.compile(r"model (\S+): (\d+) requests admitted, (\d+) finished")
CACHE_SERIES = ("artctl_cache_bytes", "artctl_cache_entries", "artctl_cache_evictions_total")


def cache_figures(metrics_port: int) -> dict[str, float]:
    """The response cache's size and evictions, as the server's /metrics states them."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in CACHE_SERIES:
            found[name] = float(value)
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Recorder:
    """Every request's outcome: status code, latency, and whether it was sent after the SIGTERM."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codes: Counter[str] = Counter()
        self.after_stop: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.stopping = False

    def done(self, started: float, after_stop: bool, future: Any) -> None:
        try:
            future.result()
            code = "OK"
        except grpc.RpcError as exc:
            code = exc.code().name
        with self.lock:
            (self.after_stop if after_stop else self.codes)[code] += 1
            if code == "OK":
                self.latencies.append(time.perf_counter() - started)


def closed_loop(stub: Any, seeds: int, concurrency: int, seconds: float) -> tuple[float, int]:
    """Images per second the server sustains with `concurrency` requests always in flight, and how
    many requests that took."""
    done, stop = [0], time.perf_counter() + seconds
    lock = threading.Lock()

    def worker(k: int) -> None:
        i = k * 10**6
        while time.perf_counter() < stop:
            try:
                stub.Generate(pb.GenerateRequest(seeds=list(range(i, i + seeds))), timeout=30)
            except grpc.RpcError as exc:  # more clients than --max-queue-s admits: try again
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                time.sleep(0.01)
                continue
            i += seeds
            with lock:
                done[0] += seeds

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.perf_counter() - started), done[0] // seeds


def open_loop(stub: Any, rate: float, seeds: int, seconds: float, rec: Recorder, timeout: float) -> int:
    """Send `rate` requests per second for `seconds`, on a timetable; returns how many were sent."""
    interval, sent, start = 1.0 / rate, 0, time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        due = start + sent * interval
        if now < due:
            time.sleep(min(due - now, 0.01))
            continue
        first = 10**9 + sent * seeds
        future = stub.Generate.future(
            pb.GenerateRequest(seeds=list(range(first, first + seeds))), timeout=timeout
        )
        future.add_done_callback(lambda f, t=time.perf_counter(), s=rec.stopping: rec.done(t, s, f))
        sent += 1
    return sent


def run(args: argparse.Namespace) -> dict[str, Any]:
    model = Path(args.model) if args.model else embedded_default()
    assert model is not None, "give --model: this install ships no default model"
    port, metrics_port, http_port = free_port(), free_port(), free_port()
    log_path = Path(args.out) / "soak-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    serve = serve_command(
        model,
        port,
        *("--grace", str(args.grace), "--max-queue-s", str(args.max_queue_s)),
        *("--cache-mb", str(args.cache_mb), "--metrics-port", str(metrics_port)),
        *(("--http-port", str(http_port)) if args.http else ()),
    )
    base = f"http://127.0.0.1:{http_port}"
    http = HttpLoad(base, "default", args.seeds, args.large_seeds, args.timeout) if args.http else None
    share = 0.5 if args.http else 0.0
    with log_path.open("w") as log:
        proc = subprocess.Popen(serve, stderr=log)
        target = f"127.0.0.1:{port}"
        wait_for_server(target, timeout=120, proc=proc)
        rss: list[tuple[float, float]] = []
        sampling = threading.Event()

        def sample() -> None:
            t0 = time.perf_counter()
            while not sampling.wait(1.0):
                if proc.poll() is None:
                    rss.append((round(time.perf_counter() - t0, 1), round(rss_mb(proc.pid), 1)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.GeneratorStub(channel)
            capacity, probes = closed_loop(stub, args.seeds, args.concurrency, args.probe_seconds)
            rate = args.load * capacity / args.seeds  # requests per second
            rec = Recorder()
            rss_start = rss_mb(proc.pid)
            probe = LiveProbe(base, Path(args.out) / "soak-live.json") if http else None
            http_sent = [0]

            def http_phase(seconds: float) -> None:
                if http is not None:
                    http_sent[0] += http.run(rate * share, seconds)

            beside = threading.Thread(target=http_phase, args=(args.minutes * 60,))
            beside.start()
            sent = open_loop(stub, rate * (1 - share), args.seeds, args.minutes * 60, rec, args.timeout)
            beside.join()
            cache = cache_figures(metrics_port)
            live = probe.stop() if probe else {}
            rec.stopping = True
            if http is not None:
                http.stopping = True
            stop_at = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            beside = threading.Thread(target=http_phase, args=(3.0,))
            beside.start()
            sent += open_loop(stub, rate * (1 - share), args.seeds, 3.0, rec, args.timeout)  # load goes on
            beside.join()
            code = proc.wait(timeout=args.grace + 60)
            stopped_in = time.perf_counter() - stop_at
            time.sleep(1.0)  # the last callbacks
        sampling.set()
    text = log_path.read_text()
    admitted = {m: (int(a), int(f)) for m, a, f in ADMITTED.findall(text)}
    lat = np.array(rec.latencies) * 1000 if rec.latencies else np.array([float("nan")])
    rss_mbs = [r for _, r in rss]
    web = http.verdict() if http else {}
    rendered_over_http = (
        sum(
            v
            for k, v in (http.before + http.after).items()
            if k.split()[0] != "studio" and k.endswith(" 200")
        )
        if http
        else 0
    )
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "model": model.name,
        "seeds_per_request": args.seeds,
        "capacity_img_per_s": round(capacity, 1),
        "offered_req_per_s": round(rate, 2),
        "offered_load": args.load,
        "minutes": args.minutes,
        "requests_sent": sent,
        "codes_before_sigterm": dict(rec.codes),
        "codes_after_sigterm": dict(rec.after_stop),
        "ok_latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p99": round(float(np.percentile(lat, 99)), 1),
            "max": round(float(lat.max()), 1),
        },
        "rss_mb": {
            "start": round(rss_start, 1),
            "max": max(rss_mbs, default=float("nan")),
            "end": rss_mbs[-1] if rss_mbs else float("nan"),
        },
        "rss_every_second": rss,
        "cache_mb": args.cache_mb,
        "cache_at_sigterm": cache,
        "admitted_finished_at_stop": admitted,
        "lost_admitted": sum(a - f for a, f in admitted.values()),
        # Every request the server finished reached its client as OK (the capacity probe's too).
        "probe_requests": probes,
        "finished_equals_ok": sum(f for _, f in admitted.values())
        == probes + rec.codes.get("OK", 0) + rec.after_stop.get("OK", 0) + rendered_over_http,
        "http_requests_sent": http_sent[0],
        **web,
        **live,
        "server_exit_code": code,
        "sigterm_to_exit_s": round(stopped_in, 2),
        "crashes": int(code != 0),
    }


def table(r: dict[str, Any]) -> str:
    lat, rss = r["ok_latency_ms"], r["rss_mb"]
    rows = [
        ("machine", r["machine"]),
        ("capacity (closed loop)", f"{r['capacity_img_per_s']} img/s"),
        (
            "offered (open loop)",
            f"{r['offered_load']}x = {r['offered_req_per_s']} req/s of {r['seeds_per_request']} seeds",
        ),
        ("requests sent", str(r["requests_sent"])),
        ("codes before SIGTERM", json.dumps(r["codes_before_sigterm"])),
        ("codes after SIGTERM", json.dumps(r["codes_after_sigterm"])),
        ("OK latency p50 / p99 / max", f"{lat['p50']} / {lat['p99']} / {lat['max']} ms"),
        ("RSS start / max / end", f"{rss['start']} / {rss['max']} / {rss['end']} MB"),
        (
            "cache at SIGTERM",
            f"{r['cache_at_sigterm'].get('artctl_cache_bytes', 0) / 2**20:.1f} of {r['cache_mb']} MiB, "
            f"{r['cache_at_sigterm'].get('artctl_cache_evictions_total', 0):.0f} evictions",
        ),
        ("admitted, finished at stop", json.dumps(r["admitted_finished_at_stop"])),
        ("lost admitted requests", str(r["lost_admitted"])),
        ("finished = OK (+ probe)", f"{r['finished_equals_ok']} ({r['probe_requests']} probe requests)"),
        ("exit code, SIGTERM to exit", f"{r['server_exit_code']}, {r['sigterm_to_exit_s']} s"),
    ]
    if "http_500s" in r:
        live = r["live_ms"]
        rows += [
            ("HTTP requests sent", str(r["http_requests_sent"])),
            ("HTTP before SIGTERM", json.dumps(r["http_before_sigterm"])),
            ("HTTP after SIGTERM", json.dumps(r["http_after_sigterm"])),
            ("HTTP 500s, 503s before SIGTERM", f"{r['http_500s']}, {r['http_503_before_sigterm']}"),
            ("live probe p50 / p99 / max", f"{live['p50']} / {live['p99']} / {live['max']} ms"),
            ("live probes, failures", f"{r['live_probes']}, {json.dumps(r['live_failures'])}"),
        ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an exported .onnx (default: the embedded model)")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--load", type=float, default=2.0, help="offered load as a multiple of capacity")
    parser.add_argument("--seeds", type=int, default=8, help="seeds per request")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients for the capacity")
    parser.add_argument("--probe-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=10.0, help="each request's deadline (s)")
    parser.add_argument("--grace", type=float, default=10.0, help="the server's --grace")
    parser.add_argument("--max-queue-s", type=float, default=2.0, help="the server's --max-queue-s")
    parser.add_argument("--cache-mb", type=int, default=64, help="the server's --cache-mb (it fills)")
    parser.add_argument(
        "--http", action=argparse.BooleanOptionalAction, default=True, help="half the load over HTTP"
    )
    parser.add_argument("--large-seeds", type=int, default=1024, help="seeds in a large JSON reply")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    result = run(args)
    print(table(result))
    out = Path(args.out) / "soak.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
