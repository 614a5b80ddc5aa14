"""The probes behind docs/joshi2020.md's "What we learned" (ResNet-32, CIFAR-10 JPEG copy).

``sweep ETA PERIPHERY EPOCHS [--noise KIND --pcm-scale S --out-noise --lr LR --bn-stats B
--distill A --teacher FILE --clip-sigma K --sam-rho R --seed S]``:
an HWA fine-tune from the pretrained checkpoint with the study's recipe
(joshi2020._finetune), then GDC accuracy at 1 s and 1 day (and GDC+AdaBS, as the study
calibrates it) on 3 chips and the first 3,000 test images; appends one JSON line to
``--out``.
``--trained FILE`` evaluates an already trained network that way instead.

``components CHECKPOINT``: the HWA network on 2 chips, 2,000 test images, GDC at 1 s and
1 day, with each non-ideality of the PCM preset removed in turn (drift variability, the
state dependence of the mean drift, read noise, programming noise, the tile periphery,
its output noise alone, its DAC and ADC alone) or a mapping changed (per-column scales,
two pairs per weight open or closed loop); prints one line per case (``--adabs``: also
GDC+AdaBS, calibrated as the study does).

``gdc CHECKPOINT``: GDC with one factor per layer against one per output column, on the
study's 5 chips at 1 s, 1 day and 1 year, 2,000 test images; one line per chip and time.

``noise-scale CHECKPOINT [--factors F ...]``: the HWA network on 3 chips, 3,000 test
images, GDC and GDC+AdaBS at 1 s and 1 day, with every stochastic non-ideality of the PCM
preset (programming noise, read noise, drift variability, output noise) multiplied by one
factor F; the mean drift and the DAC/ADC stay. It measures how far the chip's noise must
fall before the drop at one day meets a target; prints one JSON line per factor.

``input-range CHECKPOINT [--quantiles Q ... --dynamic]``: the network on the PCM preset
with the static DAC input ranges calibrated at each quantile of |input| (1 = the maximum;
the study uses 0.9999), evaluated as ``noise-scale`` does; ``--dynamic`` adds each input
vector scaled by its own max|x|. A lower quantile lifts the signal over the fixed output
noise at the price of clipping the largest inputs.

``bntime CHECKPOINT [--times T ...]``: the network's batch-norm statistics re-estimated
in software (no chip) from 5,120 crop+flip training images with the pcm-drift weight
noise fixed at age T (a fresh draw per batch), then evaluated as ``noise-scale`` does
(GDC and GDC+AdaBS at 1 s and 1 day); T = 0 keeps the trained statistics. It asks
whether statistics matched to the deployment age help GDC alone.

``layers CHECKPOINT [--chips N --time T]``: which layers the GDC loss comes from. On each
chip at age T (GDC, the first 3,000 test images), every analog layer in turn holds its
exact target weights (no device non-ideality; its DAC, ADC and output noise stay), and
then every layer but that one does; prints one JSON line per chip and layer
(``--stages``: the ResNet's three stages exact in turn instead).

``mixed CHECKPOINT``: mixed chips (``aimc.convert(..., overrides=...)``): the first stage
(conv1 and layer1, 5% of the weights) on two device pairs per weight (closed loop) or
digital (with or without the last layer), against one pair everywhere and the study's
first/last-digital ablation;
evaluated as ``noise-scale`` does; prints one JSON line per case.

``adabs-once CHECKPOINT [--digital MODULE ... --cal-time T]``: AdaBS once, at
programming, instead of at every time: on 3 chips (the first 3,000 test images) the
batch-norm statistics are recomputed through the chip at age T (GDC on) and then kept,
with GDC alone re-applied at 1 s, 1 h, 1 day and 1 year; against GDC alone and GDC+AdaBS
at each time. It asks how much of AdaBS's gain is fixing the chip's static (programming)
errors, which one calibration at deployment would buy. ``--digital`` as in the study.

``adc CHECKPOINT [--times T ...]``: how often the ADC saturates: per analog layer, the
share of its conversions at the bound (``aimc.adc_saturation``) on chip 0 at each age T
with GDC (ahead of the ADC, as the study), the first 1,000 test images; prints the
largest shares and the mean over layers per time.

``adc-range CHECKPOINT [--margins M ...]``: the ADC range of the PCM preset (10
normalised units for every layer) against each layer's range calibrated on each chip
right after programming (``aimc.calibrate_outputs``: the 0.9999 quantile of |ADC input|
on the 2,000 calibration images, times M); evaluated as ``noise-scale`` does.

``bnstats CHECKPOINT``: in digital, the network's batch-norm statistics re-estimated (as
AdaBS does) from clean or crop+flip training images, or from 2,000 clean test images;
accuracy on the other 8,000 test images; prints one line per case.

``lossless CHECKPOINT ... [--lossless FILE --chips N]``: the same networks on the same
1,000 test images in two pixel versions: the lossless originals (``lossless_subset.npz``
of ../shared/data/cifar10, test images 0-999) and their JPEG copies (the data set of the
study). The DAC ranges and AdaBS use training images 0-3,999 of the same version. GDC at
1 s and 1 day and GDC+AdaBS on N chips (default 10); one JSON line per network and
version. It asks whether the drop on the chip depends on the pixels the network sees:
the targets of issue 3 come from networks trained and tested on the lossless set.
A CHECKPOINT is a plain ResNet-32 state dict or an FP32 training checkpoint (a study's
``work/fp32.ckpt.pt``).

    python benchmarks/joshi2020_probes.py --data-dir /tmp/aimc-cifar10 sweep 0.04 0 2
    python benchmarks/joshi2020_probes.py --data-dir /tmp/aimc-cifar10 components \\
        docs/results/joshi2020-gauss3ep_hwa_resnet32.pt          # or bnstats
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

import aimc
from aimc.config import AnalogConfig, MappingConfig, TileConfig
from aimc.data import random_subset
from aimc.data.cifar import IMAGENET_MEAN, IMAGENET_STD, CifarLoader, load_cifar10
from aimc.devices import PCM
from aimc.experiments.joshi2020 import DEFAULT_PRETRAINED, _finetune, reestimate_bn
from aimc.functional import tile as ft
from aimc.nn import batch_norms
from aimc.training.hwa import CHECKPOINT_FORMAT, HWAConfig, prepare_hwa, remove_hwa

NORM = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}


def _gdc_accuracy(net: torch.nn.Module, test: CifarLoader, chips: int,
                  adabs: CifarLoader | None = None,
                  setup: Callable[[torch.nn.Module], object] | None = None
                  ) -> dict[str, float]:
    """Mean GDC accuracy over ``chips`` chips at 1 s and 1 day ("1.0", "86400.0"); with
    ``adabs`` (calibration images) also GDC+AdaBS ("1.0 gdc+adabs", ...). ``setup(net)``
    runs on each chip right after it is programmed."""
    acc: dict[str, list[float]] = {}
    for seed in range(chips):
        aimc.program(net, seed=seed)
        if setup is not None:
            setup(net)
        for t in (1.0, 86_400.0):
            aimc.drift(net, t)
            aimc.compensate(net, "gdc")
            acc.setdefault(str(t), []).append(aimc.accuracy(net, test))
            if adabs is not None:
                aimc.compensate(net, "gdc+adabs", loader=adabs)
                acc.setdefault(f"{t} gdc+adabs", []).append(aimc.accuracy(net, test))
    return {k: sum(v) / len(v) for k, v in acc.items()}


def _protocol(data_dir: str) -> tuple[torch.Tensor, torch.Tensor, CifarLoader, CifarLoader,
                                       CifarLoader]:
    """The probe protocol's data: all training images (x, y); 2,000 of them for the DAC
    ranges (calib) and, with crop+flip as the study's AdaBS sees them (adabs); the first
    3,000 test images (test)."""
    x, y = load_cifar10(data_dir, "train")
    xt, yt = load_cifar10(data_dir, "test")
    xc, yc = random_subset(x, y, 2000, 2)
    return (x, y, CifarLoader(xc, yc, 200, **NORM),
            CifarLoader(xc, yc, 200, augment=True, seed=0, **NORM),
            CifarLoader(xt[:3000], yt[:3000], 100, **NORM))


def sweep(args: argparse.Namespace) -> None:
    x, y, calib, adabs, test = _protocol(args.data_dir)
    train = CifarLoader(x, y, 128, shuffle=True, augment=True, seed=args.seed, drop_last=True,
                        **NORM)
    # --trained: a plain ResNet-32 state dict, or a sweep's own training checkpoint.
    state = torch.load(args.trained, weights_only=True) if args.trained else None
    sweep_ckpt = isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT
    plain = args.trained if args.trained and not sweep_ckpt else DEFAULT_PRETRAINED
    if args.from_scratch and not args.trained:
        torch.manual_seed(args.seed)  # the initial weights
        plain = None
    net = aimc.convert(aimc.models.resnet32_cifar(plain), aimc.presets.pcm_joshi2020())
    if sweep_ckpt:
        net.load_state_dict(state["model"])
    per = bool(args.periphery)
    hwa = HWAConfig(noise=args.noise, eta=args.eta, pcm_scale=args.pcm_scale,
                    clip_sigma=args.clip_sigma,
                    dac_adc=per, out_noise=per or args.out_noise, bn_stats=args.bn_stats,
                    distill=args.distill, sam_rho=args.sam_rho)
    tag = "" if args.noise == "gaussian" else f"_{args.noise}{args.pcm_scale}"
    tag += "_outnoise" if args.out_noise and not per else ""
    tag += f"_lr{args.lr}" if args.lr != 0.01 else ""
    tag += f"_bn{args.bn_stats}" if args.bn_stats != "batch" else ""
    tag += f"_distill{args.distill}" if args.distill else ""
    tag += f"_clip{args.clip_sigma}" if args.clip_sigma != 2.5 else ""
    tag += f"_sam{args.sam_rho}" if args.sam_rho else ""
    tag += f"_seed{args.seed}" if args.seed else ""
    tag += "_scratch" if args.from_scratch else ""
    teacher = None
    if args.distill:
        if not args.teacher:
            raise SystemExit("--distill needs --teacher")
        teacher = aimc.models.resnet32_cifar()
        t_state = torch.load(args.teacher, weights_only=True)
        teacher.load_state_dict(t_state["model"] if t_state.get("format") == CHECKPOINT_FORMAT
                                else t_state)
    ckpt = Path(args.work) / f"sweep_{args.eta}_{int(per)}_{args.epochs}{tag}.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if not args.trained:
        _finetune(net, train, calib,
                  argparse.Namespace(lr=args.lr, epochs=args.epochs, seed=args.seed),
                  hwa, ckpt, "hwa", False, teacher=teacher)
    train_s = time.time() - start
    net.eval()
    digital = aimc.accuracy(aimc.to_digital(net).eval(), test)
    aimc.calibrate_inputs(net, calib, batches=10)
    acc = _gdc_accuracy(net, test, chips=3, adabs=adabs)
    row = {"noise": args.noise, "pcm_scale": args.pcm_scale, "eta": args.eta,
           "periphery": per, **({"out_noise": True} if args.out_noise else {}),
           **({"bn_stats": args.bn_stats} if args.bn_stats != "batch" else {}),
           **({"distill": args.distill, "teacher": args.teacher} if args.distill else {}),
           **({"clip_sigma": args.clip_sigma} if args.clip_sigma != 2.5 else {}),
           **({"sam_rho": args.sam_rho} if args.sam_rho else {}),
           **({"seed": args.seed} if args.seed else {}),
           **({"from_scratch": True} if args.from_scratch else {}),
           "epochs": args.epochs, **({"lr": args.lr} if args.lr != 0.01 else {}),
           "train_s": train_s, "digital": digital,
           **acc}
    if args.trained:  # evaluated only; the settings above describe how it was trained
        row = {"trained": args.trained, **row, "train_s": None}
    print(json.dumps(row), flush=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")


def _calib_and_test(data_dir: str) -> tuple[CifarLoader, CifarLoader]:
    """2,000 training images for the DAC ranges, the first 2,000 test images."""
    x, y = load_cifar10(data_dir, "train")
    xt, yt = load_cifar10(data_dir, "test")
    xc, yc = random_subset(x, y, 2000, 2)
    return (CifarLoader(xc, yc, 200, **NORM),
            CifarLoader(xt[:2000], yt[:2000], 100, **NORM))


def components(args: argparse.Namespace) -> None:
    calib, test = _calib_and_test(args.data_dir)
    adabs = None
    if args.adabs:  # the study's AdaBS images: 2,000 crop+flip training images
        x, y = load_cifar10(args.data_dir, "train")
        adabs = CifarLoader(*random_subset(x, y, 2000, 2), 200, augment=True, seed=0, **NORM)
    net = aimc.models.resnet32_cifar(args.checkpoint).eval()
    print("digital", aimc.accuracy(net, test), flush=True)
    pcm = aimc.presets.pcm_joshi2020()
    no_var = {"drift_sigma_a": 0.0, "drift_sigma_b": 0.0, "drift_sigma_min": 0.0,
              "drift_sigma_max": 0.0}
    ideal_tile = TileConfig(dac_bits=0, adc_bits=0, out_bound=0.0, out_noise=0.0,
                            input_range="dynamic")
    cases: dict[str, AnalogConfig] = {
        "full": pcm,
        "column scaling": dataclasses.replace(
            pcm, mapping=MappingConfig(weight_scaling="column", digital_bias=True)),
        "no drift variability": dataclasses.replace(pcm, device=PCM(**no_var)),
        # every device drifts with the mean exponent of a half-range one (mu_nu(0.5)):
        # the state dependence of the mean drift, which one GDC factor cannot undo, is gone
        "state-independent mean drift": dataclasses.replace(
            pcm, device=PCM(drift_mu_a=0.0, drift_mu_b=float(PCM().drift_stats(
                torch.tensor([0.5 * PCM().g_max]))[0]))),
        "no read noise": dataclasses.replace(pcm, device=PCM(read_noise_scale=0.0)),
        "no programming noise": dataclasses.replace(pcm, device=PCM(prog_noise_scale=0.0)),
        # several differential pairs per weight (MappingConfig.pairs; Mackin 2019)
        "two pairs (4 devices)": dataclasses.replace(
            pcm, mapping=dataclasses.replace(pcm.mapping, pairs=2)),
        "two pairs, closed loop": dataclasses.replace(
            pcm, mapping=dataclasses.replace(pcm.mapping, pairs=2, pair_programming="closed")),
        "two pairs F=3, closed loop": dataclasses.replace(
            pcm, mapping=dataclasses.replace(pcm.mapping, pairs=2, pair_gain=3.0,
                                             pair_programming="closed")),
        "ideal periphery": dataclasses.replace(pcm, tile=ideal_tile),
        "no output noise": dataclasses.replace(
            pcm, tile=dataclasses.replace(pcm.tile, out_noise=0.0)),
        "exact DAC and ADC": dataclasses.replace(
            pcm, tile=dataclasses.replace(pcm.tile, dac_bits=0, adc_bits=0)),
    }
    unknown = set(args.cases or ()) - set(cases)
    if unknown:
        raise SystemExit(f"unknown --cases {sorted(unknown)}; choose from {list(cases)}")
    for name, cfg in cases.items():
        if args.cases and name not in args.cases:
            continue
        analog = aimc.convert(net, cfg)
        if cfg.tile.input_range == "static":
            aimc.calibrate_inputs(analog, calib, batches=10)
        acc = _gdc_accuracy(analog, test, chips=2, adabs=adabs)
        line = f"{name:22s} 1 s {acc['1.0']:.4f}  1 day {acc['86400.0']:.4f}"
        if adabs is not None:
            line += f"  GDC+AdaBS 1 s {acc['1.0 gdc+adabs']:.4f}  1 day " \
                    f"{acc['86400.0 gdc+adabs']:.4f}"
        print(line, flush=True)


def gdc(args: argparse.Namespace) -> None:
    calib, test = _calib_and_test(args.data_dir)
    net = aimc.convert(aimc.models.resnet32_cifar(args.checkpoint),
                       aimc.presets.pcm_joshi2020()).eval()
    aimc.calibrate_inputs(net, calib, batches=10)
    for chip in range(5):
        aimc.program(net, seed=chip)  # the study's chips: seed + c with seed 0
        for t in (1.0, 86_400.0, 31_536_000.0):
            aimc.drift(net, t)
            per_layer = aimc.accuracy(aimc.compensate(net, "gdc"), test)
            per_column = aimc.accuracy(aimc.compensate(net, "gdc", per_column=True), test)
            print(f"chip {chip}  t {t:>10.0f} s  GDC per layer {per_layer:.4f}  "
                  f"per column {per_column:.4f}", flush=True)


def scaled_noise(cfg: AnalogConfig, factor: float) -> AnalogConfig:
    """``cfg`` with programming noise, read noise, drift-exponent spread (sigma_nu and its
    clip bounds, so sigma_nu itself scales) and output noise all multiplied by
    ``factor``."""
    d = cfg.device
    device = dataclasses.replace(
        d, prog_noise_scale=d.prog_noise_scale * factor,
        read_noise_scale=d.read_noise_scale * factor,
        drift_sigma_a=d.drift_sigma_a * factor, drift_sigma_b=d.drift_sigma_b * factor,
        drift_sigma_min=d.drift_sigma_min * factor, drift_sigma_max=d.drift_sigma_max * factor)
    tile = dataclasses.replace(cfg.tile, out_noise=cfg.tile.out_noise * factor)
    return dataclasses.replace(cfg, device=device, tile=tile)


def noise_scale(args: argparse.Namespace) -> None:
    _, _, calib, adabs, test = _protocol(args.data_dir)
    net = aimc.models.resnet32_cifar(args.checkpoint).eval()
    digital = aimc.accuracy(net, test)
    for factor in args.factors:
        analog = aimc.convert(net, scaled_noise(aimc.presets.pcm_joshi2020(), factor))
        aimc.calibrate_inputs(analog, calib, batches=10)
        acc = _gdc_accuracy(analog, test, chips=3, adabs=adabs)
        print(json.dumps({"checkpoint": args.checkpoint, "noise_factor": factor,
                          "digital": digital, **acc}), flush=True)


def input_range(args: argparse.Namespace) -> None:
    _, _, calib, adabs, test = _protocol(args.data_dir)
    net = aimc.models.resnet32_cifar(args.checkpoint).eval()
    pcm = aimc.presets.pcm_joshi2020()
    for q in args.quantiles:
        analog = aimc.convert(net, pcm)
        aimc.calibrate_inputs(analog, calib, batches=10, quantile=q)
        acc = _gdc_accuracy(analog, test, chips=3, adabs=adabs)
        print(json.dumps({"checkpoint": args.checkpoint, "input_range": f"quantile {q}",
                          **acc}), flush=True)
    if args.dynamic:
        analog = aimc.convert(net, dataclasses.replace(
            pcm, tile=dataclasses.replace(pcm.tile, input_range="dynamic")))
        acc = _gdc_accuracy(analog, test, chips=3, adabs=adabs)
        print(json.dumps({"checkpoint": args.checkpoint, "input_range": "dynamic", **acc}),
              flush=True)


def adc_range(args: argparse.Namespace) -> None:
    _, _, calib, adabs, test = _protocol(args.data_dir)
    net = aimc.models.resnet32_cifar(args.checkpoint).eval()
    analog = aimc.convert(net, aimc.presets.pcm_joshi2020())
    aimc.calibrate_inputs(analog, calib, batches=10)
    acc = _gdc_accuracy(analog, test, chips=3, adabs=adabs)
    print(json.dumps({"checkpoint": args.checkpoint, "adc_range": "preset (10)", **acc}),
          flush=True)
    for margin in args.margins:
        ranges: list[dict[str, float]] = []

        def setup(m: torch.nn.Module, g: float = margin,
                  out: list[dict[str, float]] = ranges) -> None:
            out.append(aimc.calibrate_outputs(m, calib, margin=g))

        acc = _gdc_accuracy(analog, test, chips=3, adabs=adabs, setup=setup)
        bounds = [b for r in ranges for b in r.values()]
        print(json.dumps({"checkpoint": args.checkpoint,
                          "adc_range": f"calibrated per layer and chip, margin {margin}",
                          "ranges_min_median_max": [min(bounds),
                                                    sorted(bounds)[len(bounds) // 2],
                                                    max(bounds)], **acc}), flush=True)


def bntime(args: argparse.Namespace) -> None:
    x, y, calib, adabs, test = _protocol(args.data_dir)
    xb, yb = random_subset(x, y, 5120, 3)
    base = aimc.convert(aimc.models.resnet32_cifar(args.checkpoint),
                        aimc.presets.pcm_joshi2020(), digital=args.digital or ())
    trained = {k: v.clone() for k, v in base.state_dict().items()}
    for t in args.times:
        base.load_state_dict(trained)
        if t > 0:
            prepare_hwa(base, HWAConfig(noise="pcm-drift", t_min=t, t_max=t, clip_sigma=0.0),
                        seed=1)
            with torch.no_grad():
                reestimate_bn(base, CifarLoader(xb, yb, 128, augment=True, seed=1, **NORM))
            remove_hwa(base)
        net = base.eval()
        digital = aimc.accuracy(aimc.to_digital(net).eval(), test)
        aimc.calibrate_inputs(net, calib, batches=10)
        acc = _gdc_accuracy(net, test, chips=3, adabs=adabs)
        print(json.dumps({"checkpoint": args.checkpoint, "bn_time_s": t,
                          **({"digital_modules": args.digital} if args.digital else {}),
                          "digital": digital, **acc}), flush=True)


def _exact_weights(layer: torch.nn.Module) -> None:
    """Replace a programmed layer's read weights by its exact mapped targets, alpha 1."""
    geo = layer.geometry()
    scale = layer.w_scale.unsqueeze(-1)
    w = ft.tile_weights(layer.weight_matrix().detach().float(), geo.n_tiles, geo.tile_rows)
    layer.w_tiles = w / scale
    if layer.analog_bias:
        layer.b_tiles = (layer.bias.detach().float().reshape(geo.groups, geo.out_g)
                         / layer.w_scale[:, -1])
    if layer.alpha.numel():
        layer.alpha = torch.ones_like(layer.alpha)


def layers(args: argparse.Namespace) -> None:
    _, _, calib, _, test = _protocol(args.data_dir)
    net = aimc.convert(aimc.models.resnet32_cifar(args.checkpoint),
                       aimc.presets.pcm_joshi2020()).eval()
    aimc.calibrate_inputs(net, calib, batches=10)
    analog = list(aimc.analog_layers(net))
    for chip in range(args.chips):
        aimc.program(net, seed=chip)

        def read() -> None:
            aimc.drift(net, args.time)
            aimc.compensate(net, "gdc")

        read()
        base = aimc.accuracy(net, test)
        read()  # restart the output-noise stream, so that every case below sees the same
        for _, layer in analog:
            _exact_weights(layer)
        all_exact = aimc.accuracy(net, test)  # the periphery alone
        if args.stages:  # whole stages of the ResNet exact instead of single layers
            for stage in ("conv1 layer1", "layer2", "layer3 linear"):
                read()
                for name, layer in analog:
                    if name.split(".")[0] in stage.split():
                        _exact_weights(layer)
                print(json.dumps({"chip": chip, "t": args.time, "stage_exact": stage,
                                  "all_exact": all_exact, "all_noisy": base,
                                  "this_exact": aimc.accuracy(net, test)}), flush=True)
            continue
        for name, layer in analog:
            read()
            _exact_weights(layer)
            exact_one = aimc.accuracy(net, test)
            read()
            for other_name, other in analog:
                if other_name != name:
                    _exact_weights(other)
            only_one = aimc.accuracy(net, test)
            print(json.dumps({"chip": chip, "t": args.time, "layer": name, "all_exact": all_exact,
                              "all_noisy": base,
                              "this_exact": exact_one, "only_this_noisy": only_one}),
                  flush=True)


def mixed(args: argparse.Namespace) -> None:
    _, _, calib, adabs, test = _protocol(args.data_dir)
    net = aimc.models.resnet32_cifar(args.checkpoint).eval()
    pcm = aimc.presets.pcm_joshi2020()
    pairs2 = dataclasses.replace(pcm, mapping=dataclasses.replace(
        pcm.mapping, pairs=2, pair_programming="closed"))
    first_stage = ["conv1", "layer1"]
    cases = {
        "one pair everywhere": {},
        "first stage on two pairs (closed loop)": {"overrides": dict.fromkeys(first_stage,
                                                                               pairs2)},
        "first stage digital": {"digital": first_stage},
        "first stage and last layer digital": {"digital": [*first_stage, "linear"]},
        "first and last layer digital": {"digital": ["conv1", "linear"]},
    }
    for name, kwargs in cases.items():
        if args.cases and name not in args.cases:
            continue
        analog = aimc.convert(net, pcm, **kwargs)
        aimc.calibrate_inputs(analog, calib, batches=10)
        acc = _gdc_accuracy(analog, test, chips=3, adabs=adabs)
        print(json.dumps({"checkpoint": args.checkpoint, "case": name, **acc}), flush=True)


def tiles(args: argparse.Namespace) -> None:
    """The study's chip with its 512-row tiles (the 3x3 convs of the 64-channel stage,
    576 rows, split over two tiles, each with its own DAC, output noise and ADC) against
    tiles tall enough for every layer to sit on one, as on a chip whose arrays hold
    each layer (Joshi et al.'s prototype has 512 word lines; a 56-channel stage, 504
    rows, would fit; docs/joshi2020.md)."""
    _, _, calib, adabs, test = _protocol(args.data_dir)
    net = aimc.models.resnet32_cifar(args.checkpoint).eval()
    pcm = aimc.presets.pcm_joshi2020()
    for rows in args.rows:
        cfg = dataclasses.replace(pcm, tile=dataclasses.replace(pcm.tile, rows=rows))
        analog = aimc.convert(net, cfg)
        aimc.calibrate_inputs(analog, calib, batches=10)
        acc = _gdc_accuracy(analog, test, chips=3, adabs=adabs)
        print(json.dumps({"checkpoint": args.checkpoint, "tile_rows": rows, **acc}),
              flush=True)


def adabs_once(args: argparse.Namespace) -> None:
    _, _, calib, adabs, test = _protocol(args.data_dir)
    net = aimc.models.resnet32_cifar(args.checkpoint).eval()
    analog = aimc.convert(net, aimc.presets.pcm_joshi2020(), digital=args.digital or ())
    aimc.calibrate_inputs(analog, calib, batches=10)
    bns = batch_norms(analog)

    def stats() -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]

    @torch.no_grad()
    def put(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        for bn, (mean, var) in zip(bns, saved, strict=True):
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)

    trained = stats()
    times = (1.0, 3600.0, 86_400.0, 31_536_000.0)
    acc: dict[str, list[float]] = {}
    for seed in range(3):
        aimc.program(analog, seed=seed)
        aimc.drift(analog, args.cal_time)
        aimc.compensate(analog, "gdc+adabs", loader=adabs)
        once = stats()
        for t in times:
            aimc.drift(analog, t)
            aimc.compensate(analog, "gdc")
            acc.setdefault(f"{t} gdc", []).append(aimc.accuracy(analog, test))
            put(once)
            acc.setdefault(f"{t} gdc+adabs-once", []).append(aimc.accuracy(analog, test))
            put(trained)  # written by hand, so compensate's own restore would not undo it
            aimc.compensate(analog, "gdc+adabs", loader=adabs)
            acc.setdefault(f"{t} gdc+adabs", []).append(aimc.accuracy(analog, test))
    print(json.dumps({"checkpoint": args.checkpoint, "digital": args.digital or [],
                      "cal_time_s": args.cal_time,
                      **{k: sum(v) / len(v) for k, v in acc.items()}}), flush=True)


def bnstats(args: argparse.Namespace) -> None:
    x, y = load_cifar10(args.data_dir, "train")
    xt, yt = load_cifar10(args.data_dir, "test")
    net = aimc.models.resnet32_cifar(args.checkpoint).eval()
    trained = {k: v.clone() for k, v in net.state_dict().items()}
    test = CifarLoader(xt[2000:], yt[2000:], 100, **NORM)
    print("trained statistics", aimc.accuracy(net, test), flush=True)
    cases = [(f"{n} {'augmented' if aug else 'clean'} training images", *random_subset(x, y, n, 2),
              aug) for n, aug in ((2000, False), (2000, True), (5000, True), (10000, True))]
    cases.append(("2000 clean test images (held out)", xt[:2000], yt[:2000], False))
    for name, xc, yc, aug in cases:
        net.load_state_dict(trained)
        reestimate_bn(net, CifarLoader(xc, yc, 200, augment=aug, seed=0, **NORM))
        print(f"{name:36s} {aimc.accuracy(net.eval(), test):.4f}", flush=True)


def adc(args: argparse.Namespace) -> None:
    calib, test = _calib_and_test(args.data_dir)
    net = aimc.models.resnet32_cifar(args.checkpoint).eval()
    analog = aimc.convert(net, aimc.presets.pcm_joshi2020())
    aimc.calibrate_inputs(analog, calib, batches=10)
    aimc.program(analog, seed=0)
    batches = [b for _, b in zip(range(10), test, strict=False)]  # 10 x 100 images
    for t in args.times:
        aimc.drift(analog, t)
        aimc.compensate(analog, "gdc")
        shares = aimc.adc_saturation(analog, batches, batches=len(batches))
        top = sorted(shares.items(), key=lambda kv: -kv[1])[:5]
        mean = sum(shares.values()) / len(shares)
        print(f"t={t:g} s: mean over {len(shares)} layers {100 * mean:.4f}%; largest "
              + ", ".join(f"{k} {100 * v:.3f}%" for k, v in top), flush=True)


def _resnet32(path: str) -> torch.nn.Module:
    """A ResNet-32 from a plain state dict or from an FP32 training checkpoint."""
    state = torch.load(path, weights_only=True, map_location="cpu")  # some were saved on GPU
    if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT:
        net = aimc.models.resnet32_cifar()
        net.load_state_dict(state["model"])
        return net.eval()
    return aimc.models.resnet32_cifar(path).eval()


def lossless(args: argparse.Namespace) -> None:
    import numpy as np

    raw = np.load(args.lossless)
    # the subset is N x 32 x 32 x 3; the loaders take N x 3 x 32 x 32
    versions = {"lossless": (torch.from_numpy(raw["train_x"]).permute(0, 3, 1, 2).contiguous(),
                             torch.from_numpy(raw["train_y"]).long(),
                             torch.from_numpy(raw["test_x"]).permute(0, 3, 1, 2).contiguous(),
                             torch.from_numpy(raw["test_y"]).long())}
    x, y = load_cifar10(args.data_dir, "train")
    xt, yt = load_cifar10(args.data_dir, "test")
    n_train, n_test = len(versions["lossless"][1]), len(versions["lossless"][3])
    versions["jpeg"] = (x[:n_train], y[:n_train], xt[:n_test], yt[:n_test])
    if not (torch.equal(versions["jpeg"][1], versions["lossless"][1])
            and torch.equal(versions["jpeg"][3], versions["lossless"][3])):
        raise SystemExit("the lossless subset's labels differ from the data set's first "
                         "images: not the same images")
    for path in args.checkpoints:
        net = _resnet32(path)
        for name, (xtr, ytr, xte, yte) in versions.items():
            xc, yc = random_subset(xtr, ytr, 2000, 2)
            calib = CifarLoader(xc, yc, 200, **NORM)
            adabs = CifarLoader(xc, yc, 200, augment=True, seed=0, **NORM)
            test = CifarLoader(xte, yte, 100, **NORM)
            digital = aimc.accuracy(net, test)
            analog = aimc.convert(net, aimc.presets.pcm_joshi2020())
            aimc.calibrate_inputs(analog, calib, batches=10)
            acc = _gdc_accuracy(analog, test, chips=args.chips, adabs=adabs)
            print(json.dumps({"checkpoint": path, "pixels": name, "test_images": n_test,
                              "chips": args.chips, "digital": digital, **acc}), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="CIFAR-10 python layout")
    p.add_argument("--threads", type=int, default=2)
    sub = p.add_subparsers(dest="probe", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("eta", type=float)
    s.add_argument("periphery", type=int, choices=(0, 1))
    s.add_argument("epochs", type=int)
    s.add_argument("--noise", default="gaussian", choices=("gaussian", "pcm", "pcm-drift"))
    s.add_argument("--pcm-scale", type=float, default=1.0, help="HWAConfig.pcm_scale")
    s.add_argument("--lr", type=float, default=0.01, help="peak LR of the cosine schedule")
    s.add_argument("--clip-sigma", type=float, default=2.5, help="HWAConfig.clip_sigma")
    s.add_argument("--distill", type=float, default=0.0, help="HWAConfig.distill")
    s.add_argument("--sam-rho", type=float, default=0.0, help="HWAConfig.sam_rho (ASAM)")
    s.add_argument("--seed", type=int, default=0,
                   help="training seed: data order, augmentation and weight noise (the "
                        "chips stay 0, 1, 2)")
    s.add_argument("--teacher", help="the distillation teacher: a ResNet-32 state dict or "
                                     "a training checkpoint (e.g. a study's work/fp32.ckpt.pt)")
    s.add_argument("--bn-stats", default="batch", choices=("batch", "running", "frozen"),
                   help="HWAConfig.bn_stats")
    s.add_argument("--out-noise", action="store_true",
                   help="the tiles' output noise in training (HWAConfig.out_noise) without "
                        "the DAC and ADC")
    s.add_argument("--from-scratch", action="store_true",
                   help="train from random weights instead of the pretrained checkpoint "
                        "(the whole budget hardware-aware)")
    s.add_argument("--trained", help="skip the fine-tune: evaluate this ResNet-32 state dict "
                                     "(e.g. the study's joshi2020_hwa_resnet32.pt) or a sweep "
                                     "checkpoint the same way")
    s.add_argument("--work", default="results/joshi2020-probes")
    s.add_argument("--out", default="results/joshi2020-probes/sweep.jsonl")
    c = sub.add_parser("components")
    c.add_argument("checkpoint")
    c.add_argument("--cases", nargs="+", help="run only these cases (default: all)")
    c.add_argument("--adabs", action="store_true", help="also GDC+AdaBS")
    g = sub.add_parser("gdc")
    g.add_argument("checkpoint")
    n = sub.add_parser("noise-scale")
    n.add_argument("checkpoint")
    n.add_argument("--factors", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    ir = sub.add_parser("input-range")
    ir.add_argument("checkpoint")
    ir.add_argument("--quantiles", type=float, nargs="+", default=[1.0, 0.9999, 0.999, 0.99])
    ir.add_argument("--dynamic", action="store_true",
                    help="also each input vector scaled by its own max|x|")
    bt = sub.add_parser("bntime")
    bt.add_argument("checkpoint")
    bt.add_argument("--times", type=float, nargs="+", default=[0.0, 1.0, 86_400.0])
    bt.add_argument("--digital", nargs="+", help="modules kept digital (as the study's)")
    ly = sub.add_parser("layers")
    ly.add_argument("checkpoint")
    ly.add_argument("--chips", type=int, default=5)
    ly.add_argument("--time", type=float, default=86_400.0)
    ly.add_argument("--stages", action="store_true",
                    help="whole stages exact (conv1+layer1, layer2, layer3+linear) instead")
    mx = sub.add_parser("mixed")
    mx.add_argument("checkpoint")
    mx.add_argument("--cases", nargs="+", help="run only these cases (default: all)")
    tl = sub.add_parser("tiles")
    tl.add_argument("checkpoint")
    tl.add_argument("--rows", type=int, nargs="+", default=[512, 576])
    ao = sub.add_parser("adabs-once")
    ao.add_argument("checkpoint")
    ao.add_argument("--digital", nargs="+", help="modules kept digital (as the study's)")
    ao.add_argument("--cal-time", type=float, default=1.0,
                    help="chip age in s at the one calibration")
    ar = sub.add_parser("adc-range")
    ar.add_argument("checkpoint")
    ar.add_argument("--margins", type=float, nargs="+", default=[1.0])
    ad = sub.add_parser("adc")
    ad.add_argument("checkpoint")
    ad.add_argument("--times", type=float, nargs="+", default=[1.0, 86_400.0, 31_536_000.0])
    ll = sub.add_parser("lossless")
    ll.add_argument("checkpoints", nargs="+")
    ll.add_argument("--lossless", default="../shared/data/cifar10/lossless_subset.npz",
                    help="the lossless originals (arrays train_x, train_y, test_x, test_y)")
    ll.add_argument("--chips", type=int, default=10)
    b = sub.add_parser("bnstats")
    b.add_argument("checkpoint")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    probes = {"sweep": sweep, "components": components, "gdc": gdc, "noise-scale": noise_scale,
              "input-range": input_range, "bntime": bntime, "layers": layers, "mixed": mixed,
              "bnstats": bnstats, "adabs-once": adabs_once, "adc": adc,
              "adc-range": adc_range, "tiles": tiles, "lossless": lossless}
    probes[args.probe](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
