"""``aimc reproduce joshi2020``: ResNet-32 on CIFAR-10 on PCM, from 1 s to 1 year.

Reproduces the study of Joshi et al., Nat. Commun. 11, 2473 (2020) in simulation:

1. from the same pretrained ResNet-32, an FP32 fine-tune (the baseline) and a
   hardware-aware fine-tune (weight-noise injection and clipping on every analog layer,
   :func:`aimc.train_hwa`), with the same data, epochs, optimizer and LR schedule;
2. the hardware-aware network on the PCM chip model (``presets.pcm_joshi2020``): static
   DAC ranges calibrated on training images, then ``--chips`` independent chips, each
   programmed once and read at 1 s, 1 h, 1 day, 1 month and 1 year, with no
   compensation, global drift compensation (GDC), AdaBS and GDC+AdaBS (batch-norm
   statistics recomputed from training images through the drifted chip; the images get
   the training augmentation, as the trained statistics did, unless ``--adabs-clean``);
3. ablations, with GDC and GDC+AdaBS: the FP32-trained network on the same chips, and
   the hardware-aware network with its first and last layers digital;
4. energy per inference on the 90 nm-era PCM preset (``pcm90nm_joshi2020``).

Writes ``joshi2020.json`` (one row per method and time, the FP32 baseline),
``joshi2020.png``, ``joshi2020_config.json`` and the hardware-aware weights
``joshi2020_hwa_resnet32.pt`` (a plain ResNet-32 state dict) into ``--out``. Every stage
is resumable: the fine-tunes checkpoint each epoch and every finished evaluation is saved
at once (in ``--out/work``), so running the same command again continues where it
stopped. ``--quick`` is a smoke run (a few minutes on 2 cores).

On the team machines the data is the JPEG copy of CIFAR-10 (``python
../shared/data/cifar10/build.py DIR``); networks are fine-tuned and tested on it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

import torch

from .. import models, presets
from ..config import INPUT_RANGES, PAIR_PROGRAMMING, MappingConfig
from ..data import random_subset
from ..data.cifar import IMAGENET_MEAN, IMAGENET_STD, CifarLoader, load_cifar10
from ..inference import accuracy, calibrate_inputs, program
from ..nn import convert, to_digital
from ..parallel import finish_distributed, init_distributed, rank0_stdout
from ..training.hwa import HWAConfig, clip_weights, train_hwa
from . import demo, plots
from .results import Store, adc_ranges_per_chip, add_calibrate_adc, point_rows, write_study

TIMES = {"1 s": 1.0, "1 h": 3600.0, "1 day": 86_400.0, "1 month": 2_592_000.0,
         "1 year": 31_536_000.0}
METHODS = ("none", "gdc", "adabs", "gdc+adabs")
ABLATION_METHODS = ("gdc", "gdc+adabs")
# variant -> (device name in the method names, compensations)
VARIANTS = {
    "hwa": ("pcm", METHODS),
    "fp32-trained": ("fp32-trained+pcm", ABLATION_METHODS),
    "digital-ends": ("first-last-digital+pcm", ABLATION_METHODS),
}
DEFAULT_PRETRAINED = "../shared/data/pretrained/resnet32-d509ac18.th"
QUICK = {"epochs": 1, "train_images": 1000, "test_images": 500, "chips": 2,
         "ablation_chips": 1, "calib_images": 400}


@torch.no_grad()
def reestimate_bn(model: torch.nn.Module, loader: CifarLoader) -> None:
    """Recompute batch-norm running statistics (cumulative) from ``loader``, in digital."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()  # analog layers run digital in training mode
    for x, _ in loader:
        model(x)
    for bn, m in zip(bns, momenta, strict=True):
        bn.momentum = m


def _finetune(model: torch.nn.Module, loader: CifarLoader, calib: CifarLoader,
              args: argparse.Namespace, config: HWAConfig, ckpt: Path, desc: str,
              progress: bool, teacher: torch.nn.Module | None = None) -> list[dict]:
    """SGD (momentum 0.9, weight decay 1e-4), cosine LR per step, from ``args.lr`` to 0.

    A fresh start first clips the weights (HWA) and re-estimates the batch-norm
    statistics on training images: the checkpoint was trained on other pixels (the
    lossless originals), and clipping a pretrained network at 2.5 sigma shifts its
    activations; a short fine-tune alone would take many steps to re-track them. With
    the periphery in training it also calibrates the static DAC input ranges.
    """
    if not ckpt.is_file():
        clip_weights(model, config.clip_sigma)
        reestimate_bn(model, calib)
        if config.out_noise or config.dac_adc:
            # Static DAC ranges, as the chip will use: they set the unit of the output
            # noise and the ADC step (buffers, so a resume keeps them).
            calibrate_inputs(model, calib, batches=10)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, args.epochs * len(loader)))
    return train_hwa(model, loader, args.epochs, config=config, optimizer=opt,
                     scheduler=sched, checkpoint=ckpt, seed=args.seed, progress=progress,
                     desc=desc, teacher=teacher)


def fp32_config(args: argparse.Namespace) -> HWAConfig:
    """The FP32 baseline's training: no noise, no clipping, and the HWA run's ASAM radius
    unless ``--sam-scope hwa`` (the same optimizer for both, so the drop measures the
    hardware, not the optimizer)."""
    return HWAConfig(noise="none", clip_sigma=0.0,
                     sam_rho=args.sam_rho if args.sam_scope == "both" else 0.0)


def format_table(rows: list[dict], fp32: float) -> str:
    """Accuracy (%) per time and method, mean +- std over chips."""
    timed = [r for r in rows if "t_s" in r]
    methods = sorted({r["method"] for r in timed}, key=lambda m: (m.count("+"), m))
    by = {(r["method"], r["t_s"]): r for r in timed}
    lines = [f"FP32 baseline: {100 * fp32:.2f}%", ""]
    for m in methods:
        cells = []
        for label, t in TIMES.items():
            r = by.get((m, t))
            cells.append(f"{label}: {100 * r['mean']:.2f}+-{100 * r['std']:.2f}" if r
                         else f"{label}: -")
        lines.append(f"{m:>34s}  " + "  ".join(cells))
    return "\n".join(lines)


def markdown_table(rows: list[dict], fp32: float) -> str:
    """The accuracy table for docs: one line per method, mean +- std (%) per time, and the
    drop versus the FP32 baseline at 1 day."""
    timed = [r for r in rows if "t_s" in r]
    methods = sorted({r["method"] for r in timed}, key=lambda m: (m.count("+"), m))
    by = {(r["method"], r["t_s"]): r for r in timed}
    lines = ["| method | chips | " + " | ".join(TIMES) + " | drop at 1 day |",
             "|---|---|" + "---|" * (len(TIMES) + 1)]
    for m in methods:
        cells = [f"{100 * by[m, t]['mean']:.2f} +- {100 * by[m, t]['std']:.2f}"
                 if (m, t) in by else "-" for t in TIMES.values()]
        day = by.get((m, TIMES["1 day"]))
        drop = f"{100 * (fp32 - day['mean']):.2f}" if day else "-"
        n = max(r["n"] for r in timed if r["method"] == m)
        lines.append(f"| {m} | {n} | " + " | ".join(cells) + f" | {drop} |")
    return "\n".join(lines)


def plot(rows: list[dict], fp32: float, path: Path, title: str) -> None:
    """Accuracy vs time since programming (log axis), bands = std over chips, FP32 line.

    Left: the hardware-aware network with each compensation; right (zoomed): the
    compensated methods and the ablations."""
    plt = plots.pyplot()
    timed = [r for r in rows if "t_s" in r]
    methods = sorted({r["method"] for r in timed}, key=lambda m: (m.count("+"), m))
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    panels = [(axes[0], [m for m in methods if m.startswith("pcm")], "HWA network on PCM"),
              (axes[1], [m for m in methods if m != "pcm"], "compensated, and ablations")]
    for ax, chosen, subtitle in panels:
        lows = plots.accuracy_vs_time(
            ax, timed, chosen, fp32, colors=colors,
            style=lambda m: "-" if m.startswith("pcm") else "--")
        if ax is axes[1] and lows:
            ax.set_ylim(max(0.0, min(lows) - 2), 100 * fp32 + 2)
        ax.set_title(subtitle, fontsize=10)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    plots.save_figure(fig, path)


def energy_summary(amodel: torch.nn.Module) -> dict:
    """Energy per inference (one 3x32x32 image) on the 90 nm-era PCM preset."""
    return demo.energy_summary(amodel, (3, 32, 32))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aimc reproduce joshi2020",
                                description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True,
                   help="folder with cifar-10-batches-py/ (the standard python version)")
    p.add_argument("--out", default="results/joshi2020", help="output folder")
    p.add_argument("--data-label", default="CIFAR-10",
                   help='name of the data in the results, e.g. "CIFAR-10 (JPEG copy)"')
    p.add_argument("--pretrained", default=DEFAULT_PRETRAINED,
                   help="ResNet-32 checkpoint to fine-tune from (ImageNet normalisation)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK} unless given explicitly")
    p.add_argument("--epochs", type=int, help="fine-tune epochs of each network (default 10)")
    p.add_argument("--lr", type=float, default=0.01, help="initial LR, cosine to 0")
    p.add_argument("--batch", type=int, default=128, help="training batch size")
    p.add_argument("--train-images", type=int, help="training images used (default all)")
    p.add_argument("--test-images", type=int, help="test images used (default all)")
    p.add_argument("--calib-images", type=int,
                   help="training images for DAC ranges and AdaBS (default 2000)")
    p.add_argument("--chips", type=int, help="chips of the main study (default 5)")
    p.add_argument("--ablation-chips", type=int, help="chips of each ablation (default 5)")
    p.add_argument("--noise", default="pcm-drift", choices=("gaussian", "pcm", "pcm-drift"),
                   help="HWA weight-noise kind (aimc.training.HWAConfig.noise)")
    p.add_argument("--pcm-scale", type=float, default=1.0,
                   help="scale of the 'pcm' and 'pcm-drift' noise (HWAConfig.pcm_scale)")
    p.add_argument("--eta", type=float, default=0.04, help="HWA noise std / max|W|")
    p.add_argument("--clip-sigma", type=float, default=2.5, help="HWA weight clipping")
    p.add_argument("--distill", type=float, default=0.0,
                   help="weight of distillation from the FP32 fine-tuned network in HWA "
                        "training (HWAConfig.distill; 0 = off)")
    p.add_argument("--sam-rho", type=float, default=0.0,
                   help="adaptive sharpness-aware minimisation radius (HWAConfig.sam_rho; "
                        "0 = off; doubles the training time)")
    p.add_argument("--sam-scope", default="both", choices=("both", "hwa"),
                   help="which fine-tunes use --sam-rho: 'both' (the FP32 baseline too: the "
                        "same optimizer for both, the fair drop) or 'hwa' (the HWA one only)")
    p.add_argument("--pairs", type=int, default=1,
                   help="differential pairs per weight on the chip (MappingConfig.pairs; "
                        "2 = 4 PCM devices per weight, Mackin 2019); the HWA noise follows")
    p.add_argument("--pair-programming", default="open", choices=PAIR_PROGRAMMING,
                   help="MappingConfig.pair_programming with --pairs > 1")
    p.add_argument("--input-range", default="static", choices=INPUT_RANGES,
                   help="the chip's DAC input ranges (TileConfig.input_range): 'static', one "
                        "per layer calibrated on training images, or 'dynamic', each input "
                        "vector scaled by its own max|x| (pcm-model.md sec. 5; several "
                        "times slower to evaluate)")
    p.add_argument("--bn-stats", default="batch", choices=("batch", "running", "frozen"),
                   help="what batch norm normalises with in HWA training "
                        "(HWAConfig.bn_stats)")
    p.add_argument("--hwa-periphery", action="store_true",
                   help="HWA training also simulates the DAC/ADC and the output noise")
    add_calibrate_adc(p, "the DAC-range calibration images")
    p.add_argument("--adabs-clean", action="store_true",
                   help="AdaBS calibration images without the training augmentation "
                        "(costs about 2 points: docs/joshi2020.md)")
    p.add_argument("--adabs-augment", action="store_true",
                   help="AdaBS images with the training crop+flip: the default now; "
                        "accepted so that older commands still run")
    p.add_argument("--digital", nargs="+", default=[], metavar="MODULE",
                   help="modules kept digital in the PCM networks and in the HWA training, "
                        "e.g. conv1 layer1 linear (a mixed chip); the first/last-digital "
                        "ablation adds conv1 and linear")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--distributed", action="store_true",
                   help="under torchrun: the processes share each training batch and the "
                        "chips (gloo); rank 0 writes (torchrun --nproc-per-node N -m "
                        "aimc.cli reproduce joshi2020 --distributed ...)")
    p.add_argument("--stop-after", choices=["fp32", "hwa"],
                   help="stop after this fine-tune (e.g. FP32 baselines over training "
                        "seeds); the same command without it resumes the study")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _resolve(args: argparse.Namespace) -> dict[str, Any]:
    full = {"epochs": 10, "train_images": 0, "test_images": 0, "chips": 5,
            "ablation_chips": 5, "calib_images": 2000}
    for key, value in (QUICK if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("epochs", "chips", "ablation_chips", "calib_images", "batch"):
        if getattr(args, key) < 1:
            raise SystemExit(f"--{key.replace('_', '-')} must be >= 1")
    study = {k: getattr(args, k) for k in (
        "pretrained", "epochs", "lr", "batch", "train_images", "test_images", "calib_images",
        "chips", "ablation_chips", "noise", "eta", "clip_sigma", "seed")}
    try:  # fail now, not after the FP32 fine-tune
        HWAConfig(noise=args.noise, eta=args.eta, pcm_scale=args.pcm_scale,
                  clip_sigma=args.clip_sigma, bn_stats=args.bn_stats, distill=args.distill,
                  sam_rho=args.sam_rho)
    except ValueError as err:
        field = re.search(r"HWAConfig\.(\w+)", str(err))
        flag = f"--{field.group(1).replace('_', '-')}: " if field else ""
        raise SystemExit(f"{flag}{err}") from err
    if args.adabs_clean and args.adabs_augment:
        raise SystemExit("--adabs-clean and --adabs-augment exclude each other")
    args.adabs_augment = not args.adabs_clean
    # Only when set: runs made before these options stay resumable.
    for key in ("adabs_augment", "hwa_periphery", "calibrate_adc"):
        if getattr(args, key):
            study[key] = True
    if args.pcm_scale != 1.0:
        study["pcm_scale"] = args.pcm_scale
    if args.bn_stats != "batch":
        study["bn_stats"] = args.bn_stats
    if args.distill:
        study["distill"] = args.distill
    if args.sam_rho:
        study["sam_rho"] = args.sam_rho
        study["sam_scope"] = args.sam_scope
    if args.pairs != 1 or args.pair_programming != "open":
        try:
            MappingConfig(pairs=args.pairs)
        except ValueError as err:
            raise SystemExit(f"--pairs: {err}") from err
        study["pairs"], study["pair_programming"] = args.pairs, args.pair_programming
    if args.input_range != "static":
        study["input_range"] = args.input_range
    if args.digital:
        names = {n for n, _ in models.resnet32_cifar().named_modules() if n}
        unknown = sorted(set(args.digital) - names)
        if unknown:
            raise SystemExit(f"--digital: no module named {unknown} in the ResNet-32; names "
                             f"look like conv1, layer1, layer1.0.conv1, linear")
        study["digital"] = sorted(set(args.digital))
    return study


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    study = _resolve(args)
    torch.set_num_threads(args.threads)
    if not args.distributed:
        return _study(args, argv, study, 0, 1)
    rank, world = init_distributed("aimc reproduce joshi2020")
    with rank0_stdout():  # rank 0 speaks for the run
        code = _study(args, argv, study, rank, world)
    finish_distributed()  # (a failed rank ends the run: torchrun stops the others)
    return code


def _study(args: argparse.Namespace, argv: list[str] | None, study: dict[str, Any],
           rank: int, world: int) -> int:
    """The study, in one process or as rank ``rank`` of ``world`` (:func:`main`)."""
    progress = not args.no_progress and rank == 0
    out = Path(args.out)
    store = Store(out / "work" / "state.json", study, writer=rank == 0)
    work, started, runtime = store.path.parent, store.get("started"), store.runtime

    # -- data --------------------------------------------------------------------------------
    try:
        x, y = load_cifar10(args.data_dir, "train")
        xt, yt = load_cifar10(args.data_dir, "test")
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"aimc reproduce joshi2020: {err}") from err
    x, y = random_subset(x, y, args.train_images, args.seed)
    xt, yt = random_subset(xt, yt, args.test_images, args.seed + 1)
    xc, yc = random_subset(x, y, args.calib_images, args.seed + 2)
    norm = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    train = CifarLoader(x, y, args.batch, shuffle=True, augment=True, seed=args.seed,
                        drop_last=len(y) > args.batch, shard=(rank, world) if world > 1
                        else None, **norm)
    # Batches of 100 keep each activation under glibc's mmap threshold: 1.7x faster here.
    test = CifarLoader(xt, yt, 100, **norm)
    calib = CifarLoader(xc, yc, 200, **norm)
    # The same images each call (the loader reseeds per pass), augmented if asked.
    calib_adabs = CifarLoader(xc, yc, 200, augment=args.adabs_augment, seed=args.seed,
                              **norm)
    dataset = f"{args.data_label}, {len(y)} train / {len(yt)} test images"

    # -- networks ----------------------------------------------------------------------------
    if not Path(args.pretrained).is_file():
        raise SystemExit(f"aimc reproduce joshi2020: no checkpoint at {args.pretrained} "
                         "(--pretrained)")
    base = models.resnet32_cifar(args.pretrained)
    if store.get("pretrained_accuracy") is None:
        store.set("pretrained_accuracy", accuracy(base, test))
    print(f"pretrained ResNet-32 on this test set: {100 * store.get('pretrained_accuracy'):.2f}%")

    fp32 = copy.deepcopy(base)
    fp32_cfg = fp32_config(args)
    fp32_hist = _finetune(fp32, train, calib, args, fp32_cfg,
                          work / "fp32.ckpt.pt", "FP32 fine-tune", progress)
    if store.get("fp32_accuracy") is None:
        store.set("fp32_accuracy", accuracy(fp32, test))
    fp32_acc = store.get("fp32_accuracy")
    print(f"FP32 fine-tuned: {100 * fp32_acc:.2f}%")
    if args.stop_after == "fp32":
        store.set("runtime_s", runtime())
        print(f"stopped after the FP32 fine-tune (--stop-after); its state is in {work}")
        return 0

    cfg = presets.pcm_joshi2020()
    cfg = dataclasses.replace(
        cfg, mapping=dataclasses.replace(cfg.mapping, pairs=args.pairs,
                                         pair_programming=args.pair_programming),
        tile=dataclasses.replace(cfg.tile, input_range=args.input_range))
    hwa_cfg = HWAConfig(noise=args.noise, eta=args.eta, pcm_scale=args.pcm_scale,
                        clip_sigma=args.clip_sigma, bn_stats=args.bn_stats,
                        distill=args.distill, sam_rho=args.sam_rho,
                        dac_adc=args.hwa_periphery, out_noise=args.hwa_periphery)
    digital = sorted(set(args.digital))  # modules kept digital, with all their layers
    hwa = convert(base, cfg, digital=digital)
    hwa_hist = _finetune(hwa, train, calib, args, hwa_cfg, work / "hwa.ckpt.pt", "HWA fine-tune",
                         progress, teacher=fp32 if args.distill else None)
    hwa_digital = to_digital(hwa).eval()
    if store.get("hwa_digital_accuracy") is None:
        store.set("hwa_digital_accuracy", accuracy(hwa_digital, test))
    print(f"HWA fine-tuned, digital: {100 * store.get('hwa_digital_accuracy'):.2f}%")
    if rank == 0:
        torch.save(hwa_digital.state_dict(), out / ".joshi2020_hwa_resnet32.pt.tmp")
        (out / ".joshi2020_hwa_resnet32.pt.tmp").replace(out / "joshi2020_hwa_resnet32.pt")
    store.set("runtime_s", runtime())
    if args.stop_after == "hwa":
        print(f"stopped after the HWA fine-tune (--stop-after); its state is in {work}")
        return 0

    # -- PCM evaluation ----------------------------------------------------------------------
    nets = {
        "hwa": (hwa, args.chips),
        "fp32-trained": (convert(fp32, cfg, digital=digital), args.ablation_chips),
        "digital-ends": (convert(hwa_digital, cfg,
                                 digital=sorted({*digital, "conv1", "linear"})),
                         args.ablation_chips),
    }
    rows: list[dict] = []
    set_up = adc_ranges_per_chip(calib) if args.calibrate_adc else None
    for variant, (net, chips) in nets.items():
        device_name, methods = VARIANTS[variant]
        net.eval()
        calibrate_inputs(net, calib, batches=len(calib))
        print(f"evaluating {variant}: {chips} chips x {len(TIMES)} times x {len(methods)} "
              "methods")
        rows += store.over_time(variant, net, test, list(TIMES.values()), chips=chips,
                                compensation=methods, seed=args.seed,
                                device_name=device_name, progress=progress,
                                calib_loader=calib_adabs,
                                on_program=set_up)
    if rank:  # rank 0 writes the results
        return 0
    # The read energy uses programmed conductances: those of chip 0, whatever chip the
    # evaluation left programmed (none when every value was resumed).
    for variant in ("hwa", "digital-ends"):
        program(nets[variant][0], seed=args.seed)
    energy = {"all-analog" if not digital else "main": energy_summary(nets["hwa"][0]),
              "first-last-digital": energy_summary(nets["digital-ends"][0])}
    # AdaBS runs its calibration images through the chip at every time it is applied
    # (Joshi et al. 2020, Methods): that cost, on the main chip, next to the per-inference one.
    main_e = energy["all-analog" if not digital else "main"]
    energy["adabs-calibration"] = {
        "images": args.calib_images,
        "energy_j": args.calib_images * main_e["energy_per_inference_j"],
        "latency_s": args.calib_images * main_e["latency_s"],
        "note": "one AdaBS re-calibration: its images through the main chip (inference "
                "cost per image; the batch-norm statistics themselves are digital)"}

    # -- results -----------------------------------------------------------------------------
    rows += point_rows({"fp32": fp32_acc, "pretrained": store.get("pretrained_accuracy"),
                        "hwa-digital": store.get("hwa_digital_accuracy")})
    print(format_table(rows, fp32_acc))
    print("\n" + markdown_table(rows, fp32_acc))
    print(f"\nenergy per inference on {main_e['hardware']}: "
          f"{1e6 * main_e['energy_per_inference_j']:.2f} uJ, "
          f"{main_e['tops_per_w']:.2f} TOP/s/W; one AdaBS re-calibration "
          f"({args.calib_images} images): {1e3 * energy['adabs-calibration']['energy_j']:.2f} mJ")
    store.set("runtime_s", runtime())
    config = {"study": study, "analog": cfg.to_dict(), "hwa": hwa_cfg.to_dict(),
              "fp32": fp32_cfg.to_dict(),
              "times_s": TIMES, "methods": {k: list(v[1]) for k, v in VARIANTS.items()},
              "normalisation": norm,
              "optimizer": "SGD momentum 0.9, weight decay 1e-4, cosine LR per step",
              "augmentation": "random crop (pad 4), horizontal flip"}
    kept = f"; kept digital: {', '.join(study['digital'])}" if "digital" in study else ""
    plot(rows, fp32_acc, out / "joshi2020.png",
         f"ResNet-32, {dataset}; PCM model of Joshi et al. 2020{kept}; mean +- std over chips")
    write_study(
        out, "joshi2020", argv, config=config, dataset=dataset, started=started,
        runtime_s=runtime(),
        baseline={"name": "fp32", "accuracy": fp32_acc,
                  "note": "FP32 fine-tune from the same checkpoint with the same budget"},
        rows=rows, energy=energy, training={"fp32": fp32_hist, "hwa": hwa_hist},
        hwa_checkpoint="joshi2020_hwa_resnet32.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
