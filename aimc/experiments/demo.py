"""``aimc demo``: a small CNN on the bundled MNIST digits, on PCM, from 1 s to 1 year.

Trains the demo CNN in FP32 on the 6,000 bundled training digits, converts it to the
PCM chip model of Joshi et al. 2020 (``presets.pcm_joshi2020``), calibrates the static
DAC ranges on training data, programs 5 independent chips and evaluates each on the
2,000 bundled test digits at 1 s, 1 h, 1 day, 1 month and 1 year, without and with
global drift compensation. Writes ``demo.json``, ``demo.png`` and ``demo_config.toml``
into ``--out``, and an energy estimate of the same network on a 90 nm-era PCM tile.
Offline, under 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import models, presets
from ..data import load_mnist_small
from ..inference import accuracy, calibrate_inputs, evaluate_over_time
from ..nn import convert
from . import plots
from .results import now_utc, write_results

TIMES = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86_400.0, "1 month": 2_592_000.0,
         "1 year": 31_536_000.0}


def batches(x: torch.Tensor, y: torch.Tensor, size: int, shuffle: bool = False,
            generator: torch.Generator | None = None):
    """Mini-batches of (x, y) as a list (in-memory data)."""
    order = torch.randperm(len(x), generator=generator) if shuffle else torch.arange(len(x))
    return [(x[order[i:i + size]], y[order[i:i + size]]) for i in range(0, len(x), size)]


def train_fp32(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int,
               seed: int, progress: bool) -> None:
    """Plain FP32 training with Adam (lr 2e-3, cosine decay), batch 64."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = epochs * ((len(x) + 63) // 64)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, desc="FP32 training", leave=False)
    for _ in range(epochs):
        for xb, yb in batches(x, y, 64, shuffle=True, generator=gen):
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()


def format_table(rows: list[dict], fp32: float) -> str:
    """Accuracy (%) per time and method, mean +- std over chips."""
    methods = sorted({r["method"] for r in rows})
    by = {(r["method"], r["t_s"]): r for r in rows}
    lines = [f"FP32 baseline: {100 * fp32:.2f}%", "",
             f"{'time':>8s} " + " ".join(f"{m:>18s}" for m in methods)]
    for label, t in TIMES.items():
        cells = [f"{100 * by[m, t]['mean']:8.2f} +- {100 * by[m, t]['std']:5.2f}"
                 for m in methods]
        lines.append(f"{label:>8s} " + " ".join(f"{c:>18s}" for c in cells))
    return "\n".join(lines)


def plot(rows: list[dict], fp32: float, path: Path, title: str) -> None:
    """Accuracy vs time since programming (log axis), bands = std over chips."""
    fig, ax = plots.pyplot().subplots(figsize=(6, 4))
    plots.accuracy_vs_time(ax, rows, sorted({r["method"] for r in rows}), fp32)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    plots.save_figure(fig, path, dpi=120)


def energy_summary(amodel: torch.nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)
                   ) -> dict:
    """Energy per inference (one sample of ``input_shape``) of the programmed network on the
    90 nm-era PCM preset (aimc.energy)."""
    import warnings

    from ..energy import estimate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = estimate(amodel, "pcm90nm_joshi2020", input_shape)
    t = table.totals
    return {"hardware": "pcm90nm_joshi2020", "energy_per_inference_j": t["energy_j"],
            "tops_per_w": t["tops_per_w"], "latency_s": t["latency_s"],
            "dominant": t["dominant"], "complete": t["complete"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aimc demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/demo", help="output folder")
    parser.add_argument("--chips", type=int, default=5, help="programmed chips (default 5)")
    parser.add_argument("--epochs", type=int, default=4, help="FP32 training epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--limit", type=int, default=0,
                        help="use only the first N training and test digits (smoke runs)")
    args = parser.parse_args(argv)
    if args.chips < 1 or args.epochs < 1:
        parser.error("--chips and --epochs must be >= 1")
    torch.set_num_threads(args.threads)
    started, t0 = now_utc(), time.perf_counter()
    out = Path(args.out)
    progress = not args.no_progress

    x, y, xt, yt = load_mnist_small()
    if args.limit:
        x, y, xt, yt = x[:args.limit], y[:args.limit], xt[:args.limit], yt[:args.limit]
    torch.manual_seed(args.seed)
    net = models.small_cnn()
    train_fp32(net, x, y, args.epochs, args.seed, progress)
    test = batches(xt, yt, 500)
    fp32 = accuracy(net, test)

    cfg = presets.pcm_joshi2020()
    amodel = convert(net, cfg)
    calibrate_inputs(amodel, batches(x, y, 500), batches=4)
    rows = evaluate_over_time(amodel, test, list(TIMES.values()), chips=args.chips,
                              compensation=("none", "gdc"), seed=args.seed,
                              progress=progress)
    energy = energy_summary(amodel)
    print(format_table(rows, fp32))
    print(f"\nenergy per inference on {energy['hardware']}: "
          f"{1e9 * energy['energy_per_inference_j']:.1f} nJ, "
          f"{energy['tops_per_w']:.2f} TOP/s/W (dominant: {energy['dominant']})")

    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "demo_config.toml")
    plot(rows, fp32, out / "demo.png", "demo CNN, bundled MNIST digits, PCM (Joshi 2020)")
    command = "aimc demo " + " ".join(sys.argv[1:] if argv is None else argv)
    path = write_results(
        out / "demo.json", study="demo", command=command.strip(),
        dataset=f"MNIST, bundled subset: {len(x)} train / {len(xt)} test digits",
        started=started, runtime_s=time.perf_counter() - t0,
        baseline={"name": "fp32", "accuracy": fp32}, rows=rows,
        config=cfg.to_dict(), chips=args.chips, epochs=args.epochs, seed=args.seed,
        energy=energy)
    print(f"\nwrote {path}, {out / 'demo.png'}, {out / 'demo_config.toml'} "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
