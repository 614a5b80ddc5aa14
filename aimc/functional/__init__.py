"""Pure tensor functions of the tile: mapping, DAC, ADC, output noise, tiled MVM."""

from .noise import add_gaussian_
from .tile import (
    adc,
    combine_pairs,
    conductances_to_weights,
    dac,
    dac_levels,
    output_noise,
    pair_significance,
    periphery,
    program_pairs,
    read_pairs,
    split_units,
    tile_weights,
    untile_weights,
    weight_scales,
    weights_to_conductances,
)

__all__ = [
    "adc",
    "add_gaussian_",
    "combine_pairs",
    "conductances_to_weights",
    "dac",
    "dac_levels",
    "output_noise",
    "pair_significance",
    "periphery",
    "program_pairs",
    "read_pairs",
    "split_units",
    "tile_weights",
    "untile_weights",
    "weight_scales",
    "weights_to_conductances",
]
