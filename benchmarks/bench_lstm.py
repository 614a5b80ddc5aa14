"""Speed of one hardware-aware training step of the sequential-MNIST LSTM against torch.

One Adam step (forward, backward, optimizer step, clipping) of ``aimc.models.lstm_mnist``
(128 units, 28 steps of 28 pixels) at batch 128 on random inputs, 2 threads: the plain
torch network (``nn.LSTM``) against the same network converted to the PCM preset and
trained with :func:`aimc.train_hwa`'s step under the ``"pcm-drift"`` weight noise (the
study's default; the AnalogLSTM runs torch's fused kernel on noisy weights drawn once per
step). Rounds interleave the two; the result is the median of the per-round ratios.

    python benchmarks/bench_lstm.py --out docs/results
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from _timing import interleaved, round_ratios  # benchmarks/_timing.py

import aimc
from aimc.experiments import now_utc, write_results
from aimc.training import HWAConfig, prepare_hwa
from aimc.training.hwa import train_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench", help="output folder")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    started, t0 = now_utc(), time.perf_counter()
    torch.manual_seed(0)
    plain = aimc.models.lstm_mnist(128).train()
    analog = aimc.convert(plain, aimc.presets.pcm_joshi2020()).train()
    hwa_cfg = HWAConfig(noise="pcm-drift")
    prepare_hwa(analog, hwa_cfg, seed=0)
    x = torch.rand(args.batch, 28, 28)
    y = torch.randint(0, 10, (args.batch,))

    def case(model: torch.nn.Module, cfg: HWAConfig):
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        return lambda: train_step(model, opt, x, y, cfg)

    cases = {"plain": case(plain, HWAConfig(noise="none", clip_sigma=0.0)),
             "hwa-pcm-drift": case(analog, hwa_cfg)}
    times = interleaved(cases, args.rounds, args.reps)
    ratios = round_ratios(times, "hwa-pcm-drift", "plain")
    plain_ms = 1e3 * statistics.median(times["plain"])
    hwa_ms = 1e3 * statistics.median(times["hwa-pcm-drift"])
    ratio = statistics.median(ratios)
    print(f"LSTM training step, batch {args.batch}: plain {plain_ms:.1f} ms, hwa-pcm-drift "
          f"{hwa_ms:.1f} ms, ratio {ratio:.3f} (rounds {min(ratios):.3f}-{max(ratios):.3f})")
    rows = [{"method": "hwa-pcm-drift", "metric": "time_ratio", "mean": ratio,
             "min": min(ratios), "max": max(ratios), "n": args.rounds, "reference": "plain",
             "reference_ms": plain_ms, "hwa_ms": hwa_ms, "batch": args.batch}]
    command = "python benchmarks/bench_lstm.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    path = write_results(f"{args.out}/bench_lstm.json", study="bench_lstm",
                         command=command.strip(),
                         dataset=f"random 28x28 sequences, batch {args.batch}",
                         started=started, runtime_s=time.perf_counter() - t0, rows=rows,
                         config={"hwa": hwa_cfg.to_dict(), "optimizer": "Adam"})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
