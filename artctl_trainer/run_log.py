"""What a training run writes besides its checkpoints: config.json, metrics.jsonl, TensorBoard,
sample grids, per-checkpoint scores and the loss curve.

Split out of the loop so that the loop reads as training only. Only rank 0 writes: the other ranks
get a RunLog whose methods do nothing (`active` False), so the loop never asks who it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from artctl_trainer.config import TrainConfig

if TYPE_CHECKING:
    from artctl_trainer.contract import GeneratorNet
    from artctl_trainer.datasets import ImageDataset

ProgressFn = Callable[[dict[str, Any]], None]
FidImages = Callable[[int, int, Sequence[str] | None], np.ndarray]


class RunLog:
    def __init__(self, run_dir: Path, config: TrainConfig, active: bool) -> None:
        self.run_dir, self.config, self.active = run_dir, config, active
        self.metrics: IO[str] | None = None
        self.scorer: Any = None
        self.tb: Any = None

    def open(self, data: ImageDataset) -> None:
        """config.json, metrics.jsonl (appended to on resume), FID scoring and TensorBoard."""
        if not self.active:
            return
        cfg = self.config
        (self.run_dir / "config.json").write_text(cfg.model_dump_json(indent=2))
        self.metrics = (self.run_dir / "metrics.jsonl").open("a")
        if cfg.fid_n:
            from artctl_trainer.metrics import RealSet
            from artctl_trainer.reporting import BestCheckpoint

            self.scorer = BestCheckpoint(self.run_dir, RealSet.of(data), cfg.fid_n, cfg.best_by)
        if cfg.tensorboard:
            from artctl_trainer.reporting import TensorBoardLog

            self.tb = TensorBoardLog(self.run_dir / "tensorboard")

    def write(self, record: dict[str, Any]) -> None:
        """A metrics.jsonl line and TensorBoard scalars."""
        if self.metrics is not None:
            self.metrics.write(json.dumps(record) + "\n")
            self.metrics.flush()
        if self.tb is not None:
            self.tb.scalars(record)

    def sample(self, G: GeneratorNet, step: int, tail: bool = False) -> None:
        """A grid of the exported generator's preview seeds (the seed contract: what the server renders):
        the EMA generator, or its tail average (`tail`), as the title says."""
        if not self.active:
            return
        from artctl_trainer.preview import sample_grid

        what = "tail average of G_ema" if tail else "EMA generator"
        title = f"step {step}   {step * self.config.batch / 1000:g} kimg   {what}"
        grid = sample_grid(G, self.config.network.label_names, title)
        grid.save(self.run_dir / f"samples-{step:06d}.png")
        if self.tb is not None:
            self.tb.image(step, grid)

    def score(self, checkpoint: Path, step: int, images: FidImages) -> None:
        """FID and the quality gate of a checkpoint just written, when scoring is on."""
        if self.scorer is None:
            return
        record = {"step": step, "kimg": round(step * self.config.batch / 1000, 4)}
        record.update(self.scorer.score(checkpoint, images))
        self.write(record)

    def close(self) -> None:
        """metrics.jsonl closed, then the loss curve drawn from it."""
        if not self.active:
            return
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        from artctl_trainer.reporting import plot_losses

        plot_losses(self.run_dir)
        if self.tb is not None:
            self.tb.close()
