"""Data-parallel training under torchrun (DDP): read the launcher's environment, start the process
group (gloo on the CPU, NCCL on GPUs), and the few collectives the training loop needs. Without
torchrun (no WORLD_SIZE, or 1) everything here is a no-op, so one script serves both.

    torchrun --nproc_per_node=N -m engine.training.train_diffusion --data DIR --out RUN ...

See docs/training.md for multi-GPU and multi-node launches.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job; world_size 1 = a plain single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device | None = None
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_SINGLE = DistContext()
_current: DistContext = _SINGLE


def env_ranks() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) without it."""
    try:
        return (int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as e:
        raise ValueError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers ({e})") from None


def init_from_env(device: str = "auto") -> DistContext:
    """Join the job torchrun started (env:// rendezvous), once per process. ``device`` 'auto' or
    'cuda' on a machine with GPUs -> NCCL, one GPU per local rank; otherwise gloo on the CPU."""
    global _current
    rank, world, local = env_ranks()
    if world <= 1:
        return _SINGLE
    if _current.enabled:
        return _current
    use_cuda = str(device).startswith("cuda") or (str(device) == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device")
        if local >= torch.cuda.device_count():
            raise ValueError(f"local rank {local} has no GPU: this node has {torch.cuda.device_count()}; "
                             f"use --nproc_per_node <= {torch.cuda.device_count()}")
        torch.cuda.set_device(local)
        dev, backend = torch.device("cuda", local), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend=backend)
    _current = DistContext(rank, world, local, dev, backend)
    return _current


def context() -> DistContext:
    """The context ``init_from_env`` made, or the single-process one."""
    return _current


def cleanup() -> None:
    """Leave the group together: a rank that tears down while rank 0 still writes its last
    checkpoint aborted ("terminate called without an active exception") about 1 run in 3."""
    global _current
    if _current.enabled and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
    _current = _SINGLE


def barrier() -> None:
    if _current.enabled:
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean over ranks of a small CPU tensor (moved to the process's device for NCCL)."""
    if not _current.enabled:
        return t
    x = t.to(_current.device)
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return (x / _current.world_size).cpu()


def all_gather_object(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (picklable objects made by our own code)."""
    if not _current.enabled:
        return [obj]
    out = [None] * _current.world_size
    dist.all_gather_object(out, obj)
    return out


def shard_seed(seed: int, shard: int) -> int:
    """The seed of data shard ``shard``: shard 0 uses ``seed`` itself (so a single-process run draws
    exactly what it always drew); the others a hash of (seed, shard)."""
    if shard == 0:
        return int(seed)
    return int.from_bytes(hashlib.sha256(f"{int(seed)}/{int(shard)}".encode()).digest()[:7], "little")
