"""Energy of in-situ training on PCM crossbars: reads, update arithmetic, programming pulses.

An in-situ trained fully connected layer of ``fan_in`` inputs and ``out`` outputs, held
on the same tiles as in inference (split along its inputs into ``ceil(fan_in / rows)``
tiles, along its outputs into ``ceil(out / cols)``), costs per training sample:

- **forward**: one read of every tile (inputs on the rows), as one inference of the layer
  (:func:`aimc.energy.cost.analog_energy`), plus moving its input and output activations;
- **backward** (every layer but the first, whose input error nobody needs): one read of
  the same tiles transposed, errors driven on the columns and converted on the rows
  (Burr et al., IEEE TED 62, 3498 (2015); Gokmen & Vlasov 2016): ``out`` DAC drives per
  row tile, ``fan_in`` ADC conversions per column tile;
- **digital**: the activation and its derivative, one element operation per output each.

and per training run the update, which is where the algorithms differ (``UPDATE_RULES``):

- ``mixed-precision`` (Nandakumar et al. 2020): the digital unit forms the outer product
  x d^T (one MAC per weight and sample) and updates and compares its accumulator chi once
  per weight and step; every SET pulse it sends is charged ``e_set_pulse``;
- ``analog-sgd`` (Gokmen & Vlasov 2016): per sample, BL random bits per row and column
  decide the stochastic pulse trains, each pulse sent on a line costs a line drive
  (``e_dac_row``) and each coincidence a SET pulse on a device;
- ``2t2r3t1c`` (Ambrogio et al. 2018): the update is applied in the array, one encoded
  pulse per row and column and sample (Burr et al. 2015's crossbar-compatible update, a
  line drive each), each capacitor step costing the cell ``e_volatile_pulse``; each
  transfer reads the weight and programs the PCM pair closed-loop, a verify read (one row
  drive, one ADC conversion) after every SET pulse;
- ``tiki-taka`` (Gokmen & Haensch 2020): pulse coincidence on the fast array A (as
  analog SGD, its device steps at ``e_volatile_pulse``), every transfer reads columns of
  A (one ADC conversion and scaling per element read) and sends SET pulses to the slow
  PCM pair C.

Every method pays ``e_reset_pulse`` twice per refreshed pair (both devices are RESET),
a read of the pair's weight, and the SET pulses that program it back (in the pulse count).
The per-pulse energies are hardware fields with their sources (:mod:`aimc.energy.hardware`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .cost import AnalogEnergy, adc_energy, analog_counts, analog_energy, breakdown
from .hardware import AnalogHardware, DigitalBaseline, get_baseline, get_hardware

COMPONENTS = ("forward", "backward", "update_compute", "update_lines", "set_pulses",
              "reset_pulses", "volatile_pulses", "verify_reads")
"""Energy components of a training run (J), in the order :meth:`TrainingEnergy.format`
prints them."""


@dataclass(frozen=True)
class TrainingCounts:
    """What an in-situ training run did, as its optimizer counted it
    (:meth:`aimc.training.insitu.InSituOptimizer.stats`) plus the samples it saw."""

    samples: int
    """Training samples presented (images x epochs)."""
    steps: int
    """Optimizer steps (mini-batches)."""
    pulses: int
    """SET pulses on PCM devices: initial programming, updates, transfers, refreshes."""
    volatile_pulses: int = 0
    """Steps of volatile devices: 3T1C capacitor charge steps, fast-array (A) pulses."""
    refreshes: int = 0
    """PCM pairs RESET and programmed back after a device saturated."""
    transfers: int = 0
    """2T2R+3T1C: weights moved into their PCM pair; Tiki-Taka: elements of A read."""
    fast_resets: int = 0
    """Tiki-Taka with a PCM fast array: A pairs RESET."""
    line_pulses: int | None = None
    """Pulses sent on rows and columns by stochastic pulse-coincidence updates; None when
    the run did not count them (then BL pulses per line and sample, an upper bound)."""
    verified_pulses: int | None = None
    """SET pulses followed by a verify read (closed-loop programming); None when the run
    did not count them (then all pulses of 2T2R+3T1C and none of the others)."""

    def __post_init__(self) -> None:
        for key in ("samples", "steps", "pulses", "volatile_pulses", "refreshes", "transfers",
                    "fast_resets", "line_pulses", "verified_pulses"):
            value = getattr(self, key)
            if value is None and key in ("line_pulses", "verified_pulses"):
                continue
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise ValueError(f"TrainingCounts.{key} must be an integer >= 0, got {value!r}")

    @classmethod
    def from_stats(cls, stats: Mapping[str, Any], samples: int) -> TrainingCounts:
        """Counts from an optimizer's ``stats()`` (or a results row holding them)."""
        def get(key: str, default: Any = 0) -> Any:
            value = stats.get(key, default)
            return int(value) if value is not None else None
        return cls(samples=int(samples), steps=get("steps"), pulses=get("pulses"),
                   volatile_pulses=get("volatile_pulses"), refreshes=get("refreshes"),
                   transfers=get("transfers"), fast_resets=get("fast_resets"),
                   line_pulses=get("line_pulses", None),
                   verified_pulses=get("verified_pulses", None))


@dataclass(frozen=True)
class Layout:
    """The in-situ network as the cost model sees it: layer shapes and tile periphery."""

    shapes: tuple[tuple[int, int], ...]
    """(fan_in, out) of each in-situ layer, input to output."""
    rows: int
    """Tile rows."""
    cols: int
    """Tile columns."""
    dac_bits: int
    """Input (and error) DAC resolution."""
    adc_bits: int
    """Output ADC resolution."""
    g_sum_us: tuple[float, ...]
    """Sum of the conductances read per layer (uS): every PCM device of its pairs."""
    devices_per_weight: int = 2
    """PCM devices read per weight (2 for one pair)."""

    def __post_init__(self) -> None:
        # Stored as tuples so a Layout is hashable and cannot change under a result.
        object.__setattr__(self, "shapes", tuple(tuple(int(v) for v in s) for s in self.shapes))
        object.__setattr__(self, "g_sum_us", tuple(float(g) for g in self.g_sum_us))
        if not self.shapes or any(len(s) != 2 or min(s) < 1 for s in self.shapes):
            raise ValueError(f"Layout.shapes must be (fan_in, out) pairs >= 1, got {self.shapes!r}")
        if len(self.g_sum_us) != len(self.shapes) or min(self.g_sum_us) < 0:
            raise ValueError("Layout.g_sum_us needs one sum >= 0 per layer, got "
                             f"{self.g_sum_us!r} for {len(self.shapes)} layers")
        for key in ("rows", "cols", "dac_bits", "adc_bits", "devices_per_weight"):
            value = getattr(self, key)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"Layout.{key} must be an integer >= 1, got {value!r}")

    @property
    def weights(self) -> int:
        """Number of weights of all layers."""
        return sum(i * o for i, o in self.shapes)


@dataclass(frozen=True)
class TrainingEnergy:
    """Energy of one in-situ training run (J), by component (see the module docstring)."""

    method: str
    """In-situ algorithm (a key of :data:`UPDATE_RULES`)."""
    hardware: str
    """Hardware preset name."""
    samples: int
    """Training samples presented."""
    forward: float
    """Forward reads, activations moved, activations."""
    backward: float
    """Transposed reads of the error, moved, activation derivatives."""
    update_compute: float
    """Digital update arithmetic: outer products, accumulators, random bits."""
    update_lines: float
    """Row and column pulses of parallel (pulse-coincidence) updates."""
    set_pulses: float
    """SET pulses on PCM devices."""
    reset_pulses: float
    """RESET pulses on PCM devices."""
    volatile_pulses: float
    """Steps of capacitors / fast-array devices."""
    verify_reads: float
    """Reads of single weights: verify after closed-loop pulses, transfer and refresh reads,
    Tiki-Taka's column reads of A."""
    notes: tuple[str, ...] = field(default=())
    """What was assumed where the run did not count something."""

    @property
    def total(self) -> float:
        """Energy of the whole run (J)."""
        return sum(getattr(self, c) for c in COMPONENTS)

    @property
    def per_sample(self) -> float:
        """Energy per training sample (J)."""
        return self.total / max(self.samples, 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: every component in J, the total, per sample and the shares."""
        d = breakdown(self, COMPONENTS, "sample", self.samples)
        d["notes"] = list(self.notes)
        return d

    def format(self) -> str:
        """A short table: each component's energy and share."""
        lines = [f"{self.method} on {self.hardware}: {self.total * 1e3:.4g} mJ for "
                 f"{self.samples:,} samples ({self.per_sample * 1e6:.4g} uJ per sample)"]
        for c in COMPONENTS:
            e = getattr(self, c)
            lines.append(f"  {c:<16} {e * 1e3:12.4g} mJ  {100 * e / (self.total or 1):5.1f}%")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def insitu_layout(optimizer: Any) -> Layout:
    """The :class:`Layout` of the layers an in-situ optimizer trains, with the sum of
    their PCM conductances as they are now (after training: what the last reads saw)."""
    layers = optimizer.layers
    tile = layers[0].insitu_config.tile
    g = [sum(float(gp.sum() + gn.sum()) for gp, gn, _ in optimizer.pcm_devices(layer))
         for layer in layers]
    return Layout(shapes=tuple((layer.in_features, layer.out_features) for layer in layers),
                  rows=tile.rows, cols=tile.cols, dac_bits=tile.dac_bits,
                  adc_bits=tile.adc_bits, g_sum_us=tuple(g))


def layer_read(hw: AnalogHardware, layout: Layout, index: int, activity: float,
               transposed: bool = False) -> AnalogEnergy:
    """Energy of one read of layer ``index``: forward (inputs on rows) or transposed
    (errors on columns, converted on rows); Burr et al. 2015's backward pass."""
    fan_in, out = layout.shapes[index]
    if transposed:
        counts = analog_counts(1, fan_in, out, math.ceil(out / layout.cols), layout.rows, 1,
                               layout.devices_per_weight)
    else:
        counts = analog_counts(1, out, fan_in, math.ceil(fan_in / layout.rows), layout.cols, 1,
                               layout.devices_per_weight, digital_bias=True)
    return analog_energy(hw, counts, layout.dac_bits, layout.adc_bits,
                         layout.g_sum_us[index], activity)


def single_read(hw: AnalogHardware, adc_bits: int) -> float:
    """One read of a single weight (a verify read): one row drive and one ADC conversion
    (J); the device's own read energy (a few fJ) is left out."""
    return hw.e_dac_row + adc_energy(hw, adc_bits)


@dataclass(frozen=True)
class UpdateContext:
    """Everything an update rule may charge."""

    hw: AnalogHardware
    """Hardware preset."""
    layout: Layout
    """Layer shapes and periphery."""
    counts: TrainingCounts
    """The run's counts."""
    bl: int
    """Pulse-train length of pulse-coincidence updates."""


def _outer_product(ctx: UpdateContext) -> float:
    # One MAC per weight and sample for x d^T, then per step one update and one compare of
    # each weight's accumulator (Nandakumar 2020).
    w = ctx.layout.weights
    return (ctx.counts.samples * w * ctx.hw.e_mac_digital
            + ctx.counts.steps * w * 2 * ctx.hw.e_elem)


def _coincidence(ctx: UpdateContext, notes: list[str]) -> tuple[float, float]:
    """(random-bit generation, line pulses) of stochastic pulse-coincidence updates."""
    lines = sum(i + o for i, o in ctx.layout.shapes)
    slots = ctx.counts.samples * ctx.bl * lines
    sent = ctx.counts.line_pulses
    if sent is None:
        sent = slots
        notes.append(f"line pulses not counted by the run: every one of the {ctx.bl} slots "
                     "of every row and column charged (an upper bound)")
    return slots * ctx.hw.e_elem, sent * ctx.hw.e_dac_row


def _refresh(ctx: UpdateContext) -> tuple[float, float]:
    """(RESET pulses, weight reads) of refreshes and fast-array resets."""
    read = single_read(ctx.hw, ctx.layout.adc_bits)
    resets = 2 * (ctx.counts.refreshes + ctx.counts.fast_resets)
    return resets * ctx.hw.e_reset_pulse, ctx.counts.refreshes * read


def _verified(ctx: UpdateContext, default_all: bool, notes: list[str]) -> float:
    n = ctx.counts.verified_pulses
    if n is None:
        n = ctx.counts.pulses if default_all else 0
        notes.append("verify reads not counted by the run: "
                     + ("one after every SET pulse (all programming is closed-loop)"
                        if default_all else "none charged (refresh reprogramming left out)"))
    return n * single_read(ctx.hw, ctx.layout.adc_bits)


def _mixed_precision(ctx: UpdateContext, notes: list[str]) -> dict[str, float]:
    reset, refresh_reads = _refresh(ctx)
    return {"update_compute": _outer_product(ctx), "update_lines": 0.0,
            "set_pulses": ctx.counts.pulses * ctx.hw.e_set_pulse, "reset_pulses": reset,
            "volatile_pulses": 0.0,
            "verify_reads": refresh_reads + _verified(ctx, False, notes)}


def _analog_sgd(ctx: UpdateContext, notes: list[str]) -> dict[str, float]:
    bits, lines = _coincidence(ctx, notes)
    reset, refresh_reads = _refresh(ctx)
    return {"update_compute": bits, "update_lines": lines,
            "set_pulses": ctx.counts.pulses * ctx.hw.e_set_pulse, "reset_pulses": reset,
            "volatile_pulses": 0.0,
            "verify_reads": refresh_reads + _verified(ctx, False, notes)}


def _multi_conductance(ctx: UpdateContext, notes: list[str]) -> dict[str, float]:
    reset, refresh_reads = _refresh(ctx)
    transfer_reads = ctx.counts.transfers * single_read(ctx.hw, ctx.layout.adc_bits)
    lines = ctx.counts.samples * sum(i + o for i, o in ctx.layout.shapes)
    return {"update_compute": 0.0, "update_lines": lines * ctx.hw.e_dac_row,
            "set_pulses": ctx.counts.pulses * ctx.hw.e_set_pulse, "reset_pulses": reset,
            "volatile_pulses": ctx.counts.volatile_pulses * ctx.hw.e_volatile_pulse,
            "verify_reads": refresh_reads + transfer_reads + _verified(ctx, True, notes)}


def _tiki_taka(ctx: UpdateContext, notes: list[str]) -> dict[str, float]:
    bits, lines = _coincidence(ctx, notes)
    reset, refresh_reads = _refresh(ctx)
    # A transfer reads columns of A with one-hot inputs: one conversion and scaling per
    # element read (the one row drive per column is left out: < 1/out of them).
    column_reads = ctx.counts.transfers * (adc_energy(ctx.hw, ctx.layout.adc_bits)
                                           + ctx.hw.e_scale)
    return {"update_compute": bits, "update_lines": lines,
            "set_pulses": ctx.counts.pulses * ctx.hw.e_set_pulse, "reset_pulses": reset,
            "volatile_pulses": ctx.counts.volatile_pulses * ctx.hw.e_volatile_pulse,
            "verify_reads": refresh_reads + column_reads + _verified(ctx, False, notes)}


UPDATE_RULES: dict[str, Callable[[UpdateContext, list[str]], dict[str, float]]] = {
    "mixed-precision": _mixed_precision,
    "analog-sgd": _analog_sgd,
    "2t2r3t1c": _multi_conductance,
    "tiki-taka": _tiki_taka,
}
"""What each in-situ algorithm charges for its updates (module docstring)."""


def training_energy(method: str, layout: Layout, counts: TrainingCounts,
                    hardware: str | AnalogHardware = "pcm90nm_joshi2020", *,
                    activity: float | None = None, bl: int = 10) -> TrainingEnergy:
    """Energy of an in-situ training run on ``hardware`` (module docstring; the reads are
    :func:`aimc.energy.cost.analog_energy`, Joshi 2020 tile mapping; the updates follow
    Nandakumar 2020, Gokmen & Vlasov 2016, Ambrogio 2018 and Gokmen & Haensch 2020).

    ``activity`` is the mean |x| of the normalised inputs and errors (default the
    preset's); ``bl`` the pulse-train length of pulse-coincidence updates.
    """
    hw = get_hardware(hardware)
    rule = UPDATE_RULES.get(method)
    if rule is None:
        raise ValueError(f"training_energy: unknown method {method!r}; known: "
                         f"{sorted(UPDATE_RULES)}")
    if not (isinstance(bl, int) and bl >= 1):
        raise ValueError(f"training_energy: bl must be an integer >= 1, got {bl!r}")
    a = hw.default_activity if activity is None else float(activity)
    if not 0.0 <= a <= 1.0:
        raise ValueError(f"training_energy: activity must be in [0, 1], got {activity!r}")
    per_act = hw.bytes_per_activation * hw.e_byte_move
    forward = backward = 0.0
    for k, (fan_in, out) in enumerate(layout.shapes):
        forward += (layer_read(hw, layout, k, a).total + (fan_in + out) * per_act
                    + out * hw.e_elem)
        if k > 0:
            backward += (layer_read(hw, layout, k, a, transposed=True).total
                         + (fan_in + out) * per_act + fan_in * hw.e_elem)
    notes: list[str] = []
    update = rule(UpdateContext(hw, layout, counts, bl), notes)
    return TrainingEnergy(method=method, hardware=hw.name, samples=counts.samples,
                          forward=forward * counts.samples, backward=backward * counts.samples,
                          notes=tuple(notes), **update)


def digital_training_energy(shapes: Sequence[tuple[int, int]], samples: int, steps: int,
                            baseline: str | DigitalBaseline = "edge_int8_45nm") -> float:
    """Energy of the same training on a digital processor (J) for layers of (fan_in, out)
    ``shapes``: three MACs per weight and sample (forward, error, weight gradient), the
    weights read twice and written once per step, every layer's input and output moved
    forward and back per sample (Horowitz 2014's energies via the baseline preset)."""
    base = get_baseline(baseline)
    w = sum(i * o for i, o in shapes)
    acts = sum(i + o for i, o in shapes)
    moved = (steps * 3 * w + samples * 2 * acts) * base.bytes_per_value
    return 3 * w * samples * base.e_mac + moved * base.e_byte
