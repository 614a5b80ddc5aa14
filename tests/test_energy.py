"""Energy, latency and area model: counts, converter laws, read energy, reports, CLI."""

import csv
import dataclasses
import json
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aimc
from aimc import energy as E
from aimc import models
from aimc.energy import cost

HW14 = E.pcm14nm_legallo2023()
HW90 = E.pcm90nm_joshi2020()


def _convert(module, hw=HW14, **tile):
    cfg = hw.analog_config()
    if tile:
        cfg = dataclasses.replace(cfg, tile=dataclasses.replace(cfg.tile, **tile))
    return aimc.convert(module, cfg)


def _row(table, name):
    return next(r for r in table.rows if r["name"] == name)


# -- counts ----------------------------------------------------------------------------------------
def test_linear_counts_exact():
    """784 -> 250 on 256 x 256 tiles: 4 input tiles of 196 rows, one column tile."""
    model = _convert(nn.Sequential(nn.Linear(784, 250)))
    r = _row(E.estimate(model, HW14, (784,), baselines=()), "0")
    assert r["kind"] == "analog"
    assert r["macs"] == 784 * 250
    assert r["tiles"] == 4
    assert r["mvms"] == 4
    assert r["dac_conversions"] == 784
    assert r["adc_conversions"] == 4 * 250
    # 3 partial-sum adds and 4 scalings per output, plus the digital bias
    assert r["digital_ops"] == 3 * 250 + 4 * 250 + 250
    assert r["devices"] == 784 * 250 * HW14.devices_per_weight


def test_conv_counts_exact_with_groups_and_column_tiles():
    """Conv2d(64, 300, 3, groups=2) on a 5x5 input: per group fan_in 288 = 32 channels x 9
    rows -> 2 tiles of 16 channels (28 fit in 256 rows); 150 outputs -> 1 column tile;
    L = 3 x 3 output positions."""
    conv = nn.Conv2d(64, 300, 3, groups=2, bias=False)
    model = _convert(nn.Sequential(conv))
    r = _row(E.estimate(model, HW14, (64, 5, 5), baselines=()), "0")
    n_vec, g, n_t, out_g, fan_in = 9, 2, 2, 150, 288
    assert r["macs"] == 300 * fan_in * n_vec == F.conv2d(
        torch.zeros(1, 64, 5, 5), conv.weight, groups=2).numel() * fan_in
    assert r["tiles"] == g * n_t * 1
    assert r["mvms"] == g * n_t * n_vec
    assert r["dac_conversions"] == g * 1 * fan_in * n_vec
    assert r["adc_conversions"] == g * n_t * out_g * n_vec
    assert r["digital_ops"] == g * (n_t - 1) * out_g * n_vec + g * n_t * out_g * n_vec


def test_conv_counts_with_column_tiles():
    """Conv2d(16, 300, 3, padding=1) on 4x4: one input tile, ceil(300/256) = 2 column tiles:
    each input vector is driven into both column tiles."""
    model = _convert(nn.Sequential(nn.Conv2d(16, 300, 3, padding=1)))
    r = _row(E.estimate(model, HW14, (16, 4, 4), baselines=()), "0")
    assert r["tiles"] == 2
    assert r["mvms"] == 2 * 16
    assert r["dac_conversions"] == 2 * 144 * 16
    assert r["adc_conversions"] == 300 * 16
    counts = cost.analog_counts(1, 300, 144, 1, 256, 16, 4, digital_bias=True)
    assert (counts.macs, counts.tiles, counts.adc_conversions) == (r["macs"], 2, 300 * 16)


def test_resnet20_totals_exact():
    """ResNet-20 (He 2016, option A): 40,551,040 MACs; 36 tiles of 256 x 256 (3x3 convs of
    16/32/64 channels need 1/2/3 input tiles of 28 channels); 2 devices per weight x 4."""
    model = _convert(models.resnet20_cifar())
    table = E.estimate(model, HW14, (3, 32, 32), baselines=())
    t = table.totals
    assert t["macs"] == 40_551_040
    assert t["tiles"] == 1 + 6 + (1 + 5 * 2) + (2 + 5 * 3) + 1
    n_weights = sum(m.weight.numel() for _, m in aimc.analog_layers(model))
    assert t["devices"] == n_weights * 4
    assert t["complete"] and not table.unsupported
    kinds = {r["type"] for r in table.rows}
    assert {"AnalogConv2d", "AnalogLinear", "BatchNorm2d", "relu", "add",
            "adaptive_avg_pool2d"} <= kinds
    assert len([r for r in table.rows if r["type"] == "add"]) == 9  # residual adds
    assert table.uncosted_functions == {}


def test_digital_layers_costed_as_digital():
    model = aimc.convert(models.mlp(), HW14.analog_config(), digital=["5"])
    table = E.estimate(model, HW14, (1, 28, 28), baselines=())
    r = _row(table, "5")
    assert r["kind"] == "digital" and r["macs"] == 125 * 10 and r["tiles"] == 0
    assert r["e_digital_j"] == pytest.approx(1250 * HW14.e_mac_digital + 1250 * HW14.e_byte_move)
    assert table.totals["macs"] == 784 * 250 + 250 * 125 + 125 * 10


# -- unsupported ---------------------------------------------------------------------------------
class _WithBilinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.pair = nn.Bilinear(8, 8, 8)

    def forward(self, x):
        y = self.fc(x)
        return self.pair(y, y)


class _Gram(nn.Module):
    def forward(self, x):
        return torch.matmul(x, x.transpose(-1, -2))


def test_unsupported_layer_is_reported():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convert warns about the Bilinear too
        model = aimc.convert(_WithBilinear(), HW14.analog_config())
    with pytest.warns(UserWarning, match="pair"):
        table = E.estimate(model, HW14, (5, 8), baselines=())
    assert table.unsupported == ["pair (Bilinear)"]
    assert table.totals["complete"] is False
    assert _row(table, "pair")["dominant"] == "not costed"
    assert "NOT COSTED" in table.format()
    assert _row(table, "fc")["kind"] == "analog"


def test_unsupported_function_is_reported():
    model = nn.Sequential(_convert(nn.Linear(6, 6)), _Gram())
    with pytest.warns(UserWarning, match="matmul"):
        table = E.estimate(model, HW14, (4, 6), baselines=())
    assert table.unsupported == ["1:matmul (matmul)"]
    assert not table.totals["complete"]


# -- converter and read-energy laws ------------------------------------------------------------
def test_adc_energy_time_law_halving_bits():
    """Time-based (CCO) ADC: E = E_ref 2^(b - 8); 8 -> 4 bits divides it by 16."""
    assert cost.adc_energy(HW14, 8) == pytest.approx(HW14.adc_energy_ref)
    assert cost.adc_energy(HW14, 4) == pytest.approx(HW14.adc_energy_ref / 16)


def test_adc_energy_sar_law_neurosim_reference():
    """NeuroSim SarADC.cpp, 90 nm HP: P = (4.3474 b + 31.782) uW over (b + 1) ns."""
    assert cost.adc_energy(HW90, 8) == pytest.approx((4.3474 * 8 + 31.782) * 9 * 1e-15)
    assert cost.adc_energy(HW90, 4) == pytest.approx((4.3474 * 4 + 31.782) * 5 * 1e-15)


@pytest.mark.parametrize("hw", [HW14, HW90], ids=["time", "sar"])
def test_halving_adc_bits_lowers_layer_adc_energy_as_modelled(hw):
    lin = nn.Linear(100, 40)
    e = {}
    for bits in (8, 4):
        model = _convert(nn.Sequential(lin), hw, adc_bits=bits)
        e[bits] = _row(E.estimate(model, hw, (100,), baselines=()), "0")["e_adc_j"]
    assert e[4] < e[8]
    assert e[4] / e[8] == pytest.approx(cost.adc_energy(hw, 4) / cost.adc_energy(hw, 8))
    n_conv = 40  # one tile, 40 used columns
    assert e[8] == pytest.approx(n_conv * cost.adc_energy(hw, 8))


def test_crossbar_energy_formula_and_programmed_conductances():
    # 0.2 V, 127 ns window, activity 0.5, 1 S in total: 0.04 * 127e-9 * 0.5 = 2.54 nJ
    assert cost.crossbar_energy(0.2, 127e-9, 0.5, 1e6, 1) == pytest.approx(2.54e-9)
    lin = nn.Linear(64, 32, bias=False)
    model = _convert(nn.Sequential(lin))
    before = E.estimate(model, HW14, (64,), baselines=())
    aimc.program(model, seed=3)
    after = E.estimate(model, HW14, (64,), baselines=())
    layer = model[0]
    r = _row(after, "0")
    assert r["conductances"] == "programmed" and _row(before, "0")["conductances"] == "target"
    g = float(layer.g_pos.sum() + layer.g_neg.sum())
    assert r["g_sum_us"] == pytest.approx(g)
    t_in = 127 * HW14.t_pwm_lsb
    assert r["e_crossbar_j"] == pytest.approx(0.2 ** 2 * t_in * 0.5 * g * 1e-6)
    # programming noise moves the total conductance by a few percent only
    assert r["g_sum_us"] == pytest.approx(_row(before, "0")["g_sum_us"], rel=0.1)


def test_measured_activity_scales_crossbar_energy():
    model = _convert(nn.Sequential(nn.Linear(32, 16)))
    x = torch.rand(8, 32, generator=torch.Generator().manual_seed(0))
    r1 = _row(E.estimate(model, HW14, inputs=x, baselines=()), "0")
    r2 = _row(E.estimate(model, HW14, inputs=x * 0.5 + 0.5 * x.max(), baselines=()), "0")
    # per-tensor max normalisation: activity = mean(x) / max(x)
    assert r1["activity"] == pytest.approx(float(x.mean() / x.max()), rel=1e-5)
    assert r2["e_crossbar_j"] / r1["e_crossbar_j"] == pytest.approx(
        r2["activity"] / r1["activity"])


# -- linearity, latency, area ------------------------------------------------------------------
def test_energy_linear_in_number_of_inferences():
    model = _convert(models.lenet5())
    one = E.estimate(model, HW14, (1, 28, 28), batch=1)
    five = E.estimate(model, HW14, (1, 28, 28), batch=5)
    # per-inference figures equal, so the energy of n inferences is n times one
    assert five.totals["energy_j"] == pytest.approx(one.totals["energy_j"], rel=1e-12)
    for a, b in zip(one.rows, five.rows, strict=True):
        assert b["energy_j"] == pytest.approx(a["energy_j"], rel=1e-12)
        assert b["macs"] == a["macs"]
    # the tiles read 5x as many vectors one after another
    assert five.totals["latency_s"] == pytest.approx(5 * one.totals["latency_s"], rel=1e-9)
    assert five.totals["throughput_inf_per_s"] == pytest.approx(
        one.totals["throughput_inf_per_s"])


def test_mvm_time_matches_published_throughput():
    t = cost.mvm_time(HW14, 8, 8)
    assert 64 * 2 * 256 * 256 / t == pytest.approx(63.1e12, rel=1e-9)
    # a 4-bit ADC does not shorten the 8-bit PWM window it overlaps with
    assert cost.mvm_time(HW14, 8, 4) == pytest.approx(t)
    assert cost.mvm_time(HW14, 4, 8) < t


def test_pipeline_latency_bounds():
    cnn = E.estimate(_convert(models.lenet5()), HW14, (1, 28, 28), baselines=()).totals
    assert cnn["latency_pipelined_s"] < cnn["latency_s"]
    mlp = E.estimate(_convert(models.mlp()), HW14, (1, 28, 28), baselines=()).totals
    # a dense chain cannot overlap: every layer needs all of its input
    assert mlp["latency_pipelined_s"] == pytest.approx(mlp["latency_s"])
    assert mlp["area_mm2"] == pytest.approx(mlp["tiles"] * HW14.tile_area)


def test_baseline_ratio():
    model = _convert(models.mlp())
    t = E.estimate(model, HW14, (1, 28, 28)).totals
    gpu = E.gpu_v100()
    macs = t["macs"]
    assert t["energy_gpu_v100_j"] > macs * gpu.e_mac
    assert t["ratio_gpu_v100"] == pytest.approx(t["energy_gpu_v100_j"] / t["energy_j"])
    assert t["ratio_gpu_v100"] > t["ratio_edge_int8_45nm"] > 1


# -- validation against the 64-core chip -------------------------------------------------------
def test_legallo2023_mvm_split():
    s = E.legallo2023_mvm_split()
    ops = 2 * 256 * 256
    assert s["e_fixed"] + s["e_phase"] == pytest.approx(ops / 9.76e12)
    assert s["e_fixed"] + 4 * s["e_phase"] == pytest.approx(ops / 2.48e12)


def test_validation_within_2x_of_published():
    v = E.validate_legallo2023(seed=0)
    assert 0.5 < v["ratio_to_published"] < 2.0
    assert v["ratio_to_published"] < 1.0  # below: the model adds the crossbar read on top
    assert v["tops_per_s_chip"] == pytest.approx(63.1, rel=1e-6)


# -- presets, writers, CLI ---------------------------------------------------------------------
@pytest.mark.parametrize("make", [*E.HARDWARE.values(), *E.BASELINES.values()])
def test_every_constant_has_a_source(make):
    hw = make()
    numeric = [f.name for f in dataclasses.fields(hw)
               if f.name not in ("name", "description", "memory", "sources")]
    missing = [n for n in numeric if not hw.sources.get(n)]
    assert not missing, missing
    tagged = [v for v in hw.sources.values() if not v.startswith("unused")]
    assert all(v[:3] in ("[P]", "[D]", "[M]", "[A]") for v in tagged)


def test_hardware_validation_names_the_field():
    with pytest.raises(ValueError, match="v_read"):
        dataclasses.replace(HW14, v_read=-1.0)
    with pytest.raises(ValueError, match="adc_scaling"):
        dataclasses.replace(HW14, adc_scaling="flash")
    with pytest.raises(ValueError, match="unknown preset"):
        E.get_hardware("nope")


def test_writers(tmp_path):
    model = _convert(models.small_cnn())
    table = E.estimate(model, HW14, (1, 28, 28), name="small_cnn")
    table.to_json(tmp_path / "e.json", command="test", runtime_s=0.1)
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["study"] == "energy-small_cnn-pcm14nm_legallo2023"
    assert len(doc["layers"]) == len(table.rows)
    assert doc["totals"]["energy_j"] == pytest.approx(table.totals["energy_j"])
    assert {r["metric"] for r in doc["rows"]} >= {"energy_j", "tops_per_w", "ratio_gpu_v100"}
    assert doc["hardware"]["sources"]["adc_energy_ref"].startswith("[D]")
    table.to_csv(tmp_path / "e.csv")
    with open(tmp_path / "e.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(table.rows) + 1 and rows[-1]["name"] == "TOTAL"
    assert float(rows[-1]["energy_j"]) == pytest.approx(table.totals["energy_j"])
    assert math.isclose(sum(float(r["energy_j"]) for r in rows[:-1]),
                        table.totals["energy_j"], rel_tol=1e-9)


def test_cli(tmp_path, capsys):
    from aimc.energy.cli import main
    out = tmp_path / "mlp.json"
    assert main(["--model", "mlp", "--preset", "pcm90nm_joshi2020", "--json", str(out),
                 "--csv", str(tmp_path / "mlp.csv")]) == 0
    text = capsys.readouterr().out
    assert "TOP/s/W" in text and "vs gpu_v100" in text
    doc = json.loads(out.read_text())
    assert doc["totals"]["macs"] == 784 * 250 + 250 * 125 + 125 * 10
    assert doc["command"].startswith("python -m aimc.energy --model mlp")


def test_cli_loads_a_state_dict_into_any_model(tmp_path):
    from aimc import models
    from aimc.energy.cli import build
    torch.manual_seed(1)
    net = models.lstm_mnist()
    torch.save(net.state_dict(), tmp_path / "lstm.pt")
    amodel, shape = build("lstm_mnist", "pcm90nm_joshi2020", checkpoint=str(tmp_path / "lstm.pt"))
    assert shape == (1, 28, 28)
    assert torch.equal(amodel.rnn.hh_l0.weight, net.rnn.weight_hh_l0)
    torch.save({"state_dict": models.mlp().state_dict()}, tmp_path / "mlp.pt")
    assert build("mlp", "pcm90nm_joshi2020", checkpoint=str(tmp_path / "mlp.pt"))[1] == (1, 28, 28)
    with pytest.raises(RuntimeError):  # an LSTM's weights do not fit the GRU
        build("gru_mnist", "pcm90nm_joshi2020", checkpoint=str(tmp_path / "lstm.pt"))


def test_several_pairs_count_their_devices_and_conductance():
    """Two pairs per weight on a 2-device-per-weight profile: 4 devices per weight and,
    before programming, twice the target conductance (each open-loop pair holds w)."""
    def row(pairs):
        cfg = HW90.analog_config()
        cfg = dataclasses.replace(cfg, mapping=dataclasses.replace(cfg.mapping, pairs=pairs))
        torch.manual_seed(0)
        model = aimc.convert(nn.Sequential(nn.Linear(100, 20)), cfg)
        return _row(E.estimate(model, HW90, (100,), baselines=()), "0")

    one, two = row(1), row(2)
    assert HW90.devices_per_weight == 2
    assert (one["devices"], two["devices"]) == (100 * 20 * 2, 100 * 20 * 4)
    assert two["g_sum_us"] == pytest.approx(2 * one["g_sum_us"], rel=1e-6)
