"""Tile physics as pure tensor functions: mapping, DAC, ADC, output noise, tiled MVM.

Conventions (pcm-model.md sec. 1 and 5; Joshi et al. 2020, Methods "Analog MVM"):

- A layer's weight is seen as ``g`` independent matrices (conv groups; 1 for dense
  layers) of shape (out_g, fan_in). ``fan_in`` is made of ``units`` of ``unit_rows``
  crossbar rows each (a conv input channel brings kh*kw rows, so a channel never
  straddles two tiles and the native convolution stays exact per tile).
- Along the inputs a matrix is split into ``T`` tiles of ``c`` units (``R = c*unit_rows``
  rows, the last tile may be shorter and is zero-padded). Each tile has its own DAC and
  ADC; partial outputs are summed in digital.
- Inside a tile, signals are normalised: weights to [-1, 1] by a scale ``s`` (one per
  tile, or one per tile column), inputs to [-1, 1] by the input range ``r``. A digital
  partial output is ``ADC(W_n x_n + noise) * s * r``.
- Partial outputs are laid out (B, g, T, out_g, L): batch, group, input tile, output,
  positions (L = 1 for dense layers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .noise import add_gaussian_


def split_units(n_units: int, unit_rows: int, rows: int, extra_last: int = 0
                ) -> tuple[int, int]:
    """Split ``n_units`` units of ``unit_rows`` rows over tiles of ``rows`` rows.

    Returns (T, c): T tiles, c units per tile (the last tile holds the rest), with the
    units spread as evenly as the tile size allows and ``extra_last`` spare rows in the
    last tile (the analog bias row). Joshi 2020 maps conv kernels flattened 3-D to 2-D,
    one channel's kh*kw rows together.
    """
    if n_units < 1 or unit_rows < 1:
        raise ValueError(f"need at least one unit of one row, got {n_units} x {unit_rows}")
    max_units = rows // unit_rows
    if max_units < 1 or unit_rows + extra_last > rows:
        raise ValueError(f"one input unit needs {unit_rows + extra_last} rows but a tile has "
                         f"{rows} (TileConfig.rows); use larger tiles")
    n_tiles = math.ceil(n_units / max_units)
    while True:
        per_tile = math.ceil(n_units / n_tiles)
        used = math.ceil(n_units / per_tile)
        last = n_units - (used - 1) * per_tile
        if per_tile <= max_units and last * unit_rows + extra_last <= rows:
            return used, per_tile
        n_tiles += 1


def tile_weights(w: Tensor, n_tiles: int, tile_rows: int) -> Tensor:
    """(g, out_g, fan_in) -> (g, T, out_g, R): zero-pad fan_in to T*R and split it."""
    g, out_g, fan_in = w.shape
    pad = n_tiles * tile_rows - fan_in
    if pad:
        w = torch.nn.functional.pad(w, (0, pad))
    return w.reshape(g, out_g, n_tiles, tile_rows).permute(0, 2, 1, 3).contiguous()


def untile_weights(w_tiles: Tensor, fan_in: int) -> Tensor:
    """Inverse of :func:`tile_weights`: (g, T, out_g, R) -> (g, out_g, fan_in)."""
    g, n_tiles, out_g, tile_rows = w_tiles.shape
    return w_tiles.permute(0, 2, 1, 3).reshape(g, out_g, n_tiles * tile_rows)[..., :fan_in]


def weight_scales(w_tiles: Tensor, cols: int, per_column: bool,
                  bias: Tensor | None = None) -> Tensor:
    """Scale s of each tile column, shape (g, T, out_g): max|W| over the tile or column.

    With ``per_column`` each output of each tile gets its own max|W|; otherwise the
    outputs are grouped in tiles of ``cols`` columns that share one scale (pcm-model.md
    sec. 1: s = g_max / max|W| per tile, here kept in weight units). ``bias`` (g, out_g),
    if it sits on an analog row, counts towards the last tile's scale.
    """
    amax = w_tiles.abs().amax(dim=-1)  # (g, T, out_g)
    if bias is not None:
        amax = amax.clone()
        amax[:, -1] = torch.maximum(amax[:, -1], bias.abs())
    if not per_column:
        g, n_tiles, out_g = amax.shape
        n_col_tiles = math.ceil(out_g / cols)
        pad = n_col_tiles * cols - out_g
        blocks = torch.nn.functional.pad(amax, (0, pad)).reshape(g, n_tiles, n_col_tiles, cols)
        amax = blocks.amax(dim=-1, keepdim=True).expand(-1, -1, -1, cols)
        amax = amax.reshape(g, n_tiles, n_col_tiles * cols)[..., :out_g]
    # An all-zero tile column maps to zero conductance whatever its scale: avoid 0/0.
    return torch.where(amax > 0, amax, torch.ones_like(amax)).contiguous()


def weights_to_conductances(w_norm: Tensor, g_max: float, g_min: float = 0.0
                            ) -> tuple[Tensor, Tensor]:
    """Normalised weights in [-1, 1] -> differential pair (G+, G-) in uS (pcm-model.md sec. 1).

    Positive weights go on G+ (G- = g_min), negative ones on G- (G+ = g_min); full scale is
    g_max on the active device.
    """
    span = g_max - g_min
    return (w_norm.clamp_min(0.0) * span + g_min, (-w_norm).clamp_min(0.0) * span + g_min)


def conductances_to_weights(g_pos: Tensor, g_neg: Tensor, g_max: float, g_min: float = 0.0
                            ) -> Tensor:
    """Differential pair in uS -> normalised weight (G+ - G-) / (g_max - g_min)."""
    return (g_pos - g_neg) / (g_max - g_min)


def pair_significance(pairs: int, gain: float) -> list[float]:
    """Weight of each differential pair in W, most significant first, summing to 1:
    F^(P-1-k) / sum_j F^j (pcm-model.md sec. 1; Mackin 2019, Ambrogio 2018)."""
    if pairs < 1 or gain < 1.0:
        raise ValueError(f"need pairs >= 1 and a pair gain >= 1, got {pairs}, {gain}")
    raw = [gain ** (pairs - 1 - k) for k in range(pairs)]
    total = sum(raw)
    return [r / total for r in raw]


def program_pairs(device: Any, w_norm: Tensor, pairs: int = 1, gain: float = 1.0,
                  closed_loop: bool = False, generator: torch.Generator | None = None,
                  g_min: float = 0.0) -> tuple[Tensor, Tensor]:
    """Program normalised weights in [-1, 1] onto ``pairs`` differential pairs.

    Returns (g_prog, nu), each (P, 2, *w_norm.shape): [k, 0] is G_k+, [k, 1] is G_k-, in
    uS. Open loop, every pair is programmed to the weight itself, so their errors average.
    Closed loop (program-and-verify across devices, Mackin et al. 2019), pair k is
    programmed to what the pairs before it missed, (w - sum_j<k c_j p_j) / sum_j>=k c_j,
    clipped to [-1, 1], where p_j is pair j as programmed (its verify read is taken as
    exact) and c the :func:`pair_significance`. Devices are programmed pair by pair, G+
    before G-, so one pair draws what the plain mapping draws. ``g_min``: see
    :func:`weights_to_conductances`.
    """
    c = pair_significance(pairs, gain)
    g_max = device.g_max
    done = torch.zeros_like(w_norm)
    g_all, nu_all = [], []
    for k in range(pairs):
        target = w_norm
        if closed_loop and k:
            target = ((w_norm - done) / sum(c[k:])).clamp(-1.0, 1.0)
        t_pos, t_neg = weights_to_conductances(target, g_max, g_min)
        g_pos, nu_pos = device.program(t_pos, generator)
        g_neg, nu_neg = device.program(t_neg, generator)
        done = done + c[k] * conductances_to_weights(g_pos, g_neg, g_max, g_min)
        g_all.append(torch.stack([g_pos, g_neg]))
        nu_all.append(torch.stack([nu_pos, nu_neg]))
    return torch.stack(g_all), torch.stack(nu_all)


def read_pairs(device: Any, g_prog: Tensor, nu: Tensor, t: float,
               generator: torch.Generator | None = None) -> Tensor:
    """Read every device of :func:`program_pairs` t s after programming (drift, then fresh
    1/f read noise, pcm-model.md sec. 3-4), pair by pair, G+ before G-: (P, 2, ...) uS."""
    return torch.stack([torch.stack([device.read(g_prog[k, i], nu[k, i], t, generator)
                                     for i in (0, 1)]) for k in range(g_prog.shape[0])])


def combine_pairs(g: Tensor, gain: float, g_max: float, g_min: float = 0.0) -> Tensor:
    """Pairs (P, 2, ...) in uS -> the normalised weight
    sum_k c_k (G_k+ - G_k-) / (g_max - g_min), c the :func:`pair_significance`
    (pcm-model.md sec. 1)."""
    c = pair_significance(g.shape[0], gain)
    w = torch.zeros(g.shape[2:], dtype=g.dtype, device=g.device)
    for k in range(g.shape[0]):
        w = w + c[k] * conductances_to_weights(g[k, 0], g[k, 1], g_max, g_min)
    return w


def dac_levels(bits: int) -> int:
    """Levels on each side of zero of a symmetric ``bits``-bit converter: 2^(bits-1) - 1."""
    return (1 << (bits - 1)) - 1


def dac(x_norm: Tensor, bits: int) -> Tensor:
    """DAC: clip normalised inputs to [-1, 1] and round to 2^bits - 1 symmetric levels.

    Step 1/(2^(bits-1) - 1), e.g. 1/127 for 8 bits (Joshi 2020: 8-bit inputs); bits = 0
    only clips.
    """
    x_norm = x_norm.clamp(-1.0, 1.0)
    if not bits:
        return x_norm
    q = dac_levels(bits)
    return x_norm.mul_(q).round_().div_(q)


def adc(y: Tensor, bits: int, bound: float) -> Tensor:
    """ADC: clip to [-bound, bound] and round to 2^bits - 1 symmetric levels (sec. 5).

    bound = 0 means unbounded (then bits must be 0); bits = 0 only clips.
    """
    if bits and not bound:
        raise ValueError("an ADC with bits > 0 needs a bound > 0")
    y = y.clamp(-bound, bound) if bound else y.clone()
    if bits:
        q = dac_levels(bits)
        if abs(q / bound - 1.0) > 1e-12:  # partial already in ADC codes: skip the pass
            y.mul_(q / bound)
        y.round_().mul_(bound / q)
    return y


def output_noise(y: Tensor, std: float, generator: torch.Generator | None = None,
                 exact: bool = False) -> Tensor:
    """Additive Gaussian output noise of std ``std`` (normalised units), fresh per call."""
    return add_gaussian_(y.contiguous().clone(), std, generator, exact)


def periphery(partial: Tensor, w_scale: Tensor, in_scale: Tensor | float, *,
              out_noise: float, out_bound: float, adc_bits: int,
              alpha: Tensor | None = None, alpha_before_adc: bool = True,
              bias_part: Tensor | None = None,
              generator: torch.Generator | None = None, exact_noise: bool = False,
              inplace: bool = False, partial_unit: float = 1.0,
              clip_count: list[tuple[int, int]] | None = None,
              observe: Callable[[Tensor, float], None] | None = None) -> Tensor:
    """From normalised partial outputs (B, g, T, out_g, L) to digital outputs (B, g, out_g, L).

    Per tile: [+ analog bias row] + output noise, [x GDC alpha, i.e. the ADC range or
    integration time follows the drift], ADC (bound, quantisation); then back to weight
    units (x s x r) and the digital sum over tiles [x alpha after the ADC]. pcm-model.md
    sec. 5 and 6. The same steps as :func:`output_noise` and :func:`adc`, done in place
    on one buffer (``inplace=True`` lets it overwrite ``partial``).

    ``partial`` may be any dense memory layout (e.g. a permuted channels-last view) and
    may count in units of ``partial_unit`` normalised units (e.g. 1/127 when the inputs
    are integer DAC codes): noise, bound and ADC step are expressed in those units
    rather than rescaling the whole tensor. ``w_scale`` (g, T, out_g); ``in_scale`` a
    float or (B, g, T, 1, L) per-vector ranges; ``alpha`` a 0-d tensor or (g, out_g)
    per-column factors; ``bias_part`` the analog bias row's output in normalised units,
    broadcastable to (B, g, out_g, L). ``clip_count``, a list, gets one (conversions
    beyond the bound, conversions) pair per call: how often the ADC saturates.
    ``observe(y, partial_unit)`` is called with what the ADC receives (after the noise and
    an alpha ahead of the ADC), e.g. to calibrate its range.
    """
    if adc_bits and not out_bound:
        raise ValueError("an ADC with bits > 0 needs a bound > 0")
    y = partial if inplace else partial.clone(memory_format=torch.preserve_format)
    if bias_part is not None:
        y[:, :, -1] += bias_part / partial_unit
    add_gaussian_(y, out_noise / partial_unit, generator, exact_noise)
    alpha_t = None
    if alpha is not None:
        alpha_t = alpha if alpha.dim() == 0 else alpha[:, None, :, None]
        if alpha_before_adc:
            y.mul_(alpha_t)
    if observe is not None:
        observe(y, partial_unit)
    bound = out_bound / partial_unit
    if out_bound:
        if clip_count is not None:
            clip_count.append((int((y.abs() > bound).sum()), y.numel()))
        y.clamp_(-bound, bound)
    per_vector = isinstance(in_scale, Tensor) and in_scale.dim() > 0
    # Per-vector ranges: y is rescaled by them in place after the ADC, rather than through
    # a factor as large as y.
    factor = w_scale.unsqueeze(-1) * (1.0 if per_vector else in_scale)
    if adc_bits:
        q = dac_levels(adc_bits)
        if abs(q / bound - 1.0) > 1e-12:  # partial already in ADC codes: skip the pass
            y.mul_(q / bound)
        y.round_()
        factor = factor * (out_bound / q)
    else:
        factor = factor * partial_unit
    if per_vector:
        y.mul_(in_scale)
    # Rescale and sum the few tiles into the first tile's slice of the buffer: faster
    # than a strided reduction, and no new allocation. factor: (g, T, out_g, 1).
    out = y[:, :, 0].mul_(factor.select(-3, 0))
    for t in range(1, y.shape[2]):
        out.addcmul_(y[:, :, t], factor.select(-3, t))
    if alpha is not None and not alpha_before_adc:
        out = out * (alpha if alpha.dim() == 0 else alpha.unsqueeze(-1))
    return out
