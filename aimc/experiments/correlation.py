"""`aimc reproduce correlation`: temporal-correlation detection with 1e6 PCM devices.

Sebastian et al., Nat. Commun. 8, 1115 (2017); the algorithm is in
:mod:`aimc.compute.correlation`. Writes correlation.json (precision and recall of the
detected set over time, runtime), correlation.png (final conductance distributions of
the two groups, precision/recall over time) and correlation_config.json into --out.
Every ``--checkpoint-every`` steps the whole state is saved to
``correlation.ckpt.pt`` in --out (atomically); the same command resumes from it, with
the same result as an uninterrupted run, and the file is removed at the end.

    python -m aimc.experiments.correlation --processes 1000000 --correlated 10000 --c 0.01
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from ..compute.correlation import CorrelationConfig, detect_correlations
from ..config import write_text_atomic
from ..energy.spiking import correlation_energy
from .plots import pyplot, save_figure
from .results import now_utc, write_results

ENERGY_HARDWARE = ("pcm90nm_joshi2020", "pcm14nm_legallo2023")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options (defaults: the 1e6-process run of docs/results)."""
    d = CorrelationConfig()
    p = argparse.ArgumentParser(prog="aimc reproduce correlation",
                                description="Temporal correlation detection with "
                                            "computational PCM (Sebastian et al. 2017).")
    p.add_argument("--processes", type=int, default=d.processes, help="N processes/devices")
    p.add_argument("--correlated", type=int, default=d.correlated,
                   help="M, size of the hidden correlated subset")
    p.add_argument("--c", type=float, default=d.c, help="correlation coefficient")
    p.add_argument("--rate", type=float, default=d.rate, help="process rate p")
    p.add_argument("--steps", type=int, default=d.steps, help="K time steps")
    p.add_argument("--theta", type=float, default=d.theta,
                   help="pulse onset, in running stds of M(k) above its mean")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--checkpoint-every", type=int, default=5000, metavar="STEPS",
                   help="save the run's state every STEPS steps (0: never)")
    p.add_argument("--out", type=Path, default=Path("results/correlation"))
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def plot(path: Path, g: torch.Tensor, truth: torch.Tensor, history: list[dict],
         title: str) -> None:
    """Histogram of final conductances per group and precision/recall over time."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    bins = torch.linspace(0, float(g.max()) * 1.01 + 1e-6, 101).numpy()
    ax1.hist(g[~truth].numpy(), bins=bins, alpha=0.6, label=f"uncorrelated ({int((~truth).sum())})")
    ax1.hist(g[truth].numpy(), bins=bins, alpha=0.6, label=f"correlated ({int(truth.sum())})")
    ax1.axvline(history[-1]["threshold_uS"], color="k", ls="--", lw=1, label="threshold")
    ax1.set_yscale("log")
    ax1.set_xlabel("conductance read after the last step (uS)")
    ax1.set_ylabel("devices")
    ax1.legend(fontsize=8)
    steps = [h["step"] for h in history[:-1]]
    for key in ("precision", "recall", "top_m_precision"):
        ax2.plot(steps, [h[key] for h in history[:-1]], marker=".", label=key)
    ax2.set_xlabel("time step k")
    ax2.set_ylim(0, 1.02)
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    """Run the study; write JSON, PNG and config into --out. Returns 0."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = CorrelationConfig(processes=args.processes, correlated=args.correlated, c=args.c,
                            rate=args.rate, steps=args.steps, theta=args.theta, seed=args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "correlation_config.json",
                      json.dumps(cfg.to_dict(), indent=2) + "\n")
    if args.checkpoint_every < 0:
        raise SystemExit("--checkpoint-every must be >= 0")
    ckpt = args.out / "correlation.ckpt.pt"
    resume = torch.load(ckpt, weights_only=True) if ckpt.exists() else None
    if resume is not None and resume.get("config") != cfg.to_dict():
        raise SystemExit(f"{ckpt} was saved by a run with other settings: remove it or "
                         "choose another --out")
    started, t0 = now_utc(), time.perf_counter()
    before = 0.0  # compute time of the interrupted part
    if resume is not None:
        started, before = resume["started"], resume["elapsed_s"]
        print(f"resuming from {ckpt} at step {resume['step']}")

    def save(state: dict) -> None:
        state = {**state, "started": started,
                 "elapsed_s": before + time.perf_counter() - t0}
        tmp = ckpt.with_name("." + ckpt.name + ".tmp")
        torch.save(state, tmp)
        tmp.replace(ckpt)

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="correlation", unit="step", mininterval=2.0)
    last = [0]

    def progress(k: int) -> None:
        if bar is not None:
            bar.update(k - last[0])
            last[0] = k

    res = detect_correlations(cfg, progress, resume=resume, save=save,
                              save_every=args.checkpoint_every)
    if bar is not None:
        bar.close()
    runtime = before + time.perf_counter() - t0
    final = res.history[-1]
    rows = [{"method": "pcm", "metric": key, "mean": final[key], "n": 1,
             "steps": cfg.steps} for key in ("precision", "recall", "top_m_precision")]
    rows.append({"method": "pcm", "metric": "runtime_s", "mean": round(runtime, 2), "n": 1})
    rows.append({"method": "pcm", "metric": "energy_j", "hardware": ENERGY_HARDWARE[0], "n": 1,
                 "mean": correlation_energy(cfg.processes, cfg.steps, res.pulse_charge,
                                            ENERGY_HARDWARE[0]).total})
    g_c, g_u = res.g[res.truth], res.g[~res.truth]
    command = "aimc reproduce correlation " + shlex.join(argv if argv is not None
                                                         else sys.argv[1:])
    write_results(args.out / "correlation.json", study="correlation", command=command,
                  dataset=(f"synthetic: {cfg.processes} Bernoulli({cfg.rate}) processes, "
                           f"{cfg.correlated} correlated with c = {cfg.c}"),
                  started=started, runtime_s=runtime, rows=rows, history=res.history,
                  set_pulses=res.pulses, pulse_charge=res.pulse_charge,
                  energy={hw: correlation_energy(cfg.processes, cfg.steps, res.pulse_charge,
                                                 hw).to_dict() for hw in ENERGY_HARDWARE},
                  config=cfg.to_dict(),
                  conductance_uS={"correlated_mean": round(float(g_c.mean()), 4),
                                  "correlated_std": round(float(g_c.std()), 4),
                                  "uncorrelated_mean": round(float(g_u.mean()), 4),
                                  "uncorrelated_std": round(float(g_u.std()), 4)})
    plot(args.out / "correlation.png", res.g, res.truth, res.history,
         f"{cfg.processes:,} PCM devices, {cfg.correlated:,} correlated (c = {cfg.c}), "
         f"K = {cfg.steps:,}: precision {final['precision']:.3f}, "
         f"recall {final['recall']:.3f}, {runtime:.0f} s")
    ckpt.unlink(missing_ok=True)
    print(f"precision {final['precision']:.4f} recall {final['recall']:.4f} "
          f"top-M precision {final['top_m_precision']:.4f} runtime {runtime:.1f} s "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
