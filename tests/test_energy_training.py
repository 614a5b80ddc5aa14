"""Energy of in-situ training (aimc.energy.training): pulse energies, read counts, update
rules, and the counters the optimizers keep for them."""

import dataclasses
import math

import pytest
import torch
from torch import nn

import aimc.energy as E
from aimc.energy import cost
from aimc.energy.hardware import nvsim_pulse_energy
from aimc.energy.training import (
    UPDATE_RULES,
    Layout,
    TrainingCounts,
    digital_training_energy,
    insitu_layout,
    layer_read,
    single_read,
    training_energy,
)
from aimc.training import insitu_layers, insitu_mlp, make_optimizer
from aimc.training.insitu import pulse_coincidence

HW = E.pcm90nm_joshi2020()
MLP = Layout(shapes=((784, 250), (250, 125), (125, 10)), rows=512, cols=512, dac_bits=7,
             adc_bits=9, g_sum_us=(1e5, 2e4, 1e3))


def counts(**kw):
    base = dict(samples=1000, steps=100, pulses=5000, volatile_pulses=0, refreshes=0,
                transfers=0, line_pulses=0, verified_pulses=0)
    base.update(kw)
    return TrainingCounts(**base)


def test_pulse_energies_follow_nvsim():
    # NVSim current mode: E = V_dd I t; its sample 90 nm cell: SET 150 uA 150 ns, RESET
    # 300 uA 40 ns. At 1.2 V: 27 pJ and 14.4 pJ; at 14 nm the current scales by 14/90.
    assert nvsim_pulse_energy(150e-6, 150e-9, 1.2) == pytest.approx(27.0e-12, rel=1e-12)
    assert nvsim_pulse_energy(300e-6, 40e-9, 1.2) == pytest.approx(14.4e-12, rel=1e-12)
    assert HW.e_set_pulse == pytest.approx(27.0e-12)
    assert HW.e_reset_pulse == pytest.approx(14.4e-12)
    hw14 = E.pcm14nm_legallo2023()
    assert hw14.e_set_pulse == pytest.approx(0.8 * 150e-6 * 14 / 90 * 150e-9)
    assert hw14.sources["e_set_pulse"].startswith("[M]")
    with pytest.raises(ValueError, match="e_set_pulse"):
        dataclasses.replace(HW, e_set_pulse=-1.0)


def test_forward_and_transposed_reads_count_rows_and_columns():
    # 784 x 250 on 512 x 512 tiles: 2 row tiles, 1 column tile.
    a = 0.5
    fwd = layer_read(HW, MLP, 0, a)
    bwd = layer_read(HW, MLP, 0, a, transposed=True)
    adc = cost.adc_energy(HW, 9)
    # forward: 784 row drives, 2 x 250 conversions, 250 partial-sum adds
    assert fwd.dac == pytest.approx(784 * HW.e_dac_row)
    assert fwd.adc == pytest.approx(2 * 250 * adc)
    # transposed: the 250 errors drive the columns of both row tiles, 784 conversions
    assert bwd.dac == pytest.approx(2 * 250 * HW.e_dac_row)
    assert bwd.adc == pytest.approx(784 * adc)
    assert bwd.digital == pytest.approx(784 * HW.e_scale)  # one column tile: no adds
    # the same devices are read either way
    t_in = cost.input_window(HW, 7)
    assert fwd.crossbar == bwd.crossbar == pytest.approx(HW.v_read ** 2 * t_in * a * 1e5 * 1e-6)


def test_mixed_precision_charges_by_hand():
    c = counts(refreshes=7, verified_pulses=40)
    e = training_energy("mixed-precision", MLP, c, HW)
    w = MLP.weights
    assert w == 784 * 250 + 250 * 125 + 125 * 10
    assert e.update_compute == pytest.approx(1000 * w * HW.e_mac_digital
                                             + 100 * w * 2 * HW.e_elem)
    assert e.set_pulses == pytest.approx(5000 * HW.e_set_pulse)
    assert e.reset_pulses == pytest.approx(2 * 7 * HW.e_reset_pulse)
    assert e.verify_reads == pytest.approx((7 + 40) * single_read(HW, 9))
    assert e.update_lines == e.volatile_pulses == 0.0
    # forward: one inference per sample (+ movement, activations); backward skips layer 1
    per_fwd = sum(layer_read(HW, MLP, k, 0.5).total for k in range(3))
    moved = sum(i + o for i, o in MLP.shapes) * HW.e_byte_move
    assert e.forward == pytest.approx(1000 * (per_fwd + moved + 385 * HW.e_elem))
    per_bwd = sum(layer_read(HW, MLP, k, 0.5, transposed=True).total for k in (1, 2))
    assert e.backward == pytest.approx(
        1000 * (per_bwd + (250 + 125 + 125 + 10) * HW.e_byte_move + 375 * HW.e_elem))
    assert e.total == pytest.approx(sum(e.to_dict()[k] for k in E.training.COMPONENTS))
    assert e.per_sample == pytest.approx(e.total / 1000)
    assert sum(e.to_dict()["shares"].values()) == pytest.approx(1.0)
    assert not e.notes


def test_parallel_updates_charge_their_lines():
    lines = sum(i + o for i, o in MLP.shapes)
    e = training_energy("2t2r3t1c", MLP, counts(volatile_pulses=10**6, transfers=300,
                                                 verified_pulses=5000), HW)
    assert e.update_lines == pytest.approx(1000 * lines * HW.e_dac_row)
    assert e.volatile_pulses == pytest.approx(10**6 * HW.e_volatile_pulse)
    assert e.update_compute == 0.0
    assert e.verify_reads == pytest.approx((300 + 5000) * single_read(HW, 9))
    # analog SGD: the random bits of BL slots per line and sample, and the pulses sent
    sgd = training_energy("analog-sgd", MLP, counts(line_pulses=12345), HW, bl=10)
    assert sgd.update_compute == pytest.approx(1000 * 10 * lines * HW.e_elem)
    assert sgd.update_lines == pytest.approx(12345 * HW.e_dac_row)
    tt = training_energy("tiki-taka", MLP, counts(transfers=640, volatile_pulses=99,
                                                  line_pulses=10), HW)
    assert tt.verify_reads == pytest.approx(640 * (cost.adc_energy(HW, 9) + HW.e_scale))
    assert tt.volatile_pulses == pytest.approx(99 * HW.e_volatile_pulse)


def test_uncounted_quantities_fall_back_and_say_so():
    c = counts(line_pulses=None, verified_pulses=None)
    sgd = training_energy("analog-sgd", MLP, c, HW, bl=4)
    lines = sum(i + o for i, o in MLP.shapes)
    assert sgd.update_lines == pytest.approx(1000 * 4 * lines * HW.e_dac_row)
    assert any("upper bound" in n for n in sgd.notes)
    mc = training_energy("2t2r3t1c", MLP, c, HW)
    assert mc.verify_reads == pytest.approx(5000 * single_read(HW, 9))
    assert any("closed-loop" in n for n in mc.notes)


def test_energy_is_linear_in_the_counts():
    one = training_energy("tiki-taka", MLP, counts(line_pulses=100, transfers=50), HW)
    two = training_energy("tiki-taka", MLP, counts(samples=2000, steps=200, pulses=10000,
                                                   line_pulses=200, transfers=100), HW)
    assert two.total == pytest.approx(2 * one.total)
    assert two.per_sample == pytest.approx(one.per_sample)


def test_validation_names_the_field():
    with pytest.raises(ValueError, match="unknown method"):
        training_energy("adam", MLP, counts(), HW)
    with pytest.raises(ValueError, match="TrainingCounts.pulses"):
        counts(pulses=-1)
    with pytest.raises(ValueError, match="g_sum_us"):
        Layout(shapes=((4, 2),), rows=8, cols=8, dac_bits=7, adc_bits=9, g_sum_us=(1.0, 2.0))
    with pytest.raises(ValueError, match="activity"):
        training_energy("mixed-precision", MLP, counts(), HW, activity=2.0)
    assert set(UPDATE_RULES) == {"mixed-precision", "analog-sgd", "2t2r3t1c", "tiki-taka"}


def test_digital_training_baseline_by_hand():
    base = E.edge_int8_45nm()
    e = digital_training_energy(MLP.shapes, 1000, 100, base)
    w, acts = MLP.weights, sum(i + o for i, o in MLP.shapes)
    assert e == pytest.approx(3 * w * 1000 * base.e_mac
                              + (100 * 3 * w + 1000 * 2 * acts) * base.e_byte)


def test_line_pulses_counted_match_the_pulse_probabilities():
    # E[pulses on a line] = BL * p with p = C |x| clipped at 1 (Gokmen & Vlasov 2016).
    g = torch.Generator().manual_seed(1)
    x = torch.tensor([[0.5, -1.0, 0.2, 0.0]])
    d = torch.tensor([[0.3, -0.1]])
    lr, eps, bl, reps = 0.05, 0.01, 10, 3000
    c = math.sqrt(lr / (bl * eps))
    cx, cd = c * math.sqrt(0.3 / 1.0), c * math.sqrt(1.0 / 0.3)
    expected = bl * (sum(min(1.0, cx * abs(v)) for v in x[0].tolist())
                     + sum(min(1.0, cd * abs(v)) for v in d[0].tolist()))
    total = sum(pulse_coincidence(x, d, lr, eps, bl, g, return_lines=True)[2]
                for _ in range(reps))
    # each line's count is binomial: variance <= BL / 4 per line, 6 lines; 5 sigma
    assert abs(total / reps - expected) < 5 * math.sqrt(6 * bl / 4 / reps)


def test_optimizers_count_verified_and_line_pulses():
    torch.manual_seed(0)
    model = insitu_mlp((20, 16, 4))
    opt = make_optimizer("mixed-precision", model, 0.5, seed=0)
    s0 = opt.stats()
    assert s0["pulses"] > 0 and s0["verified_pulses"] == s0["pulses"]  # closed-loop init
    x, y = torch.rand(16, 20), torch.randint(0, 4, (16,))
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    s1 = opt.stats()
    assert s1["refreshes"] == 0
    assert s1["pulses"] > s0["pulses"]  # open-loop updates: not verified
    assert s1["verified_pulses"] == s0["verified_pulses"]
    assert s1["line_pulses"] == 0
    torch.manual_seed(0)
    model = insitu_mlp((20, 16, 4))
    sgd = make_optimizer("analog-sgd", model, 0.5, seed=0)
    sgd.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    sgd.step()
    assert sgd.stats()["line_pulses"] > 0
    layout = insitu_layout(sgd)
    first = insitu_layers(model)[0]
    assert layout.shapes == ((20, 16), (16, 4))
    assert layout.g_sum_us[0] == pytest.approx(float(first.g_pos.sum() + first.g_neg.sum()))
    energy = training_energy("analog-sgd", layout,
                             TrainingCounts.from_stats(sgd.stats(), samples=16), HW)
    assert energy.total > 0 and not energy.notes


def test_resuming_an_older_checkpoint_adds_the_new_counters():
    torch.manual_seed(0)
    model = insitu_mlp((20, 16, 4))
    opt = make_optimizer("mixed-precision", model, 0.5, seed=0)
    state = opt.state_dict()
    for key in ("verified_pulses", "line_pulses", "fast_resets"):
        del state["insitu"]["counters"][key]
    opt.load_state_dict(state)
    assert opt.stats() == {**state["insitu"]["counters"], "verified_pulses": 0,
                           "line_pulses": 0, "fast_resets": 0}


def test_every_optimizer_reports_every_counter():
    from aimc.training.insitu import ALGORITHMS, COUNTERS

    for name in ALGORITHMS:
        opt = make_optimizer(name, insitu_mlp((20, 16, 4)), 0.5, seed=0)
        assert set(opt.stats()) == set(COUNTERS), name


# -- spiking networks (aimc.energy.spiking) -------------------------------------------------
def test_spiking_energy_by_hand():
    from aimc.energy.spiking import COMPONENTS, SpikingCounts, spiking_energy

    c = SpikingCounts(images=10, time_steps=350, inputs=784, neurons=400, input_spikes=50_000,
                      output_spikes=150, learning=True, batch=5, set_pulses=1000,
                      reset_pulses=3, refreshes=2)
    e = spiking_energy(c, g_sum_us=784 * 400 * 4 * 2.0, hardware=HW, devices_per_synapse=4)
    t_in = cost.input_window(HW, 8)
    assert e.row_drives == pytest.approx(50_000 * HW.e_dac_row)
    # each spike's row: 400 synapses x 4 devices x 2 uS
    assert e.crossbar == pytest.approx(50_000 * HW.v_read ** 2 * t_in * 400 * 4 * 2.0e-6)
    steps = 10 * 350
    # 784 rows on 512-row tiles: two conversions and one add per neuron and step
    assert e.column_reads == pytest.approx(steps * 400 * (2 * cost.adc_energy(HW, 8)
                                                          + HW.e_acc))
    assert e.neurons == pytest.approx(steps * 400 * 4 * HW.e_elem)
    assert e.plasticity == pytest.approx(HW.e_elem * (steps * 1184 + 50_000 * 400
                                                      + 150 * 784 + 2 * 2 * 784 * 400))
    assert e.set_pulses == pytest.approx(1000 * HW.e_set_pulse)
    assert e.reset_pulses == pytest.approx((3 + 2 * 4) * HW.e_reset_pulse)
    assert e.total == pytest.approx(sum(getattr(e, k) for k in COMPONENTS))
    infer = spiking_energy(dataclasses.replace(c, learning=False), 784 * 400 * 8.0, HW)
    assert infer.plasticity == infer.set_pulses == infer.reset_pulses == 0.0
    assert infer.per_image == pytest.approx(infer.total / 10)
    with pytest.raises(ValueError, match="SpikingCounts.inputs"):
        dataclasses.replace(c, inputs=0)
    with pytest.raises(ValueError, match="g_sum_us"):
        spiking_energy(c, float("nan"), HW)


def test_spiking_energy_with_integrate_and_fire_neurons():
    from aimc.energy.spiking import SpikingCounts, spiking_energy

    c = SpikingCounts(images=10, time_steps=350, inputs=784, neurons=400, input_spikes=50_000,
                      output_spikes=150)
    adc = spiking_energy(c, 784 * 400 * 8.0, HW)
    integ = spiking_energy(c, 784 * 400 * 8.0, HW, readout="integrate")
    assert (adc.readout, integ.readout) == ("adc", "integrate")
    # the spikes' reads and the devices' conduction do not depend on the neurons
    assert (integ.row_drives, integ.crossbar) == (adc.row_drives, adc.crossbar)
    # one comparison per neuron and step, whatever the row tiles (currents summed on the
    # membrane), charged as a 1-bit conversion; each spike resets/inhibits 400 neurons
    assert integ.column_reads == pytest.approx(10 * 350 * 400 * cost.adc_energy(HW, 1))
    assert integ.neurons == pytest.approx(150 * 400 * HW.e_elem)
    assert integ.column_reads < adc.column_reads / 10  # 2 tiles x 8-bit SAR vs 1 bit
    assert integ.total < adc.total
    assert integ.to_dict()["readout"] == "integrate"
    with pytest.raises(ValueError, match="readout"):
        spiking_energy(c, 1.0, HW, readout="cco")


def test_correlation_energy_by_hand():
    from aimc.energy.spiking import correlation_energy

    e = correlation_energy(1000, 50, 123.5, HW)
    assert e.momentum == pytest.approx(50 * 1000 * HW.e_elem)
    assert e.set_pulses == pytest.approx(123.5 * HW.e_set_pulse)
    assert e.final_read == pytest.approx(1000 * (HW.e_dac_row + cost.adc_energy(HW, 8)))
    assert e.to_dict()["total_j"] == pytest.approx(e.total)
    with pytest.raises(ValueError, match="pulse_charge"):
        correlation_energy(1000, 50, -1.0, HW)


def test_pcm_neuron_energy_by_hand():
    from aimc.energy.spiking import pcm_neuron_energy

    e = pcm_neuron_energy(1000, 250.5, 40, HW)
    assert e.set_pulses == pytest.approx(250.5 * HW.e_set_pulse)
    assert e.resets == pytest.approx(40 * HW.e_reset_pulse)
    assert e.threshold_reads == pytest.approx(1000 * (HW.e_dac_row + cost.adc_energy(HW, 1)))
    assert e.to_dict()["per_spike_j"] == pytest.approx(e.total / 40)
    with pytest.raises(ValueError, match="set_charge"):
        pcm_neuron_energy(1000, -1.0, 40, HW)
