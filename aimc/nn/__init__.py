"""Analog layers and module conversion."""

from .convert import ANALOG_LAYERS, analog_layers, batch_norms, convert, to_digital
from .layers import AnalogConv1d, AnalogConv2d, AnalogLayerMixin, AnalogLinear
from .recurrent import AnalogLSTM

__all__ = ["ANALOG_LAYERS", "AnalogConv1d", "AnalogConv2d", "AnalogLSTM", "AnalogLayerMixin",
           "AnalogLinear", "analog_layers", "batch_norms", "convert", "to_digital"]
