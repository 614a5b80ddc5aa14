"""``aimc reproduce seq-mnist``: sequence models on PCM tiles from 1 s to 1 year.

Sequential MNIST: each digit is read as 28 time steps (tokens) of 28 pixels by
``--model``: ``lstm`` (default; a one-layer LSTM of ``--hidden`` units with a linear head
on its last hidden state, :func:`aimc.models.lstm_mnist`; Tsai et al. 2019 ran LSTMs on
PCM), ``gru`` (the same with a GRU) or ``transformer`` (two encoder layers of width
``--hidden`` with 4 heads, :func:`aimc.models.transformer_mnist`). Every weight matrix
(recurrent layers' input and recurrent matrices, the attention projections, the
feed-forward layers, the embedding and the head) is on PCM tiles of
``presets.pcm_joshi2020``; a recurrent matrix is read once per time step. The study trains
the network in FP32 (Adam, cosine LR), then fine-tunes a copy with hardware-aware weight
noise (``--noise``, the PCM chain by default), programs ``--chips`` chips of each and
evaluates them at 1 s, 1 h, 1 day, 1 month and 1 year, without compensation and with
global drift compensation. The ADC range is 20 normalised units (``--out-bound``)
instead of the preset's 10, which clips a few percent of an LSTM's recurrent products
and a fifth of its logits (docs/RESULTS.md); ``--calibrate-adc`` instead sets each
layer's range on each chip from the calibration digits (:func:`aimc.calibrate_outputs`).
Writes ``MODEL-mnist.json``, ``.png`` and
``_config.json`` into ``--out``; the work folder keeps per-epoch checkpoints and every
finished accuracy, so an interrupted run resumes where it stopped.

Data: ``--data-dir`` names a folder with the four standard MNIST IDX files; without it
the study uses the 6,000 training and 2,000 test digits aimc ships.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import torch

from .. import models, presets
from ..data import CifarLoader, load_mnist, load_mnist_small, random_subset
from ..inference import accuracy, calibrate_inputs, program
from ..nn import convert, to_digital
from ..training.hwa import NOISE_KINDS, HWAConfig, clip_weights, train_hwa
from . import demo
from .joshi2020 import TIMES, format_table, markdown_table, plot
from .results import Store, adc_ranges_per_chip, add_calibrate_adc, point_rows, write_study

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
QUICK = {"train_images": 1000, "test_images": 500, "epochs": 1, "hwa_epochs": 1,
         "chips": 2, "calib_images": 200}
VARIANTS = {"hwa": "pcm", "fp32": "fp32-trained+pcm"}
"""Evaluated networks -> the device name their methods carry (``pcm``, ``pcm+gdc``...)."""
MODELS = {"lstm": (models.lstm_mnist, 128), "gru": (models.gru_mnist, 128),
          "transformer": (models.transformer_mnist, 64)}
"""--model -> (network builder taking the width, default width)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aimc reproduce seq-mnist",
                                description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="lstm",
                   help="sequence model (default lstm)")
    p.add_argument("--data-dir", default=None,
                   help="folder with the MNIST IDX files (default: the bundled 6,000/2,000 "
                        "digits)")
    p.add_argument("--out", default=None, help="output folder (default results/MODEL-mnist)")
    p.add_argument("--hidden", type=int, default=0,
                   help="LSTM/GRU units or transformer width (default 128 / 128 / 64)")
    p.add_argument("--epochs", type=int, default=10, help="FP32 training epochs (default 10)")
    p.add_argument("--hwa-epochs", type=int, default=5,
                   help="hardware-aware fine-tune epochs from the FP32 network (default 5)")
    p.add_argument("--lr", type=float, default=2e-3, help="FP32 peak LR, Adam (default 2e-3)")
    p.add_argument("--hwa-lr", type=float, default=5e-4,
                   help="hardware-aware fine-tune peak LR, Adam (default 5e-4)")
    p.add_argument("--noise", choices=NOISE_KINDS, default="pcm-drift",
                   help="weight noise of the fine-tune (default pcm-drift)")
    p.add_argument("--out-bound", type=float, default=20.0,
                   help="ADC range of the tiles in normalised units (default 20: the "
                        "preset's 10 clips the recurrent and output layers, docs/RESULTS.md)")
    add_calibrate_adc(p, "the calibration digits")
    p.add_argument("--hwa-periphery", action="store_true",
                   help="simulate the DAC/ADC and the output noise in the hardware-aware "
                        "fine-tune (recurrent layers then step through each sequence)")
    p.add_argument("--batch", type=int, default=128, help="training batch (default 128)")
    p.add_argument("--chips", type=int, default=5, help="programmed chips (default 5)")
    p.add_argument("--train-images", type=int, default=0, help="0 = all")
    p.add_argument("--test-images", type=int, default=0, help="0 = all")
    p.add_argument("--calib-images", type=int, default=2000,
                   help="training images for the static DAC ranges (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK['train_images']} training and "
                        f"{QUICK['test_images']} test images, 1 epoch each, 2 chips (options "
                        "given explicitly win)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The settings that define the study's numbers (a resume must match them). ``--quick``
    sets the values of QUICK that were not given explicitly."""
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    for key in ("epochs", "hwa_epochs", "batch", "chips"):
        if getattr(args, key) < 1:
            raise SystemExit(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    for key in ("train_images", "test_images", "calib_images"):
        if getattr(args, key) < 0:
            raise SystemExit(f"--{key.replace('_', '-')} must be >= 0")
    if args.hidden < 0:
        raise SystemExit("--hidden must be >= 1 (0 = the model's default)")
    if not (args.lr > 0 and args.hwa_lr > 0 and args.out_bound > 0):
        raise SystemExit("--lr, --hwa-lr and --out-bound must be > 0")
    if not args.hidden:
        args.hidden = MODELS[args.model][1]
    args.out = args.out or f"results/{args.model}-mnist"
    keys = ("model", "data_dir", "hidden", "epochs", "hwa_epochs", "lr", "hwa_lr", "noise",
            "out_bound", "batch", "chips", "train_images", "test_images", "calib_images",
            "seed")
    settings = {k: getattr(args, k) for k in keys}
    # Options added later enter only when set, so a run made before them still resumes.
    if args.hwa_periphery:
        settings["hwa_periphery"] = True
    if args.calibrate_adc:
        settings["calibrate_adc"] = True
    return settings


def _train(model: torch.nn.Module, loader: CifarLoader, epochs: int, lr: float,
           config: HWAConfig, ckpt: Path, seed: int, desc: str, progress: bool) -> list[dict]:
    """Adam with a per-step cosine decay from ``lr`` to 0, checkpointed every epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * len(loader)))
    return train_hwa(model, loader, epochs, config=config, optimizer=opt, scheduler=sched,
                     checkpoint=ckpt, seed=seed, progress=progress, desc=desc)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = _settings(args, parser)
    torch.set_num_threads(args.threads)
    progress = not args.no_progress
    out, stem = Path(args.out), f"{args.model}-mnist"
    store = Store(out / "work" / "state.json", settings)
    work, started, runtime = store.path.parent, store.get("started"), store.runtime

    # -- data --------------------------------------------------------------------------------
    if args.data_dir:
        try:
            (x, y), (xt, yt) = load_mnist(args.data_dir, "train"), load_mnist(args.data_dir,
                                                                               "test")
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(f"aimc reproduce seq-mnist: {err}") from err
        source = "MNIST"
    else:
        x, y, xt, yt = load_mnist_small()
        source = "MNIST, the subset aimc ships"
    x, y = random_subset(x, y, args.train_images, args.seed)
    xt, yt = random_subset(xt, yt, args.test_images, args.seed + 1)
    xc, yc = random_subset(x, y, args.calib_images, args.seed + 2)
    norm = {"mean": MNIST_MEAN, "std": MNIST_STD}
    train = CifarLoader(x, y, args.batch, shuffle=True, seed=args.seed,
                        drop_last=len(y) > args.batch, **norm)
    test = CifarLoader(xt, yt, 500, **norm)
    calib = CifarLoader(xc, yc, 500, **norm)
    dataset = f"{source}, {len(y)} train / {len(yt)} test digits, read row by row"

    # -- FP32 network, then the hardware-aware fine-tune of a copy -----------------------------
    torch.manual_seed(args.seed)
    net = MODELS[args.model][0](args.hidden)
    fp32_cfg = HWAConfig(noise="none", clip_sigma=0.0)
    fp32_hist = _train(net, train, args.epochs, args.lr, fp32_cfg, work / "fp32.ckpt.pt",
                       args.seed, "FP32 training", progress)
    net.eval()
    if store.get("fp32_accuracy") is None:
        store.set("fp32_accuracy", accuracy(net, test))
    fp32_acc = store.get("fp32_accuracy")
    print(f"FP32 {args.model}: {100 * fp32_acc:.2f}%")

    cfg = presets.pcm_joshi2020()
    cfg.tile.out_bound = args.out_bound
    hwa_cfg = HWAConfig(noise=args.noise, dac_adc=args.hwa_periphery,
                        out_noise=args.hwa_periphery)
    hwa = convert(copy.deepcopy(net), cfg)
    ckpt = work / "hwa.ckpt.pt"
    if not ckpt.is_file():
        clip_weights(hwa, hwa_cfg.clip_sigma)
        if args.hwa_periphery:
            # the chip's static DAC ranges, which set the units of the simulated ADC and
            # output noise (buffers: a resumed run keeps them)
            calibrate_inputs(hwa, calib, batches=len(calib))
    hwa_hist = _train(hwa, train, args.hwa_epochs, args.hwa_lr, hwa_cfg, ckpt, args.seed + 1,
                      "HWA fine-tune", progress)
    if store.get("hwa_digital_accuracy") is None:
        store.set("hwa_digital_accuracy", accuracy(to_digital(hwa).eval(), test))
    print(f"HWA fine-tuned, read digitally: {100 * store.get('hwa_digital_accuracy'):.2f}%")
    tmp = out / f".{stem}_hwa.pt.tmp"
    torch.save(to_digital(hwa).state_dict(), tmp)
    tmp.replace(out / f"{stem}_hwa.pt")
    store.set("runtime_s", runtime())

    # -- PCM chips over time -----------------------------------------------------------------
    nets = {"hwa": hwa.eval(), "fp32": convert(net, cfg).eval()}
    rows: list[dict] = []
    set_up = adc_ranges_per_chip(calib) if args.calibrate_adc else None
    for variant, device_name in VARIANTS.items():
        calibrate_inputs(nets[variant], calib, batches=len(calib))
        print(f"evaluating the {variant} network: {args.chips} chips x {len(TIMES)} times")
        rows += store.over_time(variant, nets[variant], test, list(TIMES.values()),
                                chips=args.chips, compensation=("none", "gdc"),
                                seed=args.seed, device_name=device_name, progress=progress,
                                on_program=set_up)
    program(nets["hwa"], seed=args.seed)  # the read energy of chip 0's conductances
    energy = demo.energy_summary(nets["hwa"], (1, 28, 28))

    # -- results -----------------------------------------------------------------------------
    rows += point_rows({"fp32": fp32_acc, "hwa-digital": store.get("hwa_digital_accuracy")})
    print(format_table(rows, fp32_acc))
    print("\n" + markdown_table(rows, fp32_acc))
    print(f"\nenergy per inference on {energy['hardware']}: "
          f"{1e9 * energy['energy_per_inference_j']:.1f} nJ, "
          f"{energy['tops_per_w']:.2f} TOP/s/W, latency {1e6 * energy['latency_s']:.1f} us")
    store.set("runtime_s", runtime())
    config = {"study": settings, "analog": cfg.to_dict(), "hwa": hwa_cfg.to_dict(),
              "fp32": fp32_cfg.to_dict(), "times_s": TIMES,
              "normalisation": norm, "optimizer": "Adam, cosine LR per step to 0"}
    plot(rows, fp32_acc, out / f"{stem}.png",
         f"{args.model} (width {args.hidden}), {dataset}; PCM model of Joshi et al. 2020; "
         "mean +- std over chips")
    write_study(out, "seq-mnist", argv, stem=stem, config=config, dataset=dataset,
                started=started, runtime_s=runtime(),
                baseline={"name": "fp32", "accuracy": fp32_acc}, rows=rows, energy=energy,
                training={"fp32": fp32_hist, "hwa": hwa_hist},
                hwa_checkpoint=f"{stem}_hwa.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
