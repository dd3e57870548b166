"""Torch CPU thread counts per workload (measured, not guessed; see docs/architecture.md)."""
from __future__ import annotations

from contextlib import contextmanager

import torch

# Small batched kinematics (IK, FK of one clip): one thread. Measured on the 2-core machine:
# 60-frame two-hand FK+backward 3.2 ms with 1 thread; with 2 threads 3.5 ms when the machine is
# idle but 140 ms when another process holds a core (OpenMP workers spin on the busy core).
KINEMATICS_THREADS = 1


@contextmanager
def torch_threads(n: int | None):
    """Run a block with ``n`` intra-op threads, restoring the previous count after."""
    old = torch.get_num_threads()
    if n and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n and n != old:
            torch.set_num_threads(old)
