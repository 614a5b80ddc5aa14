"""How the tiles' ADC range (``TileConfig.out_bound``) limits the sequential-MNIST LSTM.

For the networks of ``aimc reproduce seq-mnist --model lstm`` (its HWA network and its
FP32 network, read from the study's output folder): the share of each analog layer's
ADC conversions at the preset's bound of 10 (``aimc.adc_saturation``; chip 0 at one day
with GDC, the first 500 test digits), then the accuracy at one day with GDC for ADC
ranges of 10, 15, 20 and 30 normalised units (8-bit ADC over each; 2 chips, the first
2,000 test digits), and with each layer's range calibrated on its chip right after
programming (``aimc.calibrate_outputs`` on the 2,000 calibration digits, quantile
0.9999; ``--margins`` times that), with the share of conversions that clip then.

    python benchmarks/lstm_out_bound.py results/lstm-mnist --data-dir ../shared/data/mnist \
        --periphery-run results/lstm-mnist-bound10-periphery
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

import aimc
from aimc.data import CifarLoader, load_mnist
from aimc.experiments.seq_mnist import MNIST_MEAN, MNIST_STD


def _hwa(study: Path, hidden: int) -> torch.nn.Module:
    net = aimc.models.lstm_mnist(hidden)
    net.load_state_dict(torch.load(study / "lstm-mnist_hwa.pt", weights_only=True))
    return net.eval()


def networks(study: Path, hidden: int, periphery_run: Path | None
             ) -> dict[str, torch.nn.Module]:
    """The study's HWA network, its FP32 network (from the work folder's checkpoint) and,
    if given, the HWA network of a ``--hwa-periphery`` run."""
    fp32 = aimc.models.lstm_mnist(hidden)
    ckpt = torch.load(study / "work" / "fp32.ckpt.pt", weights_only=True)
    fp32.load_state_dict(ckpt["model"])
    nets = {"hwa": _hwa(study, hidden), "fp32-trained": fp32.eval()}
    if periphery_run is not None:
        nets["hwa with the periphery"] = _hwa(periphery_run, hidden)
    return nets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", type=Path,
                   help="output folder of aimc reproduce seq-mnist --model lstm")
    p.add_argument("--data-dir", required=True, help="folder with the MNIST IDX files")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--bounds", type=float, nargs="+", default=[10.0, 15.0, 20.0, 30.0])
    p.add_argument("--margins", type=float, nargs="*", default=[1.0, 1.5],
                   help="calibrated ADC ranges: the margins over the measured quantile")
    p.add_argument("--periphery-run", type=Path, default=None,
                   help="output folder of a --hwa-periphery run, measured as well")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    x, y = load_mnist(args.data_dir, "train")
    xt, yt = load_mnist(args.data_dir, "test")
    norm = {"mean": MNIST_MEAN, "std": MNIST_STD}
    test = CifarLoader(xt[:2000], yt[:2000], 500, **norm)
    calib = CifarLoader(x[:2000], y[:2000], 500, **norm)
    probe = next(iter(CifarLoader(xt[:500], yt[:500], 500, **norm)))[0]
    for name, net in networks(args.study, args.hidden, args.periphery_run).items():
        base = aimc.presets.pcm_joshi2020()
        amodel = aimc.convert(net, base).eval()
        aimc.calibrate_inputs(amodel, calib, batches=len(calib))
        aimc.program(amodel, seed=0)
        aimc.drift(amodel, 86_400.0)
        aimc.compensate(amodel, "gdc")
        shares = aimc.adc_saturation(amodel, [probe])
        print(f"{name}: ADC conversions at the bound of {base.tile.out_bound:g} (1 day, GDC): "
              + ", ".join(f"{k} {100 * v:.2f}%" for k, v in shares.items())
              + "; max|W|: " + ", ".join(f"{k} {float(m.weight.detach().abs().max()):.3f}"
                                         for k, m in aimc.analog_layers(amodel)), flush=True)
        for bound in args.bounds:
            cfg = dataclasses.replace(base, tile=dataclasses.replace(base.tile,
                                                                     out_bound=bound))
            amodel = aimc.convert(net, cfg).eval()
            aimc.calibrate_inputs(amodel, calib, batches=len(calib))
            accs = []
            for chip in range(2):
                aimc.program(amodel, seed=chip)
                aimc.drift(amodel, 86_400.0)
                aimc.compensate(amodel, "gdc")
                accs.append(aimc.accuracy(amodel, test))
            print(f"  ADC range {bound:g}: 1 day GDC "
                  + ", ".join(f"{100 * a:.2f}%" for a in accs)
                  + f" (mean {50 * sum(accs):.2f}%)", flush=True)
        amodel = aimc.convert(net, base).eval()
        aimc.calibrate_inputs(amodel, calib, batches=len(calib))
        for margin in args.margins:
            accs, ranges, clipped = [], [], []
            for chip in range(2):
                aimc.program(amodel, seed=chip)
                ranges.append(aimc.calibrate_outputs(amodel, calib, batches=len(calib),
                                                     margin=margin))
                aimc.drift(amodel, 86_400.0)
                aimc.compensate(amodel, "gdc")
                accs.append(aimc.accuracy(amodel, test))
                clipped.append(aimc.adc_saturation(amodel, [probe]))
            print(f"  ADC range calibrated per layer, margin {margin:g}: 1 day GDC "
                  + ", ".join(f"{100 * a:.2f}%" for a in accs)
                  + f" (mean {50 * sum(accs):.2f}%); ranges chip 0: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in ranges[0].items())
                  + "; clipped at 1 day, chip 0: "
                  + ", ".join(f"{k} {100 * v:.3f}%" for k, v in clipped[0].items()),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
