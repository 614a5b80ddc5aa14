"""Interleaved timing shared by the benchmarks: rounds over every case in turn, so a
drift of the machine's speed hits all cases alike; ratios are taken within a round."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from aimc.experiments import write_results


def bench_parser(doc: str, rounds: int, reps: int) -> argparse.ArgumentParser:
    """The options every training-step benchmark takes: --out, --rounds, --reps, --batch."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", default="results/bench", help="output folder")
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--reps", type=int, default=reps)
    parser.add_argument("--batch", type=int, default=128)
    return parser


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


def write_bench(name: str, args: argparse.Namespace, argv: list[str] | None, *,
                started: str, t0: float, **fields: Any) -> None:
    """Write ``{args.out}/{name}.json`` (the results convention) with the command that
    ran this benchmark; ``fields`` are :func:`write_results`' other arguments."""
    command = f"python benchmarks/{name}.py " + " ".join(sys.argv[1:] if argv is None else argv)
    path = write_results(f"{args.out}/{name}.json", study=name, command=command.strip(),
                         started=started, runtime_s=time.perf_counter() - t0, **fields)
    print(f"wrote {path}")
