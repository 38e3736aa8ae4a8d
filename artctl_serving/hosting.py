"""The models a server serves, kept in step with their files: load, warm up, batch, reload, retire.

Models are loaded from files or folders; a file that fails to load (corrupt, SHA-256 not matching
its sidecar, no model card) is refused with a log line while the others serve. On SIGHUP, or when a
watched file changes, changed models are loaded and warmed in the background and swapped in; the
old batchers finish what they already admitted, so no request is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from artctl.directions import Directions, DirectionsError, directions_path, load_directions
from artctl.modelcard import file_sha256
from artctl.models import embedded_models
from artctl_serving.batcher import BatchObserver, DynamicBatcher
from artctl_serving.config import ServerOptions
from artctl_serving.errors import ModelLoadError, NoStyleGraphsError
from artctl_serving.metrics import ServerMetrics
from artctl_serving.registry import ModelRegistry, ServedModel, StyleServed
from artctl_serving.rows import R
from artctl_serving.runtime import Engine, ModelRuntime, load_model
from artctl_serving.styles import StyleGraphs, load_style_graphs
from artctl_serving.tally import Tally

log = logging.getLogger("artctl.serving")

# Companion graphs the exporter writes beside StyleGAN-type models; they are not served directly.
COMPANION_SUFFIXES = (".mapping.onnx", ".synthesis.onnx")
Loaded = tuple[ModelRuntime, StyleGraphs | None, Directions | None]


def discover_models(paths: list[Path]) -> list[Path]:
    """Model files from the arguments (files, or folders of *.onnx); every embedded model when none."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found += sorted(f for f in p.glob("*.onnx") if not f.name.endswith(COMPANION_SUFFIXES))
        else:
            found.append(p)
    if not paths:
        shipped = embedded_models()  # default first, so it stays the default alias
        if not shipped:
            raise ModelLoadError(
                "no model given and this install has no embedded default model; pass MODEL.onnx "
                "(make one with `artctl train` and `artctl export`)"
            )
        found += shipped.values()
    return found


def wanted_models(paths: list[Path]) -> tuple[dict[str, Path], list[str]]:
    """Model name (the file's stem) -> file, the first file of a name winning; and the refusals."""
    wanted: dict[str, Path] = {}
    refused = [
        f"{p} holds no .onnx file"
        + (
            " (it is a training run or checkpoint: `artctl export` it first)"
            if (p / "config.json").exists() or any(p.glob("*/config.json"))
            else ""
        )
        for p in map(Path, paths)
        if p.is_dir() and not any(f.suffix == ".onnx" for f in p.glob("*.onnx"))
    ]
    for path in discover_models(paths):
        if path.stem in wanted:
            refused.append(f"{path}: the name {path.stem!r} is taken by {wanted[path.stem]}")
        else:
            wanted[path.stem] = path
    return wanted, refused


def _file_state(paths: list[Path]) -> dict[Path, tuple[int, int]]:
    state = {}
    for p in discover_models(paths):
        with contextlib.suppress(OSError):
            st = p.stat()
            state[p] = (st.st_mtime_ns, st.st_size)
    return state


class ModelHost:
    """Owns the registry, the inference thread and every batcher; the server only asks it."""

    def __init__(self, options: ServerOptions, metrics: ServerMetrics) -> None:
        self.options = options
        self.metrics = metrics
        self.registry = ModelRegistry()
        self.engine = Engine.choose(
            options.provider, options.threads, options.exec_batch, level=options.graph_optimization
        )
        self.infer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="artctl-infer")
        self.load_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="artctl-load")
        self._paths: dict[str, Path] = {}
        self._reload_lock = asyncio.Lock()
        self._draining: set[asyncio.Task[None]] = set()
        self._watch_task: asyncio.Task[None] | None = None

    # -- loading (blocking; runs in the load pool) ----------------------------------------------------

    def _load(self, path: Path) -> Loaded:
        """Load and warm a model and its companions (optional: without them it still serves Generate)."""
        runtime = load_model(path, name=path.stem, engine=self.engine)
        try:  # warm-up: first-run allocations, kernel choice; and proof that the model renders
            runtime.render(np.zeros(1, dtype=np.uint64))
        except Exception as exc:  # onnxruntime's own error types
            raise ModelLoadError(f"{path}: a test render failed ({str(exc).splitlines()[0]})") from exc
        graphs = None
        if "mapping_file" in runtime.card.extra and "synthesis_file" in runtime.card.extra:
            try:
                graphs = load_style_graphs(runtime)
            except NoStyleGraphsError as exc:
                log.error("model %s: not serving Mix/Interpolate: %s", runtime.name, exc)
        return runtime, graphs, self._directions(path, runtime, graphs)

    @staticmethod
    def _directions(path: Path, runtime: ModelRuntime, graphs: StyleGraphs | None) -> Directions | None:
        """The model's latent directions, when its sidecar is there and fits (optional, like the
        companions: without them the model serves everything but edits)."""
        where = directions_path(path)
        if not where.is_file():
            return None
        try:
            found = load_directions(where, runtime.sha256)
        except DirectionsError as exc:
            log.error("model %s: not serving edits: %s", runtime.name, exc)
            return None
        dim = runtime.caps.z_dim if found.space == "z" else graphs.w_dim if graphs else None
        if dim != found.vectors.shape[1]:
            log.error(
                "model %s: not serving edits: %s does not fit the model's %s space",
                runtime.name,
                where,
                found.space,
            )
            return None
        return found

    async def _load_in_pool(self, path: Path) -> Loaded:
        return await asyncio.get_running_loop().run_in_executor(self.load_pool, self._load, path)

    # -- serving ------------------------------------------------------------------------------------

    def _batcher(
        self, render: Callable[[R], np.ndarray], label: str, tally: Tally | None = None
    ) -> DynamicBatcher[R]:
        """A started batcher with the server's limits, on the shared inference thread; every batch
        is observed by the metrics (and the model's tally, for Triton's statistics)."""
        opts = self.options
        observers: list[BatchObserver] = [partial(self.metrics.observe_batch, label)]
        if tally is not None:
            observers.append(tally.batch)

        batcher = DynamicBatcher(
            render,
            self.infer_pool,
            max_batch=opts.max_batch,
            max_delay_s=opts.max_delay_ms / 1000.0,
            queue_size=opts.queue_size,
            max_queue_s=opts.queue_seconds,
            observers=observers,
        )
        batcher.start()
        return batcher

    def _serve(self, loaded: Loaded) -> ServedModel:
        runtime, graphs, directions = loaded
        name = runtime.name
        tally = Tally()
        model = ServedModel(runtime, self._batcher(runtime.render_rows, name, tally), tally=tally)
        model.directions = directions
        if graphs is not None:
            synthesis = self._batcher(graphs.render_rows, f"{name}.synthesis")
            model.styles = StyleServed(graphs, synthesis, self._batcher(graphs.map_rows, f"{name}.mapping"))
        else:  # z given directly (edits, walk frames) for models without a w space
            model.latents = self._batcher(runtime.render_latent_rows, f"{name}.latents")
        self.metrics.model_info.labels(name, runtime.sha256, runtime.profile.provider).set(1)
        self.metrics.queue_depth.labels(name).set_function(lambda: float(model.batcher.queue_depth))
        return model

    def _retire(self, old: ServedModel) -> None:
        """Let an old model's batchers finish what they admitted, in the background."""
        self.metrics.model_info.remove(old.name, old.runtime.sha256, old.runtime.profile.provider)
        for batcher in old.batchers():
            task = asyncio.get_running_loop().create_task(batcher.close())
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)

    async def load_all(self) -> None:
        """Load every model; refuse the broken ones (logged) unless none loads, which is fatal."""
        wanted, refused = wanted_models(self.options.models)
        for name, path in wanted.items():
            try:
                loaded = await self._load_in_pool(path)
            except ModelLoadError as exc:
                refused.append(str(exc))
                continue
            self.registry.add(self._serve(loaded))
            self._paths[name] = path
        if not len(self.registry):
            raise ModelLoadError("; ".join(refused) or "no model to serve")
        for reason in refused:
            log.error("refusing model: %s", reason)

    async def reload(self) -> list[str]:
        """Pick up new, changed and removed model files; returns a line per change."""
        changes: list[str] = []
        async with self._reload_lock:
            loop = asyncio.get_running_loop()
            wanted, refused = wanted_models(self.options.models)
            for reason in refused:
                log.error("reload: refusing model: %s", reason)
                self.metrics.reload_failures.inc()
            for name in [n for n in self.registry.names() if n not in wanted]:
                old = self.registry.remove(name)
                self._paths.pop(name, None)
                if old:
                    self._retire(old)
                changes.append(f"removed {name}")
            for name, path in wanted.items():
                try:
                    sha = await loop.run_in_executor(self.load_pool, file_sha256, path)
                except OSError as exc:
                    log.error("reload: cannot read %s: %s", path, exc)
                    self.metrics.reload_failures.inc()
                    continue
                served = self.registry.names()
                if (
                    name in served
                    and self.registry.get(name).runtime.sha256 == sha
                    and self._paths.get(name) == path
                ):
                    continue
                try:
                    loaded = await self._load_in_pool(path)
                except ModelLoadError as exc:
                    log.error("reload: refusing %s, keeping what is served: %s", path, exc)
                    self.metrics.reload_failures.inc()
                    continue
                old = self.registry.replace(self._serve(loaded))
                self._paths[name] = path
                if old is not None:
                    self._retire(old)
                changes.append(f"{'reloaded' if old else 'added'} {name} ({loaded[0].sha256[:12]})")
        for line in changes:
            log.info("reload: %s", line)
        return changes

    async def _watch(self, interval: float) -> None:
        state = _file_state(self.options.models)
        while True:
            await asyncio.sleep(interval)
            try:
                now = _file_state(self.options.models)
            except ModelLoadError:
                continue
            if now != state:
                state = now
                try:
                    await self.reload()
                except Exception:  # one bad file must never stop the watcher: later models still load
                    log.exception("reload after a file change failed; watching on")

    def start_watching(self) -> None:
        if self.options.watch_interval_s > 0:
            loop = asyncio.get_running_loop()
            self._watch_task = loop.create_task(
                self._watch(self.options.watch_interval_s), name="artctl-watch"
            )

    async def stop_watching(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None

    async def close(self) -> None:
        """Stop watching; let every batcher finish what it admitted; stop the threads."""
        await self.stop_watching()
        for model in self.registry:
            for batcher in model.batchers():
                await batcher.close()
                s = batcher.stats
                label = model.name if batcher is model.batcher else f"{model.name}.synthesis"
                log.info(
                    "model %s: %d requests admitted, %d finished; %d images rendered, %d dropped (cancelled "
                    "or expired)",
                    label,
                    s.admitted,
                    s.completed,
                    s.images,
                    s.dropped,
                )
        if self._draining:
            await asyncio.gather(*self._draining)
        for pool in (self.infer_pool, self.load_pool):
            pool.shutdown(wait=True)
