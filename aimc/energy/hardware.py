"""Hardware descriptions for the cost model: analog PCM accelerators and digital baselines.

Flat dataclasses (one per kind of machine) and preset functions that fill them. Every
preset records, in ``sources``, where each number comes from, tagged by how it was
obtained:

- ``[P]`` published: the figure as printed in the cited paper (abstract, figure or table);
- ``[D]`` derived: arithmetic on published figures, the arithmetic is given;
- ``[M]`` model: an external circuit model evaluated here (e.g. NeuroSim's ADC fit);
- ``[A]`` assumption: an engineering estimate, with the reasoning, to be replaced when a
  better published number is at hand.

Energies are in joules, times in seconds, areas in mm^2, conductances in uS.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

ADC_SCALINGS = ("time", "sar")

# Horowitz, ISSCC 2014, "Computing's energy problem", Fig. 1.1.9 (45 nm, 0.9 V): energy per op.
H45_ADD8 = 0.03e-12
H45_ADD32 = 0.1e-12
H45_MUL8 = 0.2e-12
H45_FP16_ADD = 0.4e-12
H45_FP16_MUL = 1.1e-12
H45_SRAM8K_64B = 10e-12
H45_SRAM32K_64B = 20e-12
H45_SRAM1M_64B = 100e-12
H45_DRAM_64B = 1.3e-9  # lower end of Horowitz's 1.3-2.6 nJ per 64-bit DRAM access


def cv2_scale(node_nm: float, vdd: float, ref_nm: float = 45.0, ref_vdd: float = 0.9) -> float:
    """First-order CMOS energy scaling E ~ C V^2 with C ~ feature size (Dennard et al.,
    IEEE JSSC 9, 256 (1974)): the factor that takes Horowitz's 45 nm / 0.9 V energies to
    ``node_nm`` at ``vdd``."""
    return (node_nm / ref_nm) * (vdd / ref_vdd) ** 2


def _pos(owner: str, name: str, value: Any, zero_ok: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero_ok):
        need = ">= 0" if zero_ok else "> 0"
        raise ValueError(f"{owner}.{name} must be a finite number {need}, got {value!r}")


def _int(owner: str, name: str, value: Any) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"{owner}.{name} must be an integer >= 1, got {value!r}")


@dataclass
class AnalogHardware:
    """A tiled PCM accelerator: crossbar tiles with PWM inputs, column ADCs and digital
    periphery, plus a digital unit for the layers and operations left digital.

    Per tile matrix-vector multiply (MVM) the model charges (see :mod:`aimc.energy.cost`):
    crossbar read V^2 t G, one DAC (PWM row driver) conversion per used row, one ADC
    conversion per used column, digital accumulation/scaling per ADC output, moving the
    activations between tiles; its time is the input pulse window and ADC conversion.
    """

    name: str
    """Short identifier, e.g. ``"pcm14nm_legallo2023"``."""
    description: str
    """One line: which chip or era this describes."""
    node_nm: float
    """CMOS technology node in nm (for the record; the energies below already include it)."""
    tile_rows: int
    """Rows of the native tile; used by :meth:`analog_config` and for area scaling."""
    tile_cols: int
    """Columns of the native tile."""
    tiles_per_chip: int
    """Tiles on one chip; a network that needs more tiles needs more chips."""
    devices_per_weight: int
    """PCM devices per weight (2 for a differential pair, 4 for two pairs)."""
    dac_bits: int
    """Nominal input resolution; used when a layer's config has dac_bits = 0 (exact)."""
    adc_bits: int
    """Nominal output resolution; used when a layer's config has adc_bits = 0 (exact)."""
    v_read: float
    """Read voltage across a device when its row is driven (V)."""
    t_pwm_lsb: float
    """Pulse-width-modulated input: duration of one input LSB (s). An input of magnitude
    k LSB drives its row for k * t_pwm_lsb; full scale is 2^(dac_bits-1) - 1 LSB."""
    t_mvm_overhead: float
    """Fixed time per MVM besides the input window and ADC (s): precharge, reset, transfer."""
    adc_scaling: str
    """ADC energy/time law: ``"time"`` (time-based/CCO converter: energy and time grow as
    2^bits) or ``"sar"`` (NeuroSim's SAR fit: power a*bits + c over bits+1 cycles)."""
    adc_energy_ref: float
    """``time`` law: energy of one conversion at ``adc_ref_bits`` (J)."""
    adc_ref_bits: int
    """``time`` law: resolution at which ``adc_energy_ref`` holds."""
    adc_t_lsb: float
    """``time`` law: conversion time per LSB (s); ``sar`` law: time per SAR cycle (s)."""
    adc_sar_a: float
    """``sar`` law: ADC power slope per bit (W)."""
    adc_sar_c: float
    """``sar`` law: ADC power offset (W)."""
    adc_overlaps_input: bool
    """True when the ADC converts while the inputs are applied (a CCO counts during the
    integration), so the MVM time is the longer of the two rather than their sum."""
    cols_per_adc: int
    """Columns sharing one ADC, converted one after another (1 = an ADC per column)."""
    e_dac_row: float
    """Energy to drive one row with one PWM input per MVM (J), independent of bits."""
    e_acc: float
    """Digital: one partial-sum accumulation (J)."""
    e_scale: float
    """Digital: one affine scaling of an ADC output (multiply + add) (J)."""
    e_elem: float
    """Digital: one simple element operation (add, compare, ReLU) (J)."""
    e_act: float
    """Digital: one non-linear activation (sigmoid, tanh, ...) by table lookup (J)."""
    e_mac_digital: float
    """Digital unit: one 8-bit multiply with 32-bit accumulate, for layers left digital (J)."""
    e_byte_move: float
    """Moving one byte of activations between tiles / digital units on chip (J)."""
    bytes_per_activation: int
    """Bytes per activation moved on chip."""
    digital_ops_per_s: float
    """Throughput of the on-chip digital unit for element operations (ops/s)."""
    digital_macs_per_s: float
    """Throughput of the on-chip digital unit for MACs of layers left digital (MAC/s)."""
    tile_area: float
    """Area of one native tile including its periphery (mm^2)."""
    digital_area: float
    """Area of the shared digital units outside the tiles (mm^2)."""
    default_activity: float
    """Mean |x| of the DAC inputs in [0, 1] when no data is given (fraction of full-scale
    pulse width per row and MVM)."""
    e_set_pulse: float
    """One SET (crystallising) programming pulse on one PCM device, cell and access
    transistor (J); charged per pulse of in-situ training, transfers and STDP."""
    e_reset_pulse: float
    """One RESET (melt-quench) pulse on one PCM device (J); charged per device reset
    (refresh of a saturated pair, a PCM neuron firing)."""
    e_volatile_pulse: float
    """One update step of one volatile device, the 3T1C capacitor of Ambrogio 2018 or a
    cell of Tiki-Taka's fast array (J): the charge the cell itself takes. The pulses on the
    shared rows and columns that cause it are charged per line at ``e_dac_row``."""
    sources: dict[str, str] = field(default_factory=dict)
    """Field name -> where its value comes from (tagged [P], [D], [M] or [A])."""

    def __post_init__(self) -> None:
        own = "AnalogHardware"
        for key in ("name", "description"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ValueError(f"{own}.{key} must be a non-empty string")
        for key in ("tile_rows", "tile_cols", "tiles_per_chip", "devices_per_weight",
                    "dac_bits", "adc_bits", "adc_ref_bits", "cols_per_adc",
                    "bytes_per_activation"):
            _int(own, key, getattr(self, key))
        for key in ("node_nm", "v_read", "t_pwm_lsb", "adc_t_lsb", "digital_ops_per_s",
                    "digital_macs_per_s", "tile_area"):
            _pos(own, key, getattr(self, key))
        for key in ("t_mvm_overhead", "adc_energy_ref", "adc_sar_a", "adc_sar_c", "e_dac_row",
                    "e_acc", "e_scale", "e_elem", "e_act", "e_mac_digital", "e_byte_move",
                    "digital_area", "e_set_pulse", "e_reset_pulse", "e_volatile_pulse"):
            _pos(own, key, getattr(self, key), zero_ok=True)
        if self.adc_scaling not in ADC_SCALINGS:
            raise ValueError(f"{own}.adc_scaling must be one of {list(ADC_SCALINGS)}, "
                             f"got {self.adc_scaling!r}")
        if not isinstance(self.adc_overlaps_input, bool):
            raise ValueError(f"{own}.adc_overlaps_input must be true or false")
        if not 0.0 <= self.default_activity <= 1.0:
            raise ValueError(f"{own}.default_activity must be in [0, 1], "
                             f"got {self.default_activity!r}")
        if not isinstance(self.sources, dict):
            raise ValueError(f"{own}.sources must be a dict field -> citation")

    def analog_config(self, base: Any = None) -> Any:
        """An :class:`aimc.AnalogConfig` whose tiles match this hardware (size, DAC/ADC bits).

        ``base`` (default :func:`aimc.presets.pcm_joshi2020`) supplies the device model,
        noise and mapping.
        """
        from .. import presets
        cfg = base if base is not None else presets.pcm_joshi2020()
        tile = dataclasses.replace(cfg.tile, rows=self.tile_rows, cols=self.tile_cols,
                                   dac_bits=self.dac_bits, adc_bits=self.adc_bits)
        return dataclasses.replace(cfg, tile=tile)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (sources included)."""
        return dataclasses.asdict(self)


@dataclass
class DigitalBaseline:
    """A digital processor running the same network: energy per MAC and per byte moved.

    Energy per inference = MACs * e_mac + bytes * e_byte, where the bytes are every weight
    read once per batch plus every layer's input and output activations, at
    ``bytes_per_value`` each, from the memory level named in ``memory``.
    """

    name: str
    """Short identifier, e.g. ``"gpu_v100"``."""
    description: str
    """One line: which processor class this stands for."""
    e_mac: float
    """Energy per multiply-accumulate, compute only (J)."""
    e_byte: float
    """Energy per byte moved from/to ``memory`` (J)."""
    bytes_per_value: int
    """Bytes per weight or activation (2 for FP16, 1 for INT8)."""
    memory: str
    """Where weights and activations come from (documentation)."""
    sources: dict[str, str] = field(default_factory=dict)
    """Field name -> where its value comes from (tagged [P], [D], [M] or [A])."""

    def __post_init__(self) -> None:
        own = "DigitalBaseline"
        for key in ("name", "description", "memory"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ValueError(f"{own}.{key} must be a non-empty string")
        _pos(own, "e_mac", self.e_mac)
        _pos(own, "e_byte", self.e_byte, zero_ok=True)
        _int(own, "bytes_per_value", self.bytes_per_value)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (sources included)."""
        return dataclasses.asdict(self)


# -- published figures used by the presets ---------------------------------------------------
LEGALLO2023_TOPS_1PHASE = 63.1e12
"""Le Gallo et al., Nat. Electron. 6, 680 (2023), abstract: 63.1 TOP/s, one-phase 8-bit MVM."""
LEGALLO2023_TOPSW_1PHASE = 9.76e12
"""Same, abstract: 9.76 TOP/s/W, one-phase (low-precision) read, 8-bit input/output MVM."""
LEGALLO2023_TOPS_4PHASE = 16.1e12
"""Same, abstract: 16.1 TOP/s, four-phase (high-precision) read."""
LEGALLO2023_TOPSW_4PHASE = 2.48e12
"""Same, abstract: 2.48 TOP/s/W, four-phase read."""
LEGALLO2023_CORES = 64
"""Same: 64 AIMC cores of 256 x 256 unit cells."""
HERMES_TOPS_PER_MM2 = 1.59e12
"""Khaddam-Aljameh et al., IEEE JSSC 57, 1027 (2022) (HERMES core), abstract: 1.59 TOPS/mm^2."""
HERMES_TOPSW = 10.5e12
"""Same, abstract: measured 10.5 TOPS/W at 1 GHz main clock."""
HERMES_T_ADC_LSB = 300e-12
"""Same, title: 300-ps/LSB linearized CCO-based ADCs."""

# NVSim (Dong et al., IEEE TCAD 31, 994 (2012)), sample_PCRAM.cell, "generated from" Lee et
# al., ISCA 2009 (Architecting phase change memory as a scalable DRAM alternative), 90 nm.
NVSIM_PCM90_SET_A = 150e-6
NVSIM_PCM90_SET_S = 150e-9
NVSIM_PCM90_RESET_A = 300e-6
NVSIM_PCM90_RESET_S = 40e-9


def nvsim_pulse_energy(current_a: float, pulse_s: float, vdd: float,
                       node_nm: float = 90.0) -> float:
    """Energy of one current-mode PCM programming pulse (J), as NVSim computes it [M].

    NVSim (MemCell::CalculateWriteEnergy, current mode without a set voltage):
    E = V_dd * I * t, the supply delivering the programming current for the pulse; its
    cell scaling (MemCell::CellScaling) divides the current by node_ref / node, so a pulse
    at ``node_nm`` draws I * node_nm / 90. NVSim also divides by a pulse-shaper
    efficiency and adds the bit-line charge; neither is applied here.
    """
    return vdd * current_a * (node_nm / 90.0) * pulse_s



def legallo2023_mvm_split() -> dict[str, float]:
    """Split the 64-core chip's MVM energy into a per-phase and a fixed part [D].

    The chip reads each weight's four devices either at once (one phase) or one after the
    other (four phases). With E_n = 2*256^2 / eta_n the energy of one 256 x 256 MVM at the
    published efficiency eta_n, and E_n = E_fixed + n * E_phase,
    E_phase = (E_4 - E_1) / 3 and E_fixed = E_1 - E_phase. The per-phase part (about 98%)
    is what repeats with every conversion window: the column readout (integrator/CCO ADC,
    counters, clocking). Returns E_1, E_4, E_phase, E_fixed (J) and the MVM time (s).
    """
    ops = 2 * 256 * 256
    e1 = ops / LEGALLO2023_TOPSW_1PHASE
    e4 = ops / LEGALLO2023_TOPSW_4PHASE
    e_phase = (e4 - e1) / 3.0
    t_mvm = LEGALLO2023_CORES * ops / LEGALLO2023_TOPS_1PHASE
    return {"e_mvm_1phase": e1, "e_mvm_4phase": e4, "e_phase": e_phase,
            "e_fixed": e1 - e_phase, "t_mvm": t_mvm}


def pcm14nm_legallo2023() -> AnalogHardware:
    """A 14 nm PCM accelerator in the style of IBM's 64-core chip (Le Gallo et al., Nature
    Electronics 6, 680 (2023)) built from HERMES cores (Khaddam-Aljameh et al., IEEE JSSC
    57, 1027 (2022)): 64 tiles of 256 x 256 unit cells of 4 PCM devices, PWM inputs,
    256 CCO-based ADCs per tile, a local digital unit per tile.

    The column readout energy is derived from the chip's one-phase/four-phase pair
    (:func:`legallo2023_mvm_split`), so the 8-bit MVM efficiency is a consistency check of
    the model (docs/energy.md), not an independent prediction.
    """
    split = legallo2023_mvm_split()
    s = cv2_scale(14, 0.8)
    t_in_8bit = (2 ** 7 - 1) * 1e-9
    t_mvm = split["t_mvm"]
    tile_area = (2 * 256 * 256 / t_mvm) / HERMES_TOPS_PER_MM2 * 1.0
    e_set = nvsim_pulse_energy(NVSIM_PCM90_SET_A, NVSIM_PCM90_SET_S, 0.8, 14.0)
    e_reset = nvsim_pulse_energy(NVSIM_PCM90_RESET_A, NVSIM_PCM90_RESET_S, 0.8, 14.0)
    return AnalogHardware(
        name="pcm14nm_legallo2023",
        description="14 nm PCM, 64 cores of 256x256 (IBM 64-core chip, Le Gallo 2023)",
        node_nm=14.0, tile_rows=256, tile_cols=256, tiles_per_chip=64,
        devices_per_weight=4, dac_bits=8, adc_bits=8, v_read=0.2,
        t_pwm_lsb=1e-9, t_mvm_overhead=max(t_mvm - t_in_8bit, 0.0),
        adc_scaling="time", adc_energy_ref=split["e_phase"] / 256, adc_ref_bits=8,
        adc_t_lsb=HERMES_T_ADC_LSB, adc_sar_a=0.0, adc_sar_c=0.0, adc_overlaps_input=True,
        cols_per_adc=1, e_dac_row=0.1e-12,
        e_acc=H45_ADD32 * s, e_scale=(H45_FP16_MUL + H45_FP16_ADD) * s,
        e_elem=H45_ADD8 * s, e_act=H45_SRAM8K_64B / 8 * s,
        e_mac_digital=(H45_MUL8 + H45_ADD32) * s, e_byte_move=H45_SRAM32K_64B / 8 * s,
        bytes_per_activation=1, digital_ops_per_s=256e9, digital_macs_per_s=256e9,
        tile_area=tile_area, digital_area=0.0, default_activity=0.5,
        e_set_pulse=e_set, e_reset_pulse=e_reset, e_volatile_pulse=10e-15 * 0.8 * 0.01,
        sources={
            "node_nm": "[P] Le Gallo 2023, abstract: 14 nm CMOS with backend-integrated PCM",
            "tile_rows": "[P] Le Gallo 2023: 256 x 256 AIMC cores (arXiv 2212.02872 abstract)",
            "tile_cols": "[P] as tile_rows",
            "tiles_per_chip": "[P] Le Gallo 2023, abstract: 64 AIMC cores",
            "devices_per_weight": "[P] Le Gallo 2023: each unit cell holds 4 PCM devices, "
                                  "read in one phase or four phases (abstract: one-/four-phase)",
            "dac_bits": "[P] Le Gallo 2023, abstract: 8-bit input/output MVM",
            "adc_bits": "[P] as dac_bits",
            "v_read": "[A] 0.2 V, the usual PCM read bias in IBM's PCM experiments, low enough "
                      "not to disturb the amorphous state; not given in the abstracts",
            "t_pwm_lsb": "[A] one 1 GHz clock cycle per input LSB (HERMES main clock 1 GHz, "
                         "Khaddam-Aljameh 2022 abstract)",
            "t_mvm_overhead": f"[D] {t_mvm * 1e9:.2f} ns MVM time from 63.1 TOP/s = 64 cores x "
                              f"2*256^2 ops / t (Le Gallo 2023 abstract), minus the 127 ns "
                              f"8-bit PWM window",
            "adc_scaling": "[P] time-based CCO ADCs (Khaddam-Aljameh 2022 title/abstract): "
                           "conversion time, hence energy, grows as 2^bits",
            "adc_energy_ref": f"[D] {split['e_phase'] / 256 * 1e12:.1f} pJ per column and "
                              f"conversion: per-phase MVM energy {split['e_phase'] * 1e9:.2f} nJ "
                              f"from 9.76 vs 2.48 TOP/s/W (one- vs four-phase, Le Gallo 2023 "
                              f"abstract) over 256 columns; includes the column integrator, "
                              f"counter and clock share",
            "adc_ref_bits": "[P] 8-bit output (Le Gallo 2023 abstract)",
            "adc_t_lsb": "[P] 300 ps/LSB (Khaddam-Aljameh 2022 title)",
            "adc_sar_a": "unused by the time law",
            "adc_sar_c": "unused by the time law",
            "adc_overlaps_input": "[P] the CCO ADC counts while the PWM inputs integrate "
                                  "(Khaddam-Aljameh 2022); 8-bit: 256 x 0.3 ns = 77 ns < 127 ns",
            "cols_per_adc": "[P] 256 ADCs for 256 columns (Khaddam-Aljameh 2022 abstract)",
            "e_dac_row": "[A] 0.1 pJ: a ~1 mm row line at ~0.2 fF/um charged to the read "
                         "bias from a 0.8 V supply, plus the PWM comparator",
            "e_acc": "[D] Horowitz ISSCC 2014 Fig. 1.1.9: 32-bit add 0.1 pJ at 45 nm, "
                     f"x{s:.3f} (C V^2 scaling to 14 nm, 0.8 V)",
            "e_scale": "[D] Horowitz 2014: FP16 mult 1.1 pJ + FP16 add 0.4 pJ at 45 nm, "
                       f"x{s:.3f}",
            "e_elem": f"[D] Horowitz 2014: 8-bit add 0.03 pJ at 45 nm, x{s:.3f}",
            "e_act": f"[D] Horowitz 2014: 8 KB SRAM 64-bit read 10 pJ -> per byte, x{s:.3f}",
            "e_mac_digital": "[D] Horowitz 2014: 8-bit mult 0.2 pJ + 32-bit add 0.1 pJ, "
                             f"x{s:.3f}",
            "e_byte_move": f"[D] Horowitz 2014: 32 KB SRAM 64-bit access 20 pJ -> per byte, "
                           f"x{s:.3f}",
            "bytes_per_activation": "[P] 8-bit activations (Le Gallo 2023)",
            "digital_ops_per_s": "[A] 256 lanes at 1 GHz (one local digital unit per 256 "
                                 "outputs, Khaddam-Aljameh 2022)",
            "digital_macs_per_s": "[A] as digital_ops_per_s",
            "tile_area": f"[D] {tile_area:.3f} mm^2 = (2*256^2 ops / {t_mvm * 1e9:.1f} ns) / "
                         f"1.59 TOPS/mm^2 (HERMES core, Khaddam-Aljameh 2022 abstract)",
            "digital_area": "[A] 0: the local digital units are inside the core area",
            "default_activity": "[A] 0.5 = mean |x| of inputs uniform in [-1, 1]",
            "e_set_pulse": f"[M] {e_set * 1e12:.2f} pJ: NVSim's current-mode write energy "
                           "V_dd I t (MemCell::CalculateWriteEnergy) for its sample 90 nm PCM "
                           "cell (sample_PCRAM.cell, from Lee et al. ISCA 2009: SET 150 uA, "
                           "150 ns), current scaled by 14/90 (NVSim CellScaling), V_dd 0.8 V; "
                           "a full SET: a partial SET of an analog synapse is likely shorter",
            "e_reset_pulse": f"[M] {e_reset * 1e12:.2f} pJ: as e_set_pulse with the sample "
                             "cell's RESET, 300 uA for 40 ns",
            "e_volatile_pulse": "[A] 0.08 fJ = C V_dd dV: a cell capacitor of 10 fF charged "
                                "by 1% of a 0.8 V swing per step (about 100 steps over the "
                                "range); the line pulses are charged at e_dac_row",
        })


# NeuroSim (DNN_NeuroSim_V1.3, Inference_pytorch/NeuroSIM/SarADC.cpp, GetColumnPower,
# 90 nm HP): ADC power (4.3474 * bits + 31.782) uW over (bits + 1) cycles of 1 ns.
NEUROSIM_SAR_90NM_A = 4.3474e-6
NEUROSIM_SAR_90NM_C = 31.782e-6
NEUROSIM_SAR_CYCLE = 1e-9


def pcm90nm_joshi2020() -> AnalogHardware:
    """A 90 nm-era PCM prototype (Joshi et al., Nat. Commun. 11, 2473 (2020); Ambrogio et
    al., Nature 558, 60 (2018)): 512 x 512 tiles of differential pairs on the 512 word
    line x 2048 bit line array, SAR ADCs shared by 8 columns, 90 nm CMOS periphery.

    These chips read the devices but did not measure an MVM energy, so the periphery is
    modelled: NeuroSim's 90 nm SAR ADC fit and Horowitz's digital energies scaled to 90 nm.
    """
    s = cv2_scale(90, 1.2)
    cell_um2 = 50 * 0.09 ** 2  # 50 F^2 per 1T1R PCM cell
    array_mm2 = 512 * 512 * 2 * cell_um2 * 1e-6
    adc_mm2 = 0.0012 * (90 / 32) ** 2
    n_adc = 512 // 8
    tile_area = array_mm2 + n_adc * adc_mm2
    e_set = nvsim_pulse_energy(NVSIM_PCM90_SET_A, NVSIM_PCM90_SET_S, 1.2)
    e_reset = nvsim_pulse_energy(NVSIM_PCM90_RESET_A, NVSIM_PCM90_RESET_S, 1.2)
    return AnalogHardware(
        name="pcm90nm_joshi2020",
        description="90 nm PCM prototype era, 512x512 tiles (Joshi 2020, Ambrogio 2018)",
        node_nm=90.0, tile_rows=512, tile_cols=512, tiles_per_chip=2,
        devices_per_weight=2, dac_bits=8, adc_bits=8, v_read=0.2,
        t_pwm_lsb=2e-9, t_mvm_overhead=10e-9,
        adc_scaling="sar", adc_energy_ref=0.0, adc_ref_bits=8, adc_t_lsb=NEUROSIM_SAR_CYCLE,
        adc_sar_a=NEUROSIM_SAR_90NM_A, adc_sar_c=NEUROSIM_SAR_90NM_C,
        adc_overlaps_input=False, cols_per_adc=8, e_dac_row=2.9e-12,
        e_acc=H45_ADD32 * s, e_scale=(H45_FP16_MUL + H45_FP16_ADD) * s,
        e_elem=H45_ADD8 * s, e_act=H45_SRAM8K_64B / 8 * s,
        e_mac_digital=(H45_MUL8 + H45_ADD32) * s, e_byte_move=H45_SRAM32K_64B / 8 * s,
        bytes_per_activation=1, digital_ops_per_s=64e9, digital_macs_per_s=64e9,
        tile_area=tile_area, digital_area=1.0, default_activity=0.5,
        e_set_pulse=e_set, e_reset_pulse=e_reset, e_volatile_pulse=10e-15 * 1.2 * 0.01,
        sources={
            "node_nm": "[P] 90 nm PCM prototype (Joshi 2020 Methods; pcm-model.md)",
            "tile_rows": "[P] 512 word lines of the prototype array (Joshi 2020); aimc preset "
                         "pcm_joshi2020 maps to 512 x 512 tiles",
            "tile_cols": "[D] 2048 bit lines / (2 devices per weight) = 1024; 512 used per tile "
                         "to match aimc.presets.pcm_joshi2020",
            "tiles_per_chip": "[D] 512 x 2048 devices / (512 x 512 weights x 2 devices) = 2",
            "devices_per_weight": "[P] differential pair W ~ G+ - G- (Joshi 2020)",
            "dac_bits": "[P] 8-bit inputs (Joshi 2020)",
            "adc_bits": "[P] 8-bit outputs (aimc.presets.pcm_joshi2020, Joshi 2020)",
            "v_read": "[A] 0.2 V PCM read bias, as for the 14 nm preset",
            "t_pwm_lsb": "[A] 2 ns: a 500 MHz PWM clock in 90 nm logic",
            "t_mvm_overhead": "[A] 10 ns for precharge and sample/hold",
            "adc_scaling": "[M] SAR ADC, NeuroSim (Peng et al., IEDM 2019; DNN_NeuroSim_V1.3 "
                           "SarADC.cpp GetColumnPower)",
            "adc_energy_ref": "unused by the sar law",
            "adc_ref_bits": "unused by the sar law",
            "adc_t_lsb": "[M] NeuroSim SarADC.cpp: (bits + 1) cycles of 1 ns per conversion",
            "adc_sar_a": "[M] NeuroSim SarADC.cpp, 90 nm HP: 4.3474 uW per bit",
            "adc_sar_c": "[M] NeuroSim SarADC.cpp, 90 nm HP: 31.782 uW",
            "adc_overlaps_input": "[A] a SAR ADC samples after the integration window",
            "cols_per_adc": "[A] 8 columns share one SAR ADC, which does not fit the column "
                            "pitch (as in ISAAC, Shafiee et al., ISCA 2016)",
            "e_dac_row": "[A] 2.9 pJ: the 14 nm 0.1 pJ row drive scaled x2 for a 512-cell row "
                         "and by C V^2 to 90 nm / 1.2 V (x14.5)",
            "e_acc": f"[D] Horowitz 2014 Fig. 1.1.9 32-bit add 0.1 pJ, x{s:.3f} "
                     f"(C V^2 scaling to 90 nm, 1.2 V)",
            "e_scale": f"[D] Horowitz 2014 FP16 mult 1.1 + add 0.4 pJ, x{s:.3f}",
            "e_elem": f"[D] Horowitz 2014 8-bit add 0.03 pJ, x{s:.3f}",
            "e_act": f"[D] Horowitz 2014 8 KB SRAM 10 pJ / 64 bit -> per byte, x{s:.3f}",
            "e_mac_digital": f"[D] Horowitz 2014 8-bit mult 0.2 + 32-bit add 0.1 pJ, x{s:.3f}",
            "e_byte_move": f"[D] Horowitz 2014 32 KB SRAM 20 pJ / 64 bit -> per byte, x{s:.3f}",
            "bytes_per_activation": "[P] 8-bit activations",
            "digital_ops_per_s": "[A] 128 lanes at 500 MHz",
            "digital_macs_per_s": "[A] as digital_ops_per_s",
            "tile_area": f"[A] {tile_area:.3f} mm^2 = array 512*512*2 cells of 50 F^2 "
                         f"({array_mm2:.3f} mm^2) + {n_adc} SAR ADCs of 0.0012 mm^2 at 32 nm "
                         f"(ISAAC Table II, Shafiee 2016) scaled by (90/32)^2",
            "digital_area": "[A] 1 mm^2 of shared digital logic and buffers",
            "default_activity": "[A] 0.5 = mean |x| of inputs uniform in [-1, 1]",
            "e_set_pulse": f"[M] {e_set * 1e12:.1f} pJ: NVSim's current-mode write energy "
                           "V_dd I t (MemCell::CalculateWriteEnergy) for its sample 90 nm PCM "
                           "cell (sample_PCRAM.cell, from Lee et al. ISCA 2009: SET 150 uA, "
                           "150 ns), V_dd 1.2 V; a full SET: a partial SET of an analog "
                           "synapse is likely shorter, so this leans high",
            "e_reset_pulse": f"[M] {e_reset * 1e12:.1f} pJ: as e_set_pulse with the sample "
                             "cell's RESET, 300 uA for 40 ns",
            "e_volatile_pulse": "[A] 0.12 fJ = C V_dd dV: a 3T1C capacitor of 10 fF charged "
                                "by 1% of a 1.2 V swing per step (about 100 steps over the "
                                "range); the line pulses are charged at e_dac_row",
        })


def gpu_v100() -> DigitalBaseline:
    """GPU-class baseline: NVIDIA V100 tensor cores at peak, FP16, weights and activations
    from HBM2 at batch 1. Peak-efficiency energy per MAC is a lower bound for a GPU at batch
    1 (papers.md sec. 4 quotes about 0.1 TOP/s/W achieved), so the ratio favours the GPU."""
    return DigitalBaseline(
        name="gpu_v100", description="GPU-class: NVIDIA V100, FP16 tensor cores, HBM2",
        e_mac=300.0 / (125e12 / 2), e_byte=3.9e-12 * 8, bytes_per_value=2, memory="HBM2 DRAM",
        sources={
            "e_mac": "[D] 4.8 pJ = 300 W TDP / (125 TFLOPS / 2) (NVIDIA Tesla V100 SXM2 "
                     "datasheet, 2017: 125 TFLOPS tensor, 300 W)",
            "e_byte": "[P] HBM2 about 3.9 pJ/bit (O'Connor et al., MICRO 2017, Fine-grained "
                      "DRAM, Sec. 2) x 8",
            "bytes_per_value": "[A] FP16 inference",
        })


def edge_int8_45nm() -> DigitalBaseline:
    """Edge-class baseline: an INT8 accelerator with 1 MB of on-chip SRAM (45 nm, Horowitz
    ISSCC 2014), weights and activations read from that SRAM."""
    return DigitalBaseline(
        name="edge_int8_45nm", description="Edge-class: INT8 MACs, 1 MB on-chip SRAM, 45 nm",
        e_mac=H45_MUL8 + H45_ADD32, e_byte=H45_SRAM1M_64B / 8, bytes_per_value=1,
        memory="1 MB on-chip SRAM",
        sources={
            "e_mac": "[P] Horowitz ISSCC 2014 Fig. 1.1.9: 8-bit mult 0.2 pJ + 32-bit add 0.1 pJ",
            "e_byte": "[D] Horowitz 2014: 1 MB SRAM 64-bit access 100 pJ -> 12.5 pJ per byte",
            "bytes_per_value": "[A] INT8 inference",
        })


def edge_int8_dram_45nm() -> DigitalBaseline:
    """Edge-class baseline whose weights do not fit on chip: the INT8 MACs of
    :func:`edge_int8_45nm`, weights from DRAM (Horowitz ISSCC 2014: 1.3-2.6 nJ per 64-bit
    access; the lower end is used)."""
    edge = edge_int8_45nm()
    return dataclasses.replace(
        edge, name="edge_int8_dram_45nm", description="Edge-class: INT8 MACs, off-chip DRAM, 45 nm",
        e_byte=H45_DRAM_64B / 8, memory="off-chip DRAM",
        sources={**edge.sources,
                 "e_byte": "[D] Horowitz 2014: DRAM 1.3 nJ per 64-bit access -> 162.5 pJ per byte"})


HARDWARE = {"pcm14nm_legallo2023": pcm14nm_legallo2023, "pcm90nm_joshi2020": pcm90nm_joshi2020}
"""Analog hardware presets by name."""

BASELINES = {"gpu_v100": gpu_v100, "edge_int8_45nm": edge_int8_45nm,
             "edge_int8_dram_45nm": edge_int8_dram_45nm}
"""Digital baseline presets by name."""

DEFAULT_BASELINES = ("gpu_v100", "edge_int8_45nm")
"""Baselines every report compares against unless told otherwise."""


def get_hardware(name_or_hw: str | AnalogHardware) -> AnalogHardware:
    """A preset by name (see :data:`HARDWARE`), or the given object unchanged."""
    if isinstance(name_or_hw, AnalogHardware):
        return name_or_hw
    fn = HARDWARE.get(name_or_hw)
    if fn is None:
        raise ValueError(f"hardware: unknown preset {name_or_hw!r}; known: {sorted(HARDWARE)}")
    return fn()


def get_baseline(name_or_base: str | DigitalBaseline) -> DigitalBaseline:
    """A baseline by name (see :data:`BASELINES`), or the given object unchanged."""
    if isinstance(name_or_base, DigitalBaseline):
        return name_or_base
    fn = BASELINES.get(name_or_base)
    if fn is None:
        raise ValueError(f"baseline: unknown preset {name_or_base!r}; known: {sorted(BASELINES)}")
    return fn()
