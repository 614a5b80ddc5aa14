"""Configuration: validation messages name the field; dict and TOML round trips."""

import pytest

import aimc
from aimc import AnalogConfig, MappingConfig, TileConfig
from aimc.devices import PCM


@pytest.mark.parametrize("preset", [aimc.presets.ideal, aimc.presets.pcm_joshi2020])
def test_round_trip_dict_and_toml(preset, tmp_path):
    cfg = preset()
    assert AnalogConfig.from_dict(cfg.to_dict()) == cfg
    assert AnalogConfig.from_toml(cfg.to_toml()) == cfg
    path = tmp_path / "cfg.toml"
    cfg.save(path)
    assert AnalogConfig.load(path) == cfg
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temp file


def test_round_trip_keeps_every_changed_field():
    cfg = AnalogConfig(device=PCM(g_max=20.0, drift_scale=0.5),
                       tile=TileConfig(rows=256, cols=128, dac_bits=6, adc_bits=9,
                                       out_bound=12.0, out_noise=0.06,
                                       input_range="dynamic"),
                       mapping=MappingConfig(weight_scaling="column", digital_bias=False))
    again = AnalogConfig.from_toml(cfg.to_toml())
    assert again == cfg and again.device.g_max == 20.0


def test_presets_document_their_choices():
    pcm = aimc.presets.pcm_joshi2020()
    assert (pcm.tile.dac_bits, pcm.tile.adc_bits, pcm.tile.out_noise) == (8, 8, 0.04)
    assert pcm.device == PCM()
    ideal = aimc.presets.ideal()
    assert (ideal.tile.dac_bits, ideal.tile.adc_bits, ideal.tile.out_noise) == (0, 0, 0.0)


@pytest.mark.parametrize(("make", "field"), [
    (lambda: TileConfig(rows=0), "TileConfig.rows"),
    (lambda: TileConfig(dac_bits=1), "TileConfig.dac_bits"),
    (lambda: TileConfig(adc_bits=33), "TileConfig.adc_bits"),
    (lambda: TileConfig(adc_bits=8, out_bound=0.0), "TileConfig.adc_bits"),
    (lambda: TileConfig(out_noise=-0.1), "TileConfig.out_noise"),
    (lambda: TileConfig(input_range="per-row"), "TileConfig.input_range"),
    (lambda: MappingConfig(weight_scaling="row"), "MappingConfig.weight_scaling"),
    (lambda: MappingConfig(digital_bias="yes"), "MappingConfig.digital_bias"),
    (lambda: MappingConfig(pairs=0), "MappingConfig.pairs"),
    (lambda: MappingConfig(g_min=-1.0), "MappingConfig.g_min"),
    (lambda: AnalogConfig(device=PCM(g_max=10.0), mapping=MappingConfig(g_min=10.0)),
     "mapping.g_min"),
    (lambda: MappingConfig(pairs=2.0), "MappingConfig.pairs"),
    (lambda: MappingConfig(pair_gain=0.5), "MappingConfig.pair_gain"),
    (lambda: MappingConfig(pair_programming="verify"), "MappingConfig.pair_programming"),
    (lambda: PCM(t0=0.0), "PCM.t0"),
    (lambda: AnalogConfig(device="pcm"), "AnalogConfig.device"),
])
def test_bad_values_name_the_field(make, field):
    with pytest.raises(ValueError, match=field.replace(".", "\\.")):
        make()


def test_unknown_names_in_dicts_are_reported():
    with pytest.raises(ValueError, match="tile: unknown field\\(s\\) \\['bits'\\]"):
        AnalogConfig.from_dict({"tile": {"bits": 8}})
    with pytest.raises(ValueError, match="unknown device 'memristor'"):
        AnalogConfig.from_dict({"device": {"name": "memristor"}})
    with pytest.raises(ValueError, match="unknown section"):
        AnalogConfig.from_dict({"periphery": {}})
    with pytest.raises(ValueError, match="TileConfig.rows"):
        AnalogConfig.from_toml("[tile]\nrows = -3\n")
