"""``aimc.energy.estimate``: energy, latency, throughput and area of a converted network.

Per layer (in execution order) and in total, for one hardware preset and the digital
baselines. The counting and the per-event energies are in :mod:`aimc.energy.cost`; the
operations come from one traced forward pass (:mod:`aimc.energy.trace`).

Latency. Tiles of one layer run in parallel and each reads its L input vectors one after
another, so an analog layer takes L * t_mvm; digital work takes ops / throughput.
*Unpipelined*: the layers one after another (sum). *Pipelined*: each layer starts as soon
as its producer has written the rows it needs (the kernel height of a conv; everything
for a dense layer or a global pooling), in the spirit of the row-wise layer pipeline of
Dazzi et al. 2021 used on the 64-core chip; a layer finishes no earlier than its own
duration after it starts, nor earlier than one output row after its producer finishes.
Throughput (pipelined, steady state) is one batch per slowest stage. Residual branches
are treated as a chain in execution order.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import write_text_atomic
from ..functional import tile as ft
from .cost import analog_counts, analog_energy, input_window, mvm_time
from .hardware import (
    DEFAULT_BASELINES,
    AnalogHardware,
    DigitalBaseline,
    get_baseline,
    get_hardware,
)
from .trace import ALL_ROWS, Op, trace

COMPONENTS = ("crossbar", "dac", "adc", "periphery", "movement", "digital")
"""Energy components reported per layer: crossbar read, DAC (row drivers), ADC, tile
periphery (accumulate, scale, bias), data movement of activations, digital compute
(layers left digital and element operations)."""

ROW_FIELDS = ("name", "kind", "type", "macs", "tiles", "devices", "mvms", "dac_conversions",
              "adc_conversions", "digital_ops", "bytes_moved", "activity", "g_sum_us",
              "conductances", *(f"e_{c}_j" for c in COMPONENTS), "energy_j", "energy_share",
              "latency_s", "area_mm2", "dominant")
"""Columns of a per-layer row (counts and energies per inference, latency for the batch)."""


def conductance_sum(layer: nn.Module) -> tuple[float, str]:
    """Sum of the layer's conductances in uS and where it comes from.

    After :func:`aimc.program`, the programmed pairs (buffers ``g_pos`` + ``g_neg``);
    before, the target conductances of the mapping (pcm-model.md sec. 1: G = |w| / s with
    s = max|W| / g_max per tile or column), computed the way ``program_chip`` does.
    """
    if layer.programmed:
        return float(layer.g_pos.sum() + layer.g_neg.sum()), "programmed"
    cfg = layer.analog_config
    geo = layer.geometry()
    w_tiles = ft.tile_weights(layer.weight_matrix().detach().float().cpu(), geo.n_tiles,
                              geo.tile_rows)
    scale = ft.weight_scales(w_tiles, cfg.tile.cols, cfg.mapping.weight_scaling == "column")
    # Open-loop pairs each hold the weight (closed-loop ones hold less: an upper bound);
    # each of a pair's two devices sits at g_min or above.
    m = cfg.mapping
    g = (w_tiles.abs() / scale.unsqueeze(-1)).sum() * (cfg.device.g_max - m.g_min)
    g = (g + 2 * m.g_min * layer.weight.numel()) * m.pairs
    return float(g), "target"


@dataclass
class EnergyTable:
    """The result of :func:`estimate`: per-layer rows, totals and what was left out."""

    model: str
    """Name of the model (for reports)."""
    hardware: dict[str, Any]
    """The hardware preset, every field and its sources."""
    baselines: list[dict[str, Any]]
    """The digital baselines compared against, with their sources."""
    input_shape: list[int]
    """Shape of one input sample (no batch dimension)."""
    batch: int
    """Samples in the traced batch; energies and counts are per inference (/ batch)."""
    rows: list[dict[str, Any]]
    """Per-layer rows in execution order (columns: :data:`ROW_FIELDS`)."""
    totals: dict[str, Any]
    """Whole-network figures (see docs/energy.md for each key)."""
    unsupported: list[str]
    """Operations that hold or use weights but have no cost rule: not costed, so the totals
    are a lower bound when this is not empty."""
    uncosted_functions: dict[str, int] = field(default_factory=dict)
    """Tensor functions without a cost rule seen outside costed modules (name -> calls)."""

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON-able data."""
        return {"model": self.model, "hardware": self.hardware, "baselines": self.baselines,
                "input_shape": self.input_shape, "batch": self.batch, "totals": self.totals,
                "unsupported": self.unsupported, "uncosted_functions": self.uncosted_functions,
                "layers": self.rows}

    def summary_rows(self) -> list[dict[str, Any]]:
        """Totals as rows of the results convention (method = hardware name)."""
        method = self.hardware["name"]
        keys = ["energy_j", "tops_per_w", "latency_s", "latency_pipelined_s",
                "throughput_inf_per_s", "area_mm2", "tiles", "chips"]
        keys += [k for k in self.totals if k.startswith("ratio_")]
        return [{"method": method, "metric": k, "mean": self.totals[k], "n": 1} for k in keys]

    def to_json(self, path: str | os.PathLike, *, command: str = "", started: str = "",
                runtime_s: float = 0.0) -> Path:
        """Write the results JSON (results convention plus ``layers``/``totals``), atomically."""
        from ..experiments.results import now_utc, write_results
        doc = self.to_dict()
        return write_results(
            path, study=f"energy-{self.model}-{self.hardware['name']}",
            command=command or f"python -m aimc.energy --model {self.model} "
                               f"--preset {self.hardware['name']}",
            dataset=f"none: cost model on input shape {self.input_shape}",
            started=started or now_utc(), runtime_s=runtime_s, rows=self.summary_rows(),
            **{k: v for k, v in doc.items() if k != "model"}, model=self.model)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the per-layer rows and a TOTAL row as CSV, atomically."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(ROW_FIELDS), extrasaction="ignore")
        writer.writeheader()
        for row in self.rows:
            writer.writerow(row)
        t = self.totals
        writer.writerow({"name": "TOTAL", "kind": "total", "macs": t["macs"],
                         "tiles": t["tiles"], "devices": t["devices"], "mvms": t["mvms"],
                         "dac_conversions": t["dac_conversions"],
                         "adc_conversions": t["adc_conversions"],
                         "digital_ops": t["digital_ops"], "bytes_moved": t["bytes_moved"],
                         **{f"e_{c}_j": t[f"e_{c}_j"] for c in COMPONENTS},
                         "energy_j": t["energy_j"], "energy_share": 1.0,
                         "latency_s": t["latency_s"], "area_mm2": t["area_mm2"],
                         "dominant": t["dominant"]})
        path = Path(path)
        write_text_atomic(path, buf.getvalue())
        return path

    def format(self, max_rows: int | None = None) -> str:
        """A plain-text report: one line per layer, then the totals and the baselines."""
        t = self.totals
        head = (f"{'layer':<28} {'type':<12} {'MACs':>10} {'tiles':>5} {'MVMs':>8} "
                f"{'energy nJ':>10} {'share':>6} {'lat. us':>8}  dominant")
        lines = [f"aimc energy: {self.model} on {self.hardware['name']} "
                 f"({self.hardware['description']}), input {self.input_shape}, "
                 f"per inference", head, "-" * len(head)]
        rows = self.rows if max_rows is None else self.rows[:max_rows]
        for r in rows:
            kind = r["type"] if r["kind"] != "unsupported" else "UNSUPPORTED"
            lines.append(f"{r['name'][:28]:<28} {kind[:12]:<12} {r['macs']:>10,d} "
                         f"{r['tiles']:>5d} {r['mvms']:>8,d} {r['energy_j'] * 1e9:>10.2f} "
                         f"{r['energy_share'] * 100:>5.1f}% {r['latency_s'] * 1e6:>8.3f}  "
                         f"{r['dominant']}")
        if max_rows is not None and len(self.rows) > max_rows:
            lines.append(f"... {len(self.rows) - max_rows} more rows")
        lines.append("-" * len(head))
        parts = ", ".join(f"{c} {t[f'e_{c}_j'] / t['energy_j'] * 100:.1f}%"
                          for c in COMPONENTS if t["energy_j"] > 0)
        lines += [
            f"energy / inference   {t['energy_j'] * 1e6:.4g} uJ  ({parts})",
            f"dominant cost        {t['dominant']}",
            f"efficiency           {t['tops_per_w']:.3g} TOP/s/W  (2 ops per MAC, "
            f"{t['macs']:,d} MACs)",
            f"latency              {t['latency_s'] * 1e6:.4g} us unpipelined, "
            f"{t['latency_pipelined_s'] * 1e6:.4g} us pipelined",
            f"throughput           {t['throughput_inf_per_s']:.4g} inferences/s (pipelined)",
            f"area                 {t['area_mm2']:.4g} mm^2, {t['tiles']} tiles "
            f"({t['chips']} chip(s) of {self.hardware['tiles_per_chip']} tiles), "
            f"{t['devices']:,d} PCM devices",
        ]
        for b in self.baselines:
            key = b["name"]
            lines.append(f"vs {key:<17} {t[f'energy_{key}_j'] * 1e6:.4g} uJ digital -> "
                         f"{t[f'ratio_{key}']:.3g}x less energy on the analog chip")
        if self.unsupported:
            lines.append("NOT COSTED (unsupported, totals are a lower bound): "
                         + ", ".join(self.unsupported))
        if self.uncosted_functions:
            lines.append("functions without a cost rule (not charged): "
                         + ", ".join(f"{k} x{v}" for k, v in self.uncosted_functions.items()))
        return "\n".join(lines)


def _bits(configured: int, nominal: int) -> int:
    # 0 means "exact" in the simulator; hardware always has some resolution.
    return configured if configured else nominal


def _analog_row(op: Op, hw: AnalogHardware, activity_default: float) -> dict[str, Any]:
    layer = op.module
    cfg = layer.analog_config
    geo = layer.geometry()
    dac_bits = _bits(cfg.tile.dac_bits, hw.dac_bits)
    adc_bits = _bits(cfg.tile.adc_bits, hw.adc_bits)
    bias = layer.bias is not None
    counts = analog_counts(geo.groups, geo.out_g, geo.fan_in, geo.n_tiles, cfg.tile.cols,
                           op.vectors, max(hw.devices_per_weight, 2 * cfg.mapping.pairs),
                           layer.analog_bias,
                           bias and not layer.analog_bias)
    g_sum, source = conductance_sum(layer)
    activity = op.activity if op.activity is not None else activity_default
    e = analog_energy(hw, counts, dac_bits, adc_bits, g_sum, activity)
    per_tile_area = hw.tile_area * (cfg.tile.rows * cfg.tile.cols) / (hw.tile_rows * hw.tile_cols)
    return {
        "macs": counts.macs, "tiles": counts.tiles, "devices": counts.devices,
        "mvms": counts.mvms, "dac_conversions": counts.dac_conversions,
        "adc_conversions": counts.adc_conversions,
        "digital_ops": counts.accumulations + counts.scalings + counts.bias_adds,
        "activity": activity, "g_sum_us": g_sum, "conductances": source,
        "e_crossbar_j": e.crossbar, "e_dac_j": e.dac, "e_adc_j": e.adc,
        "e_periphery_j": e.digital,
        "latency_s": op.vectors * mvm_time(hw, dac_bits, adc_bits),
        "area_mm2": counts.tiles * per_tile_area,
        "t_in_s": input_window(hw, dac_bits), "dac_bits": dac_bits, "adc_bits": adc_bits,
    }


def _digital_row(op: Op, hw: AnalogHardware) -> dict[str, Any]:
    ops = op.ops
    n_ops = sum(ops.values())
    if op.kind == "digital":
        # weights read once per batch from the local buffer, one MAC per weight use
        e = op.macs * hw.e_mac_digital + op.weights * hw.e_byte_move
        return {"macs": op.macs, "e_digital_j": e, "digital_ops": 0,
                "latency_s": op.macs / hw.digital_macs_per_s}
    e = (ops.get("elem", 0) * hw.e_elem + ops.get("scale", 0) * hw.e_scale
         + ops.get("act", 0) * hw.e_act)
    return {"digital_ops": n_ops, "e_digital_j": e, "latency_s": n_ops / hw.digital_ops_per_s}


def _pipeline(stages: list[tuple[float, int, int]]) -> float:
    """Latency of a row-wise layer pipeline (module docstring); stages are
    (duration, output rows, input rows needed from the producer)."""
    start = finish = 0.0
    prev: tuple[float, int, int] | None = None
    for t, rows, need in stages:
        if prev is not None:
            t_prev, rows_prev, _ = prev
            if need == ALL_ROWS or rows_prev <= 1:
                start = finish
            else:
                start = start + t_prev * min(1.0, need / rows_prev)
            finish = max(start + t, finish + t / max(rows, 1))
        else:
            finish = t
        prev = (t, rows, need)
    return finish


def _dominant(row: dict[str, Any]) -> str:
    best = max(COMPONENTS, key=lambda c: row.get(f"e_{c}_j", 0.0))
    return best if row.get(f"e_{best}_j", 0.0) > 0 else "-"


def estimate(model: nn.Module, config: str | AnalogHardware,
             input_shape: Sequence[int] | None = None, *,
             baselines: Sequence[str | DigitalBaseline] = DEFAULT_BASELINES,
             inputs: Tensor | None = None, batch: int = 1, name: str = "") -> EnergyTable:
    """Energy, latency, throughput and area of ``model`` on the hardware ``config``.

    ``model`` is a network converted with :func:`aimc.convert` (after :func:`aimc.program`
    the read energy uses the programmed conductances, before it the mapping's targets);
    layers left digital are costed on the accelerator's digital unit; element operations
    (batch norm, activations, pooling, residual adds) in its digital periphery; operations
    without a cost rule are listed in ``unsupported`` with a warning. ``config`` is an
    :class:`AnalogHardware` or a preset name (:data:`aimc.energy.HARDWARE`).
    ``input_shape`` is one sample's shape without the batch dimension; with ``inputs`` (a
    batch of real data) the analog layers' input activity is measured from it. Energies
    and counts are per inference; latency is for the batch of ``batch`` samples (1 by
    default: the latency of one inference).
    """
    hw = get_hardware(config)
    bases = [get_baseline(b) for b in baselines]
    if inputs is None:
        if input_shape is None:
            raise ValueError("estimate needs input_shape (one sample, no batch) or inputs")
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an integer >= 1, got {batch!r}")
        inputs = torch.zeros(batch, *input_shape)
    else:
        batch = int(inputs.shape[0])
        input_shape = tuple(inputs.shape[1:])
    was_training = model.training
    try:
        tr = trace(model, inputs)
    finally:
        model.train(was_training)

    rows: list[dict[str, Any]] = []
    stages: list[tuple[float, int, int]] = []
    for op in tr.ops:
        row: dict[str, Any] = {k: 0 for k in ROW_FIELDS}
        row.update({f"e_{c}_j": 0.0 for c in COMPONENTS})
        row.update(name=op.name, kind=op.kind, type=op.type, activity=None, g_sum_us=None,
                   conductances="", latency_s=0.0, area_mm2=0.0)
        if op.kind == "analog":
            row.update(_analog_row(op, hw, hw.default_activity))
        elif op.kind in ("digital", "elementwise"):
            row.update(_digital_row(op, hw))
        if op.kind in ("analog", "digital"):
            row["bytes_moved"] = (op.in_numel + op.out_numel) * hw.bytes_per_activation
        elif op.kind == "elementwise":
            # fused into the producer's digital periphery (the 64-core chip's local digital
            # units apply scaling and ReLU in place): only a second operand moves
            row["bytes_moved"] = op.extra_in * hw.bytes_per_activation
        row["e_movement_j"] = row["bytes_moved"] * hw.e_byte_move
        # per inference: every count and energy is for the batch so far
        for key in ("macs", "mvms", "dac_conversions", "adc_conversions", "digital_ops",
                    "bytes_moved", *(f"e_{c}_j" for c in COMPONENTS)):
            row[key] = row[key] / batch if isinstance(row[key], float) else row[key] // batch
        row["energy_j"] = sum(row[f"e_{c}_j"] for c in COMPONENTS)
        row["dominant"] = "not costed" if op.kind == "unsupported" else _dominant(row)
        row["_weights"] = op.weights
        row["_elem_ops"] = sum(op.ops.values()) // batch
        row["_acts"] = (op.in_numel + op.out_numel) // batch
        rows.append(row)
        if row["latency_s"] > 0:
            stages.append((row["latency_s"], op.out_rows, op.need_rows))

    totals = _totals(rows, stages, hw, bases, batch)
    for row in rows:
        row["energy_share"] = row["energy_j"] / totals["energy_j"] if totals["energy_j"] else 0.0
        for key in ("_weights", "_elem_ops", "_acts"):
            row.pop(key)
    unsupported = [f"{r['name']} ({r['type']})" for r in rows if r["kind"] == "unsupported"]
    if unsupported:
        warnings.warn("aimc.energy.estimate: no cost rule for " + ", ".join(unsupported)
                      + "; they are listed in table.unsupported and not costed", stacklevel=2)
    return EnergyTable(
        model=name or type(model).__name__, hardware=hw.to_dict(),
        baselines=[b.to_dict() for b in bases], input_shape=[int(s) for s in input_shape],
        batch=batch, rows=rows, totals=totals, unsupported=unsupported,
        uncosted_functions=tr.uncosted_functions)


def _totals(rows: list[dict[str, Any]], stages: list[tuple[float, int, int]],
            hw: AnalogHardware, bases: list[DigitalBaseline], batch: int) -> dict[str, Any]:
    t: dict[str, Any] = {}
    for key in ("macs", "tiles", "devices", "mvms", "dac_conversions", "adc_conversions",
                "digital_ops", "bytes_moved"):
        t[key] = sum(int(r[key]) for r in rows)
    for c in COMPONENTS:
        t[f"e_{c}_j"] = sum(r[f"e_{c}_j"] for r in rows)
    t["energy_j"] = sum(t[f"e_{c}_j"] for c in COMPONENTS)
    t["dominant"] = _dominant(t)
    t["tops_per_w"] = 2.0 * t["macs"] / t["energy_j"] / 1e12 if t["energy_j"] else 0.0
    t["latency_s"] = sum(r["latency_s"] for r in rows)
    t["latency_pipelined_s"] = _pipeline(stages)
    slowest = max((s[0] for s in stages), default=0.0)
    t["throughput_inf_per_s"] = batch / slowest if slowest else 0.0
    native = sum(r["area_mm2"] for r in rows) / hw.tile_area if hw.tile_area else 0.0
    t["tiles_native"] = native
    t["chips"] = max(1, math.ceil(native / hw.tiles_per_chip - 1e-9))
    t["area_mm2"] = sum(r["area_mm2"] for r in rows) + hw.digital_area
    analog = [r for r in rows if r["kind"] == "analog"]
    e_mvm = sum(r["e_crossbar_j"] + r["e_dac_j"] + r["e_adc_j"] + r["e_periphery_j"]
                for r in analog)
    t["analog_macs"] = sum(r["macs"] for r in analog)
    t["tops_per_w_mvm"] = 2.0 * t["analog_macs"] / e_mvm / 1e12 if e_mvm else 0.0
    t["complete"] = not any(r["kind"] == "unsupported" for r in rows)
    weights = sum(r["_weights"] for r in rows if r["kind"] in ("analog", "digital"))
    acts = sum(r["_acts"] for r in rows if r["kind"] != "unsupported")
    elem_ops = sum(r["_elem_ops"] for r in rows)
    t["weights"] = weights
    for b in bases:
        moved = (weights / batch + acts) * b.bytes_per_value
        e_b = (t["macs"] + elem_ops) * b.e_mac + moved * b.e_byte
        t[f"energy_{b.name}_j"] = e_b
        t[f"ratio_{b.name}"] = e_b / t["energy_j"] if t["energy_j"] else math.inf
    return t


def validate_legallo2023(seed: int = 0, activity: float | None = None) -> dict[str, float]:
    """The model's TOP/s/W for one 8-bit 256 x 256 MVM on the 64-core chip preset.

    A 256 x 256 :class:`aimc.AnalogLinear` with weights uniform in [-1, 1] is converted
    with the preset's tile, programmed (PCM model, ``seed``) and costed; the MVM energy
    (crossbar, DAC, ADC, periphery; no data movement, as in the chip's MVM figure) gives
    TOP/s/W, compared with the published 9.76 (Le Gallo 2023) and 10.5 (HERMES core,
    Khaddam-Aljameh 2022). ``activity`` defaults to the preset's (0.5, uniform inputs).
    """
    import dataclasses

    from ..inference import program
    from ..nn import convert
    from .hardware import HERMES_TOPSW, LEGALLO2023_TOPSW_1PHASE, pcm14nm_legallo2023
    hw = pcm14nm_legallo2023()
    if activity is not None:
        hw = dataclasses.replace(hw, default_activity=activity)
    gen = torch.Generator().manual_seed(seed)
    lin = nn.Linear(256, 256, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.rand(256, 256, generator=gen) * 2 - 1)
    amodel = convert(lin, hw.analog_config())
    program(amodel, seed=seed)
    table = estimate(amodel, hw, (256,), baselines=())
    row = table.rows[0]
    e = row["e_crossbar_j"] + row["e_dac_j"] + row["e_adc_j"] + row["e_periphery_j"]
    tops_w = 2.0 * row["macs"] / e / 1e12
    return {"tops_per_w": tops_w, "published_tops_per_w": LEGALLO2023_TOPSW_1PHASE / 1e12,
            "ratio_to_published": tops_w / (LEGALLO2023_TOPSW_1PHASE / 1e12),
            "hermes_tops_per_w": HERMES_TOPSW / 1e12,
            "ratio_to_hermes": tops_w / (HERMES_TOPSW / 1e12),
            "energy_mvm_j": e, "e_crossbar_j": row["e_crossbar_j"], "e_dac_j": row["e_dac_j"],
            "e_adc_j": row["e_adc_j"], "e_periphery_j": row["e_periphery_j"],
            "t_mvm_s": row["latency_s"], "g_sum_us": row["g_sum_us"],
            "activity": row["activity"],
            "tops_per_s_chip": 2.0 * row["macs"] / row["latency_s"] * hw.tiles_per_chip / 1e12}
