"""Pure tensor functions of the tile: mapping, DAC, ADC, output noise, tiled MVM."""

from .noise import add_gaussian_
from .tile import (
    adc,
    conductances_to_weights,
    dac,
    dac_levels,
    output_noise,
    periphery,
    split_units,
    tile_weights,
    untile_weights,
    weight_scales,
    weights_to_conductances,
)

__all__ = [
    "adc",
    "add_gaussian_",
    "conductances_to_weights",
    "dac",
    "dac_levels",
    "output_noise",
    "periphery",
    "split_units",
    "tile_weights",
    "untile_weights",
    "weight_scales",
    "weights_to_conductances",
]
