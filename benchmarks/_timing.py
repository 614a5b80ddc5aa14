"""Interleaved timing shared by the benchmarks: rounds over every case in turn, so a
drift of the machine's speed hits all cases alike; ratios are taken within a round."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(cases: dict[str, Callable[[], object]], rounds: int, reps: int,
                warmup: int = 2) -> dict[str, list[float]]:
    """Per case, the median seconds of ``reps`` calls in each of ``rounds`` rounds (cases
    run in turn within a round), after ``warmup`` untimed calls of each."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            reps_s = []
            for _ in range(reps):
                start = time.perf_counter()
                fn()
                reps_s.append(time.perf_counter() - start)
            times[name].append(statistics.median(reps_s))
    return times


def round_ratios(times: dict[str, list[float]], case: str, reference: str) -> list[float]:
    """``case`` over ``reference``, round by round."""
    return [a / b for a, b in zip(times[case], times[reference], strict=True)]
