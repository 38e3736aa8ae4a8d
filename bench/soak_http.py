"""The soak's HTTP phase (bench/soak.py): open-loop HTTP traffic beside the gRPC load, and a
liveness probe from a process of its own.

The mix, on a timetable whether or not earlier requests finished: image URLs with new seeds (so
they render), KServe REST infer in JSON, studio traffic (the page, its script, the model list),
now and then a large JSON reply (the most seeds a request may ask for) and a compressed-body bomb
(a small gzip body that inflates far past the body limit). Every reply's status is recorded,
before and after the SIGTERM. What must hold: no 500 ever, 503 only after the SIGTERM, 504 only
past a deadline, 413 for every bomb. The probe asks /v2/health/live every 250 ms in another
process (its own GIL and scheduler, as a kubelet would), and its p99 must stay under 100 ms.
"""

from __future__ import annotations

import json
import multiprocessing
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

MIX = ("image", "infer", "image", "studio", "infer", "image", "large", "image", "infer", "bomb")
STUDIO = ("/studio", "/studio/static/studio.js", "/v1/models")


def bomb(inflated: int = 2**30) -> bytes:
    """A gzip body of zeros built from one repeated deflate block (each ends in a full flush)."""
    mib = bytes(2**20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = packer.compress(mib) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(mib) + packer.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(inflated // len(mib)):
        crc = zlib.crc32(mib, crc)
    body = first + block * (inflated // len(mib) - 1) + packer.flush()
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + body + struct.pack("<II", crc, inflated & 0xFFFFFFFF)


def _status(request: urllib.request.Request, timeout: float) -> str:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            reply.read()
            return str(reply.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return str(exc.code)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"conn:{type(reason).__name__}"


class HttpLoad:
    """The open-loop HTTP mix against one server; statuses by kind, before and after the SIGTERM."""

    def __init__(self, base: str, model: str, seeds: int, max_seeds: int, timeout: float) -> None:
        self.base, self.model, self.seeds, self.max_seeds, self.timeout = (
            base,
            model,
            seeds,
            max_seeds,
            timeout,
        )
        self.bomb = bomb()
        self.lock = threading.Lock()
        self.before: Counter[str] = Counter()
        self.after: Counter[str] = Counter()
        self.stopping = False
        self.next_seed = 2 * 10**9

    def _request(self, kind: str, n: int) -> urllib.request.Request:
        url = f"{self.base}/v2/models/{self.model}/infer"
        if kind == "image":
            return urllib.request.Request(
                f"{self.base}/v1/models/{self.model}/images/{self.next_seed + n}.png"
            )
        if kind == "studio":
            return urllib.request.Request(self.base + STUDIO[n % len(STUDIO)])
        if kind == "bomb":
            headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
            return urllib.request.Request(url, data=self.bomb, headers=headers, method="POST")
        count = self.max_seeds if kind == "large" else self.seeds
        first = self.next_seed + n * self.max_seeds
        doc = {
            "inputs": [
                {
                    "name": "SEED",
                    "shape": [count],
                    "datatype": "UINT64",
                    "data": list(range(first, first + count)),
                }
            ]
        }
        return urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST")

    def _one(self, kind: str, n: int, after: bool) -> None:
        code = _status(self._request(kind, n), self.timeout)
        with self.lock:
            (self.after if after else self.before)[f"{kind} {code}"] += 1

    def run(self, rate: float, seconds: float, workers: int = 64) -> int:
        """Send `rate` requests per second for `seconds`, on a timetable; returns how many."""
        interval, sent, start = 1.0 / rate, 0, time.perf_counter()
        with ThreadPoolExecutor(workers, thread_name_prefix="soak-http") as pool:
            while (now := time.perf_counter()) - start < seconds:
                due = start + sent * interval
                if now < due:
                    time.sleep(min(due - now, 0.01))
                    continue
                kind = MIX[sent % len(MIX)]
                pool.submit(self._one, kind, sent, self.stopping)
                sent += 1
            self.next_seed += sent * self.max_seeds + 1
        return sent

    def verdict(self) -> dict[str, Any]:
        def codes(counter: Counter[str]) -> Counter[str]:
            return Counter(k.split()[1] for k in counter.elements())

        before, after = codes(self.before), codes(self.after)
        bombs = {k: v for k, v in (self.before + self.after).items() if k.startswith("bomb")}
        return {
            "http_before_sigterm": dict(sorted(self.before.items())),
            "http_after_sigterm": dict(sorted(self.after.items())),
            "http_500s": before["500"] + after["500"],
            "http_503_before_sigterm": before["503"],
            "bombs": bombs,
        }


def _probe(url: str, interval: float, stop: Any, out: str) -> None:
    samples: list[float] = []
    failures: Counter[str] = Counter()
    while not stop.is_set():
        started = time.perf_counter()
        code = _status(urllib.request.Request(url), timeout=5.0)
        elapsed = time.perf_counter() - started
        if code == "200":
            samples.append(elapsed)
        else:
            failures[code] += 1
        stop.wait(max(0.0, interval - elapsed))
    Path(out).write_text(json.dumps({"seconds": samples, "failures": failures}))


class LiveProbe:
    """/v2/health/live every `interval` seconds from a separate process, until stop()."""

    def __init__(self, base: str, out: Path, interval: float = 0.25) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.out = out
        self.stop_event = ctx.Event()
        args = (f"{base}/v2/health/live", interval, self.stop_event, str(out))
        self.process = ctx.Process(target=_probe, args=args, daemon=True)
        self.process.start()

    def stop(self) -> dict[str, Any]:
        self.stop_event.set()
        self.process.join(30)
        doc = json.loads(self.out.read_text())
        ms = np.array(doc["seconds"]) * 1000 if doc["seconds"] else np.array([float("nan")])
        return {
            "live_probes": len(doc["seconds"]) + sum(doc["failures"].values()),
            "live_failures": doc["failures"],
            "live_ms": {q: round(float(np.percentile(ms, p)), 1) for q, p in (("p50", 50), ("p99", 99))}
            | {"max": round(float(ms.max()), 1)},
        }
