"""Tile physics: DAC/ADC levels and clipping, mapping, tile splitting, periphery."""

import math

import pytest
import torch

from aimc import functional as ft
from aimc.devices import PCM, IdealDevice


def test_dac_levels_exact_and_clipped():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.3, 1.0, 1.5])
    y = ft.dac(x, 8)
    assert y.tolist() == pytest.approx([-1.0, -1.0, -64 / 127, 0.0, 38 / 127, 1.0, 1.0])
    levels = torch.unique(ft.dac(torch.linspace(-1, 1, 10_001), 4))
    assert len(levels) == 15  # 2^4 - 1 symmetric levels
    assert torch.allclose(levels, torch.arange(-7, 8) / 7)
    assert torch.equal(ft.dac(torch.tensor([0.123, 2.0]), 0), torch.tensor([0.123, 1.0]))


def test_adc_levels_and_bound():
    y = torch.tensor([-30.0, -10.0, -0.03, 0.05, 3.3, 10.0, 12.0])
    q = ft.adc(y, 8, 10.0)
    step = 10.0 / 127
    assert q[0] == -10.0 and q[-1] == 10.0 and q[-2] == 10.0
    assert torch.allclose(q / step, torch.round(q / step), atol=1e-4)
    assert q[3].item() == pytest.approx(step)  # 0.05 rounds up to one step (0.0787)
    assert q[2].item() == 0.0
    assert ft.adc(y, 0, 10.0).tolist() == pytest.approx(y.clamp(-10, 10).tolist())
    assert torch.equal(ft.adc(y, 0, 0.0), y)
    with pytest.raises(ValueError):
        ft.adc(y, 8, 0.0)


def test_conductance_round_trip():
    w = torch.tensor([[-1.0, -0.25, 0.0, 0.5, 1.0]])
    gp, gn = ft.weights_to_conductances(w, 25.0)
    assert gp.tolist() == [[0.0, 0.0, 0.0, 12.5, 25.0]]
    assert gn.tolist() == [[25.0, 6.25, 0.0, 0.0, 0.0]]
    assert torch.equal(ft.conductances_to_weights(gp, gn, 25.0), w)
    # a non-zero g_min: zero sits at g_min on both devices, full scale still at g_max
    gp, gn = ft.weights_to_conductances(w, 25.0, g_min=5.0)
    assert gp.tolist() == [[5.0, 5.0, 5.0, 15.0, 25.0]]
    assert gn.tolist() == [[25.0, 10.0, 5.0, 5.0, 5.0]]
    assert torch.equal(ft.conductances_to_weights(gp, gn, 25.0, g_min=5.0), w)


@pytest.mark.parametrize(("units", "unit_rows", "rows", "expected"), [
    (512, 1, 512, (1, 512)),
    (513, 1, 512, (2, 257)),
    (64, 9, 512, (2, 32)),
    (16, 9, 512, (1, 16)),
    (1000, 1, 256, (4, 250)),
])
def test_split_units(units, unit_rows, rows, expected):
    n, c = ft.split_units(units, unit_rows, rows)
    assert (n, c) == expected
    assert c * unit_rows <= rows and (n - 1) * c < units <= n * c


def test_split_units_reserves_bias_row_and_rejects_huge_kernels():
    assert ft.split_units(512, 1, 512, extra_last=1) == (2, 256)
    with pytest.raises(ValueError, match="TileConfig.rows"):
        ft.split_units(4, 600, 512)


def test_tile_round_trip_and_scales():
    w = torch.randn(2, 5, 11)
    tiles = ft.tile_weights(w, 3, 4)
    assert tiles.shape == (2, 3, 5, 4)
    assert torch.all(tiles[:, 2, :, 3:] == 0)  # the padding of the last tile
    assert torch.equal(ft.untile_weights(tiles, 11), w)
    col = ft.weight_scales(tiles, cols=512, per_column=True)
    assert torch.equal(col, tiles.abs().amax(-1))
    per_tile = ft.weight_scales(tiles, cols=3, per_column=False)
    # outputs 0-2 share one scale per tile, outputs 3-4 another
    assert torch.equal(per_tile[..., 0], tiles[..., :3, :].abs().amax((-1, -2)))
    assert torch.equal(per_tile[..., 4], tiles[..., 3:, :].abs().amax((-1, -2)))
    zero = ft.weight_scales(torch.zeros(1, 1, 2, 3), cols=2, per_column=False)
    assert torch.equal(zero, torch.ones(1, 1, 2))


def test_periphery_sums_tiles_each_with_its_adc():
    # Two tiles whose partial outputs saturate the ADC separately: the digital sum
    # must be the sum of the clipped parts, not the clipped sum.
    partial = torch.tensor([12.0, 3.0]).view(1, 1, 2, 1, 1)
    scale = torch.tensor([2.0, 1.0]).view(1, 2, 1)
    out = ft.periphery(partial, scale, 0.5, out_noise=0.0, out_bound=10.0, adc_bits=0)
    assert out.item() == pytest.approx(10.0 * 2 * 0.5 + 3.0 * 1 * 0.5)


def test_periphery_output_noise_std():
    partial = torch.zeros(200_000, 1, 1, 1, 1)
    gen = torch.Generator().manual_seed(0)
    out = ft.periphery(partial, torch.ones(1, 1, 1), 1.0, out_noise=0.04, out_bound=0.0,
                       adc_bits=0, generator=gen)
    assert out.std().item() == pytest.approx(0.04, rel=0.01)


def test_periphery_alpha_before_or_after_adc():
    partial = torch.tensor([0.5]).view(1, 1, 1, 1, 1)
    scale = torch.ones(1, 1, 1)
    alpha = torch.tensor(3.0)
    before = ft.periphery(partial, scale, 1.0, out_noise=0.0, out_bound=1.0, adc_bits=0,
                          alpha=alpha, alpha_before_adc=True)
    after = ft.periphery(partial, scale, 1.0, out_noise=0.0, out_bound=1.0, adc_bits=0,
                         alpha=alpha, alpha_before_adc=False)
    assert before.item() == pytest.approx(1.0)  # 1.5 clipped by the ADC
    assert after.item() == pytest.approx(1.5)


@pytest.mark.parametrize("exact", [False, True])
def test_gaussian_noise_statistics(exact):
    n = 1_000_000
    gen = torch.Generator().manual_seed(0)
    y = ft.add_gaussian_(torch.zeros(n), 0.5, gen, exact=exact)
    # standard errors: mean 0.5/1000 = 5e-4, std ~ 0.5/sqrt(2n) = 3.5e-4
    assert abs(float(y.mean())) < 5 * 5e-4
    assert float(y.std()) == pytest.approx(0.5, abs=5 * 3.6e-4)
    z = (y / 0.5).double()
    for lag in (1, 2, 1000, 12_345):  # within one call the samples are uncorrelated
        assert abs(float((z[:-lag] * z[lag:]).mean())) < 5 / n ** 0.5
    kurtosis = float((z ** 4).mean())
    assert kurtosis == pytest.approx(3.0, abs=0.03)  # Gaussian tails, not uniform-like


def test_gaussian_noise_seeded_and_fresh_between_calls():
    a = ft.add_gaussian_(torch.zeros(5000), 1.0, torch.Generator().manual_seed(3))
    b = ft.add_gaussian_(torch.zeros(5000), 1.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    gen = torch.Generator().manual_seed(4)
    c, d = (ft.add_gaussian_(torch.zeros(5000), 1.0, gen) for _ in range(2))
    assert abs(float((c * d).mean())) < 5 / 5000 ** 0.5
    big = ft.add_gaussian_(torch.zeros(ft.noise.TABLE_SIZE + 10), 1.0, gen)
    assert float(big.std()) == pytest.approx(1.0, abs=0.01)


# -- several differential pairs per weight (pcm-model.md sec. 1; Mackin 2019) -------------
def _prog_only_pcm():
    return PCM(drift_scale=0.0, read_noise_scale=0.0)


def test_pair_significance():
    assert ft.pair_significance(1, 3.0) == [1.0]
    assert ft.pair_significance(2, 1.0) == [0.5, 0.5]
    assert ft.pair_significance(2, 3.0) == [0.75, 0.25]
    assert ft.pair_significance(3, 2.0) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    with pytest.raises(ValueError):
        ft.pair_significance(0, 1.0)


def test_one_pair_draws_what_the_plain_mapping_draws():
    w = torch.rand(64, 32) * 2 - 1
    dev = PCM()
    g, nu = ft.program_pairs(dev, w, 1, 3.0, True, torch.Generator().manual_seed(4))
    gen = torch.Generator().manual_seed(4)
    pos, neg = ft.weights_to_conductances(w, dev.g_max)
    want = (dev.program(pos, gen), dev.program(neg, gen))
    assert g.shape == nu.shape == (1, 2, 64, 32)
    for i in (0, 1):
        assert torch.equal(g[0, i], want[i][0]) and torch.equal(nu[0, i], want[i][1])


@pytest.mark.parametrize("pairs,gain,closed", [(3, 2.0, False), (2, 3.0, True)])
def test_pairs_on_an_ideal_device_hold_the_weight(pairs, gain, closed):
    w = torch.rand(50, 40) * 2 - 1
    dev = IdealDevice()
    g, nu = ft.program_pairs(dev, w, pairs, gain, closed)
    torch.testing.assert_close(ft.combine_pairs(ft.read_pairs(dev, g, nu, 1e6), gain,
                                                dev.g_max), w, rtol=0, atol=1e-6)


@pytest.mark.parametrize("pairs,gain,closed,ratio,tol", [
    (2, 1.0, False, math.sqrt(2), 0.02),  # two independent errors average: / sqrt(2)
    (2, 1.0, True, 2.0, 0.05),   # pair 2 cancels pair 1's error, leaves half its own
    (2, 3.0, True, 4.0, 0.10),   # ... and a quarter of it with F = 3
])
def test_programming_error_of_several_pairs(pairs, gain, closed, ratio, tol):
    # Programming noise only, 2e5 weights at half scale (sigma_prog 0.95 uS on G+, G- clipped
    # at 0 from 0.26 uS). The std of the weight error against one pair shrinks by
    # `ratio`; the 2e5-sample std has 0.16% standard error. Closed loop, the second pair's
    # target moves with the first pair's error (sigma_prog changes a few % over it),
    # hence the wider tolerance.
    dev, w = _prog_only_pcm(), torch.full((200_000,), 0.5)

    def err(p, f, c):
        g, nu = ft.program_pairs(dev, w, p, f, c, torch.Generator().manual_seed(1))
        return ft.combine_pairs(ft.read_pairs(dev, g, nu, 0.0), f, dev.g_max) - w

    one = float(err(1, 1.0, False).std())
    # G+ error N(0, sigma_prog(12.5 uS)); G- = max(0, 0.26348 N), variance c0^2 (1/2 - 1/2pi)
    sig, c0 = 0.26348 + 1.965 / 2 - 1.1731 / 4, 0.26348
    assert one == pytest.approx(math.sqrt(sig**2 + c0**2 * (0.5 - 0.5 / math.pi)) / 25, rel=0.01)
    assert one / float(err(pairs, gain, closed).std()) == pytest.approx(ratio, rel=tol)
