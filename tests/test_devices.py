"""PCM model against the reference values of pcm-model.md sections 2-4."""

import itertools
import math

import pytest
import torch

from aimc.devices import DEVICES, PCM, IdealDevice, make_device

N = 200_000  # devices per statistical check


def test_prog_noise_reference_values():
    dev = PCM()
    g = torch.tensor([0.0, 12.5, 25.0])
    sigma = dev.prog_noise_std(g)
    # Polynomial of sec. 2 evaluated by hand: c0, c0 + c1/2 + c2/4, c0 + c1 + c2.
    expected = torch.tensor([0.26348, 0.26348 + 1.9650 / 2 - 1.1731 / 4,
                             0.26348 + 1.9650 - 1.1731])
    assert torch.allclose(sigma, expected, atol=1e-6)
    # The rounded figures quoted in pcm-model.md.
    assert sigma.tolist() == pytest.approx([0.26, 0.95, 1.06], abs=0.006)


def test_prog_noise_scales_with_g_max_and_factor():
    g = torch.tensor([5.0, 20.0])
    base = PCM().prog_noise_std(g)
    doubled = PCM(g_max=50.0).prog_noise_std(2 * g)
    assert torch.allclose(doubled, 2 * base)
    assert torch.allclose(PCM(prog_noise_scale=0.5).prog_noise_std(g), 0.5 * base)


def test_programmed_conductance_statistics():
    dev = PCM(drift_scale=0.0)
    gen = torch.Generator().manual_seed(0)
    target = torch.full((N,), 12.5)
    g_prog, nu = dev.program(target, generator=gen)
    sigma = float(dev.prog_noise_std(torch.tensor(12.5)))
    assert float(g_prog.mean()) == pytest.approx(12.5, abs=4 * sigma / math.sqrt(N))
    assert float(g_prog.std()) == pytest.approx(sigma, rel=0.01)
    assert torch.all(nu == 0)


@pytest.mark.parametrize("g_t", [0.25, 2.5, 12.5, 25.0])
def test_drift_exponent_statistics(g_t):
    dev = PCM(prog_noise_scale=0.0)
    x = g_t / 25.0
    mu = min(max(-0.0155 * math.log(x) + 0.0244, 0.049), 0.1)
    sd = min(max(-0.0125 * math.log(x) - 0.0059, 0.008), 0.045)
    gen = torch.Generator().manual_seed(1)
    _, nu = dev.program(torch.full((N,), g_t), generator=gen)
    # nu = |mu + sd N(0,1)|; mu/sd >= 1.09 so the fold changes the mean by < 3e-3 at
    # worst; compare with the folded-normal moments, 5 standard errors of tolerance.
    z = mu / sd
    cdf = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    fold_mean = sd * math.sqrt(2 / math.pi) * math.exp(-z * z / 2) + mu * (1 - 2 * (1 - cdf))
    fold_var = mu * mu + sd * sd - fold_mean ** 2
    assert float(nu.mean()) == pytest.approx(fold_mean, abs=5 * sd / math.sqrt(N))
    assert float(nu.std()) == pytest.approx(math.sqrt(fold_var), rel=0.02)
    assert torch.all(nu >= 0)


def test_drift_stats_clip_bounds():
    mu, sd = PCM().drift_stats(torch.tensor([0.0, 1e-9, 25.0]))
    assert mu.tolist() == pytest.approx([0.1, 0.1, 0.049])
    assert sd.tolist() == pytest.approx([0.045, 0.045, 0.008])


@pytest.mark.parametrize(("t", "shrink"), [(3600, 0.22), (86400, 0.34), (31_536_000, 0.50)])
def test_drift_factor_reference(t, shrink):
    dev = PCM()
    factor = float(dev.drift_factor(torch.tensor(0.049), t))
    assert factor == pytest.approx(((t + 20) / 20) ** -0.049, rel=1e-6)
    shrunk = 1.0 - factor
    assert shrunk == pytest.approx(shrink, abs=0.01)  # pcm-model.md sec. 3 figures
    assert float(dev.drift_factor(torch.tensor(0.049), 0.0)) == 1.0


def test_read_noise_reference_and_growth():
    dev = PCM()
    at_gmax = [float(dev.read_noise_std(torch.tensor(25.0), t)) for t in (0.0, 86400.0)]
    assert at_gmax == pytest.approx([0.037, 0.045], abs=0.001)  # sec. 4 figures
    q = 0.0088
    assert at_gmax[0] == pytest.approx(q * math.sqrt(math.log((20 + 250e-9) / 500e-9)),
                                       rel=1e-5)
    times = [0.0, 1.0, 3600.0, 86400.0, 3e7]
    stds = [float(dev.read_noise_std(torch.tensor(5.0), t)) for t in times]
    assert all(b > a for a, b in itertools.pairwise(stds))
    # Q_s saturates at 0.2 for tiny conductances.
    assert float(dev.read_noise_std(torch.tensor(0.0), 0.0)) == pytest.approx(
        0.2 * math.sqrt(math.log((20 + 250e-9) / 500e-9)), rel=1e-5)


def test_read_statistics_match_model():
    dev = PCM()
    gen = torch.Generator().manual_seed(2)
    g_prog = torch.full((N,), 20.0)
    nu = torch.full((N,), 0.05)
    g_t = dev.read(g_prog, nu, 86400.0, generator=gen)
    mean = 20.0 * (86420 / 20) ** -0.05
    rel = float(dev.read_noise_std(torch.tensor(20.0), 86400.0))
    assert float(g_t.mean()) == pytest.approx(mean, abs=5 * mean * rel / math.sqrt(N))
    assert float(g_t.std()) == pytest.approx(mean * rel, rel=0.01)


def test_conductance_never_negative():
    dev = PCM(prog_noise_scale=5.0, read_noise_scale=5.0)
    gen = torch.Generator().manual_seed(3)
    target = torch.rand(N, generator=gen) * 25
    target[: N // 2] = 0.0
    g_prog, nu = dev.program(target, generator=gen)
    assert torch.all(g_prog >= 0)
    for t in (0.0, 3600.0, 3e7):
        assert torch.all(dev.read(g_prog, nu, t, generator=gen) >= 0)


def test_seeded_and_ideal_device():
    dev = PCM()
    target = torch.rand(1000) * 25
    a = dev.program(target, generator=torch.Generator().manual_seed(5))
    b = dev.program(target, generator=torch.Generator().manual_seed(5))
    c = dev.program(target, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    ideal = IdealDevice()
    g, nu = ideal.program(target)
    assert torch.equal(g, target) and torch.equal(ideal.read(g, nu, 3e7), target)


def test_registry_and_validation():
    assert DEVICES["pcm"] is PCM and DEVICES["ideal"] is IdealDevice
    assert make_device("pcm", g_max=30.0).g_max == 30.0
    with pytest.raises(ValueError, match="unknown device 'rram'"):
        make_device("rram")
    with pytest.raises(ValueError, match="PCM.g_max"):
        PCM(g_max=-1.0)
    with pytest.raises(ValueError, match="PCM.drift_scale"):
        PCM(drift_scale=-0.1)
    with pytest.raises(ValueError, match="t must be >= 0"):
        PCM().drift_factor(torch.tensor(0.05), -1.0)
