"""Chip sweep in one process with 2 threads against 2 processes with 1 thread (torchrun).

Times ``aimc evaluate --config FILE`` as whole processes (imports and start-up included,
as a user waits for them): one process with ``--threads 2`` against ``torchrun
--nproc-per-node 2 ... --distributed --threads 1``, in alternating rounds after one
untimed run of each, each run into a fresh output folder. Both must write the same rows
(checked). The result is the median of the per-round ratios (2 processes over 1).

    python benchmarks/bench_parallel.py --config examples/evaluate-gru-mnist.toml \\
        --chips 4 --out docs/results
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import write_bench  # benchmarks/_timing.py

from aimc.config import dumps_toml, tomllib
from aimc.experiments import now_utc


def _timed(cmd: list[str], out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="examples/evaluate-gru-mnist.toml",
                   help="an aimc evaluate file")
    p.add_argument("--chips", type=int, default=4,
                   help="chips of the sweep (even: both processes get as many)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="results/bench", help="output folder")
    args = p.parse_args(argv)
    started, t0 = now_utc(), time.perf_counter()
    data = tomllib.loads(Path(args.config).read_text())
    data["chips"] = args.chips
    work = Path(tempfile.mkdtemp(prefix="bench_parallel."))
    config = work / "sweep.toml"
    config.write_text(dumps_toml(data))
    name = data.get("name", "evaluate")
    common = ["--config", str(config), "--no-progress"]
    cases = {
        "one-process-2-threads": [sys.executable, "-m", "aimc.cli", "evaluate", *common,
                                  "--threads", "2", "--out", str(work / "one")],
        "two-processes-1-thread": [sys.executable, "-m", "torch.distributed.run",
                                   "--standalone", "--nproc-per-node", "2", "-m", "aimc.cli",
                                   "evaluate", "--distributed", *common, "--threads", "1",
                                   "--out", str(work / "two")],
    }
    outs = {"one-process-2-threads": work / "one", "two-processes-1-thread": work / "two"}
    for case, cmd in cases.items():  # untimed: caches warm, and the rows to compare
        _timed(cmd, outs[case])
    rows_of = {case: json.loads((outs[case] / f"{name}.json").read_text())["rows"]
               for case in cases}
    same = rows_of["one-process-2-threads"] == rows_of["two-processes-1-thread"]
    if not same:
        raise SystemExit("the two runs wrote different rows")
    times: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(args.rounds):
        for case, cmd in cases.items():
            times[case].append(_timed(cmd, outs[case]))
    ratios = [b / a for a, b in zip(times["one-process-2-threads"],
                                    times["two-processes-1-thread"], strict=True)]
    ratio = statistics.median(ratios)
    one_s = statistics.median(times["one-process-2-threads"])
    two_s = statistics.median(times["two-processes-1-thread"])
    print(f"{args.chips} chips x {len(data.get('times', [0] * 5))} times: one process "
          f"{one_s:.1f} s, two processes {two_s:.1f} s, ratio {ratio:.3f} "
          f"(rounds {min(ratios):.3f}-{max(ratios):.3f}); same rows: {same}")
    shutil.rmtree(work, ignore_errors=True)
    write_bench("bench_parallel", args, argv, started=started, t0=t0,
                dataset=f"aimc evaluate --config {args.config}, {args.chips} chips",
                rows=[{"method": "two-processes-1-thread", "metric": "time_ratio",
                       "mean": ratio, "min": min(ratios), "max": max(ratios),
                       "n": args.rounds, "reference": "one-process-2-threads",
                       "reference_s": one_s, "seconds": two_s, "same_rows": same}],
                config={"config": args.config, "chips": args.chips,
                        "timing": "whole processes, wall clock, fresh output folder"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
