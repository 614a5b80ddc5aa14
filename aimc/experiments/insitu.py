"""Study: in-situ training of the 784-250-125-10 MLP on MNIST (``aimc reproduce insitu``).

Trains the fully connected network of Ambrogio et al. 2018 with each in-situ algorithm
of :mod:`aimc.training.insitu` (analog SGD on PCM, mixed precision, 2T2R+3T1C,
Tiki-Taka) and with FP32 SGD as the baseline, for the same epochs, batch size and
learning-rate schedule. After training the PCM conductances are left to drift
(PCM inference model, pcm-model.md sec. 3-4) and the network is evaluated at 1 hour
and 1 day, without and with global drift compensation; the FP32 network programmed
onto PCM (``aimc.convert`` + ``aimc.program``) is shown for reference.

Writes ``insitu.json`` (results convention), ``insitu.png`` (training curves and
accuracy over time), ``insitu.md`` (table) and ``insitu_config.json`` into ``--out``;
per-algorithm checkpoints in ``--out/checkpoints`` let an interrupted run resume.

    python -m aimc.experiments.insitu --data-dir ../shared/data/mnist --out results/insitu
    python -m aimc.experiments.insitu --quick        # bundled MNIST subset, a few minutes
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import write_text_atomic
from ..devices.pulsed import make_pulsed_device
from ..energy.training import (
    COMPONENTS,
    TrainingCounts,
    digital_training_energy,
    insitu_layout,
    training_energy,
)
from ..nn.layers import mix_seed
from ..training.insitu import (
    ALGORITHMS,
    InSituConfig,
    InSituOptimizer,
    insitu_layers,
    insitu_mlp,
    iter_batches,
    make_optimizer,
)
from .results import now_utc, write_results

DEFAULT_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "mnist"
TIMES = (0.0, 3600.0, 86400.0)
ENERGY_HARDWARE = ("pcm90nm_joshi2020", "pcm14nm_legallo2023")
ENERGY_BASELINES = ("edge_int8_45nm", "gpu_v100")
METHODS = ("fp32", "mixed-precision", "2t2r3t1c", "tiki-taka", "analog-sgd")

# Per-algorithm options of the study (documented in docs/insitu.md).
OPTIONS: dict[str, dict[str, Any]] = {
    "analog-sgd": {"bl": 10},
    "mixed-precision": {},
    "2t2r3t1c": {"transfer_every": 8000, "tolerance": 0.5, "residual": "keep"},
    "tiki-taka": {"transfer_every": 1, "columns": 32, "transfer_lr": 0.25, "fast_range": 0.1},
}


def _build_options(options: dict[str, Any]) -> dict[str, Any]:
    """Optimizer options from JSON: a device given as {"name": ..., fields...} (keys
    ``device``, ``capacitor``, ``fast``) is built from :data:`PULSED_DEVICES`."""
    out = dict(options)
    for key in ("device", "capacitor", "fast"):
        if isinstance(out.get(key), dict):
            spec = dict(out[key])
            out[key] = make_pulsed_device(spec.pop("name"), **spec)
    return out


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch]).argmax(-1) == y[i:i + batch]).sum())
    model.train()
    return correct / len(x)


def _lr_at(lr: float, epoch: int, epochs: int) -> float:
    """Step schedule: lr, halved at 50% and again at 75% of the epochs."""
    factor = 1.0
    if epochs >= 2 and epoch >= epochs // 2:
        factor *= 0.5
    if epochs >= 4 and epoch >= (3 * epochs) // 4:
        factor *= 0.5
    return lr * factor


def _gdc_alpha(w0: torch.Tensor, wt: torch.Tensor) -> float:
    """Global drift compensation in weight terms: alpha = mean|W0 x| / mean|W(t) x| for a
    fixed calibration input x (pcm-model.md sec. 6), applied as a scale of the weights,
    i.e. ahead of the ADC."""
    gen = torch.Generator().manual_seed(mix_seed("insitu-gdc", w0.shape[1]))
    x = torch.rand(w0.shape[1], 128, generator=gen) * 2 - 1
    now = (wt @ x).abs().mean()
    return float((w0 @ x).abs().mean() / now) if now > 0 else 1.0


def _summary(values: list[float]) -> dict[str, Any]:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) \
        if len(values) > 1 else 0.0
    return {"mean": mean, "std": std, "n": len(values), "values": values}


def evaluate_drift(model: nn.Module, opt: InSituOptimizer, x: torch.Tensor, y: torch.Tensor,
                   times=TIMES, chips: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """Accuracy of the trained network at each time after training, mean over ``chips``
    draws of drift exponents and read noise, without and with GDC."""
    layers = insitu_layers(model)
    saved = [layer.weight.detach().clone() for layer in layers]
    exact = [opt.device_weight(layer, read=False) for layer in layers]
    values: dict[tuple[str, float], list[float]] = {}
    try:
        for chip in range(chips):
            for t in times:
                drifted = opt.drifted_weights(t, seed=seed + chip)
                for comp in ("none", "gdc"):
                    for layer, w0, wt in zip(layers, exact, drifted, strict=True):
                        alpha = _gdc_alpha(w0, wt) if comp == "gdc" else 1.0
                        layer.weight.data.copy_(wt * alpha)
                        layer.seed_noise(mix_seed("eval", seed, chip, t))
                    method = opt.name if comp == "none" else f"{opt.name}+gdc"
                    values.setdefault((method, t), []).append(_accuracy(model, x, y))
    finally:
        for layer, w in zip(layers, saved, strict=True):
            layer.weight.data.copy_(w)
    return [{"method": m, "t_s": t, "metric": "accuracy", **_summary(v)}
            for (m, t), v in sorted(values.items())]


def fp32_on_pcm(model: nn.Module, train_x: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                times=TIMES, chips: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """The FP32 network programmed onto PCM (Joshi 2020 preset) and drifted, for reference."""
    import copy

    import aimc

    amodel = aimc.convert(copy.deepcopy(model), aimc.presets.pcm_joshi2020())
    loader = [(train_x[i:i + 500],) for i in range(0, min(5000, len(train_x)), 500)]
    aimc.calibrate_inputs(amodel, loader)
    batches = [(x[i:i + 1000], y[i:i + 1000]) for i in range(0, len(x), 1000)]
    rows = aimc.evaluate_over_time(amodel, batches, times, chips=chips, seed=seed,
                                   device_name="fp32+pcm")
    return [{k: v for k, v in r.items()} for r in rows]


def training_energies(method: str, model: nn.Module, opt: Any, samples: int,
                      batch: int) -> dict[str, Any]:
    """Energy of the finished training run (:mod:`aimc.energy.training`) on each preset of
    ``ENERGY_HARDWARE``, from the optimizer's counts and the conductances it ended with;
    the FP32 run is costed on the digital baselines instead."""
    steps = math.ceil(samples / batch)
    if method == "fp32":
        shapes = [(m.in_features, m.out_features) for m in model.modules()
                  if isinstance(m, nn.Linear)]
        return {"samples": samples, "digital": {
            b: digital_training_energy(shapes, samples, steps, b) for b in ENERGY_BASELINES}}
    layout = insitu_layout(opt)
    counts = TrainingCounts.from_stats(opt.stats(), samples)
    bl = getattr(opt, "bl", 10)
    out: dict[str, Any] = {"samples": samples, "counts": vars(counts),
                           "g_sum_us": list(layout.g_sum_us)}
    for hw in ENERGY_HARDWARE:
        out[hw] = training_energy(method, layout, counts, hw, bl=bl).to_dict()
    out["digital"] = {b: digital_training_energy(layout.shapes, samples, steps, b)
                      for b in ENERGY_BASELINES}
    return out


def train_one(method: str, data: tuple, args: argparse.Namespace, ckpt_dir: Path,
              log) -> dict[str, Any]:
    """Train one method with checkpoints after every epoch; returns its record."""
    train_x, train_y, test_x, test_y = data
    ckpt = ckpt_dir / f"{method}.pt"
    torch.manual_seed(mix_seed("init", args.seed))  # same initial weights for every method
    analog = method != "fp32"
    model = insitu_mlp(config=InSituConfig(), analog=analog)
    if analog:
        opt = make_optimizer(method, model, args.lr, seed=args.seed,
                             **_build_options(args.options.get(method, {})))
    else:
        opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    record: dict[str, Any] = {"method": method, "curve": [], "train_time_s": 0.0,
                              "done": False}
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        record = state["record"]
        log(f"{method}: resumed after epoch {len(record['curve'])}")
    epochs = args.epochs_for.get(method, args.epochs)
    samples = len(train_x) * epochs
    record.setdefault("epochs", epochs)
    if record["done"]:
        # Re-costed from the finished devices at every resume: the energy model may change.
        record["energy"] = training_energies(method, model, opt, samples, args.batch)
        return record
    record["epochs"] = epochs
    for epoch in range(len(record["curve"]), epochs):
        for group in opt.param_groups:
            group["lr"] = _lr_at(args.lr, epoch, epochs)
        for layer in insitu_layers(model):
            layer.seed_noise(mix_seed("train", args.seed, epoch))
        gen = torch.Generator().manual_seed(mix_seed("shuffle", args.seed, epoch))
        t0 = time.perf_counter()
        model.train()
        total = 0.0
        batches = iter_batches(train_x, train_y, args.batch, gen)
        if args.progress:
            from tqdm import tqdm

            batches = tqdm(batches, total=math.ceil(len(train_x) / args.batch),
                           desc=f"{method} epoch {epoch + 1}", leave=False)
        for xb, yb in batches:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        record["train_time_s"] += time.perf_counter() - t0
        acc = _accuracy(model, test_x, test_y)
        point = {"epoch": epoch + 1, "train_loss": total / len(train_x), "test_accuracy": acc}
        if analog:
            point.update(opt.stats())
        record["curve"].append(point)
        log(f"{method}: epoch {epoch + 1}/{epochs} loss {point['train_loss']:.4f} "
            f"test {acc:.4f} ({record['train_time_s']:.0f} s)")
        _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                      "record": record}, ckpt)
    # After training: volatile state into PCM, then drift.
    if analog:
        opt.finalize()
        record["stats"] = opt.stats()
        record["final_accuracy"] = _accuracy(model, test_x, test_y)
        record["drift_rows"] = evaluate_drift(model, opt, test_x, test_y, chips=args.chips,
                                              seed=args.seed)
    else:
        record["final_accuracy"] = _accuracy(model, test_x, test_y)
        record["drift_rows"] = fp32_on_pcm(model, train_x, test_x, test_y, chips=args.chips,
                                           seed=args.seed)
    record["energy"] = training_energies(method, model, opt, samples, args.batch)
    record["done"] = True
    _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                  "record": record}, ckpt)
    return record


def _plot(records: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, rec in records.items():
        epochs = [p["epoch"] for p in rec["curve"]]
        ax1.plot(epochs, [100 * p["test_accuracy"] for p in rec["curve"]], marker="o",
                 label=method)
        rows = [r for r in rec["drift_rows"] if r["method"].endswith("+gdc")]
        if rows:
            ax2.plot([max(r["t_s"], 1.0) for r in rows], [100 * r["mean"] for r in rows],
                     marker="o", label=rows[0]["method"])
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("test accuracy (%)")
    ax1.set_title("in-situ training, 784-250-125-10 MLP")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    ax2.set_xscale("log")
    ax2.set_xlabel("time after training (s; 0 shown at 1 s)")
    ax2.set_ylabel("test accuracy (%)")
    ax2.set_title("after drift (PCM model, GDC)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def _energy_fields(rec: dict[str, Any]) -> dict[str, Any]:
    """Training energy of a record for its results row: on the first analog preset, or
    for FP32 on the first digital baseline."""
    energy = rec.get("energy") or {}
    if ENERGY_HARDWARE[0] in energy:
        return {"train_energy_j": energy[ENERGY_HARDWARE[0]]["total_j"],
                "energy_hardware": ENERGY_HARDWARE[0]}
    if energy.get("digital"):
        return {"train_energy_j": energy["digital"][ENERGY_BASELINES[0]],
                "energy_hardware": ENERGY_BASELINES[0]}
    return {}


def _energy_cell(rec: dict[str, Any]) -> str:
    fields = _energy_fields(rec)
    if not fields:
        return "-"
    return f"{fields['train_energy_j'] * 1e3:.3g} ({fields['energy_hardware']})"


def _table(records: dict[str, dict]) -> str:
    lines = ["| method | epochs | after training | PCM only, t = 0 | 1 h | 1 h + GDC | 1 day | "
             "1 day + GDC | pulses | volatile pulses | transfers | refreshes | train time (s) | "
             "train energy (mJ) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method, rec in records.items():
        rows = {(r["method"], r["t_s"]): r for r in rec["drift_rows"]}
        base = "fp32+pcm" if method == "fp32" else method

        def cell(m: str, t: float, rows=rows) -> str:
            r = rows.get((m, t))
            return f"{100 * r['mean']:.2f} ± {100 * r['std']:.2f}" if r else "-"

        stats = rec.get("stats", {})
        lines.append(
            f"| {method} | {rec.get('epochs', '-')} | {100 * rec['final_accuracy']:.2f} | "
            f"{cell(base, 0.0)} | {cell(base, 3600.0)} | "
            f"{cell(base + '+gdc', 3600.0)} | {cell(base, 86400.0)} | "
            f"{cell(base + '+gdc', 86400.0)} | {stats.get('pulses', '-')} | "
            f"{stats.get('volatile_pulses', '-')} | "
            f"{stats.get('transfers', '-')} | {stats.get('refreshes', '-')} | "
            f"{rec['train_time_s']:.0f} | {_energy_cell(rec)} |")
    return "\n".join(lines) + "\n"


def _energy_table(records: dict[str, dict]) -> str:
    """Training energy by component on each preset (mJ), and the digital baselines."""
    head = " | ".join(c.replace("_", " ") for c in COMPONENTS)
    lines = [f"| method | hardware | {head} | total (mJ) | per image (uJ) |",
             "|---|---|" + "---|" * (len(COMPONENTS) + 2)]
    shown: set[str] = set()
    for method, rec in records.items():
        energy = rec.get("energy") or {}
        for hw in ENERGY_HARDWARE:
            if hw not in energy:
                continue
            e = energy[hw]
            cells = " | ".join(f"{e[c] * 1e3:.3g}" for c in COMPONENTS)
            lines.append(f"| {method} | {hw} | {cells} | {e['total_j'] * 1e3:.4g} | "
                         f"{e['per_sample_j'] * 1e6:.4g} |")
        for base, joules in (energy.get("digital") or {}).items():
            if base in shown:  # the same network on the same baseline: once is enough
                continue
            shown.add(base)
            lines.append(f"| {method} | {base} (digital) |" + " |" * len(COMPONENTS)
                         + f" {joules * 1e3:.4g} | {joules / energy['samples'] * 1e6:.4g} |")
    return "\n".join(lines) + "\n"


# Relative cost of one epoch per method (measured steps on 2 cores), to balance --jobs.
_COST = {"fp32": 1.0, "mixed-precision": 6.0, "2t2r3t1c": 6.0, "analog-sgd": 8.0,
         "tiki-taka": 12.0}


def _train_in_processes(methods: list[str], args: argparse.Namespace, out: Path, log) -> None:
    """Train ``methods`` in ``args.jobs`` child processes of this study (longest first onto
    the least loaded process); each writes its checkpoints into ``out/checkpoints``."""
    groups: list[list[str]] = [[] for _ in range(min(args.jobs, len(methods)))]
    load = [0.0] * len(groups)
    for m in sorted(methods, key=lambda m: -_COST.get(m, 6.0) * args.epochs_for.get(
            m, args.epochs)):
        i = load.index(min(load))
        groups[i].append(m)
        load[i] += _COST.get(m, 6.0) * args.epochs_for.get(m, args.epochs)
    common = ["--out", str(out), "--epochs", str(args.epochs), "--batch", str(args.batch),
              "--lr", str(args.lr), "--chips", str(args.chips), "--seed", str(args.seed),
              "--subset", str(args.subset), "--no-progress",
              "--threads", str(max(1, args.threads // len(groups)))]
    if args.data_dir:
        common += ["--data-dir", str(args.data_dir)]
    if args.quick:
        common.append("--quick")
    if args.epochs_for:
        common += ["--epochs-for", ",".join(f"{k}={v}" for k, v in args.epochs_for.items())]
    if args.options_json:
        common += ["--options", args.options_json]
    procs = []
    for group in groups:
        log(f"training {', '.join(group)} in a child process")
        procs.append(subprocess.Popen([sys.executable, "-m", "aimc.experiments.insitu",
                                       "--methods", ",".join(group), *common]))
    codes = [proc.wait() for proc in procs]
    if any(codes):
        raise RuntimeError(f"a training process failed (exit codes {codes})")


def main(argv: list[str] | None = None) -> int:
    """Run the study; returns 0 on success."""
    p = argparse.ArgumentParser(prog="aimc reproduce insitu", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None,
                   help="folder with the four MNIST IDX files (default ../shared/data/mnist "
                        "if it exists; --quick uses the bundled subset)")
    p.add_argument("--out", default="results/insitu", help="output folder")
    p.add_argument("--quick", action="store_true",
                   help="bundled 6k/2k MNIST subset, 2 epochs, 1 chip (a few minutes)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 8; quick 2)")
    p.add_argument("--batch", type=int, default=10, help="mini-batch size")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (all methods)")
    p.add_argument("--chips", type=int, default=None,
                   help="drift/read-noise draws per time (default 3; quick 1)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--epochs-for", default="",
                   help="per-method epochs overriding --epochs, e.g. 'tiki-taka=4,analog-sgd=4' "
                        "(the lr schedule follows each method's own epochs)")
    p.add_argument("--subset", type=int, default=0,
                   help="use only the first N training and N/3 test images (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--options", default="",
                   help="JSON object of per-method optimizer options overriding the study's, "
                        "e.g. '{\"tiki-taka\": {\"columns\": 16}}' (devices as "
                        "{\"name\": \"capacitor\", \"step\": 0.01})")
    p.add_argument("--jobs", type=int, default=1,
                   help="train the methods in this many processes at once (threads are split "
                        "between them); results are gathered from their checkpoints")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m != "fp32" and m not in ALGORITHMS]
    if bad:
        p.error(f"unknown method(s) {bad}; known: fp32, {', '.join(sorted(ALGORITHMS))}")
    args.epochs = args.epochs if args.epochs is not None else (2 if args.quick else 8)
    try:
        args.epochs_for = {k.strip(): int(v) for k, v in (
            item.split("=") for item in args.epochs_for.split(",") if item.strip())}
    except ValueError:
        p.error("--epochs-for takes METHOD=N pairs separated by commas")
    args.chips = args.chips if args.chips is not None else (1 if args.quick else 3)
    try:
        extra = json.loads(args.options) if args.options else {}
        if not isinstance(extra, dict):
            raise ValueError
    except ValueError:
        p.error("--options takes a JSON object: {\"METHOD\": {\"option\": value}}")
    args.options_json = args.options
    args.options = {m: {**OPTIONS.get(m, {}), **extra.get(m, {})} for m in
                    set(OPTIONS) | set(extra)}
    data_dir = args.data_dir
    if data_dir is None and not args.quick and DEFAULT_DATA.resolve().is_dir():
        data_dir = str(DEFAULT_DATA.resolve())
    if data_dir is None:
        from ..data import load_mnist_small

        tx, ty, vx, vy = load_mnist_small()
        dataset = f"MNIST bundled subset, {len(tx)} train / {len(vx)} test images"
    else:
        from ..data import load_mnist

        tx, ty = load_mnist(data_dir, "train")
        vx, vy = load_mnist(data_dir, "test")
        if args.quick:
            tx, ty, vx, vy = tx[:6000], ty[:6000], vx[:2000], vy[:2000]
        dataset = f"MNIST, {len(tx)} train / {len(vx)} test images"
    if args.subset:
        tx, ty = tx[:args.subset], ty[:args.subset]
        vx, vy = vx[:max(1, args.subset // 3)], vy[:max(1, args.subset // 3)]
        dataset += f" (first {len(tx)} / {len(vx)} used)"
    data = (tx.flatten(1), ty, vx.flatten(1), vy)
    out = Path(args.out)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    config = {"methods": methods, "epochs": args.epochs, "epochs_for": args.epochs_for,
              "batch": args.batch, "lr": args.lr,
              "lr_schedule": "x0.5 at 50% and 75% of the epochs", "seed": args.seed,
              "chips": args.chips, "times_s": list(TIMES), "options": args.options,
              "network": "784-250-125-10, ReLU", "insitu_config": {
                  "tile": vars(InSituConfig().tile),
                  **{k: v for k, v in vars(InSituConfig()).items() if k != "tile"}}}
    write_text_atomic(out / "insitu_config.json", json.dumps(config, indent=2) + "\n")

    def log(msg: str) -> None:
        print(msg, flush=True)

    started, t0 = now_utc(), time.perf_counter()
    if args.jobs > 1 and len(methods) > 1:
        _train_in_processes(methods, args, out, log)
        # the children wrote their own (partial) config: write the whole study's again
        write_text_atomic(out / "insitu_config.json", json.dumps(config, indent=2) + "\n")
    records = {m: train_one(m, data, args, ckpt_dir, log) for m in methods}
    rows = []
    for method, rec in records.items():
        rows.append({"method": method, "metric": "accuracy", "t_s": None, "when":
                     "after training", "mean": rec["final_accuracy"], "std": 0.0, "n": 1,
                     "epochs": rec.get("epochs", args.epochs),
                     "train_time_s": round(rec["train_time_s"], 1),
                     **rec.get("stats", {}), **_energy_fields(rec)})
        rows.extend(rec["drift_rows"])
    baseline = {"name": "fp32", "accuracy": records["fp32"]["final_accuracy"]} \
        if "fp32" in records else None
    command = "aimc reproduce insitu " + " ".join(sys.argv[1:] if argv is None else argv)
    write_results(out / "insitu.json", study="insitu", command=command.strip(),
                  dataset=dataset, started=started, runtime_s=time.perf_counter() - t0,
                  rows=rows, baseline=baseline,
                  curves={m: r["curve"] for m, r in records.items()}, config=config,
                  energy={m: r.get("energy") for m, r in records.items()})
    _plot(records, out / "insitu.png")
    table = _table(records) + "\n" + _energy_table(records)
    write_text_atomic(out / "insitu.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
