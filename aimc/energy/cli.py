"""Command line: ``python -m aimc.energy --model resnet32 --preset pcm14nm_legallo2023``.

Builds a reference network (:mod:`aimc.models`), converts it for the preset's tiles,
programs it (so the read energy uses programmed conductances), prints the per-layer
table and the totals, and writes JSON/CSV on request. ``--validate`` prints the 64-core
chip check (8-bit 256 x 256 MVM against the published 9.76 TOP/s/W).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch
from torch import nn

from .. import models
from ..experiments.results import now_utc
from ..inference import program
from ..nn import convert
from .estimate import estimate, validate_legallo2023
from .hardware import BASELINES, DEFAULT_BASELINES, HARDWARE, get_hardware

MODELS = models.MODELS  # by CLI name: (constructor, input shape, description)


def build(model_name: str, preset: str, digital: list[str] | None = None,
          checkpoint: str | None = None, seed: int = 0, programmed: bool = True
          ) -> tuple[nn.Module, tuple[int, ...]]:
    """A converted (and programmed) reference model for ``preset`` and its input shape."""
    if model_name not in MODELS:
        raise ValueError(f"model: unknown {model_name!r}; known: {sorted(MODELS)}")
    ctor, shape, _ = MODELS[model_name]
    torch.manual_seed(seed)  # the random initial weights (no checkpoint) are reproducible
    model = ctor()
    if checkpoint:  # a state dict, or {"state_dict": ...}; read with weights_only=True
        models.load_checkpoint(model, checkpoint)
    hw = get_hardware(preset)
    amodel = convert(model.eval(), hw.analog_config(), digital=digital or [])
    if programmed:
        program(amodel, seed=seed)
    return amodel, shape


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="aimc energy", description="Energy, latency and area of an aimc network on "
                                        "PCM hardware, with digital baselines.")
    p.add_argument("--model", default="resnet32", choices=sorted(MODELS))
    p.add_argument("--preset", default="pcm14nm_legallo2023", choices=sorted(HARDWARE))
    p.add_argument("--baseline", action="append", choices=sorted(BASELINES),
                   help=f"digital baseline(s) to compare with (default: "
                        f"{', '.join(DEFAULT_BASELINES)})")
    p.add_argument("--digital", default="",
                   help="comma-separated layer names to keep digital, e.g. conv1,linear")
    p.add_argument("--checkpoint", default=None,
                   help="weights for the model: a state dict file (e.g. the HWA networks "
                        "in docs/results)")
    p.add_argument("--no-program", action="store_true",
                   help="cost target conductances instead of a programmed chip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--json", default=None, help="write the results JSON here")
    p.add_argument("--csv", default=None, help="write the per-layer CSV here")
    p.add_argument("--rows", type=int, default=None, help="print at most this many layer rows")
    p.add_argument("--validate", action="store_true",
                   help="print the 64-core chip check (8-bit 256x256 MVM vs 9.76 TOP/s/W)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``aimc energy`` / ``python -m aimc.energy``; returns the exit code."""
    args = parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.validate:
        print(json.dumps(validate_legallo2023(args.seed), indent=2))
        return 0
    started, t0 = now_utc(), time.perf_counter()
    digital = [d for d in args.digital.split(",") if d]
    amodel, shape = build(args.model, args.preset, digital, args.checkpoint, args.seed,
                          not args.no_program)
    table = estimate(amodel, args.preset, shape,
                     baselines=args.baseline or DEFAULT_BASELINES, batch=args.batch,
                     name=args.model)
    runtime = time.perf_counter() - t0
    print(table.format(args.rows))
    command = "python -m aimc.energy " + " ".join(_argv_words(args))
    if args.json:
        table.to_json(args.json, command=command, started=started, runtime_s=runtime)
        print(f"wrote {args.json}")
    if args.csv:
        table.to_csv(args.csv)
        print(f"wrote {args.csv}")
    return 0


def _argv_words(args: argparse.Namespace) -> list[str]:
    words: list[str] = ["--model", args.model, "--preset", args.preset]
    extra: dict[str, Any] = {"--digital": args.digital, "--checkpoint": args.checkpoint,
                             "--batch": args.batch if args.batch != 1 else None,
                             "--seed": args.seed if args.seed else None}
    for b in args.baseline or []:
        words += ["--baseline", b]
    for key, value in extra.items():
        if value:
            words += [key, str(value)]
    if args.no_program:
        words.append("--no-program")
    if args.json:
        words += ["--json", args.json]
    if args.csv:
        words += ["--csv", args.csv]
    return words


if __name__ == "__main__":
    raise SystemExit(main())
