"""Devices, mixed precision and torchrun DDP for the training loop, kept out of the loop itself.

One process = one rank. Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK in the environment) the loop
joins a process group (nccl on CUDA, gloo on CPU); otherwise it is a world of one and every helper
here is a no-op, so the single-process CPU path stays bit-for-bit what it was.

Conventions the loop relies on:
- `TrainConfig.batch` is the *global* batch; each rank trains on batch // world_size images, so
  learning rates, the default R1 weight and kimg mean the same on one GPU or eight.
- Every random draw comes from a CPU torch.Generator (seeded from (seed, rank)) and is moved to the
  device afterwards: the stream, and so a checkpoint's RNG state, does not depend on the device.
- Only rank 0 writes files (samples, metrics, checkpoints, the loss curve).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from artctl_trainer.contract import GeneratorNet, StyleGeneratorNet

# FID scoring runs on rank 0 while the others wait in their next collective; give it time.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


class DeviceError(RuntimeError):
    """The configured device cannot be used on this machine."""


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' -> CUDA when available, else CPU; under DDP each rank takes GPU number LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                "device 'cuda' was asked for but torch sees no CUDA GPU "
                f"(torch {torch.__version__}); use --device cpu or auto"
            )
        if local_rank >= torch.cuda.device_count():
            raise DeviceError(
                f"LOCAL_RANK {local_rank} has no GPU: only {torch.cuda.device_count()} visible; "
                "start at most one process per GPU (torchrun --nproc-per-node)"
            )
        return torch.device("cuda", local_rank)
    raise DeviceError(f"unknown device {name!r}; use auto, cpu or cuda")


def amp_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype (None: plain fp32). bf16 autocast is for GPUs; on CPU it would be slower."""
    if precision == "fp32":
        return None
    if device.type != "cuda":
        if precision == "bf16":
            warnings.warn("bf16 autocast is GPU-only; training on CPU in fp32", stacklevel=2)
        return None
    if not torch.cuda.is_bf16_supported():
        if precision == "bf16":
            warnings.warn("this GPU has no bf16 support; training in fp32", stacklevel=2)
        return None
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[None]:
    """Autocast for the networks' forward passes; a null context in fp32 (nothing changes on CPU)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def rank_seed(seed: int, rank: int) -> int:
    """Rank 0 keeps the run's seed (so a world of one is the single-process run); others derive one."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> 1)


@dataclass
class World:
    """This process's place in the run; a world of one when not launched by torchrun."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    comm_device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def sum(self, values: list[float]) -> list[float]:
        """Sum numbers over ranks (float64: exact for counts and sign sums); identity for one rank."""
        if not self.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.comm_device)
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def mean(self, values: list[float]) -> list[float]:
        return [v / self.size for v in self.sum(values)] if self.distributed else values

    def gather(self, obj: object) -> list[object]:
        """Every rank's `obj` (a small JSON-able value), in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[object] = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def init_world(device_name: str) -> tuple[World, torch.device]:
    """Join torchrun's process group when launched by it (or use one the caller started)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 and not (dist.is_available() and dist.is_initialized()):
        return World(), resolve_device(device_name)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before NCCL touches a GPU, or every rank uses GPU 0
    if not dist.is_initialized():
        # Kept for the life of the process: re-initialising under torchrun's store can hang, and
        # a caller may train more than once (resume in the same process).
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=COLLECTIVE_TIMEOUT)
        atexit.register(_destroy)
    comm = device if str(dist.get_backend()) == "nccl" else torch.device("cpu")
    return World(dist.get_rank(), dist.get_world_size(), local_rank, comm), device


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, world: World, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `module` for a world of several ranks; the module itself otherwise.

    find_unused_parameters stays off: every parameter of G and D gets a gradient on every step
    (style mixing and lazy R1 change the graph, not the set of parameters), and the R1 and gradient
    penalties use torch.autograd.grad only for input gradients, so DDP's hooks fire once per
    backward. Buffers (BatchNorm statistics, spectral-norm vectors, w_avg) follow rank 0's.
    """
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, output_device=device.index if ids else None)


@contextlib.contextmanager
def no_sync(module: nn.Module) -> Iterator[None]:
    """Skip DDP's gradient all-reduce (D's gradients from G's step are discarded anyway)."""
    from torch.nn.parallel import DistributedDataParallel

    if not isinstance(module, DistributedDataParallel):
        yield
        return
    with module.no_sync():
        yield


class Sampler(nn.Module):
    """G's training-time forward (StyleGAN: style mixing, noise from `gen`; the palette snap) as a
    module, for DDP.

    DDP synchronises gradients only for calls that go through its own forward, so the training
    sampler, not G.train_forward, is what gets wrapped.
    """

    def __init__(self, G: GeneratorNet, gen: torch.Generator, mixing_prob: float) -> None:
        super().__init__()
        self.G = G
        self.gen = gen
        self.mixing_prob = mixing_prob

    def forward(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        G = self.G
        if isinstance(G, StyleGeneratorNet):
            out = G.train_forward(z, c, self.gen, self.mixing_prob)
        else:
            out = G(z, c)
        return G.snap(out) if G.snap is not None else out


def place(modules: tuple[nn.Module, ...], device: torch.device, memory_format: str) -> torch.memory_format:
    """Move networks to their device, in channels_last when asked (oneDNN's fast conv layout on a
    CPU); returns the layout the training batches should take."""
    for module in modules:
        module.to(device)
        if memory_format == "channels_last":
            module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
