"""Seeded random subsets of in-memory datasets."""

from __future__ import annotations

import torch
from torch import Tensor


def random_subset(x: Tensor, y: Tensor, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` samples of (x, y) drawn without replacement by a generator seeded with
    ``seed`` (the same seed, the same samples); all of them when ``n`` is 0 or at least
    their number."""
    if not n or n >= len(y):
        return x, y
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]
