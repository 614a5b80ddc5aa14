"""`aimc reproduce pcm-neurons`: stochastic phase-change neurons (Tuma et al. 2016).

Tuma, Pantazi, Le Gallo, Sebastian and Eleftheriou, "Stochastic phase-change neurons",
Nat. Nanotechnol. 11, 693 (2016): the conductance of one PCM device is the membrane
potential of an integrate-and-fire neuron; each input is a SET pulse whose amplitude is
the input, crystallising the device a little; at a threshold conductance the neuron
fires and the device is RESET. Because each SET step and each RESET vary from cycle to
cycle, the interspike intervals vary, and a population of such neurons does not fire
in lockstep: its summed activity follows an input faster than any one neuron fires
(population coding). The neuron is :func:`aimc.snn.neurons.pcm_neuron_step` on the
device model of in-situ training (:class:`aimc.devices.pulsed.PulsedPCM`).

Two measurements, written to ``pcm-neurons.json`` / ``.png`` with the config:

1. **Transfer and interspike intervals**: populations driven by constant pulse
   amplitudes; firing rate, mean interspike interval (ISI), the ISI's relative spread
   within a neuron (cycle to cycle) and that of the neurons' mean ISIs (device to device).
2. **Population coding**: N neurons driven by s(k) = 0.5 + 0.4 sin(2 pi k / P), with the
   period P shorter than a neuron's mean ISI; the correlation of the population's
   firing rate with s(k), for growing N, for the PCM neurons and for neurons whose
   devices have no cycle-to-cycle variation, or no variation at all.

Next to them the energy of the neurons' SET and RESET pulses and threshold reads on the
hardware presets (:func:`aimc.energy.spiking.pcm_neuron_energy`).

    python -m aimc.experiments.pcm_neurons --out results/pcm-neurons
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..devices.pulsed import PulsedPCM
from ..energy.spiking import pcm_neuron_energy
from ..snn.neurons import PCMNeuronParams, pcm_neuron_init, pcm_neuron_step
from .plots import pyplot, save_figure
from .results import now_utc, write_study

ENERGY_HARDWARE = ("pcm90nm_joshi2020", "pcm14nm_legallo2023")

VARIANTS = {
    "pcm": {},
    "d2d-only": {"c2c": 0.0, "g_reset_std": 0.0},
    "deterministic": {"c2c": 0.0, "d2d": 0.0, "g_reset_std": 0.0},
}
"""Neuron devices compared in the population-coding measurement: the PCM model, then
without cycle-to-cycle variation (steps and RESET exact, devices still differ), then
identical exact devices."""


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="aimc reproduce pcm-neurons",
                                description="Stochastic phase-change neurons (Tuma et al. "
                                            "2016): interspike intervals and population "
                                            "coding.")
    p.add_argument("--neurons", type=int, default=1000,
                   help="neurons per amplitude in the transfer measurement")
    p.add_argument("--steps", type=int, default=4000, help="steps of each measurement")
    p.add_argument("--populations", type=int, nargs="+", default=[1, 10, 100, 1000, 10000],
                   help="population sizes N of the coding measurement")
    p.add_argument("--period", type=int, default=8, help="period P of the input (steps)")
    p.add_argument("--warmup", type=int, default=500,
                   help="steps before the coding measurement starts (from RESET)")
    p.add_argument("--g-th", type=float, default=PCMNeuronParams().g_th,
                   help="firing threshold conductance (uS)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results/pcm-neurons"))
    return p


def simulate(inputs: Tensor, params: PCMNeuronParams, generator: torch.Generator
             ) -> tuple[Tensor, float]:
    """Run a population of fresh PCM neurons (Tuma et al. 2016) on ``inputs`` (steps, N):
    the spikes (steps, N, bool) and the SET charge applied (the sum of the pulse
    amplitudes, in full pulses)."""
    state = pcm_neuron_init((inputs.shape[1],), params, generator)
    spikes = torch.empty(inputs.shape, dtype=torch.bool)
    for k in range(inputs.shape[0]):
        z, state = pcm_neuron_step(inputs[k], state, params, generator)
        spikes[k] = z.bool()
    charge = float((inputs / params.input_scale).clamp(0.0, 1.0).sum())
    return spikes, charge


def interspike_intervals(spikes: Tensor) -> tuple[Tensor, Tensor]:
    """The intervals between consecutive spikes of each neuron of ``spikes`` (steps, N):
    intervals (in steps) and the neuron each belongs to."""
    k, n = spikes.nonzero(as_tuple=True)
    order = torch.argsort(n * spikes.shape[0] + k)
    k, n = k[order], n[order]
    same = n[1:] == n[:-1]
    return (k[1:] - k[:-1])[same].double(), n[1:][same]


def isi_stats(spikes: Tensor) -> dict[str, float]:
    """Rate (spikes per neuron and step), mean ISI, the pooled ISI CV, the mean of the
    neurons' own ISI CVs (cycle to cycle) and the CV of their mean ISIs (device to
    device): the interspike-interval statistics of Tuma et al. 2016. Neurons with fewer
    than 3 intervals are left out of the last two."""
    isi, who = interspike_intervals(spikes)
    n = spikes.shape[1]
    count = torch.zeros(n, dtype=torch.float64).index_add_(0, who, torch.ones_like(isi))
    total = torch.zeros(n, dtype=torch.float64).index_add_(0, who, isi)
    squares = torch.zeros(n, dtype=torch.float64).index_add_(0, who, isi * isi)
    ok = count >= 3
    mean_n = total[ok] / count[ok]
    var_n = (squares[ok] / count[ok] - mean_n ** 2).clamp_min(0) * count[ok] / (count[ok] - 1)
    return {"rate": float(spikes.double().mean()),
            "isi_mean": float(isi.mean()) if isi.numel() else math.nan,
            "isi_cv": float(isi.std() / isi.mean()) if isi.numel() > 1 else math.nan,
            "isi_cv_within": float((var_n.sqrt() / mean_n).mean()) if ok.any() else math.nan,
            "isi_cv_between": (float(mean_n.std() / mean_n.mean()) if int(ok.sum()) > 1
                               else math.nan)}


def coding_correlation(signal: Tensor, rate: Tensor) -> float:
    """Pearson correlation of a population's firing rate with its input (0 if the rate
    never changes): how well the population codes the input (Tuma et al. 2016)."""
    s, r = signal.double() - signal.double().mean(), rate.double() - rate.double().mean()
    den = float(s.norm() * r.norm())
    return float(s @ r) / den if den > 0 else 0.0


def transfer(args: argparse.Namespace,
             params: PCMNeuronParams) -> tuple[list[dict], float, int]:
    """Measurement 1 (Tuma et al. 2016, firing rate and interspike intervals against the
    input): constant amplitudes 0.1 ... 1.0, ``args.neurons`` neurons each. Returns the
    rows, the SET charge applied and the spikes fired."""
    amps = torch.linspace(0.1, 1.0, 10)
    gen = torch.Generator().manual_seed(args.seed)
    inputs = amps.repeat_interleave(args.neurons).expand(args.steps, -1)
    spikes, charge = simulate(inputs, params, gen)
    rows = []
    for i, a in enumerate(amps.tolist()):
        cols = spikes[:, i * args.neurons:(i + 1) * args.neurons]
        rows.append({"amplitude": round(a, 2), **isi_stats(cols)})
    return rows, charge, int(spikes.sum())


def coding(args: argparse.Namespace, params: PCMNeuronParams) -> tuple[list[dict], dict]:
    """Measurement 2 (Tuma et al. 2016, population coding): the population rate against a
    sine faster than one neuron's rate, for each variant of ``VARIANTS`` and each N."""
    k = torch.arange(args.warmup + args.steps, dtype=torch.float32)
    signal = 0.5 + 0.4 * torch.sin(2 * math.pi * k / args.period)
    rows, traces = [], {}
    for variant, changes in VARIANTS.items():
        p = dataclasses.replace(params, device=dataclasses.replace(params.device, **changes))
        for i, n in enumerate(args.populations):
            gen = torch.Generator().manual_seed(args.seed * 1000 + i)
            spikes, _ = simulate(signal[:, None].expand(-1, n), p, gen)
            rate = spikes[args.warmup:].double().mean(1)
            rows.append({"variant": variant, "neurons": n,
                         "correlation": round(coding_correlation(signal[args.warmup:], rate),
                                              4),
                         "rate": round(float(rate.mean()), 5)})
            if n == max(args.populations):
                traces[variant] = rate[:8 * args.period].tolist()
    traces["signal"] = signal[args.warmup:args.warmup + 8 * args.period].tolist()
    return rows, traces


def plot(path: Path, transfer_rows: list[dict], coding_rows: list[dict], traces: dict,
         title: str) -> None:
    """Transfer curve and ISI spread; population coding against N; rate traces."""
    plt = pyplot()
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    amps = [r["amplitude"] for r in transfer_rows]
    ax1.plot(amps, [r["rate"] for r in transfer_rows], "o-", label="firing rate")
    ax1.set_xlabel("SET pulse amplitude (input)")
    ax1.set_ylabel("spikes per neuron and step")
    ax1b = ax1.twinx()
    ax1b.plot(amps, [r["isi_cv_within"] for r in transfer_rows], "s--", color="C1",
              label="ISI CV within a neuron")
    ax1b.plot(amps, [r["isi_cv_between"] for r in transfer_rows], "^:", color="C2",
              label="CV of neurons' mean ISI")
    ax1b.set_ylabel("relative spread")
    ax1b.set_ylim(0.0, 0.4)
    ax1.legend(loc="upper left", fontsize=8)
    ax1b.legend(loc="lower right", fontsize=8)
    for variant in VARIANTS:
        rows = [r for r in coding_rows if r["variant"] == variant]
        ax2.semilogx([r["neurons"] for r in rows], [r["correlation"] for r in rows], "o-",
                     label=variant)
    ax2.set_xlabel("neurons N")
    ax2.set_ylabel("correlation of population rate with input")
    ax2.set_ylim(-0.05, 1.02)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    sig = traces["signal"]
    ax3.plot(sig, "k-", lw=1, label="input s(k)")
    for variant in VARIANTS:
        r = torch.tensor(traces[variant])
        scale = (max(sig) - min(sig)) / max(float(r.max() - r.min()), 1e-12)
        ax3.plot(((r - r.mean()) * scale + sum(sig) / len(sig)).tolist(), lw=1, label=variant)
    ax3.set_xlabel("step")
    ax3.set_ylabel("input; population rate (rescaled)")
    ax3.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    """Run both measurements; write JSON, PNG and config into --out. Returns 0."""
    args = build_parser().parse_args(argv)
    for name in ("neurons", "steps", "period"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be >= 1")
    if args.warmup < 0 or min(args.populations) < 1:
        raise SystemExit("--warmup must be >= 0 and every --populations entry >= 1")
    params = PCMNeuronParams(g_th=args.g_th, device=PulsedPCM())
    args.out.mkdir(parents=True, exist_ok=True)
    started, t0 = now_utc(), time.perf_counter()
    transfer_rows, charge, spikes = transfer(args, params)
    coding_rows, traces = coding(args, params)
    runtime = time.perf_counter() - t0
    neuron_steps = 10 * args.neurons * args.steps
    energy = {hw: pcm_neuron_energy(neuron_steps, charge, spikes, hw).to_dict()
              for hw in ENERGY_HARDWARE}
    rows: list[dict[str, Any]] = []
    for r in transfer_rows:
        for metric in ("rate", "isi_mean", "isi_cv_within", "isi_cv_between"):
            rows.append({"method": "pcm", "metric": metric, "amplitude": r["amplitude"],
                         "mean": round(r[metric], 5), "n": args.neurons})
    for r in coding_rows:
        rows.append({"method": r["variant"], "metric": "coding_correlation",
                     "neurons": r["neurons"], "period": args.period,
                     "mean": r["correlation"], "n": 1})
    for hw, e in energy.items():
        rows.append({"method": "pcm", "metric": "energy_per_spike_j", "hardware": hw,
                     "mean": e["per_spike_j"], "n": spikes})
    config = {"neurons": args.neurons, "steps": args.steps, "populations": args.populations,
              "period": args.period, "warmup": args.warmup, "seed": args.seed,
              "neuron": dataclasses.asdict(params), "variants": VARIANTS}
    big = max(args.populations)
    best = {r["variant"]: r["correlation"] for r in coding_rows if r["neurons"] == big}
    plot(args.out / "pcm-neurons.png", transfer_rows, coding_rows, traces,
         f"PCM neurons (Tuma et al. 2016), threshold {args.g_th} uS: population coding "
         f"of a period-{args.period} input, N = {big}: "
         + ", ".join(f"{v} {c:.2f}" for v, c in best.items()))
    write_study(args.out, "pcm-neurons", argv, config=config, started=started,
                runtime_s=runtime,
                dataset="synthetic inputs: constant amplitudes 0.1-1.0; a sine of period "
                        f"{args.period} steps", rows=rows, transfer=transfer_rows,
                coding=coding_rows, traces=traces, energy=energy)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
