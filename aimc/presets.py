"""Named configurations: functions that return an :class:`AnalogConfig` to tweak."""

from __future__ import annotations

from .config import AnalogConfig, MappingConfig, TileConfig
from .devices import PCM, IdealDevice


def ideal() -> AnalogConfig:
    """No noise, exact devices, infinite DAC/ADC precision: reproduces the digital network.

    Inputs are normalised per vector ("dynamic") so no calibration step is needed.
    """
    return AnalogConfig(
        device=IdealDevice(),
        tile=TileConfig(dac_bits=0, adc_bits=0, out_bound=0.0, out_noise=0.0,
                        input_range="dynamic"),
        mapping=MappingConfig(),
    )


def pcm_joshi2020() -> AnalogConfig:
    """The PCM chip model of Joshi et al., Nat. Commun. 11, 2473 (2020).

    - device: the calibrated PCM statistics (programming noise, drift, 1/f read noise)
      of pcm-model.md sections 2-4, g_max = 25 uS;
    - tiles of 512 x 512 (the prototype array has 512 word lines);
    - 8-bit DAC over a static per-layer input range calibrated from data, as on the chip
      (Joshi 2020 used 8-bit inputs);
    - 8-bit ADC over [-10, 10] normalised units (aihwkit's default bound for PCM);
    - output noise 0.04 normalised units (4% of one full-scale weight times full-scale
      input; aihwkit's PCM preset uses the same value);
    - one scale per tile, bias in digital.
    """
    return AnalogConfig(
        device=PCM(),
        tile=TileConfig(rows=512, cols=512, dac_bits=8, input_range="static", adc_bits=8,
                        out_bound=10.0, out_noise=0.04),
        mapping=MappingConfig(weight_scaling="tile", digital_bias=True),
    )


PRESETS = {"ideal": ideal, "pcm_joshi2020": pcm_joshi2020}
"""Presets by name, for experiment files and the CLI."""
