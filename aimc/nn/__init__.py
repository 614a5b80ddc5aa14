"""Analog layers and module conversion."""

from .attention import AnalogMultiheadAttention
from .convert import ANALOG_LAYERS, analog_layers, batch_norms, convert, to_digital
from .layers import AnalogConv1d, AnalogConv2d, AnalogLayerMixin, AnalogLinear
from .recurrent import AnalogGRU, AnalogLSTM, AnalogRNN, AnalogRNNBase

__all__ = ["ANALOG_LAYERS", "AnalogConv1d", "AnalogConv2d", "AnalogGRU", "AnalogLSTM",
           "AnalogLayerMixin", "AnalogLinear", "AnalogMultiheadAttention", "AnalogRNN",
           "AnalogRNNBase", "analog_layers", "batch_norms", "convert", "to_digital"]
