"""torch.distributed for the training loops, when they are launched by ``torchrun``.

``torchrun --nproc_per_node N -m generative_encoder.cli train gan ...`` starts N processes with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their
environment; :func:`session` joins them into one process group (gloo on CPU, NCCL on CUDA) and
leaves it at the end. Launched any other way (or with one process) nothing changes: rank 0 of 1.

The training loops then wrap their networks in DistributedDataParallel, split each batch over
the ranks (every rank draws its own images and latents from its own seeded stream), and let rank 0
alone write files and call the progress callback.
"""

from __future__ import annotations

import atexit
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..errors import ConfigError

RANK_STREAM = 1_000_003  # rank r > 0 draws from seed + r * RANK_STREAM; rank 0 from seed itself


@dataclass(frozen=True)
class Info:
    """This process's place: rank in 0..world-1, world (processes), local_rank (on its host)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def launched() -> bool:
    """Whether this process was started by torchrun (or alike) as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def info() -> Info:
    """Rank and world of the current process group, or of the launch environment, else 0 of 1."""
    if dist.is_available() and dist.is_initialized():
        return Info(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    if launched():
        return Info(
            int(os.environ["RANK"]),
            int(os.environ["WORLD_SIZE"]),
            int(os.environ.get("LOCAL_RANK", 0)),
        )
    return Info()


def rank() -> int:
    return info().rank


def world_size() -> int:
    return info().world


def is_main() -> bool:
    """True on rank 0 (and in a process that is not part of a launch)."""
    return info().is_main


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def local_device(device: str | torch.device, local_rank: int) -> torch.device:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per process); other devices stay as given."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank)
    return device


def init_from_env(device: str | torch.device = "cpu") -> Info:
    """Join the process group that torchrun's environment describes (if not joined yet) and
    return this process's Info; without a launch, return rank 0 of 1 and do nothing."""
    if not launched():
        return Info()
    if not dist.is_available():
        raise ConfigError("launched with WORLD_SIZE > 1 but this torch has no torch.distributed")
    if not dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", 0))
        dev = local_device(device, local)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend_for(dev))
    return info()


def cleanup() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def session(device: str | torch.device = "cpu") -> Iterator[Info]:
    """``init_from_env`` for a block (a training run). A group this joins is left when the
    process exits, not at the end of the block: joining a second group in the same process
    (e.g. ``train gan`` then ``train encoder`` in one script) can hang on torchrun's store."""
    if launched() and not (dist.is_available() and dist.is_initialized()):
        where = init_from_env(device)
        atexit.register(cleanup)
    else:
        where = info()
    yield where


def wrap(
    module: nn.Module, where: Info, device: torch.device, find_unused: bool = False
) -> nn.Module:
    """DistributedDataParallel around ``module`` when distributed, else the module itself.

    DDP broadcasts rank 0's parameters and buffers at construction, averages gradients in
    backward, and broadcasts rank 0's buffers (BatchNorm statistics) before each forward.
    find_unused: some parameters get no gradient in a step (a progressive GAN's later stages)."""
    if not where.distributed:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        module, device_ids=ids, find_unused_parameters=find_unused
    )


def split_batch(batch_size: int, where: Info) -> int:
    """Each rank's share of a global batch; the batch must divide evenly."""
    if batch_size % where.world:
        raise ConfigError(
            f"batch_size {batch_size} does not split evenly over {where.world} processes"
        )
    return batch_size // where.world


def rank_seed(seed: int, where: Info) -> int:
    """The seed of this rank's sample stream: ``seed`` on rank 0 (so one process runs as before)."""
    return seed + where.rank * RANK_STREAM


def mean_over_ranks(values: Tensor, where: Info) -> Tensor:
    """Average a tensor over the ranks (a copy), for logging; itself when not distributed."""
    if not where.distributed:
        return values
    values = values.detach().clone()
    dist.all_reduce(values)
    return values / where.world


def gather_rng_states(rng: torch.Generator, where: Info) -> list[Tensor]:
    """Every rank's CPU generator state (list of world uint8 tensors), on every rank."""
    state = rng.get_state()
    if not where.distributed:
        return [state]
    states = [torch.empty_like(state) for _ in range(where.world)]
    if dist.get_backend() == "nccl":
        _all_gather_via(states, state)
    else:
        dist.all_gather(states, state)
    return states


def _all_gather_via(states: list[Tensor], state: Tensor) -> None:
    """NCCL gathers CUDA tensors only: go through the current GPU."""
    device = torch.device("cuda", torch.cuda.current_device())
    out = [torch.empty_like(state, device=device) for _ in states]
    dist.all_gather(out, state.to(device))
    for i, t in enumerate(out):
        states[i] = t.cpu()


def barrier(where: Info) -> None:
    if where.distributed:
        dist.barrier()
