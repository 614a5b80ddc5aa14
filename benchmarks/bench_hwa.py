"""Speed of one hardware-aware training step of ResNet-32 against plain torch, same run.

One SGD step (forward, backward, optimizer step) of ResNet-32 at batch 128 on random
CIFAR-sized inputs, 2 threads: the plain torch network against the same network converted
to the PCM preset and trained with :func:`aimc.train_hwa`'s noise injection (Gaussian
weight noise, eta 0.04, and clipping at 2.5 sigma after the step), and once more with the
DAC/ADC and output noise simulated in training too (``HWAConfig(dac_adc=True,
out_noise=True)``, the study's ``--hwa-periphery``), and with the ``"pcm-drift"`` weight
noise (the PCM chain at a random age) instead of the Gaussian, alone and with the output
noise (``out_noise=True``, amplified by the GDC gain), and for a chip with two device
pairs per weight (``MappingConfig(pairs=2, pair_programming="closed")``), and with
adaptive sharpness-aware steps (``HWAConfig(sam_rho=2)``: two passes per step). That last
case is also timed against plain torch with the same ASAM steps ("plain-asam", the
optimizer the study's FP32 baseline then uses), the same step without the hardware. Rounds
interleave the cases; each result is the median of the per-round ratios to its plain step
(``reference`` in the results; ``vs_plain_sgd`` is the ratio to the plain SGD step).

    python benchmarks/bench_hwa.py --out docs/results
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import sys
import time

import torch
from _timing import bench_parser, interleaved, round_ratios, write_bench  # benchmarks/_timing.py

import aimc
from aimc.experiments import now_utc
from aimc.training import HWAConfig, prepare_hwa
from aimc.training.hwa import train_step


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, rounds=7, reps=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started, t0 = now_utc(), time.perf_counter()
    torch.manual_seed(0)
    plain = aimc.models.resnet32_cifar().train()
    configs = {
        "hwa": HWAConfig(eta=0.04, clip_sigma=2.5),
        "hwa-periphery": HWAConfig(eta=0.04, clip_sigma=2.5, dac_adc=True, out_noise=True),
        "hwa-pcm-drift": HWAConfig(noise="pcm-drift", clip_sigma=2.5),
        "hwa-pcm-drift-out-noise": HWAConfig(noise="pcm-drift", clip_sigma=2.5,
                                             out_noise=True),
        "hwa-pcm-drift-2pairs": HWAConfig(noise="pcm-drift", clip_sigma=2.5),
        "hwa-pcm-drift-asam": HWAConfig(noise="pcm-drift", clip_sigma=2.5, sam_rho=2.0),
    }
    pcm = aimc.presets.pcm_joshi2020()
    # The chip each case trains for: two pairs per weight, closed loop, for "-2pairs".
    chips = {name: pcm for name in configs}
    chips["hwa-pcm-drift-2pairs"] = dataclasses.replace(
        pcm, mapping=dataclasses.replace(pcm.mapping, pairs=2, pair_programming="closed"))
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))

    def case(model: torch.nn.Module, cfg: HWAConfig):
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        return lambda: train_step(model, opt, x, y, cfg)  # train_hwa's step

    # plain: no analog layers, so no noise and nothing to clip; ASAM acts on its
    # Linear/Conv weights (aimc.training.hwa.sam_weights)
    cases = {"plain": case(plain, HWAConfig(noise="none", clip_sigma=0.0)),
             "plain-asam": case(copy.deepcopy(plain),
                                HWAConfig(noise="none", clip_sigma=0.0, sam_rho=2.0))}
    reference = {name: "plain" for name in ["plain-asam", *configs]}
    reference["hwa-pcm-drift-asam"] = "plain-asam"
    for name, cfg in configs.items():
        net = aimc.convert(plain, chips[name]).train()
        prepare_hwa(net, cfg, seed=0)
        cases[name] = case(net, cfg)
    times = interleaved(cases, args.rounds, args.reps)
    ratios = {name: round_ratios(times, name, ref) for name, ref in reference.items()}
    vs_plain = {name: round_ratios(times, name, "plain") for name in reference}
    plain_s = statistics.median(times["plain"])
    rows = []
    for name, rs in ratios.items():
        step_s, ratio = statistics.median(times[name]), statistics.median(rs)
        ref_s = statistics.median(times[reference[name]])
        print(f"ResNet-32 training step, batch {args.batch}: {reference[name]} "
              f"{1e3 * ref_s:.0f} ms, {name} {1e3 * step_s:.0f} ms, ratio {ratio:.3f} "
              f"(rounds {min(rs):.3f}-{max(rs):.3f})")
        rows.append({"method": name, "metric": "time_ratio", "mean": ratio, "min": min(rs),
                     "max": max(rs), "n": args.rounds, "reference": reference[name],
                     "reference_ms": 1e3 * ref_s, "plain_ms": 1e3 * plain_s,
                     "hwa_ms": 1e3 * step_s,
                     "vs_plain_sgd": statistics.median(vs_plain[name]), "batch": args.batch})
    config = {k: {**c.to_dict(), "mapping": dataclasses.asdict(chips[k].mapping)}
              for k, c in configs.items()}
    write_bench("bench_hwa", args, argv, started=started, t0=t0,
                dataset=f"random 3x32x32 inputs, batch {args.batch}", rows=rows,
                config={**config, "optimizer": "SGD momentum 0.9"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
