"""The training loop, configured by a TrainConfig (data, not code paths), in phases that read in order.

    setup     world (devices, DDP), data, networks, optimisers, ADA   Trainer.__init__
    resume    weights, optimisers, RNG, step and ADA from a checkpoint  Trainer.resume
    step      D (loss, gradient penalty, lazy R1, ADA), then G, then EMA  Trainer.step
    report    losses, speed and ADA p as a record                     Trainer.record
              (written by artctl_trainer.run_log: metrics.jsonl, TensorBoard, sample grids, scores)
    save      checkpoints at intervals and the end                    Trainer.save
    run       the loop over steps with the time budget                Trainer.run

Every random draw comes from one CPU torch.Generator whose state is checkpointed, so N steps +
resume + N steps equals 2N steps bit for bit on CPU. Devices, bf16 autocast and torchrun DDP live in
artctl_trainer.distributed: on a CPU in one process they are no-ops. Under DDP `batch` is the global batch,
each rank draws its own images and noise from a generator seeded by (seed, rank), and only rank 0
writes anything.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from artctl import __version__
from artctl.seeds import CONTRACTS
from artctl_trainer import checkpoint as ckpt_io
from artctl_trainer import networks as nets
from artctl_trainer.augment import AdaController, ada_augment, diff_augment
from artctl_trainer.config import TrainConfig
from artctl_trainer.datasets import DatasetError, load_dataset
from artctl_trainer.distributed import (
    Sampler,
    amp_dtype,
    autocast,
    init_world,
    no_sync,
    place,
    rank_seed,
    wrap,
)
from artctl_trainer.loss import RELATIVISTIC, d_loss, g_loss, gradient_penalty, r1_penalty
from artctl_trainer.preview import generate
from artctl_trainer.run_log import RunLog
from artctl_trainer.stopping import StopSignal, TimeBudget
from artctl_trainer.tail_average import TailAverage

ProgressFn = Callable[[dict[str, Any]], None]


class Trainer:
    # -- setup -------------------------------------------------------------------------------------

    def __init__(self, config: TrainConfig, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.world, self.device = init_world(config.device)
        world = self.world
        if world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if config.threads:
            torch.set_num_threads(config.threads)
        if config.batch % world.size or config.batch // world.size < 2:
            raise ValueError(
                f"batch {config.batch} is the global batch and must split into at least 2 images on each "
                f"of {world.size} ranks; use a multiple of {world.size}"
            )
        self.local_batch = config.batch // world.size
        self.amp = amp_dtype(self.device, config.precision)
        net = config.network
        self.data = load_dataset(
            config.data, net.resolution, net.channels, config.synthetic_size, config.labels_file
        )
        net = nets.resolve_network(net, self.data)
        config = config.model_copy(update={"network": net})
        if net.conditional and not net.label_names:
            raise DatasetError(
                f"conditional training needs labels; {config.data} has none: one sub-folder per label"
            )
        if net.conditional:
            self.data.check_labelled()
        self.config, self.net = config, net
        # Every rank builds the same networks (global seed); each draws its own data and noise.
        self.gen = torch.Generator().manual_seed(rank_seed(config.seed, world.rank))
        torch.manual_seed(config.seed)
        self.G, self.D = nets.build_generator(net), nets.build_discriminator(net)
        nets.init_weights(self.G, net)
        nets.fit_to_data(self.G, net, self.data)
        nets.init_weights(self.D, net)
        if net.spectral_norm:
            nets.apply_spectral_norm(self.D)
        self.memory_format = place((self.G, self.D), self.device, config.memory_format)
        self.G_ema = copy.deepcopy(self.G).eval()
        self.average = TailAverage(self.G_ema, config.ema_average_from, config.ema_average_every)
        betas = (config.beta1, config.beta2)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=betas)
        self.ada = AdaController(p=config.ada_p, target=config.ada_target, kimg=config.ada_kimg)
        # Statistics stay on the device between reductions (at ADA adjustments, log steps and
        # saves): reading a device tensor every step would stall a GPU's queue.
        self._ada_signs = torch.zeros((), device=self.device)
        self._ada_count = 0
        self._finite = torch.ones((), dtype=torch.bool, device=self.device)
        # DDP needs the calls to go through its own forward: wrap the training sampler and D.
        self.sampler = wrap(Sampler(self.G, self.gen, config.style_mixing), world, self.device)
        self.D_train = wrap(self.D, world, self.device)
        self.step_count = 0
        self.meta = {
            "data_fingerprint": self.data.fingerprint,
            "data_source": self.data.source,
            "data_size": len(self.data),
            "label_names": net.label_names,
            "palette": net.palette or self.data.palette,
            "contracts": CONTRACTS,
            "artctl_version": __version__,
            "torch_version": torch.__version__,
        }
        self.log = RunLog(self.run_dir, config, world.is_main)
        self.interrupted: str | None = None  # the signal that stopped the run early, if one did

    @property
    def G_out(self) -> nets.GeneratorNet:
        """What samples and scores draw from: the tail average once it holds a snapshot, else G_ema."""
        return self.average.module if self.average.count else self.G_ema

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_G": self.opt_G, "opt_D": self.opt_D}

    # -- resume ------------------------------------------------------------------------------------

    def resume(self, checkpoint: Path) -> Path:
        """Weights, optimisers, RNG state, step and ADA state from a checkpoint; returns its path."""
        ck = ckpt_io.load_checkpoint(checkpoint)
        ckpt_io.check_resumable(ck, self.net, self.data.fingerprint)
        # Checkpoints hold CPU tensors; load_state_dict copies them onto the device.
        self.G.load_state_dict(ck.tensors("G.safetensors"))
        self.G_ema.load_state_dict(ck.tensors("G_ema.safetensors"))
        self.D.load_state_dict(ck.tensors("D.safetensors"))
        ckpt_io.load_optimizers(ck, self.optimizers)
        state = json.loads((ck.path / "state.json").read_text())
        self.step_count = int(state["step"])
        self.gen.set_state(ckpt_io.rank_rng_state(state, self.config.seed, self.world))
        if "ada" in state:
            self.ada.load(state["ada"])
        has_avg = ck.generator_file == ckpt_io.AVERAGE_FILE
        self.average.load(state.get("average", {}), ck.tensors(ckpt_io.AVERAGE_FILE) if has_avg else None)
        if self.world.is_main:
            ckpt_io.truncate_metrics(self.run_dir / "metrics.jsonl", self.step_count)
        return ck.path

    # -- step --------------------------------------------------------------------------------------

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        if self.config.augment == "diffaug":
            return diff_augment(images, self.config.diffaug_policy, self.gen)
        if self.config.augment == "ada":
            return ada_augment(images, self.ada.p, self.gen)
        return images

    def _run_D(self, images: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        augmented = self._augment(images)
        with autocast(self.device, self.amp):
            logits: torch.Tensor = self.D_train(augmented, c)
        return logits.float()  # losses and penalties in fp32

    def _run_G(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        with autocast(self.device, self.amp):
            fake: torch.Tensor = self.sampler(z, c)
        return fake

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Reals, their labels and latents, drawn on CPU from gen, then moved: the same on any device."""
        cfg, n = self.config, self.local_batch
        idx = torch.randint(0, len(self.data), (n,), generator=self.gen)
        real = self.data.floats(idx)
        c = self.data.labels[idx].to(self.device) if self.net.num_classes else None
        if cfg.mirror:
            flip = torch.rand(n, generator=self.gen) < 0.5
            real = torch.where(flip[:, None, None, None], real.flip(3), real)
        z = torch.randn(n, self.net.z_dim, generator=self.gen).to(self.device)
        return real.to(self.device).contiguous(memory_format=self.memory_format), c, z

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step of D, then G, then the EMA; returns (loss_D, loss_G)."""
        cfg = self.config
        if cfg.lr_decay_from:
            scale = cfg.lr_scale(self.step_count)
            for opt, base in ((self.opt_G, cfg.lr_g), (self.opt_D, cfg.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = base * scale
        real, c, z = self._batch()
        fake = self._run_G(z, c)
        r1_weight, r2_weight = cfg.r1_weight, cfg.r2_gamma
        lazy = self.step_count % cfg.r1_interval == 0
        do_r1, do_r2 = lazy and r1_weight > 0, lazy and r2_weight > 0
        fake_in = fake.detach().requires_grad_(do_r2)
        if do_r1:
            real = real.detach().requires_grad_(True)
        real_logits = self._run_D(real, c)
        fake_logits = self._run_D(fake_in, c)
        loss_D = d_loss(cfg.loss, real_logits, fake_logits)
        if cfg.loss == "wgan-gp" and cfg.gp_weight > 0:
            penalty = gradient_penalty(functools.partial(self._run_D, c=c), real.detach(), fake, self.gen)
            loss_D = loss_D + cfg.gp_weight * penalty
        if do_r1:  # lazy R1 (StyleGAN2): every r1_interval steps, scaled up by the interval
            loss_D = loss_D + r1_penalty(real_logits, real) * (r1_weight / 2 * cfg.r1_interval)
        if do_r2:  # R2: the same zero-centred penalty on fakes (R3GAN), on the same schedule
            loss_D = loss_D + r1_penalty(fake_logits, fake_in) * (r2_weight / 2 * cfg.r1_interval)
        self.opt_D.zero_grad(set_to_none=True)
        loss_D.backward()
        self.opt_D.step()
        if cfg.augment == "ada":
            self._ada_signs += torch.sign(real_logits.detach()).sum()
            self._ada_count += real_logits.numel()
            if (self.step_count + 1) % cfg.ada_interval == 0:
                self._reduce_ada()
                self.ada.adjust()

        with nets.frozen(self.D), no_sync(self.D_train):  # D's weights take no gradient here
            paired = self._run_D(real.detach(), c) if cfg.loss in RELATIVISTIC else None
            loss_G = g_loss(cfg.loss, self._run_D(fake, c), paired)
            self.opt_G.zero_grad(set_to_none=True)
            loss_G.backward()
        self.opt_G.step()

        self.step_count += 1
        decay = min(cfg.ema_decay, (1 + self.step_count) / (cfg.ema_ramp + self.step_count))
        nets.update_ema(self.G_ema, self.G, decay)  # fp32 parameters: autocast never touches them
        if self.average.due(self.step_count):
            self.average.add(self.G_ema)
        self._finite &= torch.isfinite(loss_D.detach()) & torch.isfinite(loss_G.detach())
        return loss_D, loss_G

    def _reduce_ada(self) -> None:
        """The sign statistics gathered since the last reduction, summed over ranks (so every rank
        moves p the same way), into the ADA controller. Sums of signs are integers: exact in float32."""
        sign_sum, count = self.world.sum([float(self._ada_signs), float(self._ada_count)])
        self.ada.add(sign_sum, int(count))
        self._ada_signs.zero_()
        self._ada_count = 0

    def check_finite(self) -> None:
        """Stop on a non-finite loss since the last check (log steps and saves: never checkpoint it)."""
        if not bool(self._finite):
            raise FloatingPointError(
                f"loss became non-finite by step {self.step_count} (rank {self.world.rank})"
            )

    # -- report ------------------------------------------------------------------------------------

    def record(
        self, losses: tuple[torch.Tensor, torch.Tensor], start_step: int, elapsed: float, stopped: str | None
    ) -> dict[str, Any]:
        cfg, step = self.config, self.step_count
        mean_D, mean_G = self.world.mean([losses[0].detach().item(), losses[1].detach().item()])
        record: dict[str, Any] = {
            "step": step,
            "kimg": round(step * cfg.batch / 1000, 4),
            "loss_D": round(mean_D, 5),
            "loss_G": round(mean_G, 5),
            "img_per_s": round((step - start_step) * cfg.batch / max(elapsed, 1e-9), 2),
        }
        if cfg.augment == "ada":
            record["ada_p"] = round(self.ada.p, 6)
        if stopped:
            record["stopped"] = stopped
        return record

    # -- save --------------------------------------------------------------------------------------

    def _fid_images(self, start: int, count: int, labels: Sequence[str] | None = None) -> np.ndarray:
        index = None
        if labels is not None and self.net.num_classes:
            index = torch.tensor([self.net.label_names.index(name) for name in labels], dtype=torch.int64)
        return generate(self.G_out, range(start, start + count), index)

    def save(self) -> Path:
        """A checkpoint of this step (every rank calls this: the RNG states and ADA statistics are
        gathered; rank 0 writes), then its FID when scoring is on."""
        self.check_finite()
        if self.config.augment == "ada":
            self._reduce_ada()
        cfg, step = self.config, self.step_count
        rng_states = self.world.gather(self.gen.get_state().tolist())
        final = self.run_dir / "checkpoints" / f"step-{step:06d}"
        if not self.world.is_main:
            return final
        state: dict[str, Any] = {
            "step": step,
            "kimg": step * cfg.batch / 1000,
            "rng": rng_states[0],
            "ada": self.ada.state(),
            "average": self.average.state(),
        }
        if self.world.distributed:
            state["rng_by_rank"] = rng_states
        nets = {"G": self.G, "G_ema": self.G_ema, "D": self.D}
        if self.average.count:
            nets["G_avg"] = self.average.module
        path = ckpt_io.save_checkpoint(self.run_dir, cfg, self.meta, nets, self.optimizers, state)
        self.log.score(path, step, self._fid_images)
        if cfg.keep_checkpoints:
            ckpt_io.prune_checkpoints(self.run_dir, cfg.keep_checkpoints)
        return path

    # -- run ---------------------------------------------------------------------------------------

    def _stop_reason(self, budget: TimeBudget | None, stop: StopSignal) -> str | None:
        """Why the loop stops after this step before reaching `steps`: a signal or the budget.
        Under DDP the ranks agree (a signal is checked every step, the budget on log steps)."""
        cfg, world, step = self.config, self.world, self.step_count
        signalled = stop.received is not None
        out_of_time = budget is not None and budget.spent()
        if world.distributed:
            signalled = world.sum([float(signalled)])[0] > 0
            if budget is not None:
                out_of_time = step % cfg.log_every == 0 and world.sum([float(out_of_time)])[0] > 0
        if step >= cfg.steps:
            return None
        if signalled:
            self.interrupted = stop.received or "a signal on another rank"
            return f"interrupted ({self.interrupted})"
        if out_of_time:
            return f"time budget: {cfg.minutes:g} min ({cfg.budget_clock} clock)"
        return None

    def run(
        self,
        resume: Path | None = None,
        on_progress: ProgressFn | None = None,
        stop: StopSignal | None = None,
    ) -> Path:
        """Train to `steps`, the time budget or a signal; returns the last checkpoint (one is written
        on every stop, so `--resume` continues as if nothing had happened)."""
        with stop or StopSignal() as signals:
            return self._run(resume, on_progress, signals)

    def _run(self, resume: Path | None, on_progress: ProgressFn | None, stop: StopSignal) -> Path:
        cfg, world = self.config, self.world
        if not world.is_main:
            on_progress = None  # rank 0 reports and writes
        if resume is None and world.is_main:
            ckpt_io.check_fresh_run_dir(self.run_dir)
        resumed_from = self.resume(resume) if resume is not None else None
        self.log.open(self.data)
        start_step, t_start = self.step_count, time.perf_counter()
        budget = TimeBudget(cfg.minutes, cfg.budget_clock) if cfg.minutes else None
        last: Path | None = None
        try:
            # A signal during setup stops before the first step (under DDP the ranks agree in the loop).
            early = stop.received is not None and not world.distributed
            while self.step_count < cfg.steps and not early:
                losses = self.step()
                step = self.step_count
                stopped = self._stop_reason(budget, stop)
                last_step = step == cfg.steps or stopped is not None
                if step % cfg.log_every == 0 or last_step:
                    self.check_finite()
                    record = self.record(losses, start_step, time.perf_counter() - t_start, stopped)
                    self.log.write(record)
                    if on_progress:
                        on_progress({**record, "budget_left_s": budget.left_s() if budget else None})
                if step % cfg.sample_every == 0 or last_step:
                    self.log.sample(self.G_out, step, tail=self.G_out is not self.G_ema)
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and not last_step:
                    last = self.save()
                if stopped:
                    break
            if early:
                self.interrupted = stop.received
            if self.step_count == start_step and resumed_from is not None:
                return resumed_from  # nothing trained: rewriting the checkpoint would only risk it
            if last is None or not last.name.endswith(f"{self.step_count:06d}"):
                last = self.save()
        finally:
            self.log.close()
        world.barrier()  # the other ranks return once the checkpoint they name exists
        return last


def training_loop(
    config: TrainConfig,
    run_dir: Path,
    resume: Path | None = None,
    on_progress: ProgressFn | None = None,
) -> Path:
    """Train, writing samples, metrics.jsonl and checkpoints under run_dir; returns the last checkpoint.

    Under torchrun every rank calls this; all return the same path, and only rank 0 writes.
    """
    return Trainer(config, run_dir).run(resume, on_progress)
