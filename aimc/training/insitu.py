"""In-situ training on analog tiles: the network learns on the devices themselves.

Forward and backward passes run on the tiles with their periphery (dynamic input
normalisation, DAC, output noise, ADC from :mod:`aimc.functional.tile`); the weight
update is applied as device pulses by an optimizer-like object that keeps the same
``zero_grad() / loss.backward() / step()`` loop as any torch optimizer:

==================  ==========================================================================
``analog-sgd``      rank-one stochastic pulse coincidence straight onto a PCM pair
                    (Gokmen & Vlasov, Front. Neurosci. 10, 333 (2016))
``mixed-precision`` digital accumulator chi, round(chi / epsilon) SET pulses on a PCM pair,
                    refresh of saturated pairs (Nandakumar et al., Front. Neurosci. 14,
                    406 (2020))
``2t2r3t1c``        W = F (G+ - G-) + g - g_shared: a capacitor g per weight takes every
                    update, periodic closed-loop transfer into the PCM pair, polarity
                    inversion, g_shared per column group (Ambrogio et al., Nature 558, 60
                    (2018))
``tiki-taka``       fast array A (pulse coincidence), slow PCM array C fed by periodic column
                    transfers of A (Gokmen & Haensch, Front. Neurosci. 14, 103 (2020))
==================  ==========================================================================

Where the state lives: device conductances (G+, G-, capacitors, A) and their
device-to-device factors are buffers of each :class:`InSituLinear` (so the model's
``state_dict`` is the chip); the digital side (chi, counters, random generator) is the
optimizer's ``state_dict``. ``layer.weight`` always holds the weight as last read from
the devices (with read noise); forward and backward passes use it through the tile.

Weight scale: a layer maps weights of magnitude ``w_range`` = ``range_factor`` /
sqrt(fan_in) to a conductance difference of ``g_span`` uS on a PCM pair.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..config import TileConfig
from ..devices.pcm import PCM
from ..devices.pulsed import (
    Capacitor,
    PulsedPCM,
    SoftBounds,
    program_pair_closed_loop,
    program_set_only,
    pulse_sparse,
    stochastic_round,
)
from ..functional import tile as ft
from ..nn.layers import mix_seed


def insitu_tile() -> TileConfig:
    """Tile periphery used for in-situ training: one tile per 512 rows/columns, 7-bit
    DAC on per-vector normalised inputs ("noise management"), 9-bit ADC over +-12,
    output noise 0.06 (the defaults of aihwkit's training tiles, IOParameters, so the
    numbers carry over; Gokmen & Vlasov 2016 use the same bound/noise magnitudes)."""
    return TileConfig(rows=512, cols=512, dac_bits=7, input_range="dynamic", adc_bits=9,
                      out_bound=12.0, out_noise=0.06)


@dataclass
class InSituConfig:
    """The analog hardware of in-situ layers: tile periphery, weight scale, PCM reads."""

    tile: TileConfig = field(default_factory=insitu_tile)
    """Periphery of forward (inputs on rows) and backward (errors on columns) reads;
    ``input_range`` must be "dynamic" (no calibration data exists while training)."""
    range_factor: float = 8.0
    """Weight full scale per layer: w_range = range_factor / sqrt(fan_in) (torch's default
    init draws weights within 1 / sqrt(fan_in))."""
    g_span: float = 10.0
    """Conductance difference of a PCM pair (uS) that represents a weight of w_range."""
    read_noise_scale: float = 1.0
    """Scale of the 1/f read noise of the PCM inference model (pcm-model.md sec. 4, at
    t = 0) applied at every weight read during training; 0 = exact reads."""

    def __post_init__(self) -> None:
        if not isinstance(self.tile, TileConfig):
            raise ValueError("InSituConfig.tile must be a TileConfig")
        if self.tile.input_range != "dynamic":
            raise ValueError("InSituConfig.tile.input_range must be 'dynamic' for training "
                             f"(per-vector normalisation), got {self.tile.input_range!r}")
        for key in ("range_factor", "g_span"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"InSituConfig.{key} must be a finite number > 0, "
                                 f"got {value!r}")
        if not (isinstance(self.read_noise_scale, (int, float))
                and 0 <= self.read_noise_scale < 1e3):
            raise ValueError("InSituConfig.read_noise_scale must be a number >= 0, "
                             f"got {self.read_noise_scale!r}")


# ---------------------------------------------------------------------------------------------
# The tiled MVM used by both passes
def tile_mvm(w_norm: Tensor, x: Tensor, rows: int, tile: TileConfig, scale: float,
             generator: torch.Generator | None = None) -> Tensor:
    """y = W x on tiles of ``rows`` inputs: per tile, x / max|x| -> DAC -> W_n x_n ->
    output noise -> ADC, then x scale x max|x| and the digital sum over tiles.

    ``w_norm`` (out, in) normalised weights (W / scale), ``x`` (N, in). Noise management
    of Gokmen & Vlasov 2016 (each vector divided by its own max before the DAC);
    the periphery is :func:`aimc.functional.tile.periphery` (pcm-model.md sec. 5).
    """
    n, fan_in = x.shape
    out = w_norm.shape[0]
    n_tiles = math.ceil(fan_in / rows)
    tile_rows = math.ceil(fan_in / n_tiles)
    pad = n_tiles * tile_rows - fan_in
    if pad:
        x = nn.functional.pad(x, (0, pad))
        w_norm = nn.functional.pad(w_norm, (0, pad))
    xt = x.reshape(n, n_tiles, tile_rows)
    r = xt.abs().amax(dim=-1, keepdim=True).clamp_min(1e-30)  # (N, T, 1)
    x_n = ft.dac(xt / r, tile.dac_bits)
    wt = w_norm.reshape(out, n_tiles, tile_rows).transpose(0, 1)  # (T, out, R)
    partial = torch.bmm(x_n.transpose(0, 1), wt.transpose(1, 2))  # (T, N, out)
    partial = partial.permute(1, 0, 2).reshape(n, 1, n_tiles, out, 1)
    w_scale = torch.full((1, n_tiles, out), float(scale), dtype=x.dtype)
    in_scale = r.reshape(n, 1, n_tiles, 1, 1)
    y = ft.periphery(partial, w_scale, in_scale, out_noise=tile.out_noise,
                     out_bound=tile.out_bound, adc_bits=tile.adc_bits, generator=generator)
    return y.reshape(n, out)


class _TileLinear(torch.autograd.Function):
    """Forward W x and backward W^T d both on the tile; dW = d^T x in digital."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, layer: InSituLinear) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.layer = layer
        tile = layer.insitu_config.tile
        return tile_mvm(weight / layer.w_range, x, tile.rows, tile, layer.w_range,
                        layer.noise_generator())

    @staticmethod
    def backward(ctx, d: Tensor):
        x, weight = ctx.saved_tensors
        layer = ctx.layer
        tile = layer.insitu_config.tile
        dx = None
        if ctx.needs_input_grad[0]:
            # The transposed read: errors enter on the columns, one tile per ``cols``.
            dx = tile_mvm(weight.t() / layer.w_range, d, tile.cols, tile, layer.w_range,
                          layer.noise_generator())
        layer.last_x, layer.last_d = x.detach(), d.detach()  # for rank-one pulse updates
        return dx, d.t() @ x, None


class InSituLinear(nn.Linear):
    """``nn.Linear`` trained in place on analog devices (forward/backward on the tile).

    ``weight`` is a real Parameter holding the weight as last read from the devices; the
    optimizers of this module own the devices (buffers registered on this layer) and
    refresh ``weight`` after every update. The bias stays digital.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 config: InSituConfig | None = None, name: str = "") -> None:
        super().__init__(in_features, out_features, bias)
        self.insitu_config = config if config is not None else InSituConfig()
        if not isinstance(self.insitu_config, InSituConfig):
            raise TypeError("config must be an InSituConfig")
        self.insitu_name = name or f"insitu{in_features}x{out_features}"
        self.w_range = self.insitu_config.range_factor / math.sqrt(in_features)
        self.noise_seed = 0
        self._gen: torch.Generator | None = None
        self.last_x: Tensor | None = None
        self.last_d: Tensor | None = None

    def seed_noise(self, seed: int) -> None:
        """Restart the output-noise stream of forward/backward reads from ``seed``."""
        self.noise_seed = int(seed)
        self._gen = None

    def noise_generator(self) -> torch.Generator | None:
        """The layer's output-noise generator (seeded from ``noise_seed`` and the name)."""
        if not self.insitu_config.tile.out_noise:
            return None
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(
                mix_seed("insitu-out", self.noise_seed, self.insitu_name))
        return self._gen

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        y = _TileLinear.apply(x.reshape(-1, self.in_features), self.weight, self)
        y = y.reshape(*lead, self.out_features)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return super().extra_repr() + f", w_range={self.w_range:.4g}"


def insitu_mlp(sizes: Sequence[int] = (784, 250, 125, 10), config: InSituConfig | None = None,
               analog: bool = True) -> nn.Sequential:
    """The fully connected network of Ambrogio 2018 (784-250-125-10, ReLU between layers).

    ``analog=False`` builds the same network of plain ``nn.Linear`` (the FP32 baseline).
    """
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(InSituLinear(a, b, config=config, name=f"fc{i + 1}") if analog
                      else nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def insitu_layers(model: nn.Module) -> list[InSituLinear]:
    """The in-situ layers of ``model`` in module order."""
    return [m for m in model.modules() if isinstance(m, InSituLinear)]


# ---------------------------------------------------------------------------------------------
# Differential PCM pairs (shared by analog SGD, mixed precision, 2T2R+3T1C, Tiki-Taka's C)
def _set_buffer(layer: nn.Module, name: str, value: Tensor) -> None:
    if name in layer._buffers:
        layer._buffers[name] = value
    else:
        layer.register_buffer(name, value)


def pair_read_noise(g: Tensor, pcm: PCM, scale: float, generator: torch.Generator | None
                    ) -> Tensor:
    """One read of PCM conductances: g + |g| sigma_read(g, t=0) N(0,1), >= 0 (pcm-model.md
    sec. 4; the devices were just programmed, so no drift)."""
    if not scale:
        return g
    std = pcm.read_noise_std(g, 0.0) * scale
    return (g + g.abs() * std * torch.randn(g.shape, generator=generator)).clamp_min(0.0)


class PCMPair:
    """Differential pair W = (G+ - G-) w_range / g_span on a layer, with SET-only PCM.

    ``prefix`` names the buffers (``{prefix}pos``, ``{prefix}neg``, and the per-device
    step factors ``{prefix}d2d_pos``, ``{prefix}d2d_neg``).
    """

    def __init__(self, device: PulsedPCM, prefix: str = "g_") -> None:
        self.device = device
        self.prefix = prefix
        # Read-noise std of each layer's pair, kept while its conductances are unchanged
        # (same tensors, same in-place version): most steps pulse no PCM device at all.
        self._noise_cache: dict[int, dict[str, Any]] = {}

    def tensors(self, layer: nn.Module) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        p = self.prefix
        return (getattr(layer, p + "pos"), getattr(layer, p + "neg"),
                getattr(layer, p + "d2d_pos"), getattr(layer, p + "d2d_neg"))

    def init(self, layer: InSituLinear, w: Tensor, gen: torch.Generator) -> int:
        """RESET both devices, then program ``w`` (weight units) closed-loop on one of them.
        Returns the number of SET pulses used."""
        shape = tuple(w.shape)
        p = self.prefix
        d2d_pos = self.device.sample_d2d(shape, gen)
        d2d_neg = self.device.sample_d2d(shape, gen)
        g_pos = self.device.reset(torch.zeros(shape), None, gen)
        g_neg = self.device.reset(torch.zeros(shape), None, gen)
        for name, value in (("pos", g_pos), ("neg", g_neg), ("d2d_pos", d2d_pos),
                            ("d2d_neg", d2d_neg)):
            _set_buffer(layer, p + name, value)
        return self.program_difference(layer, w / self.unit(layer), gen)

    @staticmethod
    def unit(layer: InSituLinear) -> float:
        """Weight units per uS of pair difference."""
        return layer.w_range / layer.insitu_config.g_span

    def weight(self, layer: InSituLinear, read: bool = False, pcm: PCM | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """(G+ - G-) w_range / g_span; ``read`` adds PCM read noise (one read of each device).

        The two devices' 1/f noises (pcm-model.md sec. 4, t = 0) are independent Gaussians,
        so their difference is drawn as one Gaussian of variance
        (G+ sigma(G+))^2 + (G- sigma(G-))^2. (The per-device clamp at 0 of
        :func:`pair_read_noise` is dropped: sigma <= 0.2, so it would act below -5 std.)
        """
        g_pos, g_neg, _, _ = self.tensors(layer)
        diff = g_pos - g_neg
        scale = layer.insitu_config.read_noise_scale
        if read and pcm is not None and scale:
            # The std is kept while the pair's tensors are unchanged (same objects, same
            # in-place version): in most steps of 2T2R+3T1C no PCM device is pulsed.
            c = self._noise_cache.get(id(layer))
            if not (c is not None and c["pos"] is g_pos and c["neg"] is g_neg
                    and c["version"] == (g_pos._version, g_neg._version)
                    and c["key"] == (id(pcm), float(scale))):
                std = ((g_pos * pcm.read_noise_std(g_pos, 0.0)).square()
                       + (g_neg * pcm.read_noise_std(g_neg, 0.0)).square()).sqrt() * scale
                c = {"pos": g_pos, "neg": g_neg, "version": (g_pos._version, g_neg._version),
                     "key": (id(pcm), float(scale)), "std": std}
                self._noise_cache[id(layer)] = c
            std = c["std"]
            diff = diff + std * torch.randn(diff.shape, generator=generator)
        return diff * self.unit(layer)

    def pulse(self, layer: InSituLinear, n_pos: Tensor, n_neg: Tensor,
              gen: torch.Generator) -> int:
        """Apply SET pulses to G+ (raise W) and G- (lower W); returns the pulse count."""
        g_pos, g_neg, d_pos, d_neg = self.tensors(layer)
        p = self.prefix
        _set_buffer(layer, p + "pos", pulse_sparse(self.device, g_pos, n_pos, d_pos, gen))
        _set_buffer(layer, p + "neg", pulse_sparse(self.device, g_neg, n_neg, d_neg, gen))
        return int(n_pos.sum().item() + n_neg.sum().item())

    def program_difference(self, layer: InSituLinear, delta_g: Tensor, gen: torch.Generator,
                           mask: Tensor | None = None) -> int:
        """Raise G+ by delta_g > 0 or G- by -delta_g (uS), closed-loop (SET only)."""
        g_pos, g_neg, d_pos, d_neg = self.tensors(layer)
        up = delta_g.clamp_min(0.0)
        down = (-delta_g).clamp_min(0.0)
        if mask is not None:
            up, down = up * mask, down * mask
        p = self.prefix
        new_pos, n_pos = program_set_only(self.device, g_pos, g_pos + up, d_pos, gen)
        new_neg, n_neg = program_set_only(self.device, g_neg, g_neg + down, d_neg, gen)
        _set_buffer(layer, p + "pos", new_pos)
        _set_buffer(layer, p + "neg", new_neg)
        return int(n_pos.sum().item() + n_neg.sum().item())

    def program_closed_loop(self, layer: InSituLinear, target: Tensor, tolerance: float,
                            gen: torch.Generator) -> Tensor:
        """Tune G+ - G- to ``target`` (uS) within ``tolerance`` with SET pulses on either
        device (:func:`aimc.devices.pulsed.program_pair_closed_loop`); pulses per pair."""
        g_pos, g_neg, d_pos, d_neg = self.tensors(layer)
        new_pos, new_neg, n = program_pair_closed_loop(self.device, g_pos, g_neg, target,
                                                       d_pos, d_neg, tolerance, gen)
        _set_buffer(layer, self.prefix + "pos", new_pos)
        _set_buffer(layer, self.prefix + "neg", new_neg)
        return n

    def refresh(self, layer: InSituLinear, threshold: float, gen: torch.Generator,
                min_gain: float | None = None) -> tuple[int, int]:
        """Pairs with a device above ``threshold`` uS: read W, RESET both, program W back
        onto one device (Nandakumar 2020, "refresh"). Returns (pairs refreshed, pulses).

        Only pairs whose smaller device sits at least ``min_gain`` uS above RESET (default:
        one mean SET step from RESET) are refreshed: the refresh frees that common mode
        and nothing else, so a pair whose weight alone needs more than ``threshold`` on
        one device would be refreshed again at every check, each time reprogramming it
        (with a programming error, and with a thousand small SET steps near the top)."""
        g_pos, g_neg, _, _ = self.tensors(layer)
        if min_gain is None:
            min_gain = float(self.device.mean_step(torch.tensor(self.device.g_reset)))
        mask = ((torch.maximum(g_pos, g_neg) > threshold)
                & (torch.minimum(g_pos, g_neg) - self.device.g_reset >= min_gain))
        count = int(mask.sum())
        if not count:
            return 0, 0
        diff = g_pos - g_neg
        p = self.prefix
        _set_buffer(layer, p + "pos", self.device.reset(g_pos, mask, gen))
        _set_buffer(layer, p + "neg", self.device.reset(g_neg, mask, gen))
        g_pos, g_neg, _, _ = self.tensors(layer)
        # After the RESET the difference to restore sits on one device only.
        target = diff - (g_pos - g_neg)
        return count, self.program_difference(layer, target, gen, mask.float())

    def granularity(self, layer: InSituLinear) -> float:
        """epsilon: the mean weight change of one SET pulse from the RESET state."""
        g0 = torch.tensor([self.device.g_reset])
        return float(self.device.mean_step(g0)) * self.unit(layer)

    def pcm_devices(self, layer: InSituLinear) -> tuple[Tensor, Tensor, float]:
        """(G+, G-, weight units per uS) for drift evaluation."""
        g_pos, g_neg, _, _ = self.tensors(layer)
        return g_pos, g_neg, self.unit(layer)


def pulse_coincidence(x: Tensor, d: Tensor, lr: float, eps: float, bl: int,
                      gen: torch.Generator, return_lines: bool = False
                      ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, int]:
    """Stochastic pulse-coincidence counts for the update W -= lr d^T x (per sample).

    Gokmen & Vlasov 2016: sample b sends BL pulses on row i with probability
    p_i = C_x |x_bi| and on column j with probability q_j = C_d |d_bj|; a device steps by
    eps once per coincidence, so E[dW_ij] = -BL eps C_x C_d x_bi d_bj = -lr x_bi d_bj with
    C_x C_d = lr / (BL eps). Update management: C_x / C_d = sqrt(max|d_b| / max|x_b|)
    per sample so both probabilities use the same range (clipped at 1).
    Returns (up, down): counts (out, in) of coincidences that raise / lower W, and with
    ``return_lines`` also the number of pulses sent on rows and columns (what the line
    drivers spend, :mod:`aimc.energy.training`).
    """
    n = x.shape[0]
    c = math.sqrt(lr / (bl * eps))
    x_max = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
    d_max = d.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
    cx = c * (d_max / x_max).sqrt()
    cd = c * (x_max / d_max).sqrt()
    px = (cx * x.abs()).clamp_max(1.0)
    pd = (cd * d.abs()).clamp_max(1.0)
    xb = (torch.rand((n, bl, x.shape[1]), generator=gen) < px[:, None, :]).float()
    db = (torch.rand((n, bl, d.shape[1]), generator=gen) < pd[:, None, :]).float()
    xs = (x > 0).float()[:, None, :]
    ds = (d > 0).float()[:, None, :]
    xp, xn = (xb * xs).reshape(n * bl, -1), (xb * (1 - xs)).reshape(n * bl, -1)
    dp, dn = (db * ds).reshape(n * bl, -1), (db * (1 - ds)).reshape(n * bl, -1)
    same = dp.t() @ xp + dn.t() @ xn      # sign(d x) > 0: the gradient says lower W
    opposite = dp.t() @ xn + dn.t() @ xp  # sign(d x) < 0: raise W
    if return_lines:
        return opposite, same, int(xb.sum().item() + db.sum().item())
    return opposite, same


# ---------------------------------------------------------------------------------------------
COUNTERS: dict[str, int] = {
    "pulses": 0, "volatile_pulses": 0, "refreshes": 0, "transfers": 0, "steps": 0,
    "verified_pulses": 0, "line_pulses": 0, "fast_resets": 0}
"""What an in-situ optimizer counts (its ``stats()``): SET pulses on PCM devices, steps of
volatile devices (capacitor, fast array), pairs refreshed, transfers (2T2R+3T1C: weights
moved; Tiki-Taka: elements of A read), optimizer steps, the SET pulses followed by a verify
read (closed-loop programming), pulses sent on rows and columns by pulse-coincidence
updates, and the devices of Tiki-Taka's PCM-pair A reset when full.
:mod:`aimc.energy.training` turns them into energy."""


class InSituOptimizer(torch.optim.Optimizer):
    """Base of the in-situ optimizers: digital parameters get plain SGD, in-situ layers
    get device pulses from :meth:`update_layer`, then their ``weight`` is re-read.

    Use it like any torch optimizer: ``opt.zero_grad(); loss.backward(); opt.step()``.
    Its ``state_dict`` holds the digital state (accumulators, counters, the generator);
    the devices are buffers of the layers (in ``model.state_dict()``).
    """

    name = "insitu"

    def __init__(self, model: nn.Module, lr: float, seed: int = 0,
                 pcm: PCM | None = None) -> None:
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ValueError(f"lr must be a number > 0, got {lr!r}")
        self.layers = insitu_layers(model)
        if not self.layers:
            raise ValueError("the model has no InSituLinear layers (build it with "
                             "aimc.training.insitu_mlp or use InSituLinear)")
        super().__init__([p for p in model.parameters() if p.requires_grad], {"lr": lr})
        self.pcm = pcm if pcm is not None else PCM()
        self.gen = torch.Generator().manual_seed(mix_seed("insitu", self.name, seed))
        self.counters = dict(COUNTERS)
        self._analog = {id(layer.weight) for layer in self.layers}
        with torch.no_grad():
            for layer in self.layers:
                self._programmed(self.init_layer(layer, layer.weight.detach().clone()))
                self._reread(layer)

    # -- subclasses ---------------------------------------------------------------------------
    def init_layer(self, layer: InSituLinear, w: Tensor) -> int:
        """Create the layer's devices and program ``w`` on them; return pulses used."""
        raise NotImplementedError

    def update_layer(self, layer: InSituLinear, lr: float) -> None:
        """Apply one update (layer.weight.grad, or layer.last_x / last_d) as pulses."""
        raise NotImplementedError

    def device_weight(self, layer: InSituLinear, read: bool) -> Tensor:
        """The weight the devices hold (``read``: as one noisy read sees it)."""
        raise NotImplementedError

    def pcm_devices(self, layer: InSituLinear) -> list[tuple[Tensor, Tensor, float]]:
        """The layer's non-volatile PCM pairs (G+, G-, weight units per uS) whose sum
        is the inference weight after :meth:`finalize`."""
        raise NotImplementedError

    def finalize(self) -> None:
        """End of training: move volatile state into PCM (default: nothing to do)."""

    # -- the loop ----------------------------------------------------------------------------
    def _reread(self, layer: InSituLinear) -> None:
        layer.weight.data.copy_(self.device_weight(layer, read=True))

    def _programmed(self, pulses: int) -> None:
        """Count SET pulses of closed-loop programming (each followed by a verify read)."""
        self.counters["pulses"] += pulses
        self.counters["verified_pulses"] += pulses

    def _refresh(self, layer: InSituLinear) -> None:
        """Refresh the saturated PCM pairs of ``layer`` (``self.pair``, ``refresh_threshold``)."""
        count, pulses = self.pair.refresh(layer, self.refresh_threshold, self.gen)
        self.counters["refreshes"] += count
        self._programmed(pulses)

    @torch.no_grad()
    def step(self, closure=None):
        """One update: SGD on digital parameters, device pulses on in-situ layers."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        lr = self.param_groups[0]["lr"]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and id(p) not in self._analog:
                    p.add_(p.grad, alpha=-group["lr"])
        for layer in self.layers:
            if layer.weight.grad is None:
                continue
            self.update_layer(layer, lr)
            self._reread(layer)
        self.counters["steps"] += 1
        return loss

    # -- drift after training --------------------------------------------------------------
    @torch.no_grad()
    def drifted_weights(self, t_seconds: float, seed: int = 0) -> list[Tensor]:
        """Each layer's weight ``t_seconds`` after training ended, as the PCM inference
        model (pcm-model.md sec. 3-4) reads it: a drift exponent per device drawn for
        its final conductance (training ended at t = 0: the last programming of each
        device is taken as that instant), then fresh 1/f read noise. Same seed, same
        drift exponents for every t."""
        out = []
        for layer in self.layers:
            gen_nu = torch.Generator().manual_seed(mix_seed("insitu-nu", seed,
                                                            layer.insitu_name))
            gen_read = torch.Generator().manual_seed(mix_seed("insitu-read", seed, t_seconds,
                                                              layer.insitu_name))
            w = torch.zeros_like(layer.weight)
            for g_pos, g_neg, unit in self.pcm_devices(layer):
                reads = []
                for g in (g_pos, g_neg):
                    nu = self.pcm.sample_nu(g, gen_nu)
                    reads.append(self.pcm.read(g, nu, float(t_seconds), gen_read))
                w += (reads[0] - reads[1]) * unit
            out.append(w)
        return out

    # -- state ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["insitu"] = {"generator": self.gen.get_state(), "counters": dict(self.counters)}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("insitu")
        super().load_state_dict(state_dict)
        self.gen.set_state(extra["generator"])
        # Checkpoints written before a counter existed resume with it at 0.
        self.counters = {**COUNTERS, **extra["counters"]}

    def stats(self) -> dict[str, int]:
        """Pulse, refresh and transfer counts so far."""
        return dict(self.counters)


class _PairOptimizer(InSituOptimizer):
    """Shared by analog SGD and mixed precision: one PCM pair per weight, with refresh."""

    def __init__(self, model: nn.Module, lr: float, device: PulsedPCM | None = None,
                 refresh_every: int = 100, refresh_threshold: float = 12.0, seed: int = 0,
                 pcm: PCM | None = None) -> None:
        self.pair = PCMPair(device if device is not None else PulsedPCM())
        if refresh_every < 0:
            raise ValueError(f"refresh_every must be >= 0 (0 = never), got {refresh_every}")
        if not 0 < refresh_threshold <= self.pair.device.g_max:
            raise ValueError("refresh_threshold must be in (0, device.g_max], got "
                             f"{refresh_threshold}")
        self.refresh_every = refresh_every
        self.refresh_threshold = refresh_threshold
        super().__init__(model, lr, seed, pcm)

    def init_layer(self, layer, w):
        return self.pair.init(layer, w, self.gen)

    def device_weight(self, layer, read):
        return self.pair.weight(layer, read, self.pcm, self.gen)

    def pcm_devices(self, layer):
        return [self.pair.pcm_devices(layer)]

    def _maybe_refresh(self, layer) -> None:
        if self.refresh_every and (self.counters["steps"] + 1) % self.refresh_every == 0:
            self._refresh(layer)


class AnalogSGD(_PairOptimizer):
    """Plain analog SGD on PCM pairs: rank-one updates by stochastic pulse coincidence.

    Gokmen & Vlasov, Front. Neurosci. 10, 333 (2016): each sample's update -lr d x^T is
    applied in parallel as coincidences of BL stochastic pulse trains on rows and
    columns (:func:`pulse_coincidence`); every coincidence is one SET pulse on G+
    (raise W) or G- (lower W). The non-linear, stochastic PCM steps are applied as they
    come: nothing corrects them (the "naive" baseline of Nandakumar 2020). Saturated
    pairs are refreshed like in mixed precision, so the comparison isolates the update.
    """

    name = "analog-sgd"

    def __init__(self, model: nn.Module, lr: float, bl: int = 10, **kwargs: Any) -> None:
        if not (isinstance(bl, int) and bl >= 1):
            raise ValueError(f"bl must be an integer >= 1, got {bl!r}")
        self.bl = bl
        super().__init__(model, lr, **kwargs)

    def update_layer(self, layer, lr):
        up, down, lines = pulse_coincidence(layer.last_x, layer.last_d, lr,
                                            self.pair.granularity(layer), self.bl, self.gen,
                                            return_lines=True)
        self.counters["line_pulses"] += lines
        self.counters["pulses"] += self.pair.pulse(layer, up, down, self.gen)
        self._maybe_refresh(layer)


class MixedPrecision(_PairOptimizer):
    """Mixed-precision training (Nandakumar et al., Front. Neurosci. 14, 406 (2020)).

    The digital unit accumulates every update in a high-precision variable chi
    (chi += -lr dW); when |chi| >= epsilon (the device granularity: the mean weight change
    of one SET pulse) it sends n = trunc(chi / epsilon) pulses to G+ (n > 0) or G- (n < 0)
    and subtracts n epsilon, the nominal amount it asked for: what the imprecise device
    really did is not fed back. Pairs with a device above ``refresh_threshold`` are
    refreshed every ``refresh_every`` steps. Invariant (tested): the pulses' nominal sum
    plus chi equals the total requested update.
    """

    name = "mixed-precision"

    def init_layer(self, layer, w):
        self.state[layer.weight]["chi"] = torch.zeros_like(w)
        self.state[layer.weight]["applied"] = torch.zeros_like(w)
        return super().init_layer(layer, w)

    def update_layer(self, layer, lr):
        st = self.state[layer.weight]
        eps = self.pair.granularity(layer)
        chi = st["chi"]
        chi.add_(layer.weight.grad, alpha=-lr)
        n = torch.trunc(chi / eps)
        chi.sub_(n * eps)
        st["applied"].add_(n * eps)
        self.counters["pulses"] += self.pair.pulse(layer, n.clamp_min(0), (-n).clamp_min(0),
                                                   self.gen)
        self._maybe_refresh(layer)


class MultiConductance(InSituOptimizer):
    """The 2T2R + 3T1C unit cell of Ambrogio et al., Nature 558, 60 (2018).

    W = [F (G+ - G-) + p (g - g_shared)] w_range / (F g_span): a PCM pair of significance
    F (= 3) and a volatile capacitor g of significance 1 whose reference g_shared is shared
    by a group of ``group`` columns (outputs) of each row; p = +-1 is the polarity.
    Every update goes to the capacitors (linear, near-symmetric pulses; the charge leaks
    with ``Capacitor.leak_tau`` over ``image_time`` s per image). Every ``transfer_every``
    images (8,000 in the paper) the weight is moved into the PCM pair: the pair is tuned
    closed-loop towards W / F (program and verify, SET pulses on G+ or G-, see
    :func:`aimc.devices.pulsed.program_pair_closed_loop`) until it is within
    ``tolerance`` PCM steps of it; pairs with a device above ``refresh_threshold`` are
    RESET and reprogrammed; then the polarity of all capacitors is inverted
    (g -> 2 g_shared - g, p -> -p: W unchanged), so that the charge/discharge mismatch of
    the capacitor cancels over successive transfer intervals.

    What g holds after a transfer (``residual``):

    - ``"keep"``: the verify read of the pair gives what the PCM missed of W, and g is
      set to that residual (within its range), so a transfer changes W only by the
      capacitor's write precision. This is how the paper's transfer uses g to correct
      the PCM programming error (Extended Data Fig. 9: the PCM target is W minus an
      offset, and the 3T1C devices correct the residual error);
    - ``"reset"``: g of each programmed weight is reset to g_shared and the PCM error
      stays in W, for subsequent training to correct.

    ``tolerance=None`` selects the older one-sided transfer: only G+ or G- is raised by
    p (g - g_shared) / F with stochastic rounding of the last pulse
    (:func:`aimc.devices.pulsed.program_set_only`), for weights with
    |g - g_shared| >= ``transfer_threshold``.
    """

    name = "2t2r3t1c"

    def __init__(self, model: nn.Module, lr: float, device: PulsedPCM | None = None,
                 capacitor: Capacitor | None = None, gain: float = 3.0, group: int = 128,
                 transfer_every: int = 8000, tolerance: float | None = 0.5,
                 residual: str = "keep", final_tolerance: float = 0.3,
                 transfer_threshold: float = 0.0,
                 image_time: float = 1e-5, refresh_threshold: float = 12.0,
                 g_shared_spread: float = 0.01, seed: int = 0,
                 pcm: PCM | None = None) -> None:
        self.pair = PCMPair(device if device is not None else PulsedPCM())
        self.cap = capacitor if capacitor is not None else Capacitor()
        checks = {"gain": gain > 0, "group": isinstance(group, int) and group >= 1,
                  "transfer_every": isinstance(transfer_every, int) and transfer_every >= 1,
                  "tolerance": tolerance is None or (isinstance(tolerance, (int, float))
                                                     and 0 <= tolerance <= 10),
                  "residual": residual in ("keep", "reset"),
                  "final_tolerance": 0 < final_tolerance <= 10,
                  "transfer_threshold": transfer_threshold >= 0, "image_time": image_time >= 0,
                  "refresh_threshold": 0 < refresh_threshold <= self.pair.device.g_max,
                  "g_shared_spread": g_shared_spread >= 0}
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"MultiConductance.{key} is out of range: "
                                 f"{locals()[key]!r}")
        self.gain, self.group = float(gain), group
        self.transfer_every, self.transfer_threshold = transfer_every, transfer_threshold
        self.tolerance, self.residual = tolerance, residual
        self.final_tolerance = final_tolerance
        self.image_time, self.refresh_threshold = image_time, refresh_threshold
        self.g_shared_spread = g_shared_spread
        self._images = 0
        super().__init__(model, lr, seed, pcm)

    # -- cell geometry ---------------------------------------------------------------------
    def shared(self, layer: InSituLinear) -> Tensor:
        """g_shared expanded to (out, in): one reference per row and column group."""
        return layer.g_shared.repeat_interleave(self.group, dim=0)[: layer.out_features]

    def unit(self, layer: InSituLinear) -> float:
        """Weight units per uS-equivalent of the low-significance part."""
        return layer.w_range / (self.gain * layer.insitu_config.g_span)

    def init_layer(self, layer, w):
        mid = 0.5 * (self.cap.g_min + self.cap.g_max)
        n_groups = math.ceil(layer.out_features / self.group)
        spread = 1.0 + self.g_shared_spread * torch.randn((n_groups, layer.in_features),
                                                          generator=self.gen)
        _set_buffer(layer, "g_shared", mid * spread)
        _set_buffer(layer, "cap", self.shared(layer).clone())
        _set_buffer(layer, "cap_d2d", self.cap.sample_d2d(tuple(w.shape), self.gen))
        _set_buffer(layer, "polarity", torch.tensor(1.0))
        # G+ - G- = W / PCMPair.unit (uS): F (G+ - G-) in the capacitor's units
        # (unit = w_range / (F g_span)) is then W.
        if self.tolerance is None:
            pulses = self.pair.init(layer, w, self.gen)
        else:  # the same closed-loop programming as a transfer, from the RESET state
            pulses = self.pair.init(layer, torch.zeros_like(w), self.gen)
            pulses += int(self.pair.program_closed_loop(
                layer, w / PCMPair.unit(layer), self._tolerance_us(self.tolerance),
                self.gen).sum())
        if self.residual == "keep":
            # As at a transfer: g takes what the programming of the pair missed.
            residual = w / self.unit(layer) - self.gain * (layer.g_pos - layer.g_neg)
            layer.cap = (self.shared(layer) + residual).clamp(self.cap.g_min, self.cap.g_max)
        return pulses

    def _tolerance_us(self, steps: float) -> float:
        """A tolerance in PCM steps (the mean SET step at RESET) in uS of the pair."""
        return steps * float(self.pair.device.mean_step(torch.tensor(self.pair.device.g_reset)))

    def low(self, layer: InSituLinear) -> Tensor:
        """p (g - g_shared) in uS-equivalent."""
        return layer.polarity * (layer.cap - self.shared(layer))

    def device_weight(self, layer, read):
        high = self.pair.weight(layer, read, self.pcm, self.gen) / PCMPair.unit(layer)
        return (self.gain * high + self.low(layer)) * self.unit(layer)

    def pcm_devices(self, layer):
        return [(layer.g_pos, layer.g_neg, self.gain * self.unit(layer))]

    # -- updates ----------------------------------------------------------------------------
    def update_layer(self, layer, lr):
        batch = layer.last_x.shape[0] if layer.last_x is not None else 1
        delta = -lr * layer.weight.grad / self.unit(layer) * layer.polarity  # uS-equivalent
        n = stochastic_round(delta / self.cap.step, self.gen)
        layer.cap = self.cap.pulse(layer.cap, n, layer.cap_d2d, self.gen)
        self.counters["volatile_pulses"] += int(n.abs().sum())
        if self.image_time:
            layer.cap = self.cap.leak(layer.cap, self.shared(layer),
                                      batch * self.image_time)
        if layer is self.layers[-1]:
            self._images += batch
            if self._images >= self.transfer_every:
                self._images = 0
                for each in self.layers:
                    self.transfer(each)

    @torch.no_grad()
    def transfer(self, layer: InSituLinear, threshold: float | None = None) -> None:
        """Move the weight into the PCM pair (closed loop), set g to the residual or reset
        it, refresh saturated pairs, invert the polarity."""
        thr = self.transfer_threshold if threshold is None else threshold
        low = self.low(layer)
        pair = layer.g_pos - layer.g_neg
        total = self.gain * pair + low  # W in uS-equivalent, before the transfer
        mask = (low.abs() >= thr) & (low != 0)
        if self.tolerance is None:
            moved = mask
            if bool(mask.any()):
                self._programmed(self.pair.program_difference(layer, low / self.gain,
                                                              self.gen, mask.float()))
        else:
            tol = self._tolerance_us(self.tolerance)
            target = torch.where(mask, total / self.gain, pair)
            n = self.pair.program_closed_loop(layer, target, tol, self.gen)
            moved = n > 0
            self._programmed(int(n.sum()))
        self.counters["transfers"] += int(moved.sum())
        if self.residual == "reset":
            layer.cap = torch.where(moved, self.shared(layer), layer.cap)
        self._refresh(layer)
        if self.residual == "keep":
            # Verify read after programming: what the PCM pair missed of the total weight
            # is written onto the capacitor (within its range).
            residual = total - self.gain * (layer.g_pos - layer.g_neg)
            layer.cap = (self.shared(layer) + layer.polarity * residual).clamp(
                self.cap.g_min, self.cap.g_max)
        self.invert_polarity(layer)

    @staticmethod
    def invert_polarity_of(layer: InSituLinear, shared: Tensor) -> None:
        """g -> 2 g_shared - g and p -> -p: p (g - g_shared) and so W do not change."""
        layer.cap = 2.0 * shared - layer.cap
        layer.polarity = -layer.polarity

    def invert_polarity(self, layer: InSituLinear) -> None:
        """Polarity inversion of Ambrogio 2018 (W unchanged, see :meth:`invert_polarity_of`)."""
        self.invert_polarity_of(layer, self.shared(layer))

    def finalize(self) -> None:
        """End of training: a last transfer of every weight into PCM, closed-loop to
        ``final_tolerance`` PCM steps (the capacitors are volatile: what is to last must be
        in the PCM pairs, which :meth:`drifted_weights` reads). With ``residual="keep"``
        the capacitors still hold the (small) residual, so the cell's W is unchanged."""
        saved = self.tolerance
        if saved is not None:
            self.tolerance = min(saved, self.final_tolerance)
        try:
            with torch.no_grad():
                for layer in self.layers:
                    self.transfer(layer, threshold=0.0)
                    self._reread(layer)
        finally:
            self.tolerance = saved

    def state_dict(self):
        state = super().state_dict()
        state["insitu"]["images"] = self._images
        return state

    def load_state_dict(self, state_dict):
        self._images = int(state_dict["insitu"].get("images", 0))
        super().load_state_dict(state_dict)


class TikiTaka(InSituOptimizer):
    """Tiki-Taka (Gokmen & Haensch, Front. Neurosci. 14, 103 (2020)).

    The gradient goes by pulse coincidence onto a fast array A; every ``transfer_every``
    steps the next ``columns`` columns of A are read (a forward read with one-hot inputs,
    through output noise and ADC) and added, times ``transfer_lr`` x (lr / initial lr), to
    the slow array C, a PCM pair, as stochastically rounded SET pulses (G+ to raise C,
    G- to lower it). A is not reset after a read. The network weight is W = C + gamma A
    (gamma = 0 by default, as in aihwkit's transfer compound); C's pairs are refreshed
    like mixed-precision pairs.

    Why it tolerates asymmetric devices: A needs a *symmetry point*, a state where up and
    down steps are equal, placed at A = 0. Around it, the device's asymmetry acts as a
    decay of A towards 0 instead of a bias, so A holds a leaky average of recent
    gradients, and C integrates A. Two choices of A:

    - ``fast`` = :class:`aimc.devices.pulsed.SoftBounds` (default): steps shrink linearly
      towards each bound, symmetry point at 0 (the device of the paper, zero-shifted);
    - ``fast`` = :class:`aimc.devices.pulsed.PulsedPCM`: A is itself a PCM pair,
      A ~ A+ - A-. Each device is SET-only, but the pair has a symmetry point: with equal
      numbers of up (A+) and down (A-) pulses the larger device takes the smaller steps
      (mu(G) falls with G), so A+ - A- decays towards 0 while both devices climb; they are
      RESET together (A's content is lost, it is only a running average) when one passes
      ``fast_reset``.

    A's full scale (its ``g_max``, or ``g_span`` for a PCM pair) is ``fast_range`` x w_range
    in weight units: a small A makes its content large against the read noise of a
    transfer (0.06 of full scale); ``transfer_lr`` then sets how fast C follows.
    """

    name = "tiki-taka"

    def __init__(self, model: nn.Module, lr: float, fast: SoftBounds | PulsedPCM | None = None,
                 device: PulsedPCM | None = None, bl: int = 10, transfer_every: int = 1,
                 columns: int = 32, transfer_lr: float = 0.25, fast_range: float = 0.1,
                 gamma: float = 0.0, fast_reset: float = 12.0, refresh_every: int = 100,
                 refresh_threshold: float = 12.0, seed: int = 0, pcm: PCM | None = None
                 ) -> None:
        self.fast = fast if fast is not None else SoftBounds()
        self.fast_pair = PCMPair(self.fast, prefix="a_") if isinstance(self.fast, PulsedPCM) \
            else None
        self.pair = PCMPair(device if device is not None else PulsedPCM(), prefix="c_")
        checks = {"bl": isinstance(bl, int) and bl >= 1,
                  "transfer_every": isinstance(transfer_every, int) and transfer_every >= 1,
                  "columns": isinstance(columns, int) and columns >= 1,
                  "transfer_lr": transfer_lr > 0, "fast_range": fast_range > 0,
                  "gamma": gamma >= 0, "fast_reset": 0 < fast_reset <= 1e3,
                  "refresh_every": isinstance(refresh_every, int) and refresh_every >= 0}
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"TikiTaka.{key} is out of range: {locals()[key]!r}")
        self.bl, self.transfer_every, self.columns = bl, transfer_every, columns
        self.transfer_lr, self.fast_range, self.gamma = transfer_lr, fast_range, gamma
        self.fast_reset = fast_reset
        self.refresh_every, self.refresh_threshold = refresh_every, refresh_threshold
        super().__init__(model, lr, seed, pcm)

    def a_full_scale(self, layer: InSituLinear) -> float:
        """A's full scale in uS(-equivalent): g_max of a soft-bounds A, g_span of a pair."""
        return layer.insitu_config.g_span if self.fast_pair else self.fast.g_max

    def unit_a(self, layer: InSituLinear) -> float:
        """Weight units per uS-equivalent of A (A's full scale is fast_range x w_range)."""
        return self.fast_range * layer.w_range / self.a_full_scale(layer)

    def a_state(self, layer: InSituLinear) -> Tensor:
        """A in uS-equivalent (A+ - A- for a PCM pair)."""
        return layer.a_pos - layer.a_neg if self.fast_pair else layer.a

    def init_layer(self, layer, w):
        if self.fast_pair:
            shape = tuple(w.shape)
            for side in ("pos", "neg"):
                _set_buffer(layer, "a_" + side, self.fast.reset(torch.zeros(shape), None,
                                                                self.gen))
                _set_buffer(layer, "a_d2d_" + side, self.fast.sample_d2d(shape, self.gen))
        else:
            _set_buffer(layer, "a", torch.zeros_like(w))
            _set_buffer(layer, "a_d2d", self.fast.sample_d2d(tuple(w.shape), self.gen))
        self.state[layer.weight]["next_column"] = torch.tensor(0)
        return self.pair.init(layer, w, self.gen)

    def device_weight(self, layer, read):
        w = self.pair.weight(layer, read, self.pcm, self.gen)
        return w + self.gamma * self.a_state(layer) * self.unit_a(layer) if self.gamma else w

    def pcm_devices(self, layer):
        return [self.pair.pcm_devices(layer)]

    def update_layer(self, layer, lr):
        if self.fast_pair:
            eps = float(self.fast.mean_step(torch.tensor(self.fast.g_reset))) * self.unit_a(layer)
        else:
            eps = self.fast.step * self.unit_a(layer)
        up, down, lines = pulse_coincidence(layer.last_x, layer.last_d, lr, eps, self.bl,
                                            self.gen, return_lines=True)
        self.counters["line_pulses"] += lines
        if self.fast_pair:
            self.fast_pair.pulse(layer, up, down, self.gen)
            full = torch.maximum(layer.a_pos, layer.a_neg) > self.fast_reset
            if bool(full.any()):
                for side in ("pos", "neg"):
                    _set_buffer(layer, "a_" + side,
                                self.fast.reset(getattr(layer, "a_" + side), full, self.gen))
                self.counters["fast_resets"] += int(full.sum())
        else:
            layer.a = pulse_sparse(self.fast, layer.a, up, layer.a_d2d, self.gen)
            layer.a = pulse_sparse(self.fast, layer.a, -down, layer.a_d2d, self.gen)
        self.counters["volatile_pulses"] += int(up.sum() + down.sum())
        steps = self.counters["steps"] + 1
        if steps % self.transfer_every == 0:
            self.transfer(layer, lr / self.defaults["lr"])
        if self.refresh_every and steps % self.refresh_every == 0:
            self._refresh(layer)

    @torch.no_grad()
    def transfer(self, layer: InSituLinear, lr_factor: float = 1.0) -> None:
        """Read the next ``columns`` columns of A and add transfer_lr x lr_factor x them to C."""
        st = self.state[layer.weight]
        start = int(st["next_column"])
        cols = [(start + k) % layer.in_features for k in range(self.columns)]
        st["next_column"] = torch.tensor((start + self.columns) % layer.in_features)
        tile = layer.insitu_config.tile
        # One-hot inputs e_i read column i of A: the tile output is A[:, i] (normalised to
        # A's full scale), then output noise and ADC as in every read.
        a = self.a_state(layer)
        partial = (a[:, cols] / self.a_full_scale(layer)).t().reshape(len(cols), 1, 1, -1, 1)
        w_scale = torch.ones((1, 1, layer.out_features))
        read = ft.periphery(partial, w_scale, 1.0, out_noise=tile.out_noise,
                            out_bound=tile.out_bound, adc_bits=tile.adc_bits,
                            generator=self.gen).reshape(len(cols), -1).t()
        # weight units, (out, k)
        delta = self.transfer_lr * lr_factor * read * self.fast_range * layer.w_range
        n = stochastic_round(delta.abs() / self.pair.granularity(layer), self.gen)
        n_pos = torch.zeros_like(layer.weight)
        n_neg = torch.zeros_like(layer.weight)
        n_pos[:, cols] = torch.where(delta > 0, n, torch.zeros_like(n))
        n_neg[:, cols] = torch.where(delta < 0, n, torch.zeros_like(n))
        self.counters["pulses"] += self.pair.pulse(layer, n_pos, n_neg, self.gen)
        self.counters["transfers"] += len(cols) * layer.out_features


ALGORITHMS: dict[str, type[InSituOptimizer]] = {
    cls.name: cls for cls in (AnalogSGD, MixedPrecision, MultiConductance, TikiTaka)}
"""In-situ training algorithms by name (the method names of the results files)."""


def make_optimizer(name: str, model: nn.Module, lr: float, **options: Any) -> InSituOptimizer:
    """Build the in-situ optimizer registered as ``name`` for ``model``."""
    try:
        cls = ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown in-situ algorithm {name!r}; known: {sorted(ALGORITHMS)}"
                         ) from None
    return cls(model, lr, **options)


def iter_batches(x: Tensor, y: Tensor, batch: int, gen: torch.Generator | None = None
                 ) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches of (x, y), shuffled with ``gen`` when given."""
    idx = torch.randperm(len(x), generator=gen) if gen is not None else torch.arange(len(x))
    for i in range(0, len(x), batch):
        j = idx[i:i + batch]
        yield x[j], y[j]
