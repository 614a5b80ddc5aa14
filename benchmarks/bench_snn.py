"""Speed of the spiking simulations: synaptic events per second, and correlation steps.

Cases (all with 1 and with 2 threads, synthetic MNIST-like input from the bundled digits):
- Diehl & Cook network, 400 neurons, training (batch 16, STDP on, ideal and PCM
  synapses) and inference (batch 500, no learning): simulated synaptic events per
  second of wall time, where one event is one input spike reaching one neuron
  (784 x 400 synapses).
- Temporal correlation detection with 1,000,000 PCM devices: time steps per second.

    python benchmarks/bench_snn.py --out docs/results
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from aimc.compute import CorrelationConfig, detect_correlations
from aimc.data import load_mnist_small
from aimc.experiments import now_utc, write_results
from aimc.experiments.snn_mnist import make_config
from aimc.snn import DiehlCookNet


def snn_speed(synapse: str, neurons: int, images: int, train: bool) -> dict:
    """Events per second of training (batch 16) or inference (batch 500) on ``images``."""
    x = load_mnist_small()[0][:images].flatten(1)
    net = DiehlCookNet(make_config(neurons, synapse, 16, 0))
    net.train_batch(x[:16])  # warm-up
    ev0, t0 = net.events, time.perf_counter()
    if train:
        for s in range(0, images, 16):
            net.train_batch(x[s:s + 16])
    else:
        net.responses(x)
    dt = time.perf_counter() - t0
    return {"events_per_s": (net.events - ev0) / dt, "images_per_s": images / dt}


def correlation_speed(steps: int) -> float:
    """Time steps per second at N = 1e6 (M = 1e4, c = 0.01)."""
    cfg = CorrelationConfig(steps=steps, warmup=min(100, steps - 1), checkpoints=1)
    t0 = time.perf_counter()
    detect_correlations(cfg)
    return steps / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    """Run the cases; write bench_snn.json into --out."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/bench")
    p.add_argument("--images", type=int, default=320)
    p.add_argument("--steps", type=int, default=2000)
    args = p.parse_args(argv)
    started, t_start = now_utc(), time.perf_counter()
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for synapse in ("ideal", "pcm"):
            r = snn_speed(synapse, 400, args.images, train=True)
            rows.append({"method": f"{synapse}+train", "metric": "synaptic_events_per_s",
                         "mean": round(r["events_per_s"]), "images_per_s":
                         round(r["images_per_s"], 2), "threads": threads, "neurons": 400})
        r = snn_speed("ideal", 400, args.images * 4, train=False)
        rows.append({"method": "inference", "metric": "synaptic_events_per_s",
                     "mean": round(r["events_per_s"]), "images_per_s":
                     round(r["images_per_s"], 2), "threads": threads, "neurons": 400})
        rows.append({"method": "correlation", "metric": "steps_per_s",
                     "mean": round(correlation_speed(args.steps), 1), "threads": threads,
                     "processes": 1_000_000})
        print(rows[-4:])
    write_results(f"{args.out}/bench_snn.json", study="bench_snn",
                  command="python benchmarks/bench_snn.py " + " ".join(
                      argv if argv is not None else sys.argv[1:]),
                  dataset="bundled MNIST digits; synthetic correlated processes",
                  started=started, runtime_s=time.perf_counter() - t_start, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
