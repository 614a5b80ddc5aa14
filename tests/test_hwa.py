"""Hardware-aware training: noise injection, clipping, periphery in training, resume."""

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aimc
from aimc import presets
from aimc.data import CifarLoader
from aimc.devices import PCM
from aimc.functional import tile as ft
from aimc.training import HWAConfig, clip_weights, prepare_hwa, remove_hwa, train_hwa
from aimc.training.hwa import (
    distillation_loss,
    load_checkpoint,
    pcm_drift_read,
    pcm_drift_weight,
    pcm_weight_std,
    quantize_ste,
    sam_perturbation,
    sam_weights,
)


def _linear(n_in=64, n_out=48, seed=0, config=None):
    torch.manual_seed(seed)
    layer = nn.Linear(n_in, n_out, bias=False)
    return aimc.convert(layer, config or presets.ideal())


def _noisy_weights(layer, draws):
    """With x = I the layer's training output is the transposed noisy weight."""
    eye = torch.eye(layer.in_features)
    with torch.no_grad():
        return torch.stack([layer(eye).T for _ in range(draws)])


def test_gaussian_noise_has_requested_std_and_only_in_training():
    layer = _linear()
    w = layer.weight.detach().clone()
    prepare_hwa(layer, HWAConfig(noise="gaussian", eta=0.05), seed=1)
    layer.train()
    noise = _noisy_weights(layer, 20) - w  # 20 x 3072 samples
    expected = 0.05 * float(w.abs().max())
    assert abs(float(noise.std()) / expected - 1) < 0.02  # rel. error of std ~ 0.3%
    assert abs(float(noise.mean())) < 0.02 * expected
    # fresh per mini-batch: two forward passes see different noise
    assert not torch.equal(noise[0], noise[1])
    # eval mode on the ideal chip: the clean weights, no noise
    layer.eval()
    aimc.program(layer, seed=0)
    x = torch.randn(8, layer.in_features)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), F.linear(x, w), rtol=1e-5, atol=1e-5)
    # without the hook, training mode is the plain digital layer
    remove_hwa(layer)
    layer.train()
    with torch.no_grad():
        assert torch.equal(layer(x), F.linear(x, w))


def test_noise_is_seeded():
    a, b = _linear(), _linear()
    prepare_hwa(a, HWAConfig(eta=0.1), seed=7)
    prepare_hwa(b, HWAConfig(eta=0.1), seed=7)
    a.train(), b.train()
    assert torch.equal(_noisy_weights(a, 2), _noisy_weights(b, 2))


def test_pcm_noise_std_matches_programming_noise():
    dev = PCM()
    w = torch.tensor([0.5, -0.25, 0.0, 0.125])
    std = pcm_weight_std(w, dev)
    # pcm-model.md sec. 2: sigma_prog(g) = c0 + c1 x + c2 x^2 at x = g / 25 uS; the pair's
    # second device sits at 0 (sigma 0.26348 uS); weight units: x max|W| / g_max.
    c0, c1, c2 = 0.26348, 1.9650, -1.1731
    for wi, si in zip(w.tolist(), std.tolist(), strict=True):
        x = abs(wi) / 0.5
        sig = c0 + c1 * x + c2 * x * x
        assert si == pytest.approx(math.hypot(sig, c0) * 0.5 / 25.0, rel=1e-5)
    assert float(std[0]) == pytest.approx(math.hypot(1.05538, 0.26348) / 50, rel=1e-4)
    # and the injected noise has that std, per weight
    layer = _linear(32, 64, config=presets.pcm_joshi2020())
    with torch.no_grad():
        layer.weight.copy_(torch.where(torch.rand(64, 32) < 0.5, 0.3, -0.3))
    prepare_hwa(layer, HWAConfig(noise="pcm"), seed=3)
    layer.train()
    noise = _noisy_weights(layer, 20) - layer.weight.detach()
    ref = math.hypot(1.05538, 0.26348) * 0.3 / 25.0
    assert abs(float(noise.std()) / ref - 1) < 0.02


def test_pcm_noise_needs_a_device_with_programming_noise():
    layer = _linear()  # IdealDevice
    with pytest.raises(ValueError, match="noise='pcm'"):
        prepare_hwa(layer, HWAConfig(noise="pcm"))


def test_pcm_drift_weight_programming_noise_at_t0():
    # t = 0, no drift, no read noise: only programming noise (pcm-model.md sec. 2). A weight
    # at max|W| puts G+ at g_max (sigma 1.05538 uS) and G- at 0, where the noise is clipped
    # at 0: G- = max(0, 0.26348 N), mean 0.26348/sqrt(2 pi), variance 0.26348^2 (1/2 - 1/2pi).
    dev = PCM(drift_scale=0.0, read_noise_scale=0.0)
    w = torch.full((200_000,), 0.3)
    dev_w = pcm_drift_weight(w, dev, 0.0, torch.Generator().manual_seed(0)) - w
    s = 25.0 / 0.3
    c0, sig = 0.26348, 1.05538
    mean = -c0 / math.sqrt(2 * math.pi) / s
    std = math.sqrt(sig**2 + c0**2 * (0.5 - 1 / (2 * math.pi))) / s
    # 2e5 samples: the mean's standard error is 0.2% of std, the std's 0.16%.
    assert float(dev_w.mean()) == pytest.approx(mean, abs=0.01 * std)
    assert float(dev_w.std()) == pytest.approx(std, rel=0.01)


def test_pcm_drift_weight_state_dependent_drift_after_gdc():
    # Drift alone (no noise, no nu spread): |w| = max drifts with nu = 0.049 (the clip),
    # |w| = max/10 with nu = -0.0155 ln 0.1 + 0.0244 = 0.06009 (sec. 3); GDC rescales by
    # sum g_prog / sum g(t), so large weights grow back and small ones stay compressed.
    dev = PCM(prog_noise_scale=0.0, read_noise_scale=0.0, drift_sigma_min=0.0,
              drift_sigma_max=0.0, drift_sigma_a=0.0, drift_sigma_b=0.0)
    w = torch.tensor([1.0, -1.0, 0.1, -0.1])
    t = 86_400.0
    got = pcm_drift_weight(w, dev, t)
    k = (t + 20.0) / 20.0
    f_big, f_small = k ** -0.049, k ** -(-0.0155 * math.log(0.1) + 0.0244)
    alpha = (2 * 1.0 + 2 * 0.1) / (2 * f_big + 2 * 0.1 * f_small)
    want = torch.tensor([f_big, -f_big, 0.1 * f_small, -0.1 * f_small]) * alpha
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert float(got[2]) < 0.1 * 0.95  # small weights lose > 5% after one day
    # one drift exponent for every device: GDC undoes drift exactly
    flat = PCM(prog_noise_scale=0.0, read_noise_scale=0.0, drift_mu_min=0.06,
               drift_mu_max=0.06, drift_sigma_min=0.0, drift_sigma_max=0.0)
    torch.testing.assert_close(pcm_drift_weight(w, flat, t), w, rtol=1e-5, atol=1e-7)
    # scale multiplies the deviation
    torch.testing.assert_close(pcm_drift_weight(w, dev, t, scale=2.0), w + 2 * (got - w),
                               rtol=1e-5, atol=1e-7)


def test_pcm_drift_noise_in_training_is_seeded_and_grows_with_time():
    def deviation(t_min, t_max, seed=4):
        layer = _linear(64, 64, config=presets.pcm_joshi2020())
        prepare_hwa(layer, HWAConfig(noise="pcm-drift", t_min=t_min, t_max=t_max), seed=seed)
        layer.train()
        return _noisy_weights(layer, 8) - layer.weight.detach()

    a, b = deviation(1.0, 1.0), deviation(1.0, 1.0)
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])  # fresh per mini-batch
    # read noise and drift spread grow with time: after a year the error is larger
    assert float(deviation(3e7, 3e7).std()) > 1.3 * float(a.std())
    with pytest.raises(ValueError, match="t_max"):
        HWAConfig(noise="pcm-drift", t_min=10.0, t_max=1.0)
    with pytest.raises(ValueError, match="noise='pcm-drift'"):
        prepare_hwa(_linear(), HWAConfig(noise="pcm-drift"))


def test_backward_uses_noisy_weights_and_updates_clean_ones():
    layer = _linear(16, 8)
    w0 = layer.weight.detach().clone()
    prepare_hwa(layer, HWAConfig(eta=0.2), seed=5)
    layer.train()
    y = layer(torch.eye(16))  # = W_noisy^T
    (0.5 * y.pow(2).sum()).backward()
    w_noisy = y.detach().T
    assert not torch.allclose(w_noisy, w0)
    torch.testing.assert_close(layer.weight.grad, w_noisy)  # dL/dW = W_noisy (x = I)
    torch.optim.SGD(layer.parameters(), lr=0.1).step()
    torch.testing.assert_close(layer.weight.detach(), w0 - 0.1 * w_noisy)


def test_clip_weights_per_layer_sigma():
    net = aimc.convert(nn.Sequential(nn.Linear(50, 40), nn.Linear(40, 10)), presets.ideal(),
                       digital=["1"])
    with torch.no_grad():
        net[0].weight[0, 0] = 10.0  # outlier
        net[1].weight[0, 0] = 10.0  # digital layer: not clipped
    w = net[0].weight.detach().clone()
    bound = 2.0 * float(w.std())
    clip_weights(net, 2.0)
    after = net[0].weight.detach()
    assert float(after.abs().max()) == pytest.approx(bound, rel=1e-6)
    inside = w.abs() <= bound
    assert torch.equal(after[inside], w[inside])
    torch.testing.assert_close(after[~inside], w[~inside].sign() * bound)
    assert float(net[1].weight.detach()[0, 0]) == 10.0
    clip_weights(net, 0.0)  # off
    assert torch.equal(net[0].weight.detach(), after)


def test_quantize_ste_forward_is_the_dac_and_gradient_passes_inside_range():
    x = torch.linspace(-1.5, 1.5, 301, requires_grad=True)
    y = quantize_ste(x, 8, 1.0)
    torch.testing.assert_close(y.detach(), ft.dac(x.detach().clone(), 8))
    y.sum().backward()
    inside, outside = x.detach().abs() < 0.995, x.detach().abs() > 1.005
    assert torch.equal(x.grad[inside], torch.ones(int(inside.sum())))
    assert torch.equal(x.grad[outside], torch.zeros(int(outside.sum())))


def test_converter_ste_adds_noise_then_converts_and_masks_the_gradient():
    from aimc.training.hwa import converter_ste

    x = torch.zeros(200_000, requires_grad=True)
    gen = torch.Generator().manual_seed(0)
    y = converter_ste(x, 0, 1.0, 0.5, gen)  # noise and clipping, no rounding
    # N(0, 0.5^2) clipped to [-1, 1] has std 0.4796 (2e6 samples); 2e5 here: +-1%
    assert float(y.detach().std()) == pytest.approx(0.4796, rel=0.01)
    assert float(y.detach().abs().max()) == 1.0
    y.sum().backward()
    # the gradient passes exactly where the noisy value was inside the range
    inside = y.detach().abs() < 1.0
    assert 0.9 < float(inside.float().mean()) < 0.99
    assert torch.equal(x.grad, inside.float())
    # a per-sample bound (dynamic DAC ranges) broadcasts; values land on its levels
    xs = torch.randn(4, 50) * torch.tensor([[0.1], [1.0], [3.0], [10.0]])
    r = xs.abs().amax(dim=1, keepdim=True)
    q = converter_ste(xs, 8, r)
    torch.testing.assert_close(q, ft.dac(xs / r, 8) * r)
    # same generator state, same noise
    a = converter_ste(torch.zeros(10), 8, 1.0, 0.1, torch.Generator().manual_seed(3))
    b = converter_ste(torch.zeros(10), 8, 1.0, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and bool((a != 0).any())


def test_output_noise_in_training_has_tile_std():
    cfg = presets.pcm_joshi2020()
    cfg.tile.input_range = "dynamic"
    layer = _linear(64, 200, config=cfg)
    prepare_hwa(layer, HWAConfig(noise="none", clip_sigma=0.0, out_noise=True), seed=2)
    layer.train()
    x = torch.randn(100, 64)
    with torch.no_grad():
        y = layer(x)
        clean = F.linear(x, layer.weight)
    r = x.abs().amax(dim=1, keepdim=True)
    unit = r * layer.weight.detach().abs().max()
    dev = (y - clean) / unit  # normalised units, one tile
    assert abs(float(dev.std()) / 0.04 - 1) < 0.03  # 20000 samples


def test_output_noise_through_the_adc_in_training_has_tile_std():
    # Static input range (one unit for the batch: the converter works in weight units)
    # and per-sample ranges (normalised units): the same noise in tile units.
    for static in (True, False):
        cfg = presets.pcm_joshi2020()
        cfg.tile.dac_bits, cfg.tile.adc_bits, cfg.tile.out_bound = 0, 0, 100.0
        cfg.tile.input_range = "static" if static else "dynamic"
        layer = _linear(64, 200, config=cfg)
        layer.input_range.fill_(3.0)
        prepare_hwa(layer, HWAConfig(noise="none", clip_sigma=0.0, dac_adc=True,
                                     out_noise=True), seed=2)
        layer.train()
        x = torch.randn(100, 64)
        with torch.no_grad():
            dev = layer(x) - F.linear(x, layer.weight)
        r = 3.0 if static else x.abs().amax(dim=1, keepdim=True)
        dev = dev / (r * layer.weight.detach().abs().max())
        assert abs(float(dev.std()) / 0.04 - 1) < 0.03, static  # 20000 samples


def test_pcm_drift_output_noise_is_amplified_by_the_gdc_gain():
    # One drift exponent (0.06) and no other noise: after GDC the weights are exact, alpha
    # = ((t + 20) / 20)^0.06, and the chip's output noise, added before alpha, comes out
    # alpha times larger (pcm-model.md sec. 5-6).
    t = 86_400.0
    flat = PCM(prog_noise_scale=0.0, read_noise_scale=0.0, drift_mu_min=0.06,
               drift_mu_max=0.06, drift_sigma_min=0.0, drift_sigma_max=0.0)
    alpha = ((t + 20.0) / 20.0) ** 0.06
    w0 = torch.randn(48, 64)
    _, got_alpha = pcm_drift_read(w0, flat, t)
    assert float(got_alpha) == pytest.approx(alpha, rel=1e-5)
    cfg = presets.pcm_joshi2020()
    cfg.device = flat
    cfg.tile.input_range = "dynamic"
    layer = _linear(64, 200, config=cfg)
    prepare_hwa(layer, HWAConfig(noise="pcm-drift", t_min=t, t_max=t, clip_sigma=0.0,
                                 out_noise=True), seed=3)
    layer.train()
    x = torch.randn(100, 64)
    with torch.no_grad():
        dev = (layer(x) - F.linear(x, layer.weight))
    unit = x.abs().amax(dim=1, keepdim=True) * layer.weight.detach().abs().max()
    # 20000 samples: the std's standard error is 0.5%; alpha = 1.65 is far outside 3%.
    assert float((dev / unit).std()) / (0.04 * alpha) == pytest.approx(1.0, abs=0.03)


def test_dac_adc_in_training_quantises_and_trains():
    cfg = presets.pcm_joshi2020()
    layer = _linear(32, 16, config=cfg)
    layer.input_range.fill_(2.0)
    prepare_hwa(layer, HWAConfig(noise="none", dac_adc=True), seed=0)
    layer.train()
    x = torch.randn(10, 32, requires_grad=True)
    y = layer(x)
    xq = ft.dac(x.detach() / 2.0, 8) * 2.0
    unit = 2.0 * layer.weight.detach().abs().max()
    expect = ft.adc(F.linear(xq, layer.weight.detach()) / unit, 8, 10.0) * unit
    torch.testing.assert_close(y.detach(), expect, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    assert layer.weight.grad is not None and float(layer.weight.grad.abs().sum()) > 0
    assert float(x.grad.abs().sum()) > 0
    # A layer's own ADC range (aimc.calibrate_outputs sets it on a chip) holds in training.
    layer.output_bound.fill_(1.5)
    y = layer(x.detach())
    expect = ft.adc(F.linear(xq, layer.weight.detach()) / unit, 8, 1.5) * unit
    torch.testing.assert_close(y.detach(), expect, rtol=1e-5, atol=1e-6)
    assert float((y.detach().abs() / unit).max()) == pytest.approx(1.5, rel=1e-5)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="HWAConfig.noise"):
        HWAConfig(noise="uniform")
    with pytest.raises(ValueError, match="HWAConfig.eta"):
        HWAConfig(eta=-0.1)
    with pytest.raises(ValueError, match="HWAConfig.clip_sigma"):
        HWAConfig(clip_sigma=float("nan"))
    with pytest.raises(ValueError, match="HWAConfig.dac_adc"):
        HWAConfig(dac_adc=1)
    with pytest.raises(ValueError, match="HWAConfig.bn_stats"):
        HWAConfig(bn_stats="frozen-ish")
    with pytest.raises(ValueError, match="HWAConfig.sam_rho"):
        HWAConfig(sam_rho=-0.5)


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.2)  # uses the global RNG: resume must restore it
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(self.drop(F.relu(self.bn(self.conv(x)))).flatten(1))


def _run(ckpt, epochs, seed=0, config=None):
    torch.manual_seed(123)
    net = aimc.convert(_Tiny(), presets.pcm_joshi2020())
    g = torch.Generator().manual_seed(9)
    images = torch.randint(0, 256, (96, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 5, (96,), generator=g)
    loader = CifarLoader(images, labels, 32, shuffle=True, augment=True, seed=seed,
                         mean=(0.5,) * 3, std=(0.25,) * 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 3 * len(loader))
    hist = train_hwa(net, loader, epochs, config=config or HWAConfig(eta=0.05, clip_sigma=3.0),
                     optimizer=opt, scheduler=sched, checkpoint=ckpt, seed=seed)
    return net, hist


@pytest.mark.parametrize("sam_rho", [0.0, 0.5])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, sam_rho):
    cfg = HWAConfig(eta=0.05, clip_sigma=3.0, sam_rho=sam_rho)
    full, hist_full = _run(tmp_path / "a.pt", 3, config=cfg)
    _run(tmp_path / "b.pt", 1, config=cfg)  # interrupted after one epoch, then run again
    resumed, hist_res = _run(tmp_path / "b.pt", 3, config=cfg)
    for (k, v), v2 in zip(full.state_dict().items(), resumed.state_dict().values(),
                          strict=True):
        assert torch.equal(v, v2), k
    assert hist_full == hist_res and len(hist_res) == 3
    state = load_checkpoint(tmp_path / "b.pt")  # weights_only=True
    assert state["epoch"] == 3
    assert not any(layer.hwa for _, layer in aimc.analog_layers(resumed))
    # a finished run resumes to nothing, and a checkpoint of other settings is refused
    again, _ = _run(tmp_path / "a.pt", 3, config=cfg)
    assert torch.equal(again.fc.weight, full.fc.weight)
    net = aimc.convert(_Tiny(), presets.pcm_joshi2020())
    with pytest.raises(ValueError, match="HWAConfig"):
        train_hwa(net, [], 3, config=HWAConfig(eta=0.5), checkpoint=tmp_path / "a.pt")


def test_training_reduces_the_loss_and_keeps_weights_clipped():
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    y = (x[:, 0] > 0).long()
    net = aimc.convert(nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2)),
                       presets.pcm_joshi2020())
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
    hist = train_hwa(net, batches, 8, config=HWAConfig(eta=0.03, clip_sigma=2.0),
                     optimizer=torch.optim.Adam(net.parameters(), lr=1e-2))
    assert hist[-1]["loss"] < 0.5 * hist[0]["loss"]
    assert hist[-1]["train_accuracy"] > 0.9
    for _, layer in aimc.analog_layers(net):
        w = layer.weight.detach()
        assert float(w.abs().max()) <= 2.0 * float(w.std()) * 1.05


@pytest.mark.parametrize("mode", ["frozen", "running"])
def test_bn_stats_running_normalises_with_running_statistics(mode):
    # bn_stats "frozen"/"running": batch norm normalises with its running statistics in
    # training (so weight noise's per-channel shift is not normalised away); gamma/beta
    # still learn; "running" keeps tracking the batch statistics as torch would.
    torch.manual_seed(0)
    net = aimc.convert(_Tiny(), presets.pcm_joshi2020())
    bn = net.bn
    bn.running_mean.fill_(0.3)
    bn.running_var.fill_(2.0)
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(16, 3, 8, 8, generator=g),
                torch.randint(0, 5, (16,), generator=g)) for _ in range(4)]
    seen = []
    bn.register_forward_hook(lambda m, i, o: seen.append(
        (i[0].detach(), o.detach(), bn.running_mean.clone(), bn.running_var.clone(),
         bn.weight.detach().clone(), bn.bias.detach().clone())))
    gamma = bn.weight.detach().clone()
    train_hwa(net, batches, 1, config=HWAConfig(eta=0.05, bn_stats=mode), seed=0)
    assert not torch.equal(bn.weight.detach(), gamma)  # gamma trained
    assert bn.training  # the model's mode is put back after training
    mean, var = torch.full((4,), 0.3), torch.full((4,), 2.0)
    for x, y, run_mean, run_var, w, b in seen:
        if mode == "running":  # updated from this batch before it is normalised
            mean = 0.9 * mean + 0.1 * x.mean(dim=(0, 2, 3))
            var = 0.9 * var + 0.1 * x.var(dim=(0, 2, 3), unbiased=True)
        torch.testing.assert_close(run_mean, mean)
        torch.testing.assert_close(run_var, var)
        want = ((x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + bn.eps)
                * w[:, None, None] + b[:, None, None])
        torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    assert int(bn.num_batches_tracked) == (4 if mode == "running" else 0)
    assert not bn._forward_pre_hooks  # the tracking hooks are gone


def test_distillation_loss_is_the_tempered_kl():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    p, q = F.softmax(t / 3.0, dim=-1), F.softmax(s / 3.0, dim=-1)
    want = 9.0 * float((p * (p.log() - q.log())).sum(dim=-1).mean())
    assert float(distillation_loss(s, t, 3.0)) == pytest.approx(want, rel=1e-5)
    assert float(distillation_loss(t, t, 3.0)) == pytest.approx(0.0, abs=1e-6)


def test_distillation_pulls_the_student_to_the_teacher():
    torch.manual_seed(0)
    x = torch.randn(256, 10)
    teacher = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        y = teacher(x).argmax(dim=-1)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]

    def gap(distill):
        torch.manual_seed(1)
        student = aimc.convert(nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3)),
                               presets.pcm_joshi2020())
        cfg = HWAConfig(eta=0.02, distill=distill, distill_temperature=2.0)
        train_hwa(student, batches, 15, config=cfg, teacher=teacher if distill else None,
                  optimizer=torch.optim.Adam(student.parameters(), lr=1e-2))
        with torch.no_grad():
            return float(distillation_loss(aimc.to_digital(student)(x), teacher(x), 2.0))

    # Learning from the teacher's soft targets alone (a = 1) matches its logits far better
    # than learning from its hard labels (measured: KL 0.001 vs 2.9).
    assert gap(1.0) < 0.5 * gap(0.0)
    with pytest.raises(ValueError, match="teacher"):
        train_hwa(nn.Linear(2, 2), [], 1, config=HWAConfig(distill=0.5))
    with pytest.raises(ValueError, match="HWAConfig.distill"):
        HWAConfig(distill=1.5)
    with pytest.raises(ValueError, match="distill_temperature"):
        HWAConfig(distill_temperature=0.0)


def test_pcm_drift_read_follows_the_mapping_pairs():
    # One pair through the mapping draws exactly what the plain read draws; two open-loop
    # pairs average their programming errors (t = 0, no read noise): std / sqrt(2) (2e5
    # weights, std known to 0.2%).
    dev = PCM(drift_scale=0.0, read_noise_scale=0.0)
    w = torch.full((200_000,), 0.3)
    one = pcm_drift_read(w, dev, 0.0, torch.Generator().manual_seed(0))
    same = pcm_drift_read(w, dev, 0.0, torch.Generator().manual_seed(0), 1.0,
                          aimc.MappingConfig(pairs=1, pair_gain=3.0))
    assert torch.equal(one[0], same[0]) and torch.equal(one[1], same[1])
    two, alpha = pcm_drift_read(w, dev, 0.0, torch.Generator().manual_seed(0), 1.0,
                                aimc.MappingConfig(pairs=2))
    assert float((one[0] - w).std() / (two - w).std()) == pytest.approx(math.sqrt(2), rel=0.01)
    assert float(alpha) == pytest.approx(1.0, abs=1e-6)  # no drift: GDC does nothing


def test_pcm_noise_refuses_mappings_it_does_not_model():
    cfg = presets.pcm_joshi2020()
    for mapping in (aimc.MappingConfig(pairs=2), aimc.MappingConfig(g_min=1.0)):
        net = aimc.convert(nn.Linear(8, 4), dataclasses.replace(cfg, mapping=mapping))
        with pytest.raises(ValueError, match="noise='pcm-drift', which follows the mapping"):
            prepare_hwa(net, HWAConfig(noise="pcm"))
        prepare_hwa(net, HWAConfig(noise="pcm-drift"))  # accepted


def test_pcm_drift_read_with_g_min_maps_and_drifts_both_devices():
    # Drift only (no noise, no nu spread) with zero at g_min = 5 uS: G+ = 5 + 20 w/max|w|,
    # G- = 5 (or the mirror); each device drifts with its own mu_nu, then GDC rescales by
    # sum g_prog / sum g(t) (pcm-model.md sec. 1, 3, 6).
    dev = PCM(prog_noise_scale=0.0, read_noise_scale=0.0, drift_sigma_min=0.0,
              drift_sigma_max=0.0, drift_sigma_a=0.0, drift_sigma_b=0.0)
    w = torch.tensor([2.0, -1.0, 0.0])
    mapping = aimc.MappingConfig(g_min=5.0)
    torch.testing.assert_close(pcm_drift_read(w, dev, 0.0, mapping=mapping)[0], w)
    t = 86_400.0
    got, alpha = pcm_drift_read(w, dev, t, mapping=mapping)
    g = torch.tensor([[25.0, 5.0, 5.0], [5.0, 15.0, 5.0]])
    g_t = g * ((t + 20.0) / 20.0) ** -dev.drift_stats(g)[0]
    want_alpha = g.sum() / g_t.sum()
    torch.testing.assert_close(alpha, want_alpha)
    torch.testing.assert_close(got, (g_t[0] - g_t[1]) * want_alpha * 2.0 / 20.0)


def test_sam_perturbation_is_the_asam_ascent_step():
    # e = rho T^2 g / ||T g||, T = |w| + 0.01 max|w| per tensor, one norm over all tensors;
    # so ||e / T|| = rho (Kwon et al. 2021, eq. 8)
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(5, 4, generator=g), torch.randn(3, generator=g)]
    gs = [torch.randn(5, 4, generator=g), torch.randn(3, generator=g)]
    es = sam_perturbation(ws, gs, rho=0.7)
    ts = [w.abs() + 0.01 * w.abs().max() for w in ws]
    norm = math.sqrt(sum(float(((t * gr) ** 2).sum()) for t, gr in zip(ts, gs, strict=True)))
    for e, t, gr in zip(es, ts, gs, strict=True):
        torch.testing.assert_close(e, 0.7 * t * t * gr / norm)
    radius = math.sqrt(sum(float(((e / t) ** 2).sum()) for e, t in zip(es, ts, strict=True)))
    assert math.isclose(radius, 0.7, rel_tol=1e-5)
    assert all(float(e.abs().sum()) == 0 for e in sam_perturbation(ws, [0 * x for x in gs], 1))


@pytest.mark.parametrize("analog", [True, False])
def test_sam_step_applies_the_gradient_taken_at_the_perturbed_weights(analog):
    # On an analog model ASAM moves the analog weights; on a plain one (an FP32 baseline
    # trained with the same optimizer) the Linear weights: the same step either way.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    if analog:
        net = aimc.convert(net, presets.ideal())
    assert [id(w) for w in sam_weights(net)] == [id(net[0].weight), id(net[2].weight)]
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    w0 = [p.detach().clone() for p in net.parameters()]
    # by hand: gradient at W, ASAM step on the analog weights, gradient there, SGD with it
    ref = aimc.to_digital(net) if analog else copy.deepcopy(net)
    F.cross_entropy(ref(x), y).backward()
    weights = [ref[0].weight, ref[2].weight]
    steps = sam_perturbation(weights, [w.grad for w in weights], 0.8)
    with torch.no_grad():
        for w, e in zip(weights, steps, strict=True):
            w.add_(e)
    ref.zero_grad()
    F.cross_entropy(ref(x), y).backward()
    want = [p0 - 0.1 * p.grad for p0, p in zip(w0, ref.parameters(), strict=True)]
    train_hwa(net, [(x, y)], 1, config=HWAConfig(noise="none", clip_sigma=0, sam_rho=0.8),
              optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
    for p, p_want, p0 in zip(net.parameters(), want, w0, strict=True):
        torch.testing.assert_close(p.detach(), p_want)
        assert not torch.equal(p.detach(), p0)
    # without SAM the same step differs: the second gradient is what moved the weights
    plain = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
    if analog:
        plain = aimc.convert(plain, presets.ideal())
    with torch.no_grad():
        for p, p0 in zip(plain.parameters(), w0, strict=True):
            p.copy_(p0)
    train_hwa(plain, [(x, y)], 1, config=HWAConfig(noise="none", clip_sigma=0),
              optimizer=torch.optim.SGD(plain.parameters(), lr=0.1))
    assert not torch.allclose(plain[0].weight, net[0].weight)


def test_sam_weights_are_only_the_analog_ones_when_some_layers_stay_digital():
    net = aimc.convert(nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)),
                       presets.ideal(), digital=["2"])
    assert [id(w) for w in sam_weights(net)] == [id(net[0].weight)]
    assert sam_weights(nn.Sequential(nn.Tanh(), nn.BatchNorm1d(3))) == []


def test_sam_counts_each_batch_once_in_the_batch_norm_statistics():
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randn(16, 3, 8, 8, generator=g),
                torch.randint(0, 5, (16,), generator=g)) for _ in range(3)]
    stats = []
    for rho in (0.0, 1.0):
        torch.manual_seed(0)
        net = aimc.convert(_Tiny(), presets.pcm_joshi2020())
        net.drop.p = 0.0
        train_hwa(net, batches[:1], 1, config=HWAConfig(noise="none", sam_rho=rho))
        stats.append((net.bn.running_mean.clone(), net.bn.running_var.clone(),
                      int(net.bn.num_batches_tracked)))
    torch.testing.assert_close(stats[1][0], stats[0][0])
    torch.testing.assert_close(stats[1][1], stats[0][1])
    assert stats[0][2] == stats[1][2] == 1
