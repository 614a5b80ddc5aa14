"""Speed of one hardware-aware training step of the sequential-MNIST models against torch.

One Adam step (forward, backward, optimizer step, clipping) at batch 128 on random
inputs, 2 threads, of the three models of ``aimc reproduce seq-mnist``: the LSTM (128
units), the GRU (128 units) and the transformer (2 encoder layers of width 64), each as
the plain torch network against the same network converted to the PCM preset and
trained with :func:`aimc.train_hwa`'s step under the ``"pcm-drift"`` weight noise (the
study's default; recurrent layers run torch's fused kernel on noisy weights drawn once per
step), and once more with the DAC/ADC and output noise simulated in training too
(``HWAConfig(dac_adc=True, out_noise=True)``, the study's ``--hwa-periphery``: recurrent
layers then step through each sequence, every product through the converters). Rounds
interleave the cases; each result is the median of the per-round ratios.

    python benchmarks/bench_seq.py --out docs/results
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from _timing import bench_parser, interleaved, round_ratios, write_bench  # benchmarks/_timing.py

import aimc
from aimc.experiments import now_utc
from aimc.training import HWAConfig, prepare_hwa
from aimc.training.hwa import train_step

MODELS = {"lstm": lambda: aimc.models.lstm_mnist(128),
          "gru": lambda: aimc.models.gru_mnist(128),
          "transformer": lambda: aimc.models.transformer_mnist(64)}


def main(argv: list[str] | None = None) -> int:
    args = bench_parser(__doc__, rounds=9, reps=5).parse_args(argv)
    torch.set_num_threads(2)
    started, t0 = now_utc(), time.perf_counter()
    torch.manual_seed(0)
    hwa_cfg = HWAConfig(noise="pcm-drift")
    configs = {"hwa-pcm-drift": hwa_cfg,
               "hwa-periphery": HWAConfig(noise="pcm-drift", dac_adc=True, out_noise=True)}
    x = torch.rand(args.batch, 28, 28)
    y = torch.randint(0, 10, (args.batch,))

    def case(model: torch.nn.Module, cfg: HWAConfig):
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        return lambda: train_step(model, opt, x, y, cfg)

    cases = {}
    for name, build in MODELS.items():
        plain = build().train()
        cases[f"{name}-plain"] = case(plain, HWAConfig(noise="none", clip_sigma=0.0))
        for method, cfg in configs.items():
            analog = aimc.convert(plain, aimc.presets.pcm_joshi2020()).train()
            prepare_hwa(analog, cfg, seed=0)
            cases[f"{name}-{method}"] = case(analog, cfg)
    times = interleaved(cases, args.rounds, args.reps)
    rows = []
    for name in MODELS:
        for method in configs:
            ratios = round_ratios(times, f"{name}-{method}", f"{name}-plain")
            plain_ms = 1e3 * statistics.median(times[f"{name}-plain"])
            hwa_ms = 1e3 * statistics.median(times[f"{name}-{method}"])
            ratio = statistics.median(ratios)
            print(f"{name} training step, batch {args.batch}: plain {plain_ms:.1f} ms, "
                  f"{method} {hwa_ms:.1f} ms, ratio {ratio:.3f} "
                  f"(rounds {min(ratios):.3f}-{max(ratios):.3f})")
            rows.append({"method": method, "model": name, "metric": "time_ratio",
                         "mean": ratio, "min": min(ratios), "max": max(ratios),
                         "n": args.rounds, "reference": "plain", "reference_ms": plain_ms,
                         "hwa_ms": hwa_ms, "batch": args.batch})
    write_bench("bench_seq", args, argv, started=started, t0=t0,
                dataset=f"random 28x28 sequences, batch {args.batch}", rows=rows,
                config={name: cfg.to_dict() for name, cfg in configs.items()}
                | {"optimizer": "Adam"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
