"""Analog layers, conversion, programming, drift, compensation, chip snapshots."""

import dataclasses
import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import aimc
from aimc import functional as ft
from aimc.devices import PCM


class SmallCNN(nn.Module):
    """Conv with groups, stride, dilation, a reflect-padded conv, a 1-D conv, and a
    linear layer larger than one 512-row tile."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=2, dilation=2, padding_mode="reflect",
                               bias=False)
        self.conv1d = nn.Conv1d(16, 12, 3, padding=1)
        self.fc1 = nn.Linear(12 * 16, 600)
        self.fc2 = nn.Linear(600, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))  # (B, 16, 4, 4)
        x = F.relu(self.conv1d(x.flatten(2)))  # (B, 12, 16)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


@pytest.fixture(scope="module")
def net_and_data():
    torch.manual_seed(0)
    return SmallCNN().eval(), torch.randn(16, 3, 8, 8)


def _ideal(**tile):
    cfg = aimc.presets.ideal()
    return dataclasses.replace(cfg, tile=dataclasses.replace(cfg.tile, **tile))


def _rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("input_range", ["dynamic", "static"])
@pytest.mark.parametrize("tiles", [(512, 512), (40, 24)])
@pytest.mark.parametrize("scaling", ["tile", "column"])
def test_ideal_preset_reproduces_digital(net_and_data, input_range, tiles, scaling):
    net, x = net_and_data
    cfg = _ideal(input_range=input_range, rows=tiles[0], cols=tiles[1])
    cfg.mapping.weight_scaling = scaling
    amodel = aimc.convert(net, cfg)
    if input_range == "static":
        aimc.calibrate_inputs(amodel, [x], quantile=1.0)
    aimc.program(amodel, seed=0)
    with torch.no_grad():
        assert _rel_err(amodel(x), net(x)) < 1e-5
    assert amodel.fc2.geometry().n_tiles >= 2  # 600 inputs > 512 rows


@pytest.mark.parametrize("input_range", ["dynamic", "static"])
def test_ideal_analog_bias_reproduces_digital(net_and_data, input_range):
    net, x = net_and_data
    cfg = _ideal(rows=64, cols=32, input_range=input_range)
    cfg.mapping.digital_bias = False
    amodel = aimc.convert(net, cfg)
    if input_range == "static":
        aimc.calibrate_inputs(amodel, [x], quantile=1.0)
    aimc.program(amodel, seed=0)
    with torch.no_grad():
        assert _rel_err(amodel(x), net(x)) < 1e-5
    assert amodel.fc2.b_tiles.shape == (1, 10)


def _reference_tiled_conv(layer, x, r, tile):
    """Unfold + per-tile matmul + ADC, written independently of the layer's code."""
    w = layer.effective_weight()
    geo = layer.geometry()
    x_n = ft.dac(x / r, tile.dac_bits)
    cols = F.unfold(x_n, layer.kernel_size, layer.dilation, layer.padding, layer.stride)
    out = 0
    rows = geo.tile_rows
    wm = w.reshape(w.shape[0], -1)
    for t in range(geo.n_tiles):
        sl = slice(t * rows, min((t + 1) * rows, wm.shape[1]))
        scale = layer.w_scale[0, t].unsqueeze(-1)
        part = (wm[:, sl] / scale) @ cols[:, sl]
        out = out + ft.adc(part, tile.adc_bits, tile.out_bound) * scale * r
    h = (x.shape[2] + 2 * layer.padding[0] - layer.dilation[0] * (layer.kernel_size[0] - 1)
         - 1) // layer.stride[0] + 1
    return out.reshape(x.shape[0], -1, h, out.shape[-1] // h)


def test_native_conv_equals_unfolded_tiles_with_dac_adc():
    torch.manual_seed(1)
    conv = nn.Conv2d(64, 32, 3, padding=1, stride=2, bias=False)
    x = torch.randn(4, 64, 9, 9)
    cfg = aimc.presets.pcm_joshi2020()
    cfg.tile.out_noise = 0.0
    cfg.tile.out_bound = 3.0  # low enough that some partial sums clip
    layer = aimc.convert(conv, cfg)
    aimc.calibrate_inputs(layer, [x], quantile=0.99)
    aimc.program(layer, seed=0)
    aimc.drift(layer, 3600)
    assert layer.geometry().n_tiles == 2
    with torch.no_grad():
        got = layer.eval()(x)
        ref = _reference_tiled_conv(layer, x, layer.input_range, cfg.tile)
    assert torch.allclose(got, ref, atol=1e-4 * float(ref.abs().max()))


def test_dynamic_conv1d_matches_direct_computation():
    # Per-patch input ranges (dynamic), 8-bit DAC, programmed PCM weights, digital bias.
    torch.manual_seed(2)
    conv = nn.Conv1d(6, 5, 3, padding=1)
    x = torch.randn(3, 6, 7)
    cfg = aimc.presets.pcm_joshi2020()
    cfg.tile.out_noise, cfg.tile.input_range, cfg.tile.adc_bits = 0.0, "dynamic", 0
    cfg.tile.out_bound = 0.0
    layer = aimc.convert(conv, cfg).eval()
    aimc.program(layer, seed=3)
    w = layer.effective_weight()
    cols = F.unfold(x.unsqueeze(2), (1, 3), padding=(0, 1))  # (B, 18, L)
    r = cols.abs().amax(dim=1, keepdim=True)
    ref = (w.reshape(5, -1) @ (ft.dac(cols / r, 8)) * r) + conv.bias[:, None]
    with torch.no_grad():
        assert torch.allclose(layer(x), ref, atol=1e-5)


@pytest.mark.parametrize("analog_bias,dilation", [(False, 1), (True, 1), (True, 2)])
def test_dynamic_conv2d_ranges_are_per_patch_and_tile(analog_bias, dilation):
    # Two tiles per group, two groups, padding wider than half the kernel, stride 2, 8-bit
    # DAC: each patch's rows in each tile get their own range max|x| (pcm-model.md sec. 5),
    # as unfolding the patches and taking the max directly gives.
    torch.manual_seed(4)
    conv = nn.Conv2d(10, 6, 3, padding=2, stride=2, groups=2, dilation=dilation)
    x = torch.randn(3, 10, 9, 8) * torch.rand(3, 10, 1, 1) * 4
    cfg = aimc.presets.pcm_joshi2020()
    cfg.tile.out_noise, cfg.tile.input_range, cfg.tile.adc_bits = 0.0, "dynamic", 0
    cfg.tile.out_bound, cfg.tile.rows = 0.0, 27  # 3 channels x 9 rows per tile
    cfg.mapping.digital_bias = not analog_bias
    layer = aimc.convert(conv, cfg).eval()
    aimc.program(layer, seed=1)
    geo = layer.geometry()
    assert (geo.groups, geo.n_tiles, geo.units_per_tile) == (2, 2, 3)
    w = layer.effective_weight().reshape(2, 3, 45)
    cols = F.unfold(x, 3, padding=2, stride=2, dilation=dilation).view(3, 2, 45, -1)
    ref = 0
    for t, rows in enumerate((slice(0, 27), slice(27, 45))):
        part = cols[:, :, rows]
        r = part.abs().amax(dim=2, keepdim=True)
        if analog_bias and t == 1:
            r = r.clamp_min(1.0)
        ref = ref + (w[:, :, rows] @ ft.dac(part / r, 8)) * r
        if analog_bias and t == 1:
            b = layer.b_tiles * layer.w_scale[:, -1]  # the programmed bias row
            ref = ref + b.view(1, 2, 3, 1) * ft.dac(1.0 / r, 8) * r
    if not analog_bias:
        ref = ref + conv.bias.view(1, 2, 3, 1)
    with torch.no_grad():
        got = layer(x)
    assert got.shape == ((3, 6, 6, 5) if dilation == 1 else (3, 6, 5, 4))
    torch.testing.assert_close(got.reshape(ref.shape), ref, atol=1e-5, rtol=1e-5)
    # Under autograd the patches are built without the in-place buffer: same numbers.
    x_grad = x.clone().requires_grad_()
    torch.testing.assert_close(layer(x_grad).detach(), got)


def test_convert_keeps_weights_and_original(net_and_data):
    net, _ = net_and_data
    before = {k: v.clone() for k, v in net.state_dict().items()}
    amodel = aimc.convert(net, aimc.presets.pcm_joshi2020(), digital=["conv1", "fc2"])
    assert type(amodel.conv1) is nn.Conv2d and type(amodel.fc2) is nn.Linear
    assert isinstance(amodel.conv2, aimc.AnalogConv2d)
    assert isinstance(amodel.conv1d, aimc.AnalogConv1d)
    assert isinstance(amodel.fc1, aimc.AnalogLinear)
    assert isinstance(amodel.fc1.weight, nn.Parameter)
    assert torch.equal(amodel.fc1.weight, net.fc1.weight)
    assert amodel.fc1.weight is not net.fc1.weight
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    assert [n for n, _ in aimc.analog_layers(amodel)] == ["conv2", "conv3", "conv1d", "fc1"]
    with pytest.raises(ValueError, match="no module named \\['fc9'\\]"):
        aimc.convert(net, aimc.presets.ideal(), digital=["fc9"])


def test_convert_overrides_give_a_mixed_chip():
    # The longest matching module name picks the config: "stage" for stage.0, "stage.1"
    # for itself; other layers keep the base config.
    net = nn.Sequential()
    net.add_module("stage", nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 4)))
    net.add_module("head", nn.Linear(4, 3))
    base = aimc.presets.pcm_joshi2020()
    two_pairs = dataclasses.replace(base, mapping=aimc.MappingConfig(pairs=2))
    ideal = aimc.presets.ideal()
    amodel = aimc.convert(net, base, overrides={"stage": two_pairs, "stage.1": ideal})
    assert amodel.stage[0].analog_config is two_pairs
    assert amodel.stage[1].analog_config is ideal
    assert amodel.head.analog_config is base
    aimc.program(amodel, seed=0)
    assert amodel.stage[0].g_pos.shape == (2, 1, 5, 6)  # a leading pair axis
    assert amodel.head.g_pos.shape == (1, 3, 4)
    # A parent named in digital keeps every layer under it digital.
    mixed = aimc.convert(net, base, digital=["stage"])
    assert [n for n, _ in aimc.analog_layers(mixed)] == ["head"]
    with pytest.raises(ValueError, match="overrides: no module named \\['stage.2'\\]"):
        aimc.convert(net, base, overrides={"stage.2": base})
    with pytest.raises(TypeError, match="overrides\\['head'\\] must be an aimc AnalogConfig"):
        aimc.convert(net, base, overrides={"head": {"pairs": 2}})


def test_unsupported_layers_are_listed():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2))
    with pytest.warns(UserWarning, match="0 \\(Embedding\\)"):
        amodel = aimc.convert(model, aimc.presets.ideal())
    assert isinstance(amodel[1], aimc.AnalogLinear)


def test_errors_before_program_and_calibration(net_and_data):
    net, x = net_and_data
    amodel = aimc.convert(net, aimc.presets.pcm_joshi2020()).eval()
    with pytest.raises(RuntimeError, match="'conv1' is not programmed: call aimc.program"):
        amodel(x)
    with pytest.raises(RuntimeError, match="not programmed"):
        aimc.drift(amodel, 10)
    aimc.program(amodel, seed=0)
    with pytest.raises(RuntimeError, match="calibrate_inputs"):
        amodel(x)
    with pytest.raises(ValueError, match="no analog layers"):
        aimc.program(net, seed=0)
    with pytest.raises(ValueError, match="t_seconds"):
        aimc.drift(amodel, -5)
    with pytest.raises(ValueError, match="unknown compensation 'foo'"):
        aimc.compensate(amodel, "foo")


def test_training_mode_is_digital_and_differentiable(net_and_data):
    net, x = net_and_data
    amodel = aimc.convert(net, aimc.presets.pcm_joshi2020()).train()
    out = amodel(x)
    assert torch.allclose(out, net(x), atol=1e-6)
    out.sum().backward()
    assert amodel.fc1.weight.grad is not None


def _pcm_model(net, x, seed):
    amodel = aimc.convert(net, aimc.presets.pcm_joshi2020())
    aimc.calibrate_inputs(amodel, [x])
    aimc.program(amodel, seed=seed)
    return amodel.eval()


def test_same_seed_same_chip_other_seed_other_chip(net_and_data):
    net, x = net_and_data
    a, b, c = (_pcm_model(net, x, s) for s in (7, 7, 8))
    for m in (a, b, c):
        aimc.drift(m, 86400)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["fc1.g_pos"], sc["fc1.g_pos"])
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert not torch.equal(a(x), c(x))


@pytest.mark.parametrize("pairs", [1, 2])  # 2: closed loop, buffers with a pair axis
def test_state_dict_snapshot_reproduces_chip(net_and_data, tmp_path, pairs):
    net, x = net_and_data
    cfg = _pairs_config(pairs, "closed")
    chip = aimc.convert(net, cfg)
    aimc.calibrate_inputs(chip, [x])
    aimc.program(chip.eval(), seed=3)
    aimc.drift(chip, 3600.0)
    aimc.compensate(chip, "gdc", per_column=True)
    path = tmp_path / "chip.pt"
    torch.save(chip.state_dict(), path)
    with torch.no_grad():
        expected = chip(x)
    fresh = aimc.convert(net, cfg).eval()
    fresh.load_state_dict(torch.load(path, weights_only=True))
    with torch.no_grad():
        assert torch.equal(fresh(x), expected)
    assert float(fresh.fc1.t_s) == 3600.0 and fresh.fc1.alpha.shape == (1, 600)
    # Drifting the reloaded chip equals drifting the original: same stored state.
    aimc.drift(chip, 86400.0)
    aimc.drift(fresh, 86400.0)
    with torch.no_grad():
        assert torch.equal(fresh(x), chip(x))


def test_whole_model_pickles_and_deepcopies(net_and_data):
    import copy
    net, x = net_and_data
    chip = _pcm_model(net, x, seed=1)
    twin = copy.deepcopy(chip)
    buf = io.BytesIO()
    torch.save(chip, buf)
    with torch.no_grad():
        assert torch.equal(twin(x), chip(x))


def test_effective_weights_computed_once_per_drift(net_and_data, monkeypatch):
    net, x = net_and_data
    chip = _pcm_model(net, x, seed=0)
    calls = []
    original = PCM.read
    monkeypatch.setattr(PCM, "read", lambda self, *a, **k: calls.append(1) or
                        original(self, *a, **k))
    aimc.drift(chip, 60.0)
    n_after_drift = len(calls)
    assert n_after_drift == 2 * 6  # G+ and G- of 6 analog layers
    with torch.no_grad():
        for _ in range(3):
            chip(x)
    assert len(calls) == n_after_drift


def test_drift_shrinks_weights_as_the_model_says():
    torch.manual_seed(0)
    lin = nn.Linear(256, 256, bias=False)
    cfg = aimc.presets.pcm_joshi2020()
    cfg.device = PCM(prog_noise_scale=0.0, read_noise_scale=0.0)
    layer = aimc.convert(lin, cfg)
    aimc.program(layer, seed=0)
    w0 = layer.effective_weight().abs().sum()
    aimc.drift(layer, 31_536_000)
    ratio = float(layer.effective_weight().abs().sum() / w0)
    # Mean nu for the weight distribution is 0.05-0.1, so one year leaves 0.25-0.6.
    assert 0.25 < ratio < 0.6


@pytest.mark.parametrize("per_column", [False, True])
def test_gdc_restores_output_magnitude(per_column):
    torch.manual_seed(0)
    lin = nn.Linear(512, 256)
    x = torch.randn(512, 512)
    layer = aimc.convert(lin, aimc.presets.pcm_joshi2020()).eval()
    aimc.calibrate_inputs(layer, [x])
    aimc.program(layer, seed=0)
    with torch.no_grad():
        y0 = (layer(x) - lin.bias).abs().mean()
        aimc.drift(layer, 31_536_000)
        y_drift = (layer(x) - lin.bias).abs().mean()
        aimc.compensate(layer, "gdc", per_column=per_column)
        y_gdc = (layer(x) - lin.bias).abs().mean()
    assert float(y_drift / y0) < 0.75  # drift really happened
    assert float(y_gdc / y0) == pytest.approx(1.0, abs=0.02)
    # Re-drifting keeps the compensation calibrated to the new time.
    aimc.drift(layer, 3600)
    with torch.no_grad():
        assert float((layer(x) - lin.bias).abs().mean() / y0) == pytest.approx(1.0, abs=0.02)
    aimc.compensate(layer, None)
    assert layer.alpha.numel() == 0


def test_to_digital_round_trip(net_and_data):
    net, x = net_and_data
    chip = _pcm_model(net, x, seed=0)
    back = aimc.to_digital(chip)
    assert type(back.fc1) is nn.Linear and type(back.conv1d) is nn.Conv1d
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
        eff = aimc.to_digital(chip, effective=True)
        assert not torch.equal(eff.fc1.weight, net.fc1.weight)
        assert math.isclose(float(eff.fc1.weight.abs().mean()),
                            float(net.fc1.weight.abs().mean()), rel_tol=0.1)


def test_scratch_buffer_is_reused_but_not_saved(net_and_data):
    import copy
    import pickle
    net, x = net_and_data
    chip = _pcm_model(net, x, seed=0)
    with torch.no_grad():
        first = chip(x)
        buf = chip.fc1._dac_buf
        second = chip(x)
        assert chip.fc1._dac_buf is buf
    assert first.shape == second.shape
    assert not hasattr(copy.deepcopy(chip).fc1, "_dac_buf")
    assert not hasattr(pickle.loads(pickle.dumps(chip)).fc1, "_dac_buf")
    # With autograd on, inputs get fresh buffers, and gradients reach the input.
    xg = x.clone().requires_grad_(True)
    chip(xg).sum().backward()
    assert xg.grad is not None


def test_forward_weight_cache_follows_drift_and_load(net_and_data):
    net, x = net_and_data
    chip = _pcm_model(net, x, seed=0)
    twin = _pcm_model(net, x, seed=0)
    with torch.no_grad():
        for t in (3600.0, 86_400.0, 3e7):
            aimc.drift(chip, t)
            fresh = _pcm_model(net, x, seed=0)  # never ran forward at an earlier time
            aimc.drift(fresh, t)
            assert torch.equal(chip(x), fresh(x))
        twin(x)  # fill its cache at t = 0, then load the year-old chip into it
        twin.load_state_dict(chip.state_dict())
        aimc.drift(chip, 3e7)  # restart the chip's output-noise stream, as the load did
        assert torch.equal(twin(x), chip(x))


def _pairs_config(pairs, programming="open", **device):
    cfg = aimc.presets.pcm_joshi2020()
    return dataclasses.replace(
        cfg, device=PCM(**device),
        mapping=dataclasses.replace(cfg.mapping, pairs=pairs, pair_programming=programming))


def test_two_pairs_halve_the_programming_error_variance():
    # Programming noise only (no drift, no read noise): the effective weights' error
    # variance halves with two open-loop pairs (their errors average) and falls to a
    # quarter closed loop; 256 x 512 weights, so the std ratios hold to about 1%.
    torch.manual_seed(0)
    lin = nn.Linear(512, 256, bias=False)
    x = torch.rand(4, 512)
    errs = {}
    for pairs, prog in ((1, "open"), (2, "open"), (2, "closed")):
        chip = aimc.convert(lin, _pairs_config(pairs, prog, drift_scale=0.0,
                                               read_noise_scale=0.0))
        aimc.calibrate_inputs(chip, [x])
        aimc.program(chip, seed=0)
        errs[pairs, prog] = float((chip.effective_weight() - lin.weight).detach().std())
        if pairs == 2:
            assert chip.g_pos.shape == chip.nu_neg.shape == (2, 1, 256, 512)
    assert errs[1, "open"] / errs[2, "open"] == pytest.approx(math.sqrt(2), rel=0.03)
    assert errs[1, "open"] / errs[2, "closed"] == pytest.approx(2.0, rel=0.06)


def test_g_min_ideal_reproduces_digital_and_pcm_drifts_both_devices(net_and_data):
    net, x = net_and_data
    cfg = _ideal(input_range="dynamic")
    chip = aimc.convert(net, dataclasses.replace(cfg, mapping=aimc.MappingConfig(g_min=5.0)))
    aimc.program(chip.eval(), seed=0)
    with torch.no_grad():
        assert _rel_err(chip(x), net(x)) < 1e-5
    # PCM, drift only (no noise, no nu spread): G+ = g_min + 20 w_n drifts with nu(G+), the
    # other device sits at g_min and drifts with nu(g_min) (pcm-model.md sec. 3), so
    # W(t) = (G+ f(G+) - g_min f(g_min)) / 20 in normalised units; a zero weight stays 0.
    dev = PCM(prog_noise_scale=0.0, read_noise_scale=0.0, drift_sigma_min=0.0,
              drift_sigma_max=0.0, drift_sigma_a=0.0, drift_sigma_b=0.0)
    lin = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.5, 0.0, -0.25]]))
    pcm = dataclasses.replace(aimc.presets.pcm_joshi2020(), device=dev,
                              mapping=aimc.MappingConfig(g_min=5.0))
    chip = aimc.convert(lin, pcm)
    aimc.program(chip, seed=0)
    aimc.drift(chip, 86_400.0)
    k = (86_400.0 + 20.0) / 20.0

    def f(g):
        return k ** -float(dev.drift_stats(torch.tensor([g]))[0])

    pairs = [(25.0, 5.0), (15.0, 5.0), (5.0, 5.0), (5.0, 10.0)]  # (G+, G-) per weight
    want = torch.tensor([(gp * f(gp) - gn * f(gn)) / 20.0 for gp, gn in pairs])
    torch.testing.assert_close(chip.effective_weight().detach().flatten(), want, rtol=1e-5,
                               atol=1e-7)
    assert float(chip.effective_weight()[0, 2]) == 0.0


def test_dynamic_conv_batch_chunks_give_the_same_outputs(monkeypatch):
    # A large batch with dynamic ranges runs in chunks (aimc.nn.layers._PATCH_CHUNK_FLOATS);
    # the chunking must not change any output. Noise-free periphery, 8-bit DAC and ADC.
    from aimc.nn import layers as layers_mod
    torch.manual_seed(6)
    conv = nn.Conv2d(4, 5, 3, padding=1)
    x = torch.randn(7, 4, 6, 6)
    cfg = aimc.presets.pcm_joshi2020()
    cfg.tile.out_noise, cfg.tile.input_range = 0.0, "dynamic"
    layer = aimc.convert(conv, cfg).eval()
    aimc.program(layer, seed=2)
    with torch.no_grad():
        whole = layer(x)
        monkeypatch.setattr(layers_mod, "_PATCH_CHUNK_FLOATS", 2 * 36 * 36)  # 2 images
        chunked = layer(x)
        single = torch.cat([layer(x[i:i + 1]) for i in range(7)])
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(single, whole, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("input_range", ["static", "dynamic"])
def test_linear_on_sequences_adds_its_bias_on_the_features(input_range):
    # (B, L, F) inputs with L == out_features: a bias broadcast along the wrong dim would
    # not even raise. Ideal chip: the analog layer must equal the torch layer.
    torch.manual_seed(9)
    lin = nn.Linear(6, 5)
    x = torch.randn(3, 5, 6)
    cfg = aimc.presets.ideal()
    cfg.tile.input_range = input_range
    layer = aimc.convert(lin, cfg).eval()
    aimc.calibrate_inputs(layer, [x])
    aimc.program(layer, seed=0)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), lin(x), atol=1e-5, rtol=1e-5)
    # The same in hardware-aware training with the DAC and ADC simulated: within one ADC
    # step (10/127 normalised units of max|W| * max|x| per sequence; half of it is the
    # ADC's rounding, the rest covers the DAC's), where a bias on the wrong dim would be
    # off by up to the spread of the biases, more than twice that step.
    pcm = aimc.convert(lin, aimc.presets.pcm_joshi2020()).train()
    aimc.training.prepare_hwa(pcm, aimc.HWAConfig(noise="none", dac_adc=True))
    with torch.no_grad():
        want = lin(x)
        step = 10 / 127 * lin.weight.abs().max() * x.abs().amax(dim=(1, 2), keepdim=True)
        assert bool(((pcm(x) - want).abs() <= step).all())
        assert float(lin.bias.max() - lin.bias.min()) > 2 * float(step.max())


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_transformer_layers_run_on_their_tiles_without_gradients():
    # In eval mode without gradients torch runs a whole TransformerEncoderLayer as one fused
    # kernel on the weights (and a padded batch as nested tensors): convert switches that
    # off, so the analog attention and feed-forward layers are read from the chip.
    torch.manual_seed(3)
    layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=True).eval()
    x = torch.randn(4, 5, 16)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[:, -1] = True
    ideal = aimc.convert(enc, aimc.presets.ideal()).eval()
    aimc.program(ideal, seed=0)
    pcm = aimc.convert(enc, aimc.presets.pcm_joshi2020()).eval()
    aimc.calibrate_inputs(pcm, [x])
    aimc.program(pcm, seed=0)
    aimc.drift(pcm, 3.15e7)
    with torch.no_grad():
        want = enc(x, src_key_padding_mask=mask)
        want = want.to_padded_tensor(0.0) if want.is_nested else want
        got = ideal(x, src_key_padding_mask=mask)
        torch.testing.assert_close(got[:, :4], want[:, :4], atol=1e-5, rtol=1e-5)
        # a year of drift without compensation: the chip must show (the fused kernel
        # gave exactly the digital result)
        assert float((pcm(x) - enc(x)).abs().mean()) > 0.05


def test_adc_saturation_counts_the_conversions_beyond_the_bound():
    # Ideal devices, no DAC, no output noise, one tile: the ADC sees (x / r) @ (W / max|W|)^T
    # in normalised units, so the clipped share is known exactly.
    torch.manual_seed(11)
    lin = nn.Linear(64, 32, bias=False)
    x = torch.randn(50, 64) * 3
    cfg = aimc.presets.ideal()
    cfg.tile.dac_bits, cfg.tile.adc_bits, cfg.tile.out_noise = 0, 8, 0.0
    cfg.tile.out_bound, cfg.tile.input_range = 1.5, "static"
    layer = aimc.convert(lin, cfg).eval()
    aimc.calibrate_inputs(layer, [x], quantile=1.0)
    aimc.program(layer, seed=0)
    r = float(layer.input_range)
    y_n = F.linear(x / r, lin.weight / lin.weight.abs().max())
    want = float((y_n.abs() > 1.5).float().mean())
    assert 0.05 < want < 0.95  # the case tests something
    got = aimc.adc_saturation(layer, [x[:20], (x[20:], None)])
    assert list(got) == [""]  # the converted model is the layer itself
    assert abs(got[""] - want) < 1e-6
    assert layer.adc_clips is None  # the counters are gone again
    cfg.tile.out_bound = 1e6
    wide = aimc.convert(lin, cfg).eval()
    aimc.calibrate_inputs(wide, [x], quantile=1.0)
    aimc.program(wide, seed=0)
    assert aimc.adc_saturation(wide, [x]) == {"": 0.0}


def _ideal_adc_layer(rows: int, bound: float) -> tuple[nn.Linear, aimc.AnalogConfig]:
    torch.manual_seed(12)
    lin = nn.Linear(64, 32, bias=False)
    cfg = aimc.presets.ideal()
    cfg.tile.dac_bits, cfg.tile.adc_bits, cfg.tile.out_noise = 0, 8, 0.0
    cfg.tile.out_bound, cfg.tile.input_range, cfg.tile.rows = bound, "static", rows
    return lin, cfg


@pytest.mark.parametrize("rows", [64, 32])
def test_calibrate_outputs_sets_each_layer_adc_range_to_its_largest_output(rows):
    # Ideal devices, no DAC, no output noise: tile t's ADC sees
    # (x_t / r) @ (W_t / max|W_t|)^T, so with quantile 1 the range is its exact maximum.
    lin, cfg = _ideal_adc_layer(rows, 1e3)
    x = torch.randn(40, 64) * 2
    layer = aimc.convert(lin, cfg).eval()
    aimc.calibrate_inputs(layer, [x], quantile=1.0)
    aimc.program(layer, seed=0)
    r = float(layer.input_range)
    tiles = [(x[:, i:i + rows] / r) @ (w / w.abs().max()).T
             for i, w in zip(range(0, 64, rows), lin.weight.detach().split(rows, dim=1),
                             strict=True)]
    want = max(float(t.abs().max()) for t in tiles)
    with torch.no_grad():
        exact = lin(x)
        coarse = (layer(x) - exact).abs().max()
    got = aimc.calibrate_outputs(layer, [x[:25], (x[25:], None)], quantile=1.0)
    assert list(got) == [""] and got[""] == pytest.approx(want, rel=1e-5)
    assert float(layer.output_bound) == pytest.approx(want, rel=1e-5)
    assert layer.out_stats is None and not layer.training
    # at most the largest output itself, at the bound within float rounding
    assert aimc.adc_saturation(layer, [x])[""] <= 1 / (40 * 32 * len(tiles))
    with torch.no_grad():
        fine = (layer(x) - exact).abs().max()
    # 8 bits over the calibrated range: each tile's rounding error is at most half a
    # step, times its weight scale and the input range (the range was 1,000 before).
    w_max = max(float(w.abs().max()) for w in lin.weight.detach().split(rows, dim=1))
    assert fine <= len(tiles) * 0.5 * want / 127 * w_max * r * 1.001
    assert fine < coarse / 50
    # margin, and a quantile below 1 leaves the largest outputs to clip
    assert aimc.calibrate_outputs(layer, [x], quantile=1.0, margin=2.0)[""] == \
        pytest.approx(2 * want, rel=1e-5)
    aimc.calibrate_outputs(layer, [x], quantile=0.9)
    assert 0.05 < aimc.adc_saturation(layer, [x])[""] < 0.15


def _programmed_adc_layer() -> tuple[nn.Linear, aimc.AnalogConfig, nn.Module, Tensor]:
    lin, cfg = _ideal_adc_layer(64, 10.0)
    x = torch.randn(40, 64)
    layer = aimc.convert(lin, cfg).eval()
    aimc.calibrate_inputs(layer, [x])
    aimc.program(layer, seed=0)
    return lin, cfg, layer, x


def test_calibrated_adc_range_is_chip_state():
    lin, cfg, layer, x = _programmed_adc_layer()
    bound = aimc.calibrate_outputs(layer, [x])[""]
    assert 0 < bound < 10.0
    state = layer.state_dict()
    assert float(state["output_bound"]) == pytest.approx(bound)
    aimc.drift(layer, 3600.0)
    aimc.program(layer, seed=1)
    assert layer.adc_range() == (8, pytest.approx(bound))  # kept, like the input range
    again = aimc.convert(lin, cfg).eval()
    again.load_state_dict(state)
    assert again.adc_range() == (8, pytest.approx(bound))
    old = {k: v for k, v in state.items() if k != "output_bound"}  # saved before it existed
    again.load_state_dict(old)
    assert again.adc_range() == (8, 10.0)
    layer.output_bound.zero_()
    assert layer.adc_range() == (8, 10.0)


def test_calibrate_outputs_refuses_bad_input():
    lin, cfg = _ideal_adc_layer(64, 10.0)
    x = torch.randn(8, 64)
    layer = aimc.convert(lin, cfg).eval()
    aimc.calibrate_inputs(layer, [x])
    with pytest.raises(RuntimeError, match="not programmed"):
        aimc.calibrate_outputs(layer, [x])
    aimc.program(layer, seed=0)
    with pytest.raises(ValueError, match="quantile"):
        aimc.calibrate_outputs(layer, [x], quantile=0.0)
    with pytest.raises(ValueError, match="margin"):
        aimc.calibrate_outputs(layer, [x], margin=-1.0)
    with pytest.raises(ValueError, match="no batches"):
        aimc.calibrate_outputs(layer, [])
    assert layer.out_stats is None and float(layer.output_bound) == 0.0
    with pytest.raises(ValueError, match="no analog layers"):
        aimc.calibrate_outputs(lin, [x])


def test_layer_pickled_before_calibrated_adc_ranges_still_runs_and_calibrates():
    import pickle
    _, _, layer, x = _programmed_adc_layer()
    with torch.no_grad():
        want = layer(x)
    # as pickled by an aimc without the buffer and the observer attributes
    del layer._buffers["output_bound"]
    del layer.out_stats, layer.out_quantile
    old = pickle.loads(pickle.dumps(layer))
    assert old.adc_range() == (8, 10.0)
    with torch.no_grad():
        torch.testing.assert_close(old(x), want)
    assert 0 < aimc.calibrate_outputs(old, [x])[""] < 10.0
    assert "output_bound" in old.state_dict()
