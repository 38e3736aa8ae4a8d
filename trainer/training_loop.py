"""The training loop: one function, configured by a TrainConfig (data, not code paths).

Architecture, loss, regularisers (gradient penalty, lazy R1), augmentation (DiffAugment, ADA) and
conditioning are all fields of the config. Every random draw comes from one CPU torch.Generator
whose state is checkpointed, so N steps + resume + N steps equals 2N steps bit for bit on CPU.

Devices, bf16 autocast and torchrun DDP live in trainer.distributed: on a CPU in one process they
are no-ops. Under DDP `batch` is the global batch, each rank draws its own images and noise from a
generator seeded by (seed, rank), and only rank 0 writes anything.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from artctl import __version__
from artctl.imaging import image_grid
from artctl.seeds import CONTRACTS, latents
from trainer import checkpoint as ckpt_io
from trainer.augment import AdaController, ada_augment, diff_augment
from trainer.config import NetworkConfig, TrainConfig
from trainer.datasets import DatasetError, load_dataset
from trainer.distributed import (
    Sampler,
    World,
    amp_dtype,
    autocast,
    init_world,
    no_sync,
    rank_seed,
    wrap,
)
from trainer.loss import d_loss, g_loss, gradient_penalty, r1_penalty
from trainer.networks import apply_spectral_norm, build_discriminator, build_generator, init_weights

PREVIEW_SEEDS = list(range(16))


def quantize(images_nchw: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 NHWC, exactly as the exported ONNX graph does (round half to even)."""
    scaled = ((images_nchw + 1.0) * 127.5).clamp(0.0, 255.0).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def preview_labels(seeds: list[int], num_classes: int) -> torch.Tensor | None:
    """Labels for preview grids and parity checks: seed i shows label i mod num_classes."""
    if not num_classes:
        return None
    return torch.tensor([int(s) % num_classes for s in seeds], dtype=torch.int64)


@torch.no_grad()
def render_preview(
    G: nn.Module, z_dim: int, seeds: list[int], labels: torch.Tensor | None = None
) -> np.ndarray:
    """Images from the seed contract, so a grid shows what the served model will show.

    Labels default to seed i -> label i mod num_classes.
    """
    was_training = G.training
    G.eval()
    device = next(G.parameters()).device
    z = torch.from_numpy(latents(seeds, z_dim)).to(device)
    if labels is None:
        labels = preview_labels(seeds, getattr(G, "num_classes", 0))
    images = quantize(G(z, None if labels is None else labels.to(device))).cpu().numpy()
    G.train(was_training)
    return images


def training_loop(
    config: TrainConfig,
    run_dir: Path,
    resume: Path | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Train, writing samples, metrics.jsonl and checkpoints under run_dir; returns the last checkpoint.

    Under torchrun every rank calls this; all return the same path, and only rank 0 writes.
    """
    run_dir = Path(run_dir)
    world, device = init_world(config.device)
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        on_progress = None  # rank 0 reports and writes
    if config.threads:
        torch.set_num_threads(config.threads)
    if config.batch % world.size or config.batch // world.size < 2:
        raise ValueError(
            f"batch {config.batch} is the global batch and must split into at least 2 images on each of "
            f"{world.size} ranks; use a multiple of {world.size}"
        )
    local_batch = config.batch // world.size
    amp = amp_dtype(device, config.precision)
    net_cfg = config.network
    data = load_dataset(
        config.data, net_cfg.resolution, net_cfg.channels, config.synthetic_size, config.labels_file
    )
    if data.label_names and not net_cfg.label_names:
        net_cfg = net_cfg.model_copy(update={"label_names": data.label_names})
        config = config.model_copy(update={"network": net_cfg})

    if net_cfg.conditional and not net_cfg.label_names:
        raise DatasetError(
            f"conditional training needs labels, and {config.data} has none: put the images in one "
            "sub-folder per label"
        )

    # Every rank builds the same networks (global seed); each draws its own data and noise.
    gen = torch.Generator().manual_seed(rank_seed(config.seed, world.rank))
    torch.manual_seed(config.seed)
    G = build_generator(net_cfg)
    D = build_discriminator(net_cfg)
    init_weights(G, net_cfg)
    init_weights(D, net_cfg)
    if net_cfg.spectral_norm:
        apply_spectral_norm(D)
    G.to(device)
    D.to(device)
    G_ema = copy.deepcopy(G).eval()
    opt_G = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
    opt_D = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))
    optimizers: dict[str, torch.optim.Optimizer] = {"opt_G": opt_G, "opt_D": opt_D}
    ada = AdaController(p=config.ada_p, target=config.ada_target, kimg=config.ada_kimg)
    step = 0
    resumed_from: Path | None = None
    if resume is not None:
        ck = ckpt_io.load_checkpoint(resume)
        _check_resumable(ck, net_cfg, data.fingerprint)
        resumed_from = ck.path
        # Checkpoints hold CPU tensors; load_state_dict copies them onto the device.
        G.load_state_dict(ck.tensors("G.safetensors"))
        G_ema.load_state_dict(ck.tensors("G_ema.safetensors"))
        D.load_state_dict(ck.tensors("D.safetensors"))
        ckpt_io.load_optimizers(ck, optimizers)
        state = json.loads((ck.path / "state.json").read_text())
        step = int(state["step"])
        gen.set_state(_rank_rng_state(state, config.seed, world))
        if "ada" in state:
            ada.load(state["ada"])
        if world.is_main:
            _truncate_metrics(run_dir / "metrics.jsonl", step)

    meta = {
        "data_fingerprint": data.fingerprint,
        "data_source": data.source,
        "data_size": len(data),
        "label_names": net_cfg.label_names,
        "contracts": CONTRACTS,
        "artctl_version": __version__,
        "torch_version": torch.__version__,
    }

    scorer = None
    if world.is_main:
        (run_dir / "config.json").write_text(config.model_dump_json(indent=2))
        if config.fid_n:
            from trainer.metrics import RealSet
            from trainer.reporting import BestByFid

            scorer = BestByFid(run_dir, RealSet.of(data), config.fid_n)

    def fid_of_ema(start: int, count: int, labels: Sequence[str] | None = None) -> np.ndarray:
        seeds = list(range(start, start + count))
        index = None
        if labels is not None and net_cfg.num_classes:
            index = torch.tensor([net_cfg.label_names.index(name) for name in labels], dtype=torch.int64)
        return render_preview(G_ema, net_cfg.z_dim, seeds, index)

    def save(at_step: int) -> Path:
        """Every rank calls this (the RNG states are gathered); rank 0 writes."""
        rng_states = world.gather(gen.get_state().tolist())
        final = run_dir / "checkpoints" / f"step-{at_step:06d}"
        if not world.is_main:
            return final
        state: dict[str, Any] = {
            "step": at_step,
            "kimg": at_step * config.batch / 1000,
            "rng": rng_states[0],
            "ada": ada.state(),
        }
        if world.distributed:
            state["rng_by_rank"] = rng_states
        return ckpt_io.save_checkpoint(
            run_dir, config, meta, {"G": G, "G_ema": G_ema, "D": D}, optimizers, state
        )

    def score(checkpoint: Path, metrics: Any) -> None:
        if scorer is not None:
            record = {"step": step, "kimg": round(step * config.batch / 1000, 4)}
            record.update(scorer.score(checkpoint, fid_of_ema))
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            if tb is not None:
                tb.scalars(record)

    def augment(images: torch.Tensor) -> torch.Tensor:
        if config.augment == "diffaug":
            return diff_augment(images, config.diffaug_policy, gen)
        if config.augment == "ada":
            return ada_augment(images, ada.p, gen)
        return images

    # DDP needs the calls to go through its own forward: wrap the training sampler and D.
    sampler = wrap(Sampler(G, gen, config.style_mixing), world, device)
    D_train = wrap(D, world, device)

    def run_D(images: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        augmented = augment(images)
        with autocast(device, amp):
            logits: torch.Tensor = D_train(augmented, c)
        return logits.float()  # losses and penalties in fp32

    def run_G(z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        with autocast(device, amp):
            fake: torch.Tensor = sampler(z, c)
        return fake

    n = len(data)
    r1_weight = config.r1_weight
    last: Path | None = None
    t_start = time.perf_counter()
    budget = TimeBudget(config.minutes, config.budget_clock) if config.minutes else None
    start_step = step
    metrics_path = run_dir / "metrics.jsonl"
    tb = None
    if config.tensorboard and world.is_main:
        from trainer.reporting import TensorBoardLog

        tb = TensorBoardLog(run_dir / "tensorboard")
    with metrics_path.open("a") if world.is_main else contextlib.nullcontext() as metrics:
        while step < config.steps:
            # Drawn on CPU from gen, then moved: the random stream is the same on any device.
            idx = torch.randint(0, n, (local_batch,), generator=gen)
            real = data.images[idx]
            c = data.labels[idx].to(device) if net_cfg.num_classes else None
            if config.mirror:
                flip = torch.rand(local_batch, generator=gen) < 0.5
                real = torch.where(flip[:, None, None, None], real.flip(3), real)
            real = real.to(device)
            z = torch.randn(local_batch, net_cfg.z_dim, generator=gen).to(device)

            fake = run_G(z, c)
            do_r1 = r1_weight > 0 and step % config.r1_interval == 0
            if do_r1:
                real = real.detach().requires_grad_(True)
            real_logits = run_D(real, c)
            loss_D = d_loss(config.loss, real_logits, run_D(fake.detach(), c))
            if config.loss == "wgan-gp" and config.gp_weight > 0:
                penalty = gradient_penalty(functools.partial(run_D, c=c), real.detach(), fake, gen)
                loss_D = loss_D + config.gp_weight * penalty
            if do_r1:
                # Lazy R1 (StyleGAN2): every r1_interval steps, scaled up by the interval.
                r1 = r1_penalty(real_logits, real)
                loss_D = loss_D + r1 * (r1_weight / 2 * config.r1_interval)
            opt_D.zero_grad(set_to_none=True)
            loss_D.backward()
            opt_D.step()
            if config.augment == "ada":
                # Summed over ranks, so every rank moves p the same way.
                sign_sum, count = world.sum(
                    [float(torch.sign(real_logits.detach()).sum()), float(real_logits.numel())]
                )
                ada.add(sign_sum, int(count))
                if (step + 1) % config.ada_interval == 0:
                    ada.adjust()

            with no_sync(D_train):  # D's gradients here are discarded: no need to all-reduce them
                loss_G = g_loss(config.loss, run_D(fake, c))
            opt_G.zero_grad(set_to_none=True)
            loss_G.backward()
            opt_G.step()

            step += 1
            decay = min(config.ema_decay, (1 + step) / (10 + step))
            update_ema(G_ema, G, decay)  # fp32 parameters: autocast never touches them

            if not (torch.isfinite(loss_D.detach()) and torch.isfinite(loss_G.detach())):
                raise FloatingPointError(f"loss became non-finite at step {step} (rank {world.rank})")
            out_of_time = budget is not None and budget.spent()
            if budget is not None and world.distributed:
                # Ranks agree on the stopping step; checked on log steps so it costs no sync per step.
                out_of_time = step % config.log_every == 0 and world.sum([float(out_of_time)])[0] > 0
            out_of_time = out_of_time and step < config.steps
            last_step = step == config.steps or out_of_time
            if step % config.log_every == 0 or last_step:
                elapsed = time.perf_counter() - t_start
                mean_D, mean_G = world.mean([loss_D.detach().item(), loss_G.detach().item()])
                record: dict[str, float | str] = {
                    "step": step,
                    "kimg": round(step * config.batch / 1000, 4),
                    "loss_D": round(mean_D, 5),
                    "loss_G": round(mean_G, 5),
                    "img_per_s": round((step - start_step) * config.batch / max(elapsed, 1e-9), 2),
                }
                if config.augment == "ada":
                    record["ada_p"] = round(ada.p, 6)
                if out_of_time:
                    record["stopped"] = f"time budget: {config.minutes:g} min ({config.budget_clock} clock)"
                if metrics is not None:
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                if tb is not None:
                    tb.scalars(record)
                if on_progress:
                    on_progress(record)
            if world.is_main and (step % config.sample_every == 0 or last_step):
                grid = image_grid(render_preview(G_ema, net_cfg.z_dim, PREVIEW_SEEDS), cols=4)
                grid.save(run_dir / f"samples-{step:06d}.png")
                if tb is not None:
                    tb.image(step, grid)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and not last_step:
                last = save(step)
                score(last, metrics)
            if out_of_time:
                break
        if step == start_step and resumed_from is not None:
            return resumed_from  # nothing trained: rewriting the checkpoint would only risk it
        if last is None or not last.name.endswith(f"{step:06d}"):
            last = save(step)
            score(last, metrics)
    if world.is_main:
        from trainer.reporting import plot_losses

        plot_losses(run_dir)
        if tb is not None:
            tb.close()
    world.barrier()  # the other ranks return once the checkpoint they name exists
    return last


class TimeBudget:
    """`minutes` of wall-clock or process CPU time, counted from construction."""

    def __init__(self, minutes: float, clock: str) -> None:
        self._clock = time.process_time if clock == "cpu" else time.perf_counter
        self._deadline = self._clock() + minutes * 60.0

    def spent(self) -> bool:
        return self._clock() >= self._deadline


def _rank_rng_state(state: dict[str, Any], seed: int, world: World) -> torch.Tensor:
    """This rank's generator state from a checkpoint; a fresh stream if the world size changed."""
    by_rank = state.get("rng_by_rank")
    if by_rank is not None and len(by_rank) == world.size:
        saved = by_rank[world.rank]
    elif world.is_main:
        saved = state["rng"]
    else:  # resumed with more ranks than saved: a new stream per (seed, rank, step)
        fresh = torch.Generator().manual_seed(rank_seed(seed + int(state["step"]), world.rank))
        return fresh.get_state()
    return torch.tensor(saved, dtype=torch.uint8)


def _check_resumable(ck: ckpt_io.Checkpoint, net_cfg: NetworkConfig, fingerprint: str) -> None:
    """Resuming on other data or another network would silently train something else."""
    if ck.config.network != net_cfg:
        raise ckpt_io.CheckpointError(
            f"{ck.path} was trained with another network config; resume with the run's own config "
            "(omit --config/--preset and network flags)"
        )
    saved = ck.meta.get("data_fingerprint")
    if saved and saved != fingerprint:
        raise ckpt_io.CheckpointError(
            f"{ck.path} was trained on other data ({ck.meta.get('data_source', 'unknown')}, fingerprint "
            f"{str(saved)[:12]}); give the same data to resume"
        )


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records logged after the checkpoint being resumed, so steps are not logged twice."""
    if not path.is_file():
        return
    kept = [
        line for line in path.read_text().splitlines() if line and json.loads(line).get("step", 0) <= step
    ]
    ckpt_io.atomic_write_text(path, "".join(f"{line}\n" for line in kept))
