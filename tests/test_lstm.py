"""AnalogLSTM / AnalogGRU / AnalogRNN: torch's recurrent layers with their weight matrices on
PCM tiles (Tsai et al. 2019)."""

from __future__ import annotations

import json
import warnings
from collections import Counter

import pytest
import torch
from torch import nn

import aimc
from aimc.energy import estimate
from aimc.nn import AnalogGRU, AnalogLinear, AnalogLSTM, AnalogRNN
from aimc.training import HWAConfig, prepare_hwa
from aimc.training.hwa import NoiseInjection

CASES = [
    dict(),
    dict(num_layers=2, bidirectional=True, batch_first=True),
    dict(bias=False),
]
TYPES = {"lstm": (nn.LSTM, {}), "gru": (nn.GRU, {}), "rnn-relu": (nn.RNN, {"nonlinearity":
                                                                       "relu"})}
ANALOG = {nn.LSTM: AnalogLSTM, nn.GRU: AnalogGRU, nn.RNN: AnalogRNN}


def _pair(seed: int = 0, kind: str = "lstm", **kw) -> tuple[nn.RNNBase, nn.Module]:
    torch.manual_seed(seed)
    torch_type, extra = TYPES[kind]
    rnn = torch_type(5, 7, **extra, **kw)
    return rnn, aimc.convert(rnn, aimc.presets.pcm_joshi2020())


def _states(kind: str, layers: int, batch: int):
    h = torch.randn(layers, batch, 7)
    return (h, torch.randn(layers, batch, 7)) if kind == "lstm" else h


def _flat(result) -> list[torch.Tensor]:
    out, state = result
    return [out, *(state if isinstance(state, tuple) else (state,))]


def _assert_same_outputs(got, want, **tol) -> None:
    """(output, final states) of two recurrent layers agree within ``tol``."""
    for g, w in zip(_flat(got), _flat(want), strict=True):
        torch.testing.assert_close(g, w, **tol)


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("kw", CASES)
def test_training_mode_is_the_torch_layer_with_its_gradients(kw, kind):
    rnn, a = _pair(kind=kind, **kw)
    assert type(a) is ANALOG[type(rnn)]
    x = torch.randn(4, 6, 5)
    layers = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    hx = _states(kind, layers, 4 if kw.get("batch_first") else 6)
    for state in (None, hx):
        want, got = rnn(x, state), a(x, state)
        _assert_same_outputs(got, want, atol=1e-6, rtol=1e-5)
    sum(t.square().sum() for t in _flat(want)).backward()
    sum(t.square().sum() for t in _flat(got)).backward()
    torch.testing.assert_close(a.hh_l0.weight.grad, rnn.weight_hh_l0.grad, atol=1e-5,
                               rtol=1e-4)
    torch.testing.assert_close(a.ih_l0.weight.grad, rnn.weight_ih_l0.grad, atol=1e-5,
                               rtol=1e-4)
    # an unbatched sequence (L, H_in), as torch takes it
    torch.testing.assert_close(a(x[0])[0], rnn(x[0])[0], atol=1e-6, rtol=1e-5)


def test_convert_shares_parameters_and_to_digital_gives_the_lstm_back():
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 7, num_layers=2, bidirectional=True)
    a = AnalogLSTM.from_digital(lstm, aimc.presets.pcm_joshi2020(), "rnn")
    assert a.ih_l1_reverse.weight is lstm.weight_ih_l1_reverse
    assert a.hh_l0.bias is lstm.bias_hh_l0
    assert a.hh_l1.analog_name == "rnn.hh_l1"
    back = aimc.to_digital(aimc.convert(nn.Sequential(lstm), aimc.presets.ideal()))[0]
    assert type(back) is nn.LSTM
    assert back.state_dict().keys() == lstm.state_dict().keys()
    for key, value in lstm.state_dict().items():
        torch.testing.assert_close(back.state_dict()[key], value, atol=0, rtol=0)


@pytest.mark.parametrize("kind", TYPES)
def test_ideal_chip_computes_the_torch_layer(kind):
    rnn, _ = _pair(kind=kind, num_layers=2, bidirectional=True, batch_first=True)
    a = aimc.convert(rnn, aimc.presets.ideal()).eval()
    aimc.program(a, seed=0)
    x = torch.randn(3, 9, 5)
    with torch.no_grad():
        # the eval-mode step loop (each product a tile read) against torch's kernel
        for state in (None, _states(kind, 4, 3)):
            _assert_same_outputs(a(x, state), rnn(x, state), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(a(x[0])[0], rnn(x[0])[0], atol=1e-5, rtol=1e-4)
    back = aimc.to_digital(a)
    assert type(back) is type(rnn) and back.state_dict().keys() == rnn.state_dict().keys()
    assert getattr(back, "nonlinearity", None) == getattr(rnn, "nonlinearity", None)


def test_recurrent_layer_is_read_once_per_time_step():
    _, a = _pair()
    a.eval()
    x = torch.randn(11, 2, 5)  # 11 steps
    aimc.calibrate_inputs(a, [x])
    assert float(a.ih_l0.input_range) > 0 and float(a.hh_l0.input_range) > 0
    aimc.program(a, seed=0)
    calls = {"ih_l0": 0, "hh_l0": 0}
    for key in calls:
        getattr(a, key).register_forward_hook(
            lambda m, i, o, k=key: calls.__setitem__(k, calls[k] + 1))
    with torch.no_grad():
        a(x)
    assert calls == {"ih_l0": 1, "hh_l0": 11}


def test_same_seed_same_chip_and_state_dict_restores_it():
    lstm, _ = _pair(batch_first=True)
    x = torch.randn(4, 6, 5)
    cfg = aimc.presets.pcm_joshi2020()
    chips = []
    for seed in (3, 3, 4):
        a = aimc.convert(lstm, cfg).eval()
        aimc.calibrate_inputs(a, [x])
        aimc.program(a, seed=seed)
        aimc.drift(a, 3600.0)
        with torch.no_grad():
            chips.append((a, a(x)[0]))
    assert torch.equal(chips[0][1], chips[1][1])
    assert not torch.equal(chips[0][1], chips[2][1])
    fresh = aimc.convert(lstm, cfg).eval()
    fresh.load_state_dict(chips[0][0].state_dict())
    with torch.no_grad():
        assert torch.equal(fresh(x)[0], chips[0][1])


def test_gdc_undoes_the_drift_of_the_gates():
    # Without compensation a year of drift shrinks every gate pre-activation (about 30%);
    # GDC rescales it. Noise-free periphery so the comparison is of the drift alone;
    # 64 sequences x 8 steps x 7 outputs.
    lstm, _ = _pair(batch_first=True)
    cfg = aimc.presets.pcm_joshi2020()
    cfg.tile.out_noise, cfg.tile.adc_bits, cfg.tile.dac_bits = 0.0, 0, 0
    a = aimc.convert(lstm, cfg).eval()
    x = torch.randn(64, 8, 5)
    aimc.calibrate_inputs(a, [x])
    aimc.program(a, seed=1)
    aimc.drift(a, 3.15e7)
    with torch.no_grad():
        want = lstm(x)[0]
        err_raw = float((a(x)[0] - want).abs().mean())
        aimc.compensate(a, "gdc")
        err_gdc = float((a(x)[0] - want).abs().mean())
    assert err_gdc < 0.6 * err_raw


def test_hwa_noise_is_drawn_once_per_sequence():
    lstm, a = _pair(batch_first=True)
    x = torch.randn(4, 6, 5)
    cfg = HWAConfig(noise="gaussian", eta=0.1)
    prepare_hwa(a, cfg, seed=5)
    a.train()
    got = a(x)[0]
    # The same draws, in the layer order of the forward pass, held fixed over the steps.
    hook = NoiseInjection(cfg, torch.Generator().manual_seed(5))
    w_ih, w_hh = hook.noisy_weight(a.ih_l0), hook.noisy_weight(a.hh_l0)
    noisy = nn.LSTM(5, 7, batch_first=True)
    with torch.no_grad():
        noisy.weight_ih_l0.copy_(w_ih)
        noisy.weight_hh_l0.copy_(w_hh)
        noisy.bias_ih_l0.copy_(lstm.bias_ih_l0)
        noisy.bias_hh_l0.copy_(lstm.bias_hh_l0)
    torch.testing.assert_close(got, noisy(x)[0], atol=1e-6, rtol=1e-5)
    assert (got - lstm(x)[0]).abs().max() > 1e-3
    got.sum().backward()
    assert a.hh_l0.weight.grad is not None


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_hwa_with_simulated_periphery_steps_through_the_sequence(kind, monkeypatch):
    # With the DAC/ADC simulated in training, every product goes through them at every
    # step, while the noisy weights are drawn once per sequence (one draw per matrix).
    rnn, a = _pair(kind=kind, batch_first=True)
    x = torch.randn(4, 6, 5)
    hook = prepare_hwa(a, HWAConfig(noise="gaussian", eta=0.02, dac_adc=True), seed=1)
    draws = []
    real_draw = hook.draw
    monkeypatch.setattr(hook, "draw", lambda layer: draws.append(layer) or real_draw(layer))
    a.train()
    got = a(x)[0]
    assert draws == [a.ih_l0, a.hh_l0]
    want = rnn(x)[0]
    # close to the clean layer (8-bit converters, 2% weight noise), but not equal to it
    assert 1e-4 < float((got - want).detach().abs().max()) < 0.15
    got.square().sum().backward()
    assert a.hh_l0.weight.grad is not None and a.hh_l0.weight.grad.abs().sum() > 0


def test_bad_inputs_and_unsupported_lstms():
    _, a = _pair()
    with pytest.raises(ValueError, match="input features"):
        a(torch.randn(3, 2, 4))
    with pytest.raises(ValueError, match="h_0"):
        a(torch.randn(3, 2, 5), (torch.zeros(1, 3, 7), torch.zeros(1, 3, 7)))
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(3, 2, 5), [3, 2])
    with pytest.raises(TypeError, match="packed"):
        a(packed)
    with pytest.raises(ValueError, match="hidden_size"):
        AnalogLSTM(5, 0)
    with pytest.raises(ValueError, match="nonlinearity"):
        AnalogRNN(5, 7, nonlinearity="sigmoid")
    _, gru = _pair(kind="gru")
    with pytest.raises(ValueError, match="hx must be h_0"):
        gru(torch.randn(3, 2, 5), (torch.zeros(1, 2, 7), torch.zeros(1, 2, 7)))
    with pytest.warns(UserWarning, match="LSTM"):
        kept = aimc.convert(nn.Sequential(nn.LSTM(5, 8, proj_size=4)), aimc.presets.ideal())
    assert type(kept[0]) is nn.LSTM


def test_sequence_classifier_reads_images_row_by_row():
    net = aimc.models.lstm_mnist(16)
    images = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(net(images), net(images[:, 0]))
    assert net(images).shape == (3, 10)
    with pytest.raises(ValueError, match="channels"):
        net(torch.randn(2, 3, 28, 28))


def test_energy_counts_the_recurrent_tiles_once_and_every_read():
    net = aimc.models.lstm_mnist(16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an LSTM converts without a "stays digital" warning
        a = aimc.convert(net, aimc.presets.pcm_joshi2020())
    table = estimate(a, "pcm90nm_joshi2020", (28, 28), baselines=())
    rows = {r["name"]: r for r in table.rows if r["kind"] == "analog"}
    assert set(rows) == {"rnn.ih_l0", "rnn.hh_l0", "fc"}
    # 28 steps: 28 reads of each tile, one tile each
    assert rows["rnn.hh_l0"]["mvms"] == 28 and rows["rnn.ih_l0"]["mvms"] == 28
    assert rows["rnn.hh_l0"]["macs"] == 28 * 64 * 16
    assert table.totals["tiles"] == 3
    assert table.totals["weights"] == 64 * 28 + 64 * 16 + 16 * 10
    assert table.totals["complete"]
    assert isinstance(a.rnn.hh_l0, AnalogLinear)
    # the cell is costed as the algorithm, not as how the simulator computes it: per step
    # and unit 3 sigmoids and 2 tanh, 3 products, 2 sums (the gates', and c's)
    ops = Counter()
    for r in table.rows:
        if r["name"].startswith("rnn:"):
            ops[r["type"]] += r["digital_ops"]
    h, steps = 16, 28
    assert ops["sigmoid"] == steps * 3 * h and ops["tanh"] == steps * 2 * h
    assert ops["mul"] + ops["__mul__"] == steps * 3 * h
    assert ops["add"] + ops["__add__"] == steps * (4 * h + h)


def test_seq_mnist_study_writes_results_and_resumes(tmp_path, capsys):
    from aimc import cli
    from aimc.experiments import seq_mnist
    out = tmp_path / "run"
    argv = ["--quick", "--train-images", "300", "--test-images", "100", "--chips", "1",
            "--hidden", "16", "--out", str(out), "--no-progress", "--threads", "1"]
    assert seq_mnist.main(argv) == 0
    doc = json.loads((out / "lstm-mnist.json").read_text())
    methods = {r["method"] for r in doc["rows"]}
    assert methods == {"pcm", "pcm+gdc", "fp32-trained+pcm", "fp32-trained+pcm+gdc", "fp32",
                       "hwa-digital"}
    assert doc["study"] == "seq-mnist" and doc["command"].startswith("aimc reproduce seq-mnist")
    assert doc["dataset"].startswith("MNIST, the subset aimc ships, 300 train / 100 test")
    assert (out / "lstm-mnist.png").is_file() and (out / "lstm-mnist_config.json").is_file()
    saved = torch.load(out / "lstm-mnist_hwa.pt", weights_only=True)
    aimc.models.lstm_mnist(16).load_state_dict(saved)
    # A second run resumes everything from the work folder: the same numbers.
    assert seq_mnist.main(argv) == 0
    again = json.loads((out / "lstm-mnist.json").read_text())
    assert again["rows"] == doc["rows"]
    with pytest.raises(SystemExit, match="other settings"):
        seq_mnist.main([*argv, "--seed", "1"])
    with pytest.raises(SystemExit, match="lacks"):
        cli.main(["reproduce", "seq-mnist", "--data-dir", str(tmp_path), "--out",
                  str(tmp_path / "o2"), "--quick"])


@pytest.mark.parametrize("model,extra", [("gru", ["--calibrate-adc"]), ("transformer", [])])
def test_seq_mnist_study_runs_the_other_models(tmp_path, model, extra):
    from aimc.experiments import seq_mnist
    out = tmp_path / model
    assert seq_mnist.main(["--model", model, "--quick", "--train-images", "200",
                           "--test-images", "100", "--chips", "1", "--hidden", "16",
                           "--out", str(out), "--no-progress", "--threads", "1", *extra]) == 0
    doc = json.loads((out / f"{model}-mnist.json").read_text())
    assert doc["config"]["study"]["model"] == model
    # a setting added later enters the settings only when given (older runs resume)
    assert doc["config"]["study"].get("calibrate_adc", False) == bool(extra)
    assert {r["method"] for r in doc["rows"]} >= {"pcm+gdc", "fp32-trained+pcm+gdc"}
    builder = {"gru": aimc.models.gru_mnist, "transformer": aimc.models.transformer_mnist}
    builder[model](16).load_state_dict(
        torch.load(out / f"{model}-mnist_hwa.pt", weights_only=True))


def test_copies_and_pickles_leave_the_torch_shell_behind():
    import copy
    import pickle
    _, a = _pair(kind="gru")
    x = torch.randn(3, 2, 5)
    want = a(x)[0]  # training mode: builds the cached torch shell
    assert "_torch_shell" in a.__dict__
    for b in (copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert "_torch_shell" not in b.__dict__
        torch.testing.assert_close(b(x)[0], want)
