"""Results files in the project's convention (DESIGN.md, "Results convention").

Every study writes ``NAME.json`` (and ``NAME.png`` where a plot fits, plus the
resolved config) into its output folder, atomically.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import write_text_atomic
from ..inference import calibrate_outputs, evaluate_over_time


def machine_description() -> str:
    """E.g. "2 CPU cores (x86_64), torch 2.13.0+cpu, 2 threads"."""
    return (f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def now_utc() -> str:
    """ISO-8601 UTC timestamp, seconds resolution."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")


def write_results(path: str | os.PathLike, *, study: str, command: str, dataset: str,
                  started: str, runtime_s: float, rows: list[dict[str, Any]],
                  baseline: dict[str, Any] | None = None, **extra: Any) -> Path:
    """Write a results JSON (study, command, dataset, started, runtime_s, machine,
    baseline, rows, extra keys) atomically; returns the path."""
    for i, row in enumerate(rows):
        missing = {"method", "metric", "mean"} - set(row)
        if missing:
            raise ValueError(f"rows[{i}] lacks {sorted(missing)}")
    doc = {"study": study, "command": command, "dataset": dataset, "started": started,
           "runtime_s": round(float(runtime_s), 3), "machine": machine_description()}
    if baseline is not None:
        doc["baseline"] = baseline
    doc["rows"] = rows
    doc.update(extra)
    path = Path(path)
    write_text_atomic(path, json.dumps(doc, indent=2) + "\n")
    return path


def point_rows(accuracies: dict[str, float]) -> list[dict[str, Any]]:
    """Result rows for single measurements (method name -> accuracy): digital baselines
    and the like, with std 0 and n 1."""
    return [{"method": m, "metric": "accuracy", "mean": a, "std": 0.0, "n": 1}
            for m, a in accuracies.items()]


def write_study(out: Path, study: str, argv: list[str] | None, *, config: dict[str, Any],
                stem: str | None = None, **fields: Any) -> Path:
    """Write a reproduction's ``{stem}_config.json`` and ``{stem}.json`` (with
    :func:`write_results`; ``fields`` are its keyword arguments but ``study`` and
    ``command``) into ``out``, and print the study's files there. ``stem`` is the study
    name unless given; the command is ``aimc reproduce {study}`` and ``argv`` (the
    process's arguments when None). Returns the results path."""
    stem = stem or study
    write_text_atomic(out / f"{stem}_config.json", json.dumps(config, indent=2) + "\n")
    args = sys.argv[1:] if argv is None else argv
    command = f"aimc reproduce {study} " + " ".join(args)
    path = write_results(out / f"{stem}.json", study=study, command=command.strip(),
                         config=config, **fields)
    files = [path, *sorted(p for p in out.glob(f"{stem}*") if p != path)]
    print(f"\nwrote {', '.join(map(str, files))} ({fields['runtime_s']:.0f} s in total)")
    return path


class Store:
    """A JSON file of a study's finished results in its work folder, rewritten atomically
    on every update: what an interrupted run resumes from.

    With ``settings`` the store belongs to one study: a folder holding a run with other
    settings is refused (``SystemExit`` naming the differing keys), and :meth:`runtime`
    counts the compute time of every session of the run. ``writer=False`` (the other
    ranks of a distributed run) reads the file and keeps its updates in memory.
    """

    def __init__(self, path: Path, settings: dict[str, Any] | None = None,
                 writer: bool = True) -> None:
        self.path, self.writer = path, writer
        if writer:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        self._t_session = time.perf_counter()
        self._spent_before = float(self.data.get("runtime_s", 0.0))
        if settings is not None:
            old = self.data.get("study")
            if old not in (None, settings):
                diff = sorted(k for k in {**old, **settings} if old.get(k) != settings.get(k))
                raise SystemExit(f"{path.parent} holds a run with other settings ({diff}); "
                                 "use another --out or delete that folder")
            self.set("study", settings)
            self.set("started", self.data.get("started") or now_utc())

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        if self.writer:
            write_text_atomic(self.path, json.dumps(self.data, indent=1) + "\n")

    def runtime(self) -> float:
        """Seconds of compute of this run: earlier sessions' and this one's so far."""
        return self._spent_before + time.perf_counter() - self._t_session

    def over_time(self, variant: str, model: nn.Module, loader: Iterable,
                  times: Sequence[float], **kwargs: Any) -> list[dict[str, Any]]:
        """:func:`aimc.evaluate_over_time` of ``model`` (named ``variant`` in the store)
        that saves each accuracy as it is measured and reuses those of an earlier session."""
        values = self.data.setdefault("values", {})
        known = {(int(c), float(t), m): v for key, v in values.items()
                 for var, c, t, m in [key.split("|")] if var == variant}

        def save(chip: int, t: float, method: str, acc: float) -> None:
            values[f"{variant}|{chip}|{t}|{method}"] = acc
            self.set("values", values)
            self.set("runtime_s", self.runtime())

        return evaluate_over_time(model, loader, times, known=known, on_value=save, **kwargs)


def add_calibrate_adc(parser: argparse.ArgumentParser, images: str) -> None:
    """A study's ``--calibrate-adc`` flag (see :func:`adc_ranges_per_chip`)."""
    parser.add_argument("--calibrate-adc", action="store_true",
                        help="set each layer's ADC range on each chip right after programming "
                             f"(aimc.calibrate_outputs on {images}, quantile 0.9999) instead "
                             "of one range for every layer")


def adc_ranges_per_chip(calib: Sequence) -> Callable[[nn.Module, int], None]:
    """An ``on_program`` hook for :func:`aimc.evaluate_over_time`: every chip gets its
    layers' ADC ranges from all batches of ``calib`` (:func:`aimc.calibrate_outputs`)."""
    def set_up(model: nn.Module, chip: int) -> None:
        calibrate_outputs(model, calib, batches=len(calib))
    return set_up
