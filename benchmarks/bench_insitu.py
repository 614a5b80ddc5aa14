"""Speed of one in-situ training step, as a ratio to the same step in plain FP32 torch.

For the 784-250-125-10 MLP of ``aimc reproduce insitu`` (forward, backward and update of
one mini-batch) with each in-situ algorithm, and for a single 512 x 512 layer (the size
aihwkit quotes for its compiled CPU tile, about 35 ms per analog training step).
Median of ``--repeat`` timings after warm-up; run it alone (under the heavy-job lock):

    flock /tmp/aimc-heavy.lock .venv/bin/python benchmarks/bench_insitu.py --out docs/results
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from aimc.experiments import now_utc, write_results
from aimc.training import ALGORITHMS, insitu_mlp, make_optimizer


def _step_time(model: nn.Module, opt, x: torch.Tensor, y: torch.Tensor, repeat: int,
               warmup: int = 5) -> float:
    def step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(sizes: tuple[int, ...], batch: int, repeat: int) -> dict[str, float]:
    """Median seconds per training step for FP32 SGD and every in-situ algorithm."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, sizes[0], generator=gen)
    y = torch.randint(0, sizes[-1], (batch,), generator=gen)
    out = {}
    torch.manual_seed(0)
    model = insitu_mlp(sizes, analog=False)
    out["fp32"] = _step_time(model, torch.optim.SGD(model.parameters(), lr=0.01), x, y, repeat)
    for name in ALGORITHMS:
        torch.manual_seed(0)
        model = insitu_mlp(sizes)
        out[name] = _step_time(model, make_optimizer(name, model, 0.01), x, y, repeat)
    # FP32 again at the end: a sub-millisecond step is easily disturbed (first-call set-up,
    # other processes), keep the faster of the two medians.
    torch.manual_seed(0)
    model = insitu_mlp(sizes, analog=False)
    again = _step_time(model, torch.optim.SGD(model.parameters(), lr=0.01), x, y, repeat)
    out["fp32"] = min(out["fp32"], again)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/bench_insitu")
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    started, t0 = now_utc(), time.perf_counter()
    rows = []
    cases = [("mlp-784-250-125-10", (784, 250, 125, 10), 10),
             ("mlp-784-250-125-10", (784, 250, 125, 10), 1),
             ("layer-512x512", (512, 512), 1)]
    lines = ["| network | batch | method | ms / step | ratio to fp32 |", "|---|---|---|---|---|"]
    for label, sizes, batch in cases:
        times = bench(sizes, batch, args.repeat)
        for method, sec in times.items():
            ratio = sec / times["fp32"]
            rows.append({"method": method, "metric": "time_ratio", "mean": ratio, "std": 0.0,
                         "n": args.repeat, "network": label, "batch": batch,
                         "ms_per_step": round(sec * 1e3, 4),
                         "fp32_ms_per_step": round(times["fp32"] * 1e3, 4)})
            lines.append(f"| {label} | {batch} | {method} | {sec * 1e3:.2f} | {ratio:.1f} |")
    out = Path(args.out)
    write_results(out / "bench_insitu.json", study="bench_insitu",
                  command="python benchmarks/bench_insitu.py " + " ".join(argv or []),
                  dataset="random inputs", started=started,
                  runtime_s=time.perf_counter() - t0, rows=rows)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
