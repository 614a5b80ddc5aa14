"""Energy, latency and area of a converted aimc network on tiled PCM hardware.

>>> import aimc, aimc.energy
>>> hw = aimc.energy.pcm14nm_legallo2023()
>>> amodel = aimc.convert(aimc.models.resnet32_cifar(), hw.analog_config())
>>> aimc.program(amodel, seed=0)
>>> table = aimc.energy.estimate(amodel, hw, (3, 32, 32))
>>> print(table.format()); table.to_json("energy.json"); table.to_csv("energy.csv")

The cost model (docs/energy.md) counts, per layer, tiles, devices, tile MVMs and DAC/ADC
conversions from the layer's tile geometry, charges each with the preset's cited
energies (crossbar read from the programmed conductances, V_read and the input pulse
width), and adds the digital periphery, data movement and layers left digital.
"""

from .cost import (
    AnalogCounts,
    AnalogEnergy,
    adc_energy,
    adc_time,
    analog_counts,
    analog_energy,
    crossbar_energy,
    input_window,
    mvm_time,
    mvm_tops_per_watt,
)
from .estimate import (
    COMPONENTS,
    ROW_FIELDS,
    EnergyTable,
    conductance_sum,
    estimate,
    validate_legallo2023,
)
from .hardware import (
    BASELINES,
    DEFAULT_BASELINES,
    HARDWARE,
    AnalogHardware,
    DigitalBaseline,
    edge_int8_45nm,
    edge_int8_dram_45nm,
    get_baseline,
    get_hardware,
    gpu_v100,
    legallo2023_mvm_split,
    pcm14nm_legallo2023,
    pcm90nm_joshi2020,
)
from .trace import FUNCTION_COSTS, MODULE_COSTS, Trace, trace

__all__ = [
    "BASELINES", "COMPONENTS", "DEFAULT_BASELINES", "FUNCTION_COSTS", "HARDWARE",
    "MODULE_COSTS", "ROW_FIELDS", "AnalogCounts", "AnalogEnergy", "AnalogHardware",
    "DigitalBaseline", "EnergyTable", "Trace", "adc_energy", "adc_time", "analog_counts",
    "analog_energy", "conductance_sum", "crossbar_energy", "edge_int8_45nm",
    "edge_int8_dram_45nm", "estimate", "get_baseline", "get_hardware", "gpu_v100",
    "input_window", "legallo2023_mvm_split", "mvm_time", "mvm_tops_per_watt",
    "pcm14nm_legallo2023", "pcm90nm_joshi2020", "trace", "validate_legallo2023",
]
