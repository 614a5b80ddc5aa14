"""`aimc reproduce snn-mnist`: unsupervised MNIST with STDP (Diehl & Cook 2015), ideal vs PCM.

The network and its stated differences from the paper are in :mod:`aimc.snn.diehl_cook`.
The same network (same N, same seed, same images) is trained once with floating-point
synapses and once with PCM synapses (differential pairs updated by stochastic,
non-linear SET pulses, read with drift and 1/f noise). Each variant runs in its own
process with one thread, so the two use the two cores in parallel. Writes
snn-mnist.json (test accuracy, training time, simulated synaptic events per second),
snn-mnist.png (learned receptive fields) and snn-mnist_config.json into --out;
checkpoints every --checkpoint-every images so an interrupted run resumes.

    python -m aimc.experiments.snn_mnist --data-dir DIR --neurons 400
    python -m aimc.experiments.snn_mnist --quick          # bundled digits, minutes
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ..config import write_text_atomic
from ..data import load_mnist, load_mnist_small
from ..energy.spiking import SpikingCounts, spiking_energy
from ..snn import (
    DiehlCookConfig,
    DiehlCookNet,
    LIFParams,
    PCMSynapseConfig,
    STDPParams,
    assign_labels,
    predict,
)
from .plots import pyplot, save_figure
from .results import now_utc, write_results

DAY = 86400.0
ENERGY_HARDWARE = ("pcm90nm_joshi2020", "pcm14nm_legallo2023")


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="aimc reproduce snn-mnist",
                                description="Unsupervised MNIST with STDP (Diehl & Cook "
                                            "2015): ideal vs PCM synapses.")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder with the four MNIST IDX files (not needed with --quick)")
    p.add_argument("--neurons", type=int, default=None, help="excitatory neurons (400)")
    p.add_argument("--quick", action="store_true",
                   help="bundled 6,000/2,000 digits, 100 neurons, one pass: a few minutes")
    p.add_argument("--train", type=int, default=None, help="training images (60000)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the training images")
    p.add_argument("--assign", type=int, default=None,
                   help="training images used to label the neurons (10000)")
    p.add_argument("--test", type=int, default=None, help="test images (10000)")
    p.add_argument("--synapses", default="ideal,pcm",
                   help="comma list of ideal, pcm (differential pairs), pcm-reset "
                        "(single devices, depression by stochastic RESET)")
    p.add_argument("--batch", type=int, default=16,
                   help="training images simulated in parallel with shared weights")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results/snn-mnist"))
    p.add_argument("--checkpoint-every", type=int, default=5000)
    p.add_argument("--no-progress", action="store_true")
    return p


VARIANTS = ("ideal", "pcm", "pcm-reset")


def make_config(neurons: int, synapse: str, batch: int, seed: int) -> DiehlCookConfig:
    """The configuration used by this study (see docs/snn.md for the choices).

    ``synapse`` is a variant of :data:`VARIANTS`; 'pcm-reset' is the 'pcm' network with
    single-device synapses depressed by RESET.
    """
    if synapse not in VARIANTS:
        raise ValueError(f"synapse must be one of {VARIANTS}, got {synapse!r}")
    depression = "reset" if synapse == "pcm-reset" else "pair"
    return DiehlCookConfig(
        neurons=neurons, synapse="ideal" if synapse == "ideal" else "pcm", batch=batch,
        seed=seed, input_gain=0.5,
        lif=LIFParams(tau_mem=100.0, v_rest=-65.0, v_reset=-60.0, v_th=-52.0, t_ref=5.0,
                      theta_plus=0.05, tau_theta=1e7),
        stdp=STDPParams(a_plus=1e-2, a_minus=1e-4, tau_plus=20.0, tau_minus=20.0,
                        tau_post2=40.0, w_max=1.0),
        # two pairs per synapse (Boybat 2018): 4 points better than one pair at 100 neurons
        pcm=PCMSynapseConfig(devices_per_side=2, depression=depression))


def snn_energies(cfg: DiehlCookConfig, net: DiehlCookNet, train_events: int,
                 train_spikes: int, infer_events: int, infer_images: int,
                 infer_spikes: int) -> dict[str, Any]:
    """Energy of training and of one inference on each preset of ``ENERGY_HARDWARE``
    (:func:`aimc.energy.spiking.spiking_energy`), from the run's spike and pulse counts
    and the synapse conductances it ended with: with the columns converted every step
    (``"adc"``, the top-level ``train``/``inference``) and with analog integrate-and-fire
    neurons (under ``"integrate"``)."""
    n, inputs = cfg.neurons, net.syn.g.shape[2]
    g_sum = float(net.syn.g.sum())
    train = SpikingCounts(images=net.images, time_steps=cfg.time_steps, inputs=inputs,
                          neurons=n, input_spikes=train_events // n,
                          output_spikes=train_spikes, learning=True, batch=cfg.batch,
                          set_pulses=net.syn.pulses, reset_pulses=net.syn.resets,
                          refreshes=net.syn.refreshes)
    infer = SpikingCounts(images=infer_images, time_steps=cfg.time_steps, inputs=inputs,
                          neurons=n, input_spikes=infer_events // n,
                          output_spikes=infer_spikes)
    devices = 2 * cfg.pcm.devices_per_side
    out: dict[str, Any] = {"g_sum_us": g_sum, "train_counts": vars(train),
                           "inference_counts": vars(infer)}
    for hw in ENERGY_HARDWARE:
        out[hw] = {"train": spiking_energy(train, g_sum, hw, devices).to_dict(),
                   "inference": spiking_energy(infer, g_sum, hw, devices).to_dict(),
                   "integrate": {
                       phase: spiking_energy(counts, g_sum, hw, devices,
                                             readout="integrate").to_dict()
                       for phase, counts in (("train", train), ("inference", infer))}}
    return out


def run_variant(job: dict) -> dict:
    """Train, label and test one variant (runs in its own process, one thread)."""
    torch.set_num_threads(1)
    cfg: DiehlCookConfig = job["cfg"]
    variant: str = job["variant"]
    data = job["data"]
    tx, ty, vx, vy = data["tx"], data["ty"], data["vx"], data["vy"]
    n_train = job["train"] * job["epochs"]
    ckpt = Path(job["out"]) / f"snn-mnist_{variant}.ckpt.pt"
    net = DiehlCookNet(cfg)
    train_time = 0.0
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=True)
        if saved["config"] == cfg.to_dict():
            net.load_state_dict(saved["net"])
            train_time = saved["train_time"]
    bar = None
    if job["progress"]:
        from tqdm import tqdm

        bar = tqdm(total=n_train, initial=net.images, desc=f"train {variant}",
                   position=job["position"], unit="img", mininterval=5.0)
    t0 = time.perf_counter() - train_time
    next_ckpt = net.images + job["checkpoint_every"]
    while net.images < n_train:
        start = net.images % job["train"]
        xb = tx[start:min(start + cfg.batch, job["train"])]
        net.train_batch(xb)
        if bar is not None:
            bar.update(xb.shape[0])
        if net.images >= next_ckpt and net.images < n_train:
            next_ckpt += job["checkpoint_every"]
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"config": cfg.to_dict(), "net": net.state_dict(),
                        "train_time": time.perf_counter() - t0}, tmp)
            tmp.replace(ckpt)
    train_time = time.perf_counter() - t0
    train_events, train_spikes = net.events, net.spikes
    if bar is not None:
        bar.close()
    t1 = time.perf_counter()
    ev0, sp0 = net.events, net.spikes
    counts_assign = net.responses(tx[:job["assign"]])
    assignment = assign_labels(counts_assign, ty[:job["assign"]])
    counts_test = net.responses(vx)
    acc = float((predict(counts_test, assignment) == vy).float().mean())
    infer_time = time.perf_counter() - t1
    infer_events, infer_spikes = net.events - ev0, net.spikes - sp0
    infer_images = job["assign"] + len(vx)
    out = {"synapse": variant, "accuracy": acc, "train_time_s": train_time,
           "infer_time_s": infer_time, "train_events": train_events,
           "infer_events": infer_events, "images": net.images,
           "spikes_per_test_image": float(counts_test.sum(1).mean()),
           "neurons_per_class": torch.bincount(assignment, minlength=10).tolist(),
           "weights": net.syn.read(net.t, net.gen).clone()}
    if cfg.synapse == "pcm":
        # the same chip one day later: weights drifted, thresholds and labels unchanged
        net.t += DAY
        counts_day = net.responses(vx)
        out["accuracy_1day"] = float((predict(counts_day, assignment) == vy).float().mean())
        out["set_pulses"] = net.syn.pulses
        out["refreshes"] = net.syn.refreshes
        out["reset_pulses"] = net.syn.resets
        out["energy"] = snn_energies(cfg, net, train_events, train_spikes, infer_events,
                                     infer_images, infer_spikes)
    ckpt.unlink(missing_ok=True)
    return out


def plot(path: Path, results: list[dict], title: str) -> None:
    """Receptive fields (input weights as 28x28 images) of every variant."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 6.4))
    axes = [axes] if len(results) == 1 else list(axes)
    for ax, res in zip(axes, results, strict=True):
        w = res["weights"]
        n = w.shape[1]
        side = math.ceil(math.sqrt(n))
        grid = torch.zeros(side * 28, side * 28)
        for i in range(n):
            r, c = divmod(i, side)
            grid[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28] = w[:, i].view(28, 28)
        ax.imshow(grid.numpy(), cmap="hot_r", vmin=0, vmax=float(w.max()))
        ax.set_title(f"{res['synapse']} synapses: test accuracy {res['accuracy']:.4f}")
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    """Run the study; write JSON, PNG and config into --out. Returns 0."""
    args = build_parser().parse_args(argv)
    if args.quick:
        tx, ty, vx, vy = load_mnist_small()
        dataset = "bundled MNIST subset (aimc.data.load_mnist_small)"
        defaults = {"neurons": 100, "train": 6000, "assign": 6000, "test": 2000}
    else:
        if args.data_dir is None:
            raise SystemExit("--data-dir is required (or use --quick)")
        tx, ty = load_mnist(args.data_dir, "train")
        vx, vy = load_mnist(args.data_dir, "test")
        dataset = "MNIST"
        defaults = {"neurons": 400, "train": 60000, "assign": 10000, "test": 10000}
    neurons = args.neurons or defaults["neurons"]
    n_train = min(args.train or defaults["train"], len(tx))
    n_assign = min(args.assign or defaults["assign"], len(tx))
    n_test = min(args.test or defaults["test"], len(vx))
    data = {"tx": tx[:max(n_train, n_assign)].flatten(1), "ty": ty[:max(n_train, n_assign)],
            "vx": vx[:n_test].flatten(1), "vy": vy[:n_test]}
    variants = [s.strip() for s in args.synapses.split(",") if s.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    configs = {v: make_config(neurons, v, args.batch, args.seed) for v in variants}
    write_text_atomic(args.out / "snn-mnist_config.json",
                      json.dumps({v: c.to_dict() for v, c in configs.items()}, indent=2)
                      + "\n")
    jobs = [{"cfg": configs[v], "variant": v, "data": data, "train": n_train, "epochs": args.epochs,
             "assign": n_assign, "out": str(args.out), "progress": not args.no_progress,
             "position": i, "checkpoint_every": args.checkpoint_every}
            for i, v in enumerate(variants)]
    started, t0 = now_utc(), time.perf_counter()
    if len(jobs) > 1:
        with mp.get_context("spawn").Pool(len(jobs)) as pool:
            results = pool.map(run_variant, jobs)
    else:
        results = [run_variant(jobs[0])]
    runtime = time.perf_counter() - t0
    rows = []
    for res in results:
        common = {"method": res["synapse"], "neurons": neurons, "train_images": res["images"],
                  "n": n_test}
        rows.append({**common, "metric": "accuracy", "mean": round(res["accuracy"], 4),
                     "t_s": 0})
        if "accuracy_1day" in res:
            rows.append({**common, "method": res["synapse"] + "+drift", "metric": "accuracy",
                         "mean": round(res["accuracy_1day"], 4), "t_s": DAY})
        rows.append({**common, "metric": "train_time_s", "mean": round(res["train_time_s"], 1)})
        rows.append({**common, "metric": "synaptic_events_per_s_train",
                     "mean": round(res["train_events"] / res["train_time_s"])})
        rows.append({**common, "metric": "synaptic_events_per_s_inference",
                     "mean": round(res["infer_events"] / res["infer_time_s"])})
        if "energy" in res:
            hw = ENERGY_HARDWARE[0]
            for readout, energy in (("adc", res["energy"][hw]),
                                    ("integrate", res["energy"][hw]["integrate"])):
                rows.append({**common, "metric": "energy_per_inference_j", "hardware": hw,
                             "readout": readout, "mean": energy["inference"]["per_image_j"]})
                rows.append({**common, "metric": "train_energy_j", "hardware": hw,
                             "readout": readout, "mean": energy["train"]["total_j"]})
    details = {r["synapse"]: {k: v for k, v in r.items() if k != "weights"} for r in results}
    command = "aimc reproduce snn-mnist " + shlex.join(argv if argv is not None
                                                       else sys.argv[1:])
    write_results(args.out / "snn-mnist.json", study="snn-mnist", command=command,
                  dataset=(f"{dataset}: {n_train} training images x {args.epochs} epoch(s), "
                           f"{n_assign} for labelling, {n_test} test"),
                  started=started, runtime_s=runtime, rows=rows, details=details,
                  note=("each variant ran in its own process with 1 thread, the two in "
                        "parallel on 2 cores; synaptic events = input spikes x neurons"))
    plot(args.out / "snn-mnist.png", results,
         f"Diehl & Cook 2015 network, {neurons} neurons, {n_train} x {args.epochs} "
         f"training images (STDP, unsupervised)")
    for res in results:
        extra = (f", 1 day later {res['accuracy_1day']:.4f}" if "accuracy_1day" in res else "")
        print(f"{res['synapse']}: test accuracy {res['accuracy']:.4f}{extra}, "
              f"training {res['train_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
