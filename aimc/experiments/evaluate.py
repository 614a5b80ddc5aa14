"""``aimc evaluate --config exp.toml``: a trained network on PCM chips from 1 s to 1 year.

The accuracy-over-time protocol of Joshi et al. 2020 (Fig. 4; :func:`aimc.evaluate_over_time`)
for any reference network (:data:`aimc.models.MODELS`) and checkpoint, without writing
Python: the file names the network, its weights, the data, the chip (a preset plus any
field of its ``[device]``, ``[tile]`` and ``[mapping]`` tables), the times and the
compensations. The run writes ``NAME.json`` (rows per method and time, the digital
baseline, the energy per inference), ``NAME.png`` and ``NAME_config.toml`` (the
resolved file, which runs again as it is) into ``--out``, saving each accuracy as it
is measured: an interrupted run resumes. ``aimc evaluate --example`` prints a file
to start from.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import models, presets
from ..config import AnalogConfig, check_bool, dumps_toml, tomllib, write_text_atomic
from ..data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CifarLoader,
    load_cifar10,
    load_mnist,
    load_mnist_small,
    random_subset,
)
from ..inference import accuracy, calibrate_inputs, program
from ..inference.chip import COMPENSATIONS
from ..nn import convert
from ..parallel import finish_distributed, init_distributed, rank0_stdout, rank_world
from . import demo
from .results import (
    Store,
    adc_ranges_per_chip,
    point_rows,
    write_results,
)

DATASETS = ("mnist", "mnist-small", "cifar10")
"""``dataset``: the MNIST IDX files of ``data_dir``, the MNIST digits aimc ships, or the
CIFAR-10 python layout of ``data_dir``."""
JOSHI_TIMES = (1.0, 3600.0, 86_400.0, 2_592_000.0, 31_536_000.0)
ANALOG_SECTIONS = ("device", "tile", "mapping")
_MNIST_NORM = ((0.1307,), (0.3081,))  # the seq-mnist study's normalisation


@dataclass
class EvaluateConfig:
    """One evaluation: network, weights, data, chips, times, compensations.

    The chip itself is ``preset`` with the ``[device]``/``[tile]``/``[mapping]`` tables
    of the file on top (see :func:`analog_config`).
    """

    model: str = ""
    """Reference network by name, a key of :data:`aimc.models.MODELS` (e.g. "resnet32",
    "lenet5", "gru_mnist")."""
    checkpoint: str = ""
    """Its trained weights: a state dict (or {"state_dict": ...}), read with
    ``weights_only=True``; "module." prefixes are stripped. Relative paths are taken
    from the folder the command runs in."""
    dataset: str = "mnist-small"
    """"mnist" or "cifar10" (standard on-disk layouts in ``data_dir``) or "mnist-small"
    (the 6,000 / 2,000 digits aimc ships)."""
    data_dir: str = ""
    """Folder of the dataset (MNIST IDX files; or holding ``cifar-10-batches-py/``)."""
    name: str = "evaluate"
    """Stem of the output files (NAME.json, NAME.png, NAME_config.toml)."""
    mean: list[float] = field(default_factory=list)
    """Per-channel normalisation the network was trained with; empty: the dataset's usual
    one (CIFAR-10: ImageNet's, as the pretrained CIFAR ResNets; MNIST: 0.1307 / 0.3081,
    as aimc's MNIST studies). Pixels are in [0, 1] before it."""
    std: list[float] = field(default_factory=list)
    """Per-channel standard deviation that goes with ``mean``."""
    test_images: int = 0
    """Test images evaluated, a seeded random subset (seed + 1); 0 = all."""
    calib_images: int = 2000
    """Training images (a seeded random subset, seed + 2) for the static DAC ranges, AdaBS
    and calibrated ADC ranges; never test images."""
    batch: int = 200
    """Evaluation batch size."""
    digital: list[str] = field(default_factory=list)
    """Module names kept digital, with every layer under them (e.g. ["conv1", "linear"])."""
    preset: str = "pcm_joshi2020"
    """The chip the tables start from, a key of :data:`aimc.presets.PRESETS`."""
    chips: int = 5
    """Independently programmed chips (chip c uses seed + c)."""
    times: list[float] = field(default_factory=lambda: list(JOSHI_TIMES))
    """Seconds since programming, each read of a chip after the last (Joshi 2020: 1 s,
    1 h, 1 day, 1 month, 1 year)."""
    compensation: list[str] = field(default_factory=lambda: ["none", "gdc"])
    """Drift compensations applied at each time: "none", "gdc", "adabs", "gdc+adabs" (AdaBS
    needs batch norm in the network)."""
    adabs_augment: bool = False
    """AdaBS calibration images with the training crop+flip (CIFAR-10; the Joshi study
    does this, it is worth about 2 points there)."""
    calibrate_adc: bool = False
    """Set each layer's ADC range on each chip after programming
    (:func:`aimc.calibrate_outputs` on the calibration images) instead of ``out_bound``."""
    seed: int = 0
    """Seed of the chips and of the image subsets."""

    def __post_init__(self) -> None:
        owner = "EvaluateConfig"
        if self.model not in models.MODELS:
            raise ValueError(f"{owner}.model: unknown network {self.model!r}; "
                             f"known: {sorted(models.MODELS)}")
        if not isinstance(self.checkpoint, str) or not self.checkpoint:
            raise ValueError(f"{owner}.checkpoint: the path of the trained weights is needed "
                             "(random weights tell nothing)")
        if self.dataset not in DATASETS:
            raise ValueError(f"{owner}.dataset must be one of {list(DATASETS)}, "
                             f"got {self.dataset!r}")
        if self.dataset != "mnist-small" and not self.data_dir:
            raise ValueError(f"{owner}.data_dir: dataset {self.dataset!r} is read from a "
                             "folder; name it")
        if not (isinstance(self.name, str) and self.name and "/" not in self.name):
            raise ValueError(f"{owner}.name must be a file stem without '/', got {self.name!r}")
        for key in ("mean", "std"):
            v = getattr(self, key)
            if not (isinstance(v, list) and all(_number(x) for x in v)):
                raise ValueError(f"{owner}.{key} must be a list of numbers, got {v!r}")
        if len(self.mean) != len(self.std):
            raise ValueError(f"{owner}.std must have as many entries as mean "
                             f"({len(self.mean)}), got {len(self.std)}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"{owner}.std must be > 0, got {self.std}")
        for key, lo in (("test_images", 0), ("calib_images", 1), ("batch", 1), ("chips", 1)):
            v = getattr(self, key)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= lo):
                raise ValueError(f"{owner}.{key} must be an integer >= {lo}, got {v!r}")
        if not (isinstance(self.seed, int) and not isinstance(self.seed, bool)):
            raise ValueError(f"{owner}.seed must be an integer, got {self.seed!r}")
        if not (isinstance(self.digital, list) and all(isinstance(d, str) for d in self.digital)):
            raise ValueError(f"{owner}.digital must be a list of module names, "
                             f"got {self.digital!r}")
        if self.preset not in presets.PRESETS:
            raise ValueError(f"{owner}.preset: unknown {self.preset!r}; "
                             f"known: {sorted(presets.PRESETS)}")
        t = self.times
        if not (isinstance(t, list) and t and all(_number(x) and x > 0 for x in t)
                and all(b > a for a, b in itertools.pairwise(t))):
            raise ValueError(f"{owner}.times must be a non-empty increasing list of seconds "
                             f"> 0, got {t!r}")
        self.times = [float(x) for x in t]
        c = self.compensation
        if not (isinstance(c, list) and c and all(isinstance(m, str) for m in c)):
            raise ValueError(f"{owner}.compensation must be a non-empty list of names, "
                             f"got {c!r}")
        for m in c:
            if not m or any(p not in COMPENSATIONS for p in m.split("+")):
                raise ValueError(f"{owner}.compensation: unknown {m!r}; known: "
                                 f"{sorted(COMPENSATIONS)}, joined with '+'")
        for key in ("adabs_augment", "calibrate_adc"):
            check_bool(owner, key, getattr(self, key))


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def parse(data: dict[str, Any]) -> tuple[EvaluateConfig, AnalogConfig]:
    """An evaluation file's contents (TOML as a dict) -> (its settings, its chip).

    Top-level keys are :class:`EvaluateConfig` fields; the ``[device]``, ``[tile]`` and
    ``[mapping]`` tables override those fields of the ``preset`` (a ``[device]`` with
    another ``name`` starts from that device's defaults). Unknown keys are errors that
    name them.
    """
    flat = {k: v for k, v in data.items() if k not in ANALOG_SECTIONS}
    names = {f.name for f in dataclasses.fields(EvaluateConfig)}
    unknown = sorted(set(flat) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; allowed: {sorted(names)} and the tables "
                         f"{list(ANALOG_SECTIONS)}")
    for key in ANALOG_SECTIONS:
        if key in data and not isinstance(data[key], dict):
            raise ValueError(f"[{key}] must be a table of {key} fields")
    settings = EvaluateConfig(**flat)
    return settings, analog_config(settings.preset, {k: data[k] for k in ANALOG_SECTIONS
                                                     if k in data})


def analog_config(preset: str, tables: dict[str, dict[str, Any]]) -> AnalogConfig:
    """``presets.PRESETS[preset]()`` with the fields of ``tables`` ({"tile": {...}, ...})
    on top, validated field by field (:meth:`AnalogConfig.from_dict`)."""
    merged = presets.PRESETS[preset]().to_dict()
    for section, values in tables.items():
        if section == "device" and values.get("name", merged["device"]["name"]) != \
                merged["device"]["name"]:
            merged["device"] = {}
        merged[section] = {**merged[section], **values}
    return AnalogConfig.from_dict(merged)


def load(path: str | Path) -> tuple[EvaluateConfig, AnalogConfig]:
    """Read and validate an evaluation file; errors name the file and the bad field."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"aimc evaluate: no config file at {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise SystemExit(f"aimc evaluate: {path} is not valid TOML: {err}") from err
    try:
        return parse(data)
    except (ValueError, TypeError) as err:
        raise SystemExit(f"aimc evaluate: {path}: {err}") from err


def to_toml(settings: EvaluateConfig, cfg: AnalogConfig) -> str:
    """The resolved evaluation file: every setting and the whole chip (runs as it is)."""
    return dumps_toml({**dataclasses.asdict(settings), **cfg.to_dict()})


EXAMPLE = """\
# aimc evaluate --config THIS_FILE --out results/my-eval
# A trained network on PCM chips from 1 s to 1 year (docs/inference.md, "Evaluating a
# trained network from a file"). Every key but model and checkpoint has a default.
model = "lenet5"                   # aimc.models.MODELS: resnet20/32/44/56, mlp, lenet5,
                                   # small_cnn, lstm_mnist, gru_mnist, transformer_mnist
checkpoint = "lenet5.pt"           # its state dict (torch.save(net.state_dict(), ...))
dataset = "mnist-small"            # or "mnist" / "cifar10" with data_dir = "..."
name = "lenet5-pcm"
preset = "pcm_joshi2020"
chips = 5
times = [1.0, 3600.0, 86400.0, 2592000.0, 31536000.0]
compensation = ["none", "gdc"]     # "adabs", "gdc+adabs" for networks with batch norm
digital = []                       # e.g. ["0"] keeps the first layer of a Sequential digital
calibrate_adc = false
seed = 0

[tile]                             # any TileConfig field; [device], [mapping] likewise
out_bound = 10.0
"""


def _data(s: EvaluateConfig) -> tuple[tuple, tuple, str]:
    """(train x, y), (test x, y), description."""
    try:
        if s.dataset == "cifar10":
            train, test = load_cifar10(s.data_dir, "train"), load_cifar10(s.data_dir, "test")
            source = "CIFAR-10"
        elif s.dataset == "mnist":
            train, test = load_mnist(s.data_dir, "train"), load_mnist(s.data_dir, "test")
            source = "MNIST"
        else:
            x, y, xt, yt = load_mnist_small()
            train, test, source = (x, y), (xt, yt), "MNIST, the subset aimc ships"
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"aimc evaluate: {err}") from err
    return train, test, source


def run(settings: EvaluateConfig, cfg: AnalogConfig, out: Path, progress: bool = True,
        command: str = "") -> Path:
    """Evaluate ``settings.model`` with its checkpoint on ``settings.chips`` chips of
    ``cfg`` at ``settings.times`` (Joshi et al. 2020, Fig. 4 protocol:
    :func:`aimc.evaluate_over_time`), resumably, and write the results into ``out``.
    Returns the results JSON's path."""
    s = settings
    if not s.mean:  # the dataset's usual normalisation, written out in the resolved file
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if s.dataset == "cifar10" else _MNIST_NORM
        s = dataclasses.replace(s, mean=list(mean), std=list(std))
    resolved = to_toml(s, cfg)
    (x, y), (xt, yt), source = _data(s)
    xt, yt = random_subset(xt, yt, s.test_images, s.seed + 1)
    xc, yc = random_subset(x, y, s.calib_images, s.seed + 2)
    norm = {"mean": tuple(s.mean), "std": tuple(s.std)}
    if xt.shape[1] != len(s.mean):
        raise SystemExit(f"aimc evaluate: mean/std have {len(s.mean)} channels, the images "
                         f"{xt.shape[1]}")
    test = CifarLoader(xt, yt, s.batch, **norm)
    calib = CifarLoader(xc, yc, s.batch, **norm)
    calib_adabs = CifarLoader(xc, yc, s.batch, augment=s.adabs_augment, seed=s.seed, **norm)
    dataset = f"{source}, {len(yt)} test images"

    ctor, shape, description = models.MODELS[s.model]
    net = ctor()
    try:
        models.load_checkpoint(net, s.checkpoint)
    except FileNotFoundError:
        raise SystemExit(f"aimc evaluate: no checkpoint at {s.checkpoint}") from None
    except RuntimeError as err:  # wrong keys or shapes for this network
        raise SystemExit(f"aimc evaluate: {s.checkpoint} does not fit {s.model}: "
                         f"{str(err).splitlines()[0]} (it must hold the plain network's "
                         "state dict, e.g. torch.save(aimc.to_digital(amodel).state_dict(), "
                         "path) after hardware-aware training)") from err
    net.eval()
    if tuple(xt.shape[1:]) != shape:
        raise SystemExit(f"aimc evaluate: {s.model} takes images of {shape}, the dataset "
                         f"has {tuple(xt.shape[1:])}")
    names = {n for n, _ in net.named_modules() if n}
    unknown = sorted(set(s.digital) - names)
    if unknown:
        raise SystemExit(f"aimc evaluate: digital: no module named {unknown} in {s.model}")
    # Only a run that can start leaves a state behind (a fixed typo must not look like a
    # run with other settings). The settings are flat, so a refusal names the field.
    flat = {**dataclasses.asdict(s), **{f"{sec}.{k}": v for sec, table in
                                        cfg.to_dict().items() for k, v in table.items()}}
    rank, world = rank_world()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    store = Store(out / "work" / f"{s.name}.state.json", flat, writer=rank == 0)
    if store.get("digital_accuracy") is None:
        store.set("digital_accuracy", accuracy(net, test))
    digital_acc = store.get("digital_accuracy")
    print(f"{s.model} ({s.checkpoint}), digital: {100 * digital_acc:.2f}%")

    amodel = convert(net, cfg, digital=sorted(set(s.digital))).eval()
    calibrate_inputs(amodel, calib, batches=len(calib))
    print(f"evaluating {s.chips} chips x {len(s.times)} times x {len(s.compensation)} "
          "compensations" + (f", shared by {world} processes" if world > 1 else ""))
    rows = store.over_time("main", amodel, test, s.times, chips=s.chips,
                           compensation=tuple(s.compensation), seed=s.seed,
                           device_name=cfg.device.name, progress=progress, calib_loader=calib_adabs,
                           on_program=adc_ranges_per_chip(calib) if s.calibrate_adc else None)
    if rank:  # rank 0 writes the results
        return out / f"{s.name}.json"
    program(amodel, seed=s.seed)  # the read energy of chip 0's conductances
    energy = demo.energy_summary(amodel, shape)
    rows += point_rows({"digital": digital_acc})

    print(_table(rows, digital_acc))
    print(f"\nenergy per inference on {energy['hardware']}: "
          f"{1e6 * energy['energy_per_inference_j']:.3f} uJ, "
          f"{energy['tops_per_w']:.2f} TOP/s/W, latency {1e6 * energy['latency_s']:.1f} us")
    write_text_atomic(out / f"{s.name}_config.toml", resolved)
    timed = [r for r in rows if "t_s" in r]
    demo.plot(timed, digital_acc, out / f"{s.name}.png",
              f"{description} ({s.model}), {dataset}; {s.preset} chip; mean +- std over "
              f"{s.chips} chips")
    path = write_results(out / f"{s.name}.json", study="evaluate", command=command,
                         dataset=dataset, started=store.get("started"),
                         runtime_s=store.runtime(),
                         baseline={"name": "digital", "accuracy": digital_acc}, rows=rows,
                         config=tomllib.loads(resolved), energy=energy)
    print(f"\nwrote {path}, {out / f'{s.name}.png'}, {out / f'{s.name}_config.toml'} "
          f"({store.runtime():.0f} s in total)")
    return path


def _table(rows: list[dict], baseline: float) -> str:
    """Accuracy (%) per method (lines) and time (columns), mean +- std over chips."""
    timed = [r for r in rows if "t_s" in r]
    times = sorted({r["t_s"] for r in timed})
    methods = sorted({r["method"] for r in timed}, key=lambda m: (m.count("+"), m))
    by = {(r["method"], r["t_s"]): r for r in timed}
    lines = [f"digital: {100 * baseline:.2f}%", "",
             f"{'method':>16s} " + " ".join(f"{_when(t):>15s}" for t in times)]
    for m in methods:
        lines.append(f"{m:>16s} " + " ".join(
            f"{100 * by[m, t]['mean']:7.2f} +- {100 * by[m, t]['std']:4.2f}" for t in times))
    return "\n".join(lines)


def _when(t: float) -> str:
    for unit, sec in (("y", 31_536_000), ("mo", 2_592_000), ("d", 86_400), ("h", 3600),
                      ("s", 1)):
        if t >= sec:
            return f"{t / sec:.3g} {unit}"
    return f"{t:.3g} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aimc evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="the evaluation file (TOML; --example prints one)")
    p.add_argument("--out", default="results/evaluate", help="output folder")
    p.add_argument("--example", action="store_true", help="print an example file and exit")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--distributed", action="store_true",
                   help="under torchrun: the processes share the chips (gloo); rank 0 "
                        "writes the results (torchrun --nproc-per-node N -m aimc.cli "
                        "evaluate --distributed ...)")
    args = p.parse_args(argv)
    if args.example:
        print(EXAMPLE, end="")
        return 0
    if not args.config:
        p.error("--config FILE is needed (aimc evaluate --example prints one)")
    settings, cfg = load(args.config)
    torch.set_num_threads(args.threads)
    words = sys.argv[1:] if argv is None else argv
    if args.distributed:
        init_distributed("aimc evaluate")
    with rank0_stdout():  # rank 0 speaks for the run
        run(settings, cfg, Path(args.out), progress=not args.no_progress,
            command=("aimc evaluate " + " ".join(words)).strip())
    if args.distributed:  # (a failed rank ends the run: torchrun stops the others)
        finish_distributed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
