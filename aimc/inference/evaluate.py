"""Accuracy of a programmed network, and accuracy over time over several chips."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from .chip import compensate, drift, program


@torch.no_grad()
def accuracy(model: nn.Module, loader: Iterable) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of ``model`` in eval mode over ``(x, y)`` batches."""
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in loader:
            correct += int((model(x).argmax(dim=-1) == y).sum())
            total += int(y.numel())
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("accuracy: the loader gave no samples")
    return correct / total


def method_name(device_name: str, compensation: str | None) -> str:
    """Results-convention method name: ``pcm``, ``pcm+gdc``..."""
    return device_name if compensation in (None, "none") else f"{device_name}+{compensation}"


def evaluate_over_time(model: nn.Module, loader: Iterable, times: Sequence[float],
                       chips: int = 5, compensation: Sequence[str | None] = ("none", "gdc"),
                       seed: int = 0, device_name: str = "pcm",
                       progress: bool = False) -> list[dict[str, Any]]:
    """Accuracy at each time since programming, mean +- std over ``chips`` chips.

    Chip c is programmed once with seed ``seed + c`` and then drifted through ``times``
    in order, never re-programmed between times (Joshi et al. 2020, Fig. 4); at each
    time every compensation in ``compensation`` is applied and the test set evaluated.
    Returns result rows ``{"method", "t_s", "metric", "mean", "std", "n", "values"}``.
    The model is left programmed with the last chip.
    """
    if chips < 1:
        raise ValueError(f"chips must be >= 1, got {chips}")
    times = [float(t) for t in times]
    values: dict[tuple[str, float], list[float]] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=chips * len(times) * len(compensation), desc="chips x times",
                   leave=False)
    try:
        for chip in range(chips):
            program(model, seed=seed + chip)
            for t in times:
                drift(model, t)
                for comp in compensation:
                    compensate(model, comp)
                    acc = accuracy(model, loader)
                    values.setdefault((method_name(device_name, comp), t), []).append(acc)
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    rows = []
    for (method, t), vals in values.items():
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) \
            if len(vals) > 1 else 0.0
        rows.append({"method": method, "t_s": t, "metric": "accuracy", "mean": mean,
                     "std": std, "n": len(vals), "values": vals})
    rows.sort(key=lambda r: (r["method"], r["t_s"]))
    return rows
