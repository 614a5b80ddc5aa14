"""Results files in the project's convention (DESIGN.md, "Results convention").

Every study writes ``NAME.json`` (and ``NAME.png`` where a plot fits, plus the
resolved config) into its output folder, atomically.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from ..config import write_text_atomic


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
