"""The cost model as pure functions: counts of one analog layer, converter energies, MVM time.

Counting (exact, from the layer's tile geometry, :class:`aimc.nn.layers.Geometry`):
a layer of ``g`` groups, ``out_g`` outputs per group and ``fan_in`` rows is split along
its inputs into ``T`` tiles of up to ``rows`` rows and along its outputs into
``C = ceil(out_g / cols)`` column tiles; every physical tile (g * T * C of them) reads
each of the ``L`` input vectors of an inference (L = output positions of a conv, 1 for a
dense layer per sample). Per inference:

- MACs            = g * out_g * fan_in * L
- tile MVMs       = g * T * C * L
- DAC conversions = g * C * (fan_in + analog bias row) * L   (each used row of each tile)
- ADC conversions = g * T * out_g * L                          (each used column of each tile)
- accumulations   = g * (T - 1) * out_g * L                    (partial sums of T tiles)
- scalings        = ADC conversions (+ g * out_g * L bias adds when the bias is digital)

Energy of the crossbar read with pulse-width-modulated inputs (a row with normalised
input x is driven at V_read for |x| * t_in): E = V_read^2 * t_in * sum_ij G_ij |x_j|,
taken as V_read^2 * t_in * a * sum G * L with ``a`` the mean |x| (activity) and sum G the
programmed (or target) conductances of the layer in uS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .hardware import AnalogHardware


@dataclass(frozen=True)
class AnalogCounts:
    """Per-inference event counts of one analog layer."""

    macs: int
    """Multiply-accumulates of the layer (no padding)."""
    tiles: int
    """Physical tiles the layer occupies: groups * input tiles * column tiles."""
    devices: int
    """PCM devices holding weights: weights * devices_per_weight (+ the analog bias row)."""
    mvms: int
    """Tile matrix-vector multiplies (reads): tiles * L."""
    dac_conversions: int
    """Row drives with one input each: g * C * (fan_in + bias row) * L."""
    adc_conversions: int
    """Column conversions: g * T * out_g * L."""
    accumulations: int
    """Digital partial-sum additions: g * (T - 1) * out_g * L."""
    scalings: int
    """Digital affine scalings of ADC outputs (one per conversion)."""
    bias_adds: int
    """Digital bias additions: g * out_g * L when the bias is added after the ADC."""
    vectors: int
    """L: input vectors per tile and inference (the sequential MVMs of one tile)."""


def analog_counts(groups: int, out_g: int, fan_in: int, n_tiles: int, cols: int,
                  vectors: int, devices_per_weight: int, analog_bias: bool = False,
                  digital_bias: bool = False) -> AnalogCounts:
    """Exact event counts of one analog layer (module docstring; Joshi 2020 tile mapping)."""
    col_tiles = math.ceil(out_g / cols)
    tiles = groups * n_tiles * col_tiles
    rows = fan_in + int(analog_bias)
    adc = groups * n_tiles * out_g * vectors
    return AnalogCounts(
        macs=groups * out_g * fan_in * vectors,
        tiles=tiles,
        devices=groups * out_g * rows * devices_per_weight,
        mvms=tiles * vectors,
        dac_conversions=groups * col_tiles * rows * vectors,
        adc_conversions=adc,
        accumulations=groups * (n_tiles - 1) * out_g * vectors,
        scalings=adc,
        bias_adds=groups * out_g * vectors if digital_bias else 0,
        vectors=vectors,
    )


def pwm_levels(bits: int) -> int:
    """Input magnitude levels of a signed ``bits``-bit PWM DAC: 2^(bits-1) - 1 (as
    :func:`aimc.functional.tile.dac`)."""
    return (1 << (bits - 1)) - 1


def input_window(hw: AnalogHardware, dac_bits: int) -> float:
    """Full-scale input pulse duration t_in = (2^(bits-1) - 1) * t_pwm_lsb (s)."""
    return pwm_levels(dac_bits) * hw.t_pwm_lsb


def adc_time(hw: AnalogHardware, adc_bits: int) -> float:
    """Time of one ADC conversion (s): 2^bits * t_lsb for a time-based (CCO) converter
    (Khaddam-Aljameh 2022), (bits + 1) cycles for a SAR converter (NeuroSim SarADC)."""
    if hw.adc_scaling == "time":
        return (1 << adc_bits) * hw.adc_t_lsb
    return (adc_bits + 1) * hw.adc_t_lsb


def adc_energy(hw: AnalogHardware, adc_bits: int) -> float:
    """Energy of one ADC conversion (J) at ``adc_bits``.

    ``time`` law: E = E_ref * 2^(bits - ref_bits): a time-based converter's energy is its
    power times a conversion time of 2^bits LSB periods (the Walden scaling, Walden, IEEE
    JSAC 17, 539 (1999)). ``sar`` law (NeuroSim, DNN_NeuroSim_V1.3 SarADC.cpp):
    E = (a * bits + c) * (bits + 1) * t_cycle.
    """
    if adc_bits < 1:
        raise ValueError(f"adc_bits must be >= 1, got {adc_bits}")
    if hw.adc_scaling == "time":
        return hw.adc_energy_ref * 2.0 ** (adc_bits - hw.adc_ref_bits)
    return (hw.adc_sar_a * adc_bits + hw.adc_sar_c) * (adc_bits + 1) * hw.adc_t_lsb


def mvm_time(hw: AnalogHardware, dac_bits: int, adc_bits: int) -> float:
    """Time of one tile MVM (s): overhead + input window and the column conversions
    (``cols_per_adc`` of them in sequence), overlapped or in series."""
    t_in = input_window(hw, dac_bits)
    t_adc = hw.cols_per_adc * adc_time(hw, adc_bits)
    core = max(t_in, t_adc) if hw.adc_overlaps_input else t_in + t_adc
    return hw.t_mvm_overhead + core


def crossbar_energy(v_read: float, t_in: float, activity: float, g_sum_us: float,
                    vectors: int) -> float:
    """Crossbar read energy (J) of ``vectors`` MVMs: V^2 * t_in * a * sum G, G in uS.

    Ohm's law per device (P = G V^2) integrated over the PWM pulse of each row, whose
    duration is |x| * t_in; ``activity`` is the mean |x|.
    """
    return v_read ** 2 * t_in * activity * g_sum_us * 1e-6 * vectors


@dataclass(frozen=True)
class AnalogEnergy:
    """Energy (J) of one analog layer per inference, by component."""

    crossbar: float
    """Device read energy (Ohm's law)."""
    dac: float
    """PWM row drivers."""
    adc: float
    """Column conversions."""
    digital: float
    """Accumulation, scaling and bias in the tile's digital periphery."""

    @property
    def total(self) -> float:
        """Sum of the components."""
        return self.crossbar + self.dac + self.adc + self.digital


def analog_energy(hw: AnalogHardware, counts: AnalogCounts, dac_bits: int, adc_bits: int,
                  g_sum_us: float, activity: float) -> AnalogEnergy:
    """Energy of one analog layer from its counts (module docstring)."""
    t_in = input_window(hw, dac_bits)
    return AnalogEnergy(
        crossbar=crossbar_energy(hw.v_read, t_in, activity, g_sum_us, counts.vectors),
        dac=counts.dac_conversions * hw.e_dac_row,
        adc=counts.adc_conversions * adc_energy(hw, adc_bits),
        digital=(counts.accumulations * hw.e_acc + counts.scalings * hw.e_scale
                 + counts.bias_adds * hw.e_elem),
    )


def mvm_tops_per_watt(hw: AnalogHardware, rows: int, cols: int, dac_bits: int, adc_bits: int,
                      g_sum_us: float, activity: float) -> float:
    """TOP/s/W of one full ``rows`` x ``cols`` MVM (2 ops per MAC) under the model:
    crossbar + DAC + ADC + digital scaling of every column."""
    counts = analog_counts(1, cols, rows, 1, cols, 1, 1)
    e = analog_energy(hw, counts, dac_bits, adc_bits, g_sum_us, activity)
    return 2.0 * rows * cols / e.total / 1e12


def breakdown(result: Any, components: Sequence[str], per: str | None = None,
              count: int = 1) -> dict[str, Any]:
    """A result dataclass of energy components (J) as a plain dict: its fields, the
    total, the energy per ``per`` (``count`` of them) when given, and each component's
    share."""
    d = asdict(result)
    total = sum(d[c] for c in components)
    d["total_j"] = total
    if per is not None:
        d[f"per_{per}_j"] = total / max(count, 1)
    d["shares"] = {c: d[c] / (total or 1.0) for c in components}
    return d
