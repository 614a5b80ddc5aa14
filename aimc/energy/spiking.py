"""Energy of a spiking network on a PCM synapse crossbar (Diehl & Cook on PCM, issue 5).

The network of :mod:`aimc.snn.diehl_cook` (``inputs`` Poisson inputs, ``neurons`` LIF
neurons with lateral inhibition, PCM synapses of ``devices_per_synapse`` devices) on the
tiles of a hardware preset, per image shown for ``time_steps`` steps:

- **row drives**: every input spike is one read pulse on its row (``e_dac_row``), as
  wide as a full-scale input (the preset's PWM window at ``dac_bits``);
- **crossbar**: the devices of the spiking row conduct for that pulse,
  V_read^2 * t_in * (sum of the row's conductances) (Ohm's law; Sebastian et al. 2018's
  synaptic read);
- **column reads** and **neurons**, by ``readout`` (``READOUTS``):

  - ``"adc"``, a clocked design with digital neurons: every step each neuron's column
    current is converted on each row tile (one ADC conversion) and the tiles' partial
    sums added (``e_acc``); then a digital LIF update of four element operations per
    neuron (leak, integrate, inhibition, threshold compare; ``e_elem``);
  - ``"integrate"``, analog integrate-and-fire neurons on the columns (the PCM synapse
    arrays of Sebastian et al. 2018 drive the neurons' membranes directly): the column
    currents of all row tiles charge the neuron's membrane capacitor, so nothing is
    converted; every step each neuron's membrane is compared with its threshold, charged
    as a 1-bit conversion of the preset's converter law ([A]: the same integrating front
    end, one comparison instead of 2^bits levels); the leak is passive; every output
    spike resets its neuron and inhibits the others, one element operation per neuron.
    Not charged: the static bias of an integrator that holds the bit line at its read
    voltage (a real design needs one; its power times the step is design-specific).
- **plasticity** (learning only): the STDP traces decay every step (one operation per
  input and neuron), every input spike updates the requested change of its row (one
  operation per neuron), every output spike that of its column (one per input), and
  each mini-batch adds the requests into the accumulator chi and rounds them (two per
  synapse, Boybat 2018's accumulate-then-pulse);
- **SET / RESET pulses** (learning only): as counted by the synapses
  (:class:`aimc.snn.synapses.PCMSynapses`): SET pulses (updates, initial programming,
  refresh writes) x ``e_set_pulse``; RESET pulses of depression and of refreshes (every
  device of a refreshed synapse) x ``e_reset_pulse``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .cost import adc_energy, breakdown, input_window
from .hardware import AnalogHardware, get_hardware

COMPONENTS = ("row_drives", "crossbar", "column_reads", "neurons", "plasticity",
              "set_pulses", "reset_pulses")
"""Energy components of a spiking run (J)."""

READOUTS = ("adc", "integrate")
"""How the neurons read their columns (module docstring): converted every step and
integrated digitally, or integrated on an analog membrane and compared."""


@dataclass(frozen=True)
class SpikingCounts:
    """What a spiking run did: images, steps, spikes and pulses."""

    images: int
    """Images presented."""
    time_steps: int
    """Simulation steps per image."""
    inputs: int
    """Input lines (rows of the synapse array)."""
    neurons: int
    """Neurons (columns)."""
    input_spikes: int
    """Input spikes over all images."""
    output_spikes: int = 0
    """Neuron spikes over all images (drive the post-spike STDP updates and, with the
    ``"integrate"`` readout, the membrane resets and inhibition)."""
    learning: bool = False
    """True for training (STDP on, devices programmed)."""
    batch: int = 1
    """Images per synaptic update (the accumulator is applied once per batch)."""
    set_pulses: int = 0
    """SET pulses on synapse devices."""
    reset_pulses: int = 0
    """RESET pulses of depression."""
    refreshes: int = 0
    """Synapses refreshed (every device RESET, the weight written back)."""

    def __post_init__(self) -> None:
        for key in ("images", "time_steps", "inputs", "neurons", "input_spikes",
                    "output_spikes", "set_pulses", "reset_pulses", "refreshes"):
            value = getattr(self, key)
            low = 1 if key in ("time_steps", "inputs", "neurons") else 0
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise ValueError(f"SpikingCounts.{key} must be an integer >= {low}, "
                                 f"got {value!r}")
        if not (isinstance(self.batch, int) and self.batch >= 1):
            raise ValueError(f"SpikingCounts.batch must be an integer >= 1, got {self.batch!r}")
        if not isinstance(self.learning, bool):
            raise ValueError("SpikingCounts.learning must be true or false")


@dataclass(frozen=True)
class SpikingEnergy:
    """Energy of a spiking run (J), by component (module docstring)."""

    hardware: str
    """Hardware preset name."""
    images: int
    """Images presented."""
    readout: str
    """How the neurons read their columns (``READOUTS``)."""
    row_drives: float
    """Read pulses of input spikes."""
    crossbar: float
    """Device conduction during those pulses."""
    column_reads: float
    """Conversions of the neurons' column currents and their partial sums (``"adc"``), or
    the membranes' threshold comparisons (``"integrate"``)."""
    neurons: float
    """Digital LIF updates (``"adc"``), or the resets and inhibition of output spikes
    (``"integrate"``)."""
    plasticity: float
    """STDP traces, requested changes and the accumulator."""
    set_pulses: float
    """SET pulses on synapse devices."""
    reset_pulses: float
    """RESET pulses on synapse devices."""

    @property
    def total(self) -> float:
        """Energy of the run (J)."""
        return sum(getattr(self, c) for c in COMPONENTS)

    @property
    def per_image(self) -> float:
        """Energy per image (J)."""
        return self.total / max(self.images, 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: components (J), total, per image, shares."""
        return breakdown(self, COMPONENTS, "image", self.images)


def spiking_energy(counts: SpikingCounts, g_sum_us: float,
                   hardware: str | AnalogHardware = "pcm90nm_joshi2020",
                   devices_per_synapse: int = 4, readout: str = "adc") -> SpikingEnergy:
    """Energy of a spiking run on ``hardware`` (module docstring; Sebastian et al., J. Appl.
    Phys. 124, 111101 (2018) for PCM synapse arrays and their neurons, Boybat et al. 2018
    for the multi-device synapse and its accumulator).

    ``g_sum_us`` is the sum of every synapse device's conductance (uS); the crossbar term
    charges each spike with its row's share, g_sum_us / inputs.
    """
    hw = get_hardware(hardware)
    if not (math.isfinite(g_sum_us) and g_sum_us >= 0):
        raise ValueError(f"spiking_energy: g_sum_us must be a finite number >= 0, "
                         f"got {g_sum_us!r}")
    if not (isinstance(devices_per_synapse, int) and devices_per_synapse >= 1):
        raise ValueError("spiking_energy: devices_per_synapse must be an integer >= 1, "
                         f"got {devices_per_synapse!r}")
    if readout not in READOUTS:
        raise ValueError(f"spiking_energy: readout must be one of {list(READOUTS)}, "
                         f"got {readout!r}")
    c = counts
    steps = c.images * c.time_steps
    row_tiles = math.ceil(c.inputs / hw.tile_rows)
    t_in = input_window(hw, hw.dac_bits)
    crossbar = c.input_spikes * hw.v_read ** 2 * t_in * (g_sum_us / c.inputs) * 1e-6
    if readout == "adc":
        column_reads = steps * c.neurons * (row_tiles * adc_energy(hw, hw.adc_bits)
                                            + (row_tiles - 1) * hw.e_acc)
        neurons = steps * c.neurons * 4 * hw.e_elem
    else:
        column_reads = steps * c.neurons * adc_energy(hw, 1)
        neurons = c.output_spikes * c.neurons * hw.e_elem
    plasticity = set_e = reset_e = 0.0
    if c.learning:
        synapses = c.inputs * c.neurons
        plasticity = hw.e_elem * (steps * (c.inputs + c.neurons)
                                  + c.input_spikes * c.neurons + c.output_spikes * c.inputs
                                  + math.ceil(c.images / c.batch) * 2 * synapses)
        set_e = c.set_pulses * hw.e_set_pulse
        reset_e = (c.reset_pulses + c.refreshes * devices_per_synapse) * hw.e_reset_pulse
    return SpikingEnergy(hardware=hw.name, images=c.images, readout=readout,
                         row_drives=c.input_spikes * hw.e_dac_row, crossbar=crossbar,
                         column_reads=column_reads, neurons=neurons, plasticity=plasticity,
                         set_pulses=set_e, reset_pulses=reset_e)


@dataclass(frozen=True)
class CorrelationEnergy:
    """Energy of a computational-memory correlation detection run (J)."""

    hardware: str
    """Hardware preset name."""
    momentum: float
    """The collective activity M(k) = sum_i X_i(k), one addition per process and step."""
    set_pulses: float
    """The SET pulses on the active processes' devices, scaled by their amplitudes."""
    final_read: float
    """One read of every device at the end (a row drive and an ADC conversion each)."""

    @property
    def total(self) -> float:
        """Energy of the run (J)."""
        return self.momentum + self.set_pulses + self.final_read

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: components (J), total, shares."""
        return breakdown(self, ("momentum", "set_pulses", "final_read"))


def correlation_energy(processes: int, steps: int, pulse_charge: float,
                       hardware: str | AnalogHardware = "pcm90nm_joshi2020"
                       ) -> CorrelationEnergy:
    """Energy of Sebastian et al. 2017's correlation detection (Nat. Commun. 8, 1115):
    per step the digital sum of the N binary processes (``e_elem`` each), amplitude-
    modulated SET pulses on the active devices (``pulse_charge`` full pulses at
    ``e_set_pulse``: a pulse of relative amplitude a draws a times the current for the same
    time), and one read of every device at the end."""
    hw = get_hardware(hardware)
    for name, value in (("processes", processes), ("steps", steps)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"correlation_energy: {name} must be an integer >= 1, "
                             f"got {value!r}")
    if not (math.isfinite(pulse_charge) and pulse_charge >= 0):
        raise ValueError(f"correlation_energy: pulse_charge must be >= 0, got {pulse_charge!r}")
    return CorrelationEnergy(
        hardware=hw.name, momentum=steps * processes * hw.e_elem,
        set_pulses=pulse_charge * hw.e_set_pulse,
        final_read=processes * (hw.e_dac_row + adc_energy(hw, hw.adc_bits)))


@dataclass(frozen=True)
class PCMNeuronEnergy:
    """Energy of a population of PCM neurons (J)."""

    hardware: str
    """Hardware preset name."""
    spikes: int
    """Spikes fired (each one a RESET)."""
    set_pulses: float
    """The amplitude-scaled SET pulses that integrate the inputs."""
    resets: float
    """One RESET of the neuron's device per spike."""
    threshold_reads: float
    """Each step, the device read and compared with the threshold."""

    @property
    def total(self) -> float:
        """Energy of the run (J)."""
        return self.set_pulses + self.resets + self.threshold_reads

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: components (J), total, per spike, shares."""
        return breakdown(self, ("set_pulses", "resets", "threshold_reads"), "spike",
                         self.spikes)


def pcm_neuron_energy(neuron_steps: int, set_charge: float, spikes: int,
                      hardware: str | AnalogHardware = "pcm90nm_joshi2020"
                      ) -> PCMNeuronEnergy:
    """Energy of Tuma et al.'s PCM neurons (Nat. Nanotechnol. 11, 693 (2016)): the SET
    pulses that integrate the inputs (``set_charge`` full pulses at ``e_set_pulse``: a pulse
    of relative amplitude a draws a times the current for the same time), one RESET per
    spike (``e_reset_pulse``), and at every one of the ``neuron_steps`` a read of the
    device against the threshold, charged as a row drive and a 1-bit conversion ([A])."""
    hw = get_hardware(hardware)
    for name, value in (("neuron_steps", neuron_steps), ("spikes", spikes)):
        if not (isinstance(value, int) and value >= 0):
            raise ValueError(f"pcm_neuron_energy: {name} must be an integer >= 0, "
                             f"got {value!r}")
    if not (math.isfinite(set_charge) and set_charge >= 0):
        raise ValueError(f"pcm_neuron_energy: set_charge must be >= 0, got {set_charge!r}")
    return PCMNeuronEnergy(
        hardware=hw.name, spikes=spikes, set_pulses=set_charge * hw.e_set_pulse,
        resets=spikes * hw.e_reset_pulse,
        threshold_reads=neuron_steps * (hw.e_dac_row + adc_energy(hw, 1)))
