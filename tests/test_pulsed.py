"""Pulsed device models (aimc.devices.pulsed): physics against reference values."""

import math

import pytest
import torch

from aimc.devices.pulsed import (
    PULSED_DEVICES,
    PULSES_PER_ROUND,
    Capacitor,
    ConstantStep,
    PulsedPCM,
    SoftBounds,
    make_pulsed_device,
    program_pair_closed_loop,
    program_set_only,
    pulse_sparse,
    stochastic_round,
)

N = 200_000


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_registry():
    assert set(PULSED_DEVICES) >= {"pcm", "capacitor", "constant-step", "soft-bounds"}
    dev = make_pulsed_device("pcm", dg0=0.5)
    assert isinstance(dev, PulsedPCM) and dev.dg0 == 0.5 and dev.name == "pcm"
    with pytest.raises(ValueError, match="unknown name 'rram'"):
        make_pulsed_device("rram")


@pytest.mark.parametrize("cls, field, value", [
    (PulsedPCM, "dg0", 0.0), (PulsedPCM, "gamma", -1.0), (PulsedPCM, "c2c", float("nan")),
    (Capacitor, "step", -0.1), (Capacitor, "leak_tau", 0.0), (SoftBounds, "step", 0.0),
])
def test_validation_names_field(cls, field, value):
    with pytest.raises(ValueError, match=field):
        cls(**{field: value})


def test_set_only_never_decreases_and_saturates():
    dev = PulsedPCM()
    g = dev.reset(torch.zeros(5000), None, gen(1))
    d2d = dev.sample_d2d((5000,), gen(2))
    rng = gen(3)
    for _ in range(60):
        n = torch.randint(0, 4, (5000,), generator=rng).float()
        new = dev.pulse(g, n, d2d, rng)
        assert bool((new >= g).all())
        assert bool((new <= dev.g_max).all())
        assert bool((new[n == 0] == g[n == 0]).all())
        g = new
    assert float(g.mean()) > 0.6 * dev.g_max  # 90 pulses on average: well into saturation
    with pytest.raises(ValueError, match="SET-only"):
        dev.pulse(g, -torch.ones(5000), 1.0, rng)


def test_mean_step_reference_values():
    dev = PulsedPCM()
    g = torch.tensor([0.0, 12.5, 25.0])
    # dg0 (1 - G/25)^2.35 by hand: 0.892, 0.892 * 0.5^2.35 = 0.17510, 0.
    ref = torch.tensor([0.892, 0.892 * 0.5 ** 2.35, 0.0])
    assert torch.allclose(dev.mean_step(g), ref, atol=1e-5)
    # Initial slope equals the Nandakumar 2018 linear fit, -0.084 per uS.
    slope = (dev.mean_step(torch.tensor([0.01])) - dev.mean_step(torch.tensor([0.0]))) / 0.01
    assert float(slope) == pytest.approx(-0.084, rel=0.01)


@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.35, 0.5])
def test_mean_after_solves_the_step_ode(gamma):
    """Closed form vs a fine Euler integration of dG/dn = dg0 (1 - G/g_max)^gamma."""
    dev = PulsedPCM(gamma=gamma)
    g0 = torch.tensor([0.1, 6.0, 15.0])
    n = 12
    g = g0.clone().double()
    h = 1e-3
    for _ in range(int(n / h)):
        g = (g + h * dev.dg0 * (1 - g / dev.g_max).clamp_min(0).pow(gamma)).clamp_max(dev.g_max)
    closed = dev.mean_after(g0, torch.full((3,), float(n)))
    assert torch.allclose(closed.double(), g, atol=2e-3)


@pytest.mark.parametrize("g0, n", [(0.1, 1), (8.0, 1), (15.0, 1), (2.0, 9)])
def test_step_statistics_match_parameters(g0, n):
    """Mean increment = mean_after(G, n) - G; relative std = c2c / sqrt(n) (4 sigma tol)."""
    dev = PulsedPCM()
    g = torch.full((N,), g0)
    inc = dev.pulse(g, torch.full((N,), float(n)), 1.0, gen(4)) - g
    expected = float(dev.mean_after(g[:1], torch.tensor([float(n)]))[0]) - g0
    rel = dev.c2c / math.sqrt(n)
    assert float(inc.mean()) == pytest.approx(expected, rel=4 * rel / math.sqrt(N) + 1e-4)
    assert float(inc.std() / inc.mean()) == pytest.approx(rel, rel=0.03)
    assert float(inc.min()) >= 0.0
    if n == 1:
        # One pulse of the continuum model is within 3% of mu(G) for these small steps.
        assert expected == pytest.approx(float(dev.mean_step(g[:1])[0]), rel=0.05)


@pytest.mark.parametrize("g0, a", [(0.1, 0.25), (8.0, 0.5)])
def test_fractional_pulse_is_a_fraction_of_a_full_pulse(g0, a):
    """A SET pulse of relative amplitude a: mean step mean_after(G, a) - G (about a mu(G)),
    relative std c2c / sqrt(a), i.e. a times the variance of a full pulse (the
    amplitude-modulated pulses of Tuma 2016 and Sebastian 2017); 4 sigma tolerances."""
    dev = PulsedPCM()
    g = torch.full((N,), g0)
    inc = dev.pulse(g, a, 1.0, gen(11)) - g
    expected = float(dev.mean_after(g[:1], torch.tensor([a]))[0]) - g0
    assert expected == pytest.approx(a * float(dev.mean_step(g[:1])[0]), rel=0.02)
    rel = dev.c2c / math.sqrt(a)
    assert float(inc.mean()) == pytest.approx(expected, rel=4 * rel / math.sqrt(N))
    full = dev.pulse(g, 1.0, 1.0, gen(12)) - g
    assert float(inc.var() / full.var()) == pytest.approx(
        a * (expected / a) ** 2 / float(full.mean()) ** 2, rel=0.1)
    assert float(inc.min()) >= 0.0
    # amplitude 0 leaves the device exactly as it was; mixed amplitudes in one call
    amps = torch.tensor([0.0, 0.5, 1.0]).repeat(4)
    out = dev.pulse(torch.full((12,), g0), amps, 1.0, gen(13))
    assert torch.equal(out[amps == 0], torch.full((4,), g0))
    assert bool((out[amps > 0] > g0).all())


def test_accumulation_curve_of_single_pulses():
    """Twenty single pulses from RESET follow the closed-form mean (the ODE limit of the
    Nandakumar 2018 fit) within 2%, reaching about 40% of g_max, with steps that shrink
    as the device fills (non-linear)."""
    dev = PulsedPCM()
    g = dev.fresh((50_000,), gen(14))
    d = dev.sample_d2d((50_000,), gen(15))
    steps = []
    for _ in range(20):
        new = dev.pulse(g, 1.0, d, gen(16 + len(steps)))
        steps.append(float((new - g).mean()))
        g = new
    closed = float(dev.mean_after(torch.tensor([0.1]), torch.tensor([20.0]))[0])
    assert float(g.mean()) == pytest.approx(closed, rel=0.02)
    assert 0.35 * dev.g_max < closed < 0.45 * dev.g_max
    assert steps[-1] < 0.5 * steps[0]


def test_device_to_device_statistics():
    dev = PulsedPCM(d2d=0.2)
    d = dev.sample_d2d((N,), gen(5))
    assert float(d.mean()) == pytest.approx(1.0, abs=4 * 0.2 / math.sqrt(N))
    assert float(d.std()) == pytest.approx(0.2, rel=0.03)
    assert float(d.min()) > 0
    # A device's mean step scales with its factor.
    g = torch.zeros(N)
    dev0 = PulsedPCM(c2c=0.0)
    fast = dev0.pulse(g, torch.ones(N), torch.full((N,), 1.5), gen(6))
    slow = dev0.pulse(g, torch.ones(N), torch.full((N,), 0.5), gen(6))
    assert float(fast.mean() / slow.mean()) == pytest.approx(
        float(1 - (1 - 1.5 * 0.892 * -1.35 / 25) ** (1 / -1.35))
        / float(1 - (1 - 0.5 * 0.892 * -1.35 / 25) ** (1 / -1.35)), rel=1e-4)


def test_reset_statistics():
    dev = PulsedPCM()
    g = dev.reset(torch.full((N,), 20.0), None, gen(7))
    assert float(g.mean()) == pytest.approx(0.1, abs=1e-3)
    assert float(g.std()) == pytest.approx(0.01, rel=0.03)
    mask = torch.arange(N) % 2 == 0
    g2 = dev.reset(torch.full((N,), 20.0), mask, gen(7))
    assert bool((g2[~mask] == 20.0).all()) and float(g2[mask].max()) < 1.0


def test_capacitor_linear_asymmetric_and_leak():
    cap = Capacitor(c2c=0.0, d2d=0.0, g_min=0.0, g_max=10.0)
    g = torch.full((4,), 5.0)
    up = cap.pulse(g, torch.tensor([1.0, 10.0, -1.0, -10.0]))
    ref = 5.0 + torch.tensor([1, 10, -1, -10]) * 0.02 * (1 + 0.02 * torch.tensor([1, 1, -1, -1]))
    assert torch.allclose(up, ref, atol=1e-6)
    # Up then down by the same count leaves 2 a n step: the mismatch polarity inversion cancels.
    back = cap.pulse(cap.pulse(g, torch.full((4,), 50.0)), torch.full((4,), -50.0))
    assert torch.allclose(back - g, torch.full((4,), 2 * 0.02 * 50 * 0.02), atol=1e-5)
    assert float(cap.pulse(g, torch.full((4,), 1e6)).max()) == 10.0
    leaked = cap.leak(torch.tensor([7.0]), 5.0, 0.5)
    assert float(leaked) == pytest.approx(5.0 + 2.0 * math.exp(-0.5), rel=1e-6)
    noisy = Capacitor(c2c=0.05, d2d=0.0)
    many = noisy.pulse(torch.full((N,), 5.0), torch.full((N,), 4.0), 1.0, gen(8))
    assert float(many.std()) == pytest.approx(0.05 * 0.02 * 2, rel=0.03)


def test_soft_bounds_closed_form_equals_single_pulses():
    dev = SoftBounds(c2c=0.0, d2d=0.0)
    g = torch.tensor([-5.0, 0.0, 3.0, 8.0])
    for n in (7.0, -7.0):
        once = dev.pulse(g, torch.full((4,), n))
        step = g.clone()
        for _ in range(7):
            step = dev.pulse(step, torch.full((4,), math.copysign(1.0, n)))
        assert torch.allclose(once, step, atol=1e-5)
    # At the symmetry point 0 up and down steps are both `step`.
    assert float(dev.mean_step(torch.tensor(0.0))) == pytest.approx(0.1)
    zero = torch.tensor([0.0])
    assert float(dev.pulse(zero, torch.tensor([1.0]))) == pytest.approx(0.1, rel=1e-5)
    assert float(dev.pulse(zero, torch.tensor([-1.0]))) == pytest.approx(-0.1, rel=1e-5)


def test_constant_step_exact_and_bounded():
    dev = ConstantStep(step=0.5, g_min=-2, g_max=2)
    g = dev.pulse(torch.zeros(3), torch.tensor([1.0, -3.0, 9.0]))
    assert g.tolist() == [0.5, -1.5, 2.0]


def test_stochastic_round_is_unbiased():
    x = torch.full((N,), 2.3)
    r = stochastic_round(x, gen(9))
    assert set(r.unique().tolist()) == {2.0, 3.0}
    assert float(r.mean()) == pytest.approx(2.3, abs=4 * 0.46 / math.sqrt(N))


def test_closed_loop_programming_reaches_target():
    dev = PulsedPCM()
    target = torch.rand(50_000, generator=gen(10)) * 10 + 0.5
    g0 = dev.reset(torch.zeros(50_000), None, gen(11))
    g, n = program_set_only(dev, g0, target, dev.sample_d2d((50_000,), gen(12)), gen(13))
    err = g - target
    assert abs(float(err.mean())) < 0.3          # within a fraction of one 0.9 uS step
    assert float(err.std()) < 0.7                # about one stochastic step
    assert float(n.mean()) > 5                   # it did take several pulses
    assert bool((g >= g0).all())


def test_sparse_pulse_equals_dense_where_pulsed_and_is_seeded():
    dev = PulsedPCM(c2c=0.0)
    g = torch.rand(1000, generator=gen(14)) * 10
    n = (torch.rand(1000, generator=gen(15)) < 0.1).float() * 3
    sparse = pulse_sparse(dev, g, n, 1.0, gen(16))
    dense = dev.pulse(g, n, 1.0, gen(16))
    assert torch.allclose(sparse, dense)
    noisy = PulsedPCM()
    a = pulse_sparse(noisy, g, n, 1.0, gen(17))
    b = pulse_sparse(noisy, g, n, 1.0, gen(17))
    assert torch.equal(a, b)
    assert not torch.equal(a, pulse_sparse(noisy, g, n, 1.0, gen(18)))


@pytest.mark.parametrize("tol", [0.45, 0.3])
def test_pair_closed_loop_lands_within_tolerance(tol):
    """Program-and-verify on a SET-only pair: |target - (G+ - G-)| <= tol for almost all
    pairs (the overshoot of one device is corrected by the other), unbiased, SET only."""
    dev = PulsedPCM()
    m = 50_000
    g_pos = dev.reset(torch.zeros(m), None, gen(20)) + 2.0
    g_neg = dev.reset(torch.zeros(m), None, gen(21)) + 2.0
    target = torch.randn(m, generator=gen(22)) * 3
    d_pos, d_neg = dev.sample_d2d((m,), gen(23)), dev.sample_d2d((m,), gen(24))
    new_pos, new_neg, n = program_pair_closed_loop(dev, g_pos, g_neg, target, d_pos, d_neg,
                                                   tol, gen(25))
    err = target - (new_pos - new_neg)
    assert float((err.abs() <= tol).float().mean()) > 0.99
    assert abs(float(err.mean())) < 0.01
    assert bool((new_pos >= g_pos).all()) and bool((new_neg >= g_neg).all())
    already = (target - (g_pos - g_neg)).abs() <= tol  # nothing to do: untouched
    assert bool((n[already] == 0).all()) and bool((n[~already] >= 1).all())
    with pytest.raises(ValueError, match="tolerance"):
        program_pair_closed_loop(dev, g_pos, g_neg, target, d_pos, d_neg, -1.0, gen(26))


def test_symmetry_point_of_soft_bounds_and_of_a_pcm_pair():
    """Balanced up/down pulses drive a device with a symmetry point towards it (the decay
    Tiki-Taka needs in A); an ideal constant-step device only random-walks.

    Soft bounds: an up step is step (1 - g/g_max), a down step step (1 - g/g_min), so a
    pair of them moves g towards 0 (the reference recursion is computed by hand). A PCM
    pair A+ - A-: each round one SET pulse on each device; the larger device takes the
    smaller step (mu falls with G), so the difference follows mu(A+) - mu(A-) < 0 towards
    0 (reference: the mean-step solution, mean_after)."""
    m = 20_000
    sb = SoftBounds(c2c=0.0, d2d=0.0)
    g = torch.full((m,), 5.0)
    ref = 5.0
    for _ in range(50):
        g = sb.pulse(sb.pulse(g, torch.ones(m)), -torch.ones(m))
        up = ref + sb.step * (1 - ref / sb.g_max)
        ref = up - sb.step * (1 - up / sb.g_min)
    assert float(g.mean()) == pytest.approx(ref, rel=1e-4)
    assert 0 < ref < 0.5 * 5.0
    pcm = PulsedPCM()
    a_pos, a_neg = torch.full((m,), 6.0), torch.full((m,), 1.0)
    r_pos, r_neg = torch.tensor([6.0]), torch.tensor([1.0])
    rng = gen(27)
    for _ in range(25):
        a_pos = pcm.pulse(a_pos, torch.ones(m), 1.0, rng)
        a_neg = pcm.pulse(a_neg, torch.ones(m), 1.0, rng)
        r_pos = pcm.mean_after(r_pos, torch.ones(1))
        r_neg = pcm.mean_after(r_neg, torch.ones(1))
    diff = float((a_pos - a_neg).mean())
    ref_diff = float(r_pos - r_neg)
    assert ref_diff < 0.5 * 5.0 and ref_diff > 0       # decays, does not cross 0
    assert diff == pytest.approx(ref_diff, abs=0.1)     # c2c noise: small Jensen bias
    flat = ConstantStep(step=0.1, g_min=-20, g_max=20)
    c = torch.full((m,), 5.0)
    for _ in range(50):
        c = flat.pulse(flat.pulse(c, torch.ones(m)), -torch.ones(m))
    assert torch.allclose(c, torch.full((m,), 5.0), atol=1e-4)


def test_closed_loop_programming_caps_pulses_per_round_near_saturation():
    # Near g_max the nominal step is ~0: without a budget the controller would ask for
    # (target - G) / mu(G), about 2,400 pulses at 24.9 uS, every round.
    dev = PulsedPCM()
    g0 = torch.full((1000,), 24.9)
    d2d = dev.sample_d2d((1000,), gen(30))
    g, n = program_set_only(dev, g0, torch.full((1000,), 26.0), d2d, gen(31))
    assert float(n.max()) <= 8 * PULSES_PER_ROUND + 1 and float(n.min()) >= 8 * PULSES_PER_ROUND
    assert (g <= dev.g_max).all()
    g_neg = torch.full((1000,), 0.1)
    _, _, n = program_pair_closed_loop(dev, g0, g_neg, torch.full((1000,), 26.0), d2d, d2d,
                                       0.1, gen(32))
    assert float(n.max()) <= 8 * PULSES_PER_ROUND
    # a reachable target is not affected by the budget
    g, n = program_set_only(dev, torch.full((1000,), 0.1), torch.full((1000,), 5.0), d2d,
                            gen(33), max_pulses=10**6)
    g2, n2 = program_set_only(dev, torch.full((1000,), 0.1), torch.full((1000,), 5.0), d2d,
                              gen(33))
    assert torch.equal(n, n2) and torch.equal(g, g2)
