"""Several processes (``torchrun``): joining the default process group, leaving it, and
who this process is in it.

Data-parallel HWA training (:func:`aimc.train_hwa`) and chip sweeps
(:func:`aimc.evaluate_over_time`) ask :func:`rank_world`; in one process it answers
(0, 1) and they run as before (DESIGN.md, "Where it goes beyond one machine").
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch.distributed as dist


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the initialised default process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(prog: str) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes (gloo: CPU tensors and Python
    objects); returns (rank, world size). An error names ``prog`` outside torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise SystemExit(f"{prog} --distributed: run it under torchrun (no RANK / "
                         "WORLD_SIZE in the environment)")
    dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def finish_distributed() -> None:
    """Leave the process group once every process is done with it."""
    dist.barrier()  # no rank tears gloo down while another still talks to it
    dist.destroy_process_group()


@contextlib.contextmanager
def rank0_stdout() -> Iterator[None]:
    """Within it, only rank 0 prints: the other processes' standard output goes nowhere
    (one process: unchanged)."""
    if rank_world()[0] == 0:
        yield
        return
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield
