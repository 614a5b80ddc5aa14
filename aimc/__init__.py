"""aimc: deep learning on analog in-memory computing hardware made of PCM, in PyTorch.

>>> import aimc
>>> amodel = aimc.convert(model, aimc.presets.pcm_joshi2020(), digital=["fc"])
>>> aimc.train_hwa(amodel, train_loader, epochs=3)    # noise-injection fine-tune
>>> aimc.calibrate_inputs(amodel, train_loader)
>>> aimc.program(amodel, seed=0)
>>> aimc.drift(amodel, 86400); aimc.compensate(amodel, "gdc")
"""

from . import compute, data, devices, energy, functional, models, presets, snn, training
from .config import AnalogConfig, MappingConfig, TileConfig
from .inference import (
    accuracy,
    adc_saturation,
    calibrate_inputs,
    calibrate_outputs,
    compensate,
    drift,
    evaluate_over_time,
    program,
)
from .nn import (
    AnalogConv1d,
    AnalogConv2d,
    AnalogGRU,
    AnalogLinear,
    AnalogLSTM,
    AnalogMultiheadAttention,
    AnalogRNN,
    analog_layers,
    convert,
    to_digital,
)
from .training import HWAConfig, train_hwa

__version__ = "0.1.0"

__all__ = [
    "AnalogConfig",
    "AnalogConv1d",
    "AnalogConv2d",
    "AnalogGRU",
    "AnalogLSTM",
    "AnalogLinear",
    "AnalogMultiheadAttention",
    "AnalogRNN",
    "HWAConfig",
    "MappingConfig",
    "TileConfig",
    "accuracy",
    "adc_saturation",
    "analog_layers",
    "calibrate_inputs",
    "calibrate_outputs",
    "compensate",
    "compute",
    "convert",
    "data",
    "devices",
    "drift",
    "energy",
    "evaluate_over_time",
    "functional",
    "models",
    "presets",
    "program",
    "snn",
    "to_digital",
    "train_hwa",
    "training",
]
