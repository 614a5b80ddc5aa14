"""Accuracy of a programmed network, and accuracy over time over several chips."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..parallel import rank_world
from .chip import compensate, drift, program


@torch.no_grad()
def accuracy(model: nn.Module, loader: Iterable,
             forward: Callable[[nn.Module, Any], torch.Tensor] | None = None) -> float:
    """Top-1 accuracy (fraction in [0, 1]) of ``model`` in eval mode over ``(x, y)`` batches.

    For a model of several inputs, ``forward(model, batch)`` returns the logits of a batch
    whose last element holds the labels, e.g. ``lambda m, b: m(b[0], b[1])`` for
    ``(src, tgt, y)`` batches (as in :func:`aimc.calibrate_inputs`).
    """
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for batch in loader:
            logits = model(batch[0]) if forward is None else forward(model, batch)
            y = batch[-1]
            correct += int((logits.argmax(dim=-1) == y).sum())
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
                       progress: bool = False, calib_loader: Iterable | None = None,
                       calib_batches: int | None = None,
                       known: Mapping[tuple[int, float, str], float] | None = None,
                       on_value: Callable[[int, float, str, float], None] | None = None,
                       on_program: Callable[[nn.Module, int], Any] | None = None,
                       forward: Callable[[nn.Module, Any], Any] | None = None,
                       distributed: bool = True,
                       ) -> list[dict[str, Any]]:
    """Accuracy at each time since programming, mean +- std over ``chips`` chips.

    Chip c is programmed once with seed ``seed + c`` and then drifted through ``times``
    in order, never re-programmed between times (Joshi et al. 2020, Fig. 4); at each
    time every compensation in ``compensation`` ("none", "gdc", "adabs", "gdc+adabs",
    ...) is applied to the same read of the chip (the chip is re-read at t with the same
    seed for each method, so methods are compared on identical conductances) and the
    test set evaluated. Methods with AdaBS recompute batch-norm statistics from
    ``calib_loader`` (training data; at most ``calib_batches`` batches).

    For resumable studies: ``known`` maps (chip, t, method name) to accuracies measured
    before, which are reused instead of re-evaluated, and ``on_value(chip, t, method,
    accuracy)`` is called after each new evaluation (e.g. to save it).
    ``on_program(model, chip)`` runs right after each chip is programmed, to set it up as
    a chip is before use, e.g. its ADC ranges with :func:`aimc.calibrate_outputs`.
    ``forward(model, batch)`` runs a model of several inputs, in the accuracy and in AdaBS
    (see :func:`accuracy`).
    Returns result rows ``{"method", "t_s", "metric", "mean", "std", "n", "values"}``.
    The model is left programmed with the last chip it evaluated.

    Several processes (``torchrun``, with ``torch.distributed`` initialised, any backend
    that gathers Python objects, e.g. gloo) share the chips: rank r evaluates chips r,
    r + W, r + 2W... (W processes), and every rank returns the rows of all chips, the same
    numbers as one process (chip c's seed does not depend on who programs it). Then
    ``on_value`` runs on rank 0 only: for its own values as they come, for the other
    ranks' values when they are gathered at the end. ``distributed=False`` keeps every
    chip in this process.
    """
    if chips < 1:
        raise ValueError(f"chips must be >= 1, got {chips}")
    times = [float(t) for t in times]
    needs_calib = [c for c in compensation if c is not None and "adabs" in c.split("+")]
    if needs_calib and calib_loader is None:
        raise ValueError(f"calib_loader: compensation {needs_calib} needs calibration "
                         "batches from the training data (calib_loader=...)")
    known = dict(known or {})
    rank, world = rank_world() if distributed else (0, 1)
    mine = range(rank, chips, world)
    measured: dict[tuple[int, float, str], float] = {}
    fresh: set[tuple[int, float, str]] = set()
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(mine) * len(times) * len(compensation), desc="chips x times",
                   leave=False)
    try:
        for chip in mine:
            todo = [(t, comp) for t in times for comp in compensation
                    if (chip, t, method_name(device_name, comp)) not in known]
            if todo:
                program(model, seed=seed + chip)
                if on_program is not None:
                    on_program(model, chip)
            for t in times:
                for comp in compensation:
                    name = method_name(device_name, comp)
                    acc = known.get((chip, t, name))
                    if acc is None:
                        drift(model, t)  # same seed: the same read for every method
                        compensate(model, comp, loader=calib_loader, batches=calib_batches,
                                   forward=forward)
                        acc = accuracy(model, loader, forward)
                        fresh.add((chip, t, name))
                        if on_value is not None and rank == 0:
                            on_value(chip, t, name, acc)
                    measured[chip, t, name] = acc
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if world > 1:
        import torch.distributed as dist

        parts: list[Any] = [None] * world
        dist.all_gather_object(parts, (measured, fresh))
        for r, (theirs, their_fresh) in enumerate(parts):
            measured.update(theirs)
            if r and on_value is not None and rank == 0:
                for key in sorted(their_fresh):
                    on_value(*key, theirs[key])
    values: dict[tuple[str, float], list[float]] = {}
    for chip in range(chips):  # chip order, whichever process measured it
        for t in times:
            for comp in compensation:
                name = method_name(device_name, comp)
                values.setdefault((name, t), []).append(measured[chip, t, name])
    rows = []
    for (method, t), vals in values.items():
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) \
            if len(vals) > 1 else 0.0
        rows.append({"method": method, "t_s": t, "metric": "accuracy", "mean": mean,
                     "std": std, "n": len(vals), "values": vals})
    rows.sort(key=lambda r: (r["method"], r["t_s"]))
    return rows
