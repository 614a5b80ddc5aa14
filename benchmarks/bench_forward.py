"""Speed of the analog forward pass against the plain torch layer, in the same run.

Eval mode, programmed and drifted to 1 day, PCM preset (8-bit DAC with static input
ranges, 8-bit ADC, output noise), 2 threads. Cases: Linear 512x512 at batch 256 and a
ResNet-32-sized Conv2d (64 -> 64, 3x3, 8x8 maps) at batch 256, and the whole CIFAR
ResNet-32 (all 32 weight layers analog) at batch 100, each once more with dynamic (per-vector;
per-patch in a conv) input ranges; and the sequential-MNIST LSTM (128 units, 28 steps,
``aimc.models.lstm_mnist``) and transformer (2 layers of width 64, 28 tokens,
``aimc.models.transformer_mnist``) at batch 100 against their torch modules. Timings interleave the
analog and the plain torch module round by round and report medians and the median of
per-round ratios.

    python benchmarks/bench_forward.py --out docs/results
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn

import aimc
from aimc.experiments import now_utc, write_results


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(layer: nn.Module, x: torch.Tensor, rounds: int, reps: int,
            input_range: str = "static") -> dict:
    cfg = aimc.presets.pcm_joshi2020()
    cfg.tile.input_range = input_range
    analog = aimc.convert(layer, cfg).eval()
    aimc.calibrate_inputs(analog, [x])
    aimc.program(analog, seed=0)
    aimc.drift(analog, 86_400)
    digital = layer.eval()
    ratios, t_dig, t_ana = [], [], []
    with torch.no_grad():
        for _ in range(5):
            digital(x), analog(x)
        for _ in range(rounds):
            td = _median_time(lambda: digital(x), reps)
            ta = _median_time(lambda: analog(x), reps)
            t_dig.append(td)
            t_ana.append(ta)
            ratios.append(ta / td)
    return {"digital_ms": 1e3 * statistics.median(t_dig),
            "analog_ms": 1e3 * statistics.median(t_ana),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios),
            "ratio_max": max(ratios), "rounds": rounds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/bench", help="output folder")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    started, t0 = now_utc(), time.perf_counter()
    conv = nn.Conv2d(64, 64, 3, padding=1, bias=False)
    conv_x = torch.randn(256, 64, 8, 8)
    resnet = aimc.models.resnet32_cifar()  # random weights: the speed does not depend on them
    resnet_x = torch.randn(100, 3, 32, 32)
    cases = {
        "linear-512x512-b256": (nn.Linear(512, 512), torch.randn(256, 512), "static"),
        "linear-512x512-b256-dynamic": (nn.Linear(512, 512), torch.randn(256, 512),
                                        "dynamic"),
        "conv2d-64x64-3x3-8x8-b256": (conv, conv_x, "static"),
        "conv2d-64x64-3x3-8x8-b256-dynamic": (conv, conv_x, "dynamic"),
        "resnet32-cifar-b100": (resnet, resnet_x, "static"),
        "resnet32-cifar-b100-dynamic": (resnet, resnet_x, "dynamic"),
        # 28 steps: one read of the input matrix for all steps, 28 of the recurrent one
        "lstm-mnist-128-b100": (aimc.models.lstm_mnist(128), torch.randn(100, 28, 28),
                                "static"),
        # 2 encoder layers: attention projections and feed-forward on tiles, 28 tokens
        "transformer-mnist-64-b100": (aimc.models.transformer_mnist(64),
                                      torch.randn(100, 28, 28), "static"),
    }
    rows = []
    for name, (layer, x, input_range) in cases.items():
        # the whole network takes 10-100x longer per call than one layer
        whole = ("resnet", "lstm", "transformer")
        reps = max(1, args.reps // 10) if name.startswith(whole) else args.reps
        res = measure(layer, x, args.rounds, reps, input_range)
        print(f"{name:28s} torch {res['digital_ms']:7.3f} ms  aimc {res['analog_ms']:7.3f} ms"
              f"  ratio {res['ratio']:.2f} (min {res['ratio_min']:.2f}, "
              f"max {res['ratio_max']:.2f})")
        rows.append({"method": "pcm", "case": name, "input_range": input_range,
                     "metric": "time_ratio",
                     "mean": round(res["ratio"], 4), "std": None, "n": res["rounds"],
                     "ratio_min": round(res["ratio_min"], 4),
                     "ratio_max": round(res["ratio_max"], 4),
                     "torch_ms": round(res["digital_ms"], 4),
                     "aimc_ms": round(res["analog_ms"], 4)})
    path = write_results(
        f"{args.out}/bench_forward.json", study="bench_forward",
        command="python benchmarks/bench_forward.py " + " ".join(argv or sys.argv[1:]),
        dataset="random inputs", started=started, runtime_s=time.perf_counter() - t0,
        rows=rows, baseline={"name": "plain torch layer, same run", "metric": "time"},
        config=aimc.presets.pcm_joshi2020().to_dict())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
