"""Run feedback that is not training itself: the loss-curve plot, best-by-FID bookkeeping and
progress as plain lines for logs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from artctl.eta import eta_text
from artctl_trainer.checkpoint import atomic_write_text

if TYPE_CHECKING:
    from artctl_trainer.metrics import Generate, RealSet


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def plot_losses(run_dir: Path) -> Path | None:
    """loss-curve.png from metrics.jsonl (losses, ADA p and FID when logged); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = read_metrics(run_dir)
    losses = [r for r in records if "loss_D" in r]
    if not losses:
        return None
    fids = [r for r in records if "fid" in r]
    extra = [r for r in losses if "ada_p" in r]
    panels = 1 + bool(fids) + bool(extra)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.5), squeeze=False)
    kimg = [r["kimg"] for r in losses]
    marker = "o" if len(losses) < 20 else None  # a short run's few points (or one) stay visible
    ax = axes[0][0]
    ax.plot(kimg, [r["loss_D"] for r in losses], label="D", marker=marker)
    ax.plot(kimg, [r["loss_G"] for r in losses], label="G", marker=marker)
    ax.set(xlabel="kimg", ylabel="loss", title="losses")
    ax.legend()
    col = 1
    if extra:
        axes[0][col].plot([r["kimg"] for r in extra], [r["ada_p"] for r in extra], marker=marker)
        axes[0][col].set(xlabel="kimg", ylabel="p", title="ADA augmentation probability")
        col += 1
    if fids:
        axes[0][col].plot([r["kimg"] for r in fids], [r["fid"] for r in fids], marker="o")
        axes[0][col].set(xlabel="kimg", ylabel="FID", title="FID (lower is better)")
    for row in axes:
        for a in row:
            a.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(run_dir) / "loss-curve.png"
    tmp = out.with_name(".loss-curve.png.tmp")
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    tmp.replace(out)
    return out


class BestCheckpoint:
    """Scores each checkpoint and keeps a `best` pointer (and best.json) to the lowest FID or KID."""

    def __init__(self, run_dir: Path, real: RealSet, n: int, by: str = "fid") -> None:
        self.run_dir, self.real, self.n, self.by = Path(run_dir), real, n, by
        best = self.run_dir / "best.json"
        previous = json.loads(best.read_text()) if best.is_file() else {}
        # A resumed run keeps its best, unless it was chosen by the other score.
        self.best: float = previous[by] if previous and previous.get("by", "fid") == by else float("inf")

    def score(self, checkpoint: Path, generate: Generate) -> dict[str, Any]:
        from artctl_trainer.metrics import measure

        report = measure(generate, self.real, self.n)
        record = {
            "fid": round(report.fid, 4),
            "kid": round(report.kid, 6),
            **report.gate,
            "checkpoint": checkpoint.name,
        }
        value = report.fid if self.by == "fid" else report.kid
        if value < self.best:
            self.best = value
            chosen = {**record, "by": self.by}
            atomic_write_text(self.run_dir / "best.json", json.dumps(chosen, indent=2) + "\n")
            atomic_write_text(self.run_dir / "best", checkpoint.name + "\n")
        return record


class TensorBoardLog:
    """Optional TensorBoard mirror of metrics.jsonl and the sample grids (`pip install tensorboard`)."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise RuntimeError(
                "tensorboard logging needs the tensorboard package: pip install tensorboard"
            ) from exc
        self.writer = SummaryWriter(str(log_dir))

    def scalars(self, record: dict[str, Any]) -> None:
        step = int(record["step"])
        for key, value in record.items():
            if key not in ("step", "checkpoint") and isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def image(self, step: int, grid: Any) -> None:
        self.writer.add_image("samples", np.asarray(grid), step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class PlainLog:
    """Training progress as plain lines, for a log file, nohup, CI or a pod, where a progress bar
    prints nothing until the end: a line for every logged step (every `log_every` steps) and, in a
    single process, one at least every `every_s` seconds in between, as StyleGAN2-ADA's ticks do."""

    def __init__(
        self,
        total: int,
        batch: int,
        write: Callable[[str], None],
        every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.batch, self.write, self.every_s, self.clock = total, batch, write, every_s, clock
        self.last = clock()
        self.started: tuple[float, int] | None = None  # (time, step) of the first step this process ran

    def line(
        self, step: int, loss_d: float, loss_g: float, img_per_s: float, eta: str, extra: str = ""
    ) -> None:
        self.last = self.clock()
        self.write(
            f"train: step {step:,}/{self.total:,}  kimg {step * self.batch / 1000:.2f}  D {loss_d:.3f}  "
            f"G {loss_g:.3f}{extra}  {img_per_s:.0f} img/s  {eta}"
        )

    def record(self, rec: dict[str, Any], eta: str) -> None:
        """A logged step's record (metrics.jsonl's fields) and its ETA text."""
        extra = f"  ADA p {rec['ada_p']:.3f}" if "ada_p" in rec else ""
        self.line(rec["step"], rec["loss_D"], rec["loss_G"], rec["img_per_s"], eta, extra)

    def watch(self, job: Any) -> None:
        """Between logged steps, a line once `every_s` have passed: wraps this trainer's step. Only
        in a single process, since the losses shown are this process's own (no collective call)."""
        if job.world.distributed:
            return
        step_once = job.step

        def step() -> Any:
            losses = step_once()
            now, done = self.clock(), job.step_count
            if self.started is None:
                self.started = (now, done - 1)
            if now - self.last >= self.every_s:
                t0, s0 = self.started
                rate = (done - s0) * self.batch / max(now - t0, 1e-9)
                left = (self.total - done) * self.batch / rate if rate > 0 else float("inf")
                loss_d, loss_g = (float(x.detach().item()) for x in losses)
                self.line(done, loss_d, loss_g, rate, f"ETA {eta_text(left)}")
            return losses

        job.step = step
