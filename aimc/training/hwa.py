"""Hardware-aware training: weight-noise injection so a network survives PCM (Joshi 2020).

Joshi et al., Nat. Commun. 11, 2473 (2020), Methods "Training with noise"; pcm-model.md
sec. 8. Start from a trained FP32 network; in every training forward pass add zero-mean
Gaussian noise to the weights of the analog layers, fresh per mini-batch; the backward
pass runs through the same noisy weights and the optimizer updates the clean ones; after
each optimizer step clip every analog layer's weights to ``clip_sigma`` standard
deviations so the conductance range is not spent on outliers. Optionally the DAC, the
ADC and the tile output noise act in training too (rounding passes gradients straight
through). Layers left digital by :func:`aimc.convert` (e.g. the first and last) get no
noise.

The noise is injected through each analog layer's ``hwa`` hook (a callable the layer
runs in training mode), so any torch optimizer, LR schedule or training loop works:
:func:`prepare_hwa` / :func:`remove_hwa` and :func:`clip_weights` for your own loop, or
:func:`train_hwa` for a loop with per-epoch checkpoints and exact resume.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import MappingConfig, check_bool
from ..functional import tile as ft
from ..functional.noise import add_gaussian_
from ..nn.convert import ANALOG_LAYERS, analog_layers, batch_norms
from ..nn.layers import AnalogLayerMixin, mix_seed
from ..parallel import rank_world

NOISE_KINDS = ("none", "gaussian", "pcm", "pcm-drift")
BN_STATS = ("batch", "running", "frozen")
CHECKPOINT_FORMAT = "aimc-hwa-1"


@dataclass
class HWAConfig:
    """Hardware-aware (noise-injection) training of the analog layers (pcm-model.md sec. 8)."""

    noise: str = "gaussian"
    """Weight noise in training: "gaussian" (std = eta * max|W| of the layer), "pcm"
    (per weight, the PCM programming noise of its mapped conductance pair; one pair from
    0 uS only), "pcm-drift" (the whole device chain: programming, drift with its
    device-to-device spread and read noise at a random time in [t_min, t_max], then
    global drift compensation; follows the layer's MappingConfig) or "none"."""
    eta: float = 0.04
    """Relative std of the "gaussian" noise, in units of the layer's max|W| (0.02-0.1
    typical; 0.04 is about the PCM programming noise at g_max, 1.06 uS / 25 uS)."""
    pcm_scale: float = 1.0
    """Multiplies the std of the "pcm" noise (1 = the device model's sigma_prog) and the
    deviation of the "pcm-drift" weights from the clean ones (1 = the device model)."""
    t_min: float = 1.0
    """"pcm-drift": shortest read time in s after programming."""
    t_max: float = 31_536_000.0
    """"pcm-drift": longest read time in s (one year); each layer draws a fresh time per
    mini-batch, log-uniform in [t_min, t_max]."""
    clip_sigma: float = 2.5
    """After each optimizer step clip each analog layer's weights to +- clip_sigma times
    their standard deviation; 0 = no clipping."""
    dac_adc: bool = False
    """Simulate the input DAC and the output ADC of the tiles in training (rounding with a
    straight-through gradient; one ADC over the whole layer output, with the layer's range,
    ``layer.adc_range()``: a range from :func:`aimc.calibrate_outputs`, else the tile's)."""
    out_noise: bool = False
    """Add the tiles' output noise (TileConfig.out_noise) in training."""
    distill: float = 0.0
    """Weight a of knowledge distillation from a clean teacher (``train_hwa(teacher=...)``,
    e.g. the FP32 network): loss = (1 - a) CE(student, y) + a T^2 KL(teacher_T || student_T)
    with both logits divided by ``distill_temperature`` (Hinton et al. 2015; as a defence
    against analog noise, Zhou et al., "Noisy machines", 2020). 0 = off."""
    distill_temperature: float = 4.0
    """Softmax temperature T of the distillation term."""
    bn_stats: str = "batch"
    """What batch norm normalises with in training: "batch" (each mini-batch's statistics,
    the torch default), "running" (the running statistics, which still track the batch
    statistics with the layer's momentum) or "frozen" (the running statistics, never
    updated). Gamma and beta train in every case. With batch statistics each mini-batch's
    normalisation removes the per-channel shift its weight noise causes, so the network
    never learns to tolerate the shift a programmed chip shows before AdaBS."""
    sam_rho: float = 0.0
    """Radius of adaptive sharpness-aware minimisation on the analog weights (SAM, Foret
    et al., ICLR 2021; adaptive form ASAM, Kwon et al., ICML 2021): each step first moves
    every analog weight uphill by e = rho T^2 g / ||T g|| with T = |W| + 0.01 max|W| of
    its layer (a step scaled to each weight's size, as the PCM error grows with the
    conductance), takes the gradient again there under fresh weight noise, and applies
    that gradient to the unmoved weights. It seeks minima that are flat against weight
    errors rather than only against the sampled ones; it doubles the cost of a step.
    In a model with no analog layers it acts on every Linear/Conv weight
    (:func:`sam_weights`), so an FP32 baseline can share the optimizer.
    0 = off (docs/joshi2020.md measures 0.5 and 2 on ResNet-32)."""

    def __post_init__(self) -> None:
        if self.noise not in NOISE_KINDS:
            raise ValueError(f"HWAConfig.noise must be one of {list(NOISE_KINDS)}, "
                             f"got {self.noise!r}")
        if not (isinstance(self.distill, (int, float)) and not isinstance(self.distill, bool)
                and 0 <= self.distill <= 1):
            raise ValueError(f"HWAConfig.distill must be a weight in [0, 1], "
                             f"got {self.distill!r}")
        for name in ("eta", "pcm_scale", "clip_sigma", "distill_temperature", "sam_rho"):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (ok and math.isfinite(value) and 0 <= value <= 100):
                raise ValueError(f"HWAConfig.{name} must be a number in [0, 100], "
                                 f"got {value!r}")
        for name in ("t_min", "t_max"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and value >= 0):
                raise ValueError(f"HWAConfig.{name} must be a number of seconds >= 0, "
                                 f"got {value!r}")
        if self.distill_temperature <= 0:
            raise ValueError(f"HWAConfig.distill_temperature must be > 0, "
                             f"got {self.distill_temperature!r}")
        if self.t_max < self.t_min:
            raise ValueError(f"HWAConfig.t_max must be >= t_min, got {self.t_max} < "
                             f"{self.t_min}")
        if self.bn_stats not in BN_STATS:
            raise ValueError(f"HWAConfig.bn_stats must be one of {list(BN_STATS)}, "
                             f"got {self.bn_stats!r}")
        for name in ("dac_adc", "out_noise"):
            check_bool("HWAConfig", name, getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields."""
        return dataclasses.asdict(self)


# -- pure tensor functions ------------------------------------------------------------------
def gaussian_weight_std(w: Tensor, eta: float) -> Tensor:
    """std = eta * max|W| (Joshi 2020 Methods; pcm-model.md sec. 8), a 0-d tensor."""
    return eta * w.detach().abs().max()


def pcm_weight_std(w: Tensor, device: Any, scale: float = 1.0) -> Tensor:
    """Per-weight std of PCM programming noise, in weight units (pcm-model.md sec. 1-2).

    The layer is mapped with s = g_max / max|W|, a weight on one device of its pair at
    g_T = s |w| and the other at 0; both are programmed with sigma_prog(g_T), so the
    weight's std is sqrt(sigma_prog(s|w|)^2 + sigma_prog(0)^2) / s (Gaussian, ignoring
    the clipping of conductances at 0).
    """
    w = w.detach()
    w_max = w.abs().max().clamp_min(1e-30)
    g_target = w.abs() / w_max * device.g_max
    sig = device.prog_noise_std(g_target)
    sig0 = device.prog_noise_std(torch.zeros((), dtype=w.dtype, device=w.device))
    return scale * torch.sqrt(sig * sig + sig0 * sig0) * (w_max / device.g_max)


def pcm_drift_weight(w: Tensor, device: Any, t: float, generator: torch.Generator | None = None,
                     scale: float = 1.0, mapping: MappingConfig | None = None) -> Tensor:
    """The weights a PCM chip holds t s after programming, drift-compensated (no gradient).

    The weight part of :func:`pcm_drift_read`, which documents the model.
    """
    return pcm_drift_read(w, device, t, generator, scale, mapping)[0]


def pcm_drift_read(w: Tensor, device: Any, t: float, generator: torch.Generator | None = None,
                   scale: float = 1.0, mapping: MappingConfig | None = None
                   ) -> tuple[Tensor, Tensor]:
    """The weights a PCM chip holds t s after programming, drift-compensated (no gradient).

    pcm-model.md sec. 1-4 and 6 (Joshi 2020 Methods): map with s = g_max / max|W| onto a
    differential pair (G+ = s w for w > 0, else G- = -s w), program both devices
    (programming noise, drift exponent with its spread), read them at time t (drift and
    1/f read noise), rescale by the global factor sum(g_prog) / sum(g(t)) that GDC
    applies, and map back to weight units. ``scale`` multiplies the deviation from ``w``.
    Returns the weights and alpha (a 0-d tensor): GDC multiplies the tile's analog outputs,
    and so its output noise, by alpha (sec. 6). One scale s for the whole layer: the chip's
    per-tile scales differ only in layers split over several tiles, where this slightly
    overstates the noise of the smaller tiles. With ``mapping.pairs`` > 1 the weight is
    programmed on several pairs as the chip does (``functional.tile.program_pairs``) and
    alpha weighs each pair's conductances by its significance; ``mapping.g_min`` puts
    zero at that conductance.
    """
    w = w.detach()
    w_max = w.abs().max().clamp_min(1e-30)
    g_min = mapping.g_min if mapping is not None else 0.0
    if mapping is not None and mapping.pairs > 1:
        g, nu = ft.program_pairs(device, w / w_max, mapping.pairs, mapping.pair_gain,
                                 mapping.pair_programming == "closed", generator, g_min)
        g_t = ft.read_pairs(device, g, nu, t, generator)
        c = torch.tensor(ft.pair_significance(mapping.pairs, mapping.pair_gain))
        alpha = (c * g.flatten(1).sum(1)).sum() / (c * g_t.flatten(1).sum(1)).sum().clamp_min(
            1e-30)
        w_t = ft.combine_pairs(g_t, mapping.pair_gain, device.g_max, g_min) * (alpha * w_max)
        return w + scale * (w_t.to(w.dtype) - w), alpha
    s = (device.g_max - g_min) / w_max
    g_target = torch.stack([(s * w).clamp_min(0.0) + g_min, (-s * w).clamp_min(0.0) + g_min])
    g_prog, nu = device.program(g_target, generator)
    g_t = device.read(g_prog, nu, t, generator)
    alpha = g_prog.sum() / g_t.sum().clamp_min(1e-30)
    w_t = (g_t[0] - g_t[1]) * (alpha / s)
    return w + scale * (w_t.to(w.dtype) - w), alpha


def distillation_loss(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """T^2 KL(softmax(teacher / T) || softmax(student / T)), batch mean (Hinton et al.,
    "Distilling the knowledge in a neural network", 2015, eq. 2 and the T^2 factor)."""
    t = float(temperature)
    return F.kl_div(F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1),
                    reduction="batchmean", log_target=True) * (t * t)


def round_ste(x: Tensor) -> Tensor:
    """round(x) forward, identity gradient (straight-through estimator, Bengio 2013)."""
    return x + (torch.round(x) - x).detach()


class _ConverterSTE(torch.autograd.Function):
    """``x`` [+ std * N(0, 1)], clipped to +-bound and rounded to the converter's levels, in
    one buffer; the gradient passes where the (noisy) value lay inside the range."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, bits: int, bound: Tensor | float, std: float,
                generator: torch.Generator | None) -> Tensor:
        y = x.clone(memory_format=torch.preserve_format)
        if std:
            add_gaussian_(y, std, generator)  # the inference tiles' fast noise source
        q = torch.clamp(y, min=-bound, max=bound)
        ctx.save_for_backward(q.eq(y))
        if bits:
            levels = ft.dac_levels(bits)
            q.mul_(levels / bound).round_().mul_(bound / levels)
        return q

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def converter_ste(x: Tensor, bits: int, bound: Tensor | float, std: float = 0.0,
                  generator: torch.Generator | None = None) -> Tensor:
    """The tile periphery in training (pcm-model.md sec. 5): ``std`` output noise (from
    the fixed Gaussian table of :mod:`aimc.functional.noise`), then a converter that
    clips to [-bound, bound] and rounds to 2^bits - 1 symmetric levels, as
    :func:`aimc.functional.tile.dac`; straight-through gradient inside the range (Bengio
    et al. 2013; Joshi et al. 2020 Methods). ``bits = 0``: clip only. Fused into one
    buffer and one saved mask, rather than a chain of autograd operations."""
    return _ConverterSTE.apply(x, bits, bound, std, generator)


def quantize_ste(x: Tensor, bits: int, bound: Tensor | float) -> Tensor:
    """Clip to [-bound, bound] and round to 2^bits - 1 symmetric levels (the DAC/ADC of
    :func:`aimc.functional.tile.dac`), with a straight-through gradient inside the range."""
    return converter_ste(x, bits, bound)


@torch.no_grad()
def clip_weights(model: nn.Module, clip_sigma: float) -> None:
    """Clip every analog layer's weight to +- clip_sigma * std(W) of that layer (sec. 8)."""
    if clip_sigma <= 0:
        return
    for _, layer in analog_layers(model):
        w = layer.weight
        bound = clip_sigma * float(w.std())
        w.clamp_(-bound, bound)


# -- the training-mode forward of an analog layer ---------------------------------------------
class NoiseInjection:
    """The ``hwa`` hook of analog layers: ``(layer, x) -> y`` in training mode.

    Draws the weight noise (and output noise) from one generator shared by the layers of
    a model, in forward order, so a seed fixes every sample. Not an ``nn.Module``: it holds
    no state that belongs in a ``state_dict``.
    """

    def __init__(self, config: HWAConfig, generator: torch.Generator) -> None:
        self.config = config
        self.generator = generator

    def noisy_weight(self, layer: AnalogLayerMixin) -> Tensor:
        """W + std * N(0, 1), fresh per call; gradients flow to the clean W."""
        return self.draw(layer)[0]

    def draw(self, layer: AnalogLayerMixin) -> tuple[Tensor, float]:
        """The noisy weight and the gain GDC applies to the tile outputs (1 but for
        "pcm-drift", where it is alpha at the drawn read time)."""
        w = layer.weight
        cfg = self.config
        if cfg.noise == "none":
            return w, 1.0
        if cfg.noise == "pcm-drift":
            # One read time per layer and mini-batch, log-uniform: the chip is read at
            # every age from t_min to t_max.
            u = float(torch.rand((), generator=self.generator))
            lo, hi = math.log(cfg.t_min + 1e-9), math.log(cfg.t_max + 1e-9)
            t = math.exp(lo + u * (hi - lo))
            w_chip, alpha = pcm_drift_read(w, layer.analog_config.device, t, self.generator,
                                           cfg.pcm_scale, layer.analog_config.mapping)
            return w + (w_chip.to(w.device) - w.detach()), float(alpha)
        if cfg.noise == "gaussian":
            if not cfg.eta:
                return w, 1.0
            std = gaussian_weight_std(w, cfg.eta)
        else:
            std = pcm_weight_std(w, layer.analog_config.device, cfg.pcm_scale)
        noise = torch.randn(w.shape, generator=self.generator, dtype=w.dtype)
        return w + std * noise.to(w.device), 1.0

    def __call__(self, layer: AnalogLayerMixin, x: Tensor) -> Tensor:
        w, gain = self.draw(layer)
        return self.forward_with(layer, x, w, gain)

    def forward_with(self, layer: AnalogLayerMixin, x: Tensor, w: Tensor, gain: float
                     ) -> Tensor:
        """The layer's training-mode output with weights ``w`` (drawn by
        :meth:`draw`, whose GDC ``gain`` scales the output noise): the DAC, output
        noise and ADC of the config on top (Joshi et al. 2020 Methods). A recurrent layer
        draws ``w`` once per sequence and calls this at every time step."""
        cfg = self.config
        if not (cfg.dac_adc or cfg.out_noise):
            return _forward_with(layer, x, w, layer.bias)
        tile = layer.analog_config.tile
        # Input range: the calibrated static range, else each sample's max|x|.
        if tile.input_range == "static" and float(layer.input_range) > 0:
            r: Tensor | float = float(layer.input_range)
        else:
            dims = tuple(range(1, x.dim()))
            r = x.detach().abs().amax(dim=dims, keepdim=True).clamp_min(1e-12)
        # The tile's normalised units: weights / max|W| (the clean weights set the mapping),
        # inputs / r (r keeps x's dimensions, so it broadcasts over the output too).
        unit = layer.weight.detach().abs().max().clamp_min(1e-30) * r
        if not cfg.dac_adc:
            y = _forward_with(layer, x, w, layer.bias)
            if not tile.out_noise:
                return y
            # One fused pass: the noise goes straight into weight units (the digital bias
            # is additive, so adding it first changes nothing).
            noise = add_gaussian_(torch.zeros_like(y), 1.0, self.generator)
            std = unit * (tile.out_noise * math.sqrt(layer.geometry().n_tiles) * gain)
            return torch.addcmul(y, noise, std)
        if tile.dac_bits:
            x = converter_ste(x, tile.dac_bits, r)
        y = _forward_with(layer, x, w, None)
        # T tiles each add their own noise before the digital sum; GDC's gain (the
        # drifted tile's alpha) amplifies it with the shrunken signal.
        std = (tile.out_noise * math.sqrt(layer.geometry().n_tiles) * gain
               if cfg.out_noise else 0.0)
        adc_bits, out_bound = layer.adc_range()  # a calibrated range, else the tile's
        # The ADC range follows GDC (alpha applied ahead of the ADC, the chip default): in
        # the compensated units its step and bound are those of the tile. One unit for
        # the batch (static input range): convert in weight units, saving two passes.
        u = float(unit) if unit.dim() == 0 else unit
        if out_bound and isinstance(u, float):
            y = converter_ste(y, adc_bits, out_bound * u, std * u, self.generator)
        elif out_bound:
            y = converter_ste(y / u, adc_bits, out_bound, std, self.generator) * u
        elif std:
            y = torch.addcmul(y, add_gaussian_(torch.zeros_like(y), 1.0, self.generator),
                              std * u)
        if layer.bias is not None:
            y = y + layer.bias_for(y)
        return y


def _forward_with(layer: AnalogLayerMixin, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    if isinstance(layer, nn.Linear):
        return F.linear(x, w, b)
    return layer._conv_forward(x, w, b)


def prepare_hwa(model: nn.Module, config: HWAConfig | None = None, seed: int = 0
                ) -> NoiseInjection:
    """Switch noise injection on for every analog layer of ``model`` (training mode only).

    Returns the shared hook; its ``generator`` (seeded with ``seed``) draws all the noise.
    Undo with :func:`remove_hwa`. Layers left digital get no noise.
    """
    config = config if config is not None else HWAConfig()
    if not isinstance(config, HWAConfig):
        raise TypeError(f"config must be an HWAConfig, got {type(config).__name__}")
    if config.noise in ("pcm", "pcm-drift"):
        for name, layer in analog_layers(model):
            if not hasattr(layer.analog_config.device, "prog_noise_std"):
                raise ValueError(f"HWAConfig.noise='{config.noise}' needs a PCM-like device; "
                                 f"layer '{name}' has "
                                 f"{type(layer.analog_config.device).__name__}")
            m = layer.analog_config.mapping
            if config.noise == "pcm" and (m.pairs > 1 or m.g_min > 0):
                # pcm_weight_std is the one-pair, zero-floor programming noise
                raise ValueError(f"HWAConfig.noise='pcm' models one device pair from 0 uS; "
                                 f"layer '{name}' maps to {m.pairs} pair(s) from g_min = "
                                 f"{m.g_min} uS: use noise='pcm-drift', which follows the "
                                 "mapping")
    hook = NoiseInjection(config, torch.Generator().manual_seed(seed))
    for _, layer in analog_layers(model):
        layer.hwa = hook
    return hook


def remove_hwa(model: nn.Module) -> None:
    """Switch noise injection off: analog layers train as plain digital layers again."""
    for _, layer in analog_layers(model):
        layer.hwa = None


# -- the training loop -------------------------------------------------------------------------
def _save_atomic(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a :func:`train_hwa` checkpoint safely (``weights_only=True``)."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an aimc HWA training checkpoint")
    return state


def average_gradients(model: nn.Module, n_local: int) -> None:
    """Synchronous data-parallel SGD (as in Goyal et al. 2017, "Accurate, large minibatch
    SGD"): every gradient becomes the mean over all processes' samples, each process's
    mean-loss gradient weighted by its ``n_local`` samples (one flat all-reduce), so the
    step is the one-process step on the union of the shards."""
    import torch.distributed as dist

    grads = [p.grad for p in model.parameters() if p.grad is not None]
    n = torch.tensor([float(n_local)])
    dist.all_reduce(n)
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads]).mul_(n_local / float(n))
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def _sync_state(model: nn.Module) -> None:
    """Every process starts from rank 0's parameters and buffers (as DDP does)."""
    import torch.distributed as dist

    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)


def _average_bn_stats(bns: list[nn.modules.batchnorm._BatchNorm]) -> None:
    """Batch-norm running statistics averaged over the processes (each saw its shards)."""
    import torch.distributed as dist

    world = rank_world()[1]
    for bn in bns:
        for buf in (bn.running_mean, bn.running_var):
            if buf is not None:
                dist.all_reduce(buf)
                buf.div_(world)


def train_hwa(model: nn.Module, loader: Iterable, epochs: int, *,
              config: HWAConfig | None = None,
              optimizer: torch.optim.Optimizer | None = None,
              scheduler: Any = None, scheduler_interval: str = "step",
              loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
              teacher: nn.Module | None = None,
              checkpoint: str | os.PathLike | None = None, seed: int = 0,
              progress: bool = False, desc: str = "HWA training") -> list[dict[str, float]]:
    """Hardware-aware fine-tuning (Joshi et al. 2020 Methods; pcm-model.md sec. 8).

    Trains ``model`` for ``epochs`` passes over ``loader`` (``(x, y)`` batches) with weight
    noise injected into every analog layer in training mode (:class:`HWAConfig`), and
    clips the weights after every optimizer step. Any optimizer (default: SGD, lr 0.01,
    momentum 0.9, weight decay 1e-4) and LR scheduler work; ``scheduler`` is stepped after
    every batch (``scheduler_interval="step"``) or every epoch (``"epoch"``). A model with
    no analog layers trains as plain FP32, so a baseline can share the loop.

    With ``checkpoint`` (a file path), model, optimizer, scheduler, RNG state and history
    are saved atomically after every epoch, and an existing checkpoint is resumed from:
    the run continues exactly as if it had not been interrupted (the noise of epoch e is
    seeded from (seed, e); a loader with ``set_epoch`` is told the epoch). Returns the
    history: one ``{"epoch", "loss", "train_accuracy", "lr"}`` per epoch.

    ``teacher`` (with ``HWAConfig.distill`` > 0): a clean network, put in eval mode, whose
    logits on the same batch the noisy student also learns (:func:`distillation_loss`).

    Data-parallel under ``torchrun`` (``torch.distributed`` initialised, e.g. gloo): give
    each process its shard of every batch (``CifarLoader(..., shard=(rank, world))``).
    The processes start from rank 0's weights, draw the same weight noise (the same
    ``seed``), average their gradients over all samples at every step
    (:func:`average_gradients`) and their batch-norm running statistics at every epoch
    end; rank 0 writes the checkpoint. A step is then the one-process step on the whole
    batch, up to summation order, except that batch norm normalises each shard with its
    own statistics (as DDP without SyncBatchNorm) and output noise in training
    (``out_noise``) is drawn per shard.
    """
    if not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
    if scheduler_interval not in ("step", "epoch"):
        raise ValueError(f"scheduler_interval must be 'step' or 'epoch', "
                         f"got {scheduler_interval!r}")
    config = config if config is not None else HWAConfig()
    if optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                                    weight_decay=1e-4)
    loss_fn = loss_fn if loss_fn is not None else F.cross_entropy
    if (teacher is not None) != (config.distill > 0):
        raise ValueError("HWAConfig.distill > 0 needs train_hwa(teacher=...), and a teacher "
                         "needs HWAConfig.distill > 0")
    if teacher is not None:
        teacher.eval()
    history: list[dict[str, float]] = []
    start = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.is_file():
        state = load_checkpoint(path)
        # Fields added since the checkpoint was written count as their defaults.
        saved = {**HWAConfig().to_dict(), **state["config"]}
        if saved != config.to_dict():
            raise ValueError(f"checkpoint {path} was written with HWAConfig "
                             f"{state['config']}, not {config.to_dict()}; use another path")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        history = list(state["history"])
        start = int(state["epoch"])
    rank, world = rank_world()
    if world > 1:
        _sync_state(model)
    hook = prepare_hwa(model, config, seed)
    was_training = model.training
    bar = None
    bns = batch_norms(model)
    tracking = [m.register_forward_pre_hook(_track_bn_stats) for m in bns
                if config.bn_stats == "running"]
    try:
        for epoch in range(start, epochs):
            hook.generator.manual_seed(mix_seed("hwa", seed, epoch))
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)
            model.train()
            if config.bn_stats != "batch":
                for m in bns:
                    m.eval()  # normalise with the running statistics
            if progress and rank == 0:
                from tqdm import tqdm
                total = len(loader) if hasattr(loader, "__len__") else None
                bar = tqdm(total=total, desc=f"{desc} {epoch + 1}/{epochs}", leave=False)
            loss_sum, correct, seen = 0.0, 0, 0
            for x, y in loader:
                out, loss = train_step(model, optimizer, x, y, config, loss_fn, teacher, bns)
                if scheduler is not None and scheduler_interval == "step":
                    scheduler.step()
                n = int(y.numel())
                loss_sum += float(loss.detach()) * n
                correct += int((out.detach().argmax(dim=-1) == y).sum())
                seen += n
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
            if bar is not None:
                bar.close()
                bar = None
            if scheduler is not None and scheduler_interval == "epoch":
                scheduler.step()
            if world > 1:  # the epoch's figures over every process's samples
                import torch.distributed as dist

                totals = torch.tensor([loss_sum, float(correct), float(seen)],
                                      dtype=torch.float64)
                dist.all_reduce(totals)
                loss_sum, correct, seen = float(totals[0]), int(totals[1]), int(totals[2])
                _average_bn_stats(bns)
            if seen == 0:
                raise ValueError("train_hwa: the loader gave no batches")
            history.append({"epoch": epoch + 1, "loss": loss_sum / seen,
                            "train_accuracy": correct / seen,
                            "lr": float(optimizer.param_groups[0]["lr"])})
            if path is not None and rank == 0:
                _save_atomic({
                    "format": CHECKPOINT_FORMAT, "epoch": epoch + 1,
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "rng": torch.get_rng_state(), "history": history,
                    "config": config.to_dict()}, path)
            if path is not None and world > 1:
                import torch.distributed as dist

                dist.barrier()  # the checkpoint exists before any process goes on
    finally:
        if bar is not None:
            bar.close()
        for handle in tracking:
            handle.remove()
        remove_hwa(model)
        model.train(was_training)
    return history


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
               config: HWAConfig, loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
               teacher: nn.Module | None = None,
               bns: list[nn.modules.batchnorm._BatchNorm] | None = None
               ) -> tuple[Tensor, Tensor]:
    """One hardware-aware step of :func:`train_hwa` (Joshi et al. 2020 Methods): forward with
    the injected noise of ``prepare_hwa``, loss (with distillation from ``teacher``),
    backward, the ASAM second pass when ``config.sam_rho`` (:func:`sam_perturbation`), the
    optimizer step and the clipping. ``bns``: the batch-norm layers whose running statistics
    the second pass restores (default: all of the model's that track them). Returns the
    logits and loss of the first pass. Under ``torch.distributed`` the gradients are
    averaged over the processes (:func:`average_gradients`)."""
    optimizer.zero_grad(set_to_none=True)
    out = model(x)
    soft = None
    if teacher is not None:
        with torch.no_grad():
            soft = teacher(x)
    loss = _step_loss(out, y, loss_fn, soft, config)
    loss.backward()
    parallel = rank_world()[1] > 1
    if parallel:  # before ASAM, so every process climbs along the same gradient
        average_gradients(model, int(y.shape[0]))
    if config.sam_rho:
        _sam_second_pass(model, x, y, loss_fn, soft, config,
                         batch_norms(model) if bns is None else bns)
        if parallel:
            average_gradients(model, int(y.shape[0]))
    optimizer.step()
    clip_weights(model, config.clip_sigma)
    return out, loss


def _step_loss(out: Tensor, y: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor],
               soft: Tensor | None, config: HWAConfig) -> Tensor:
    loss = loss_fn(out, y)
    if soft is None:
        return loss
    return ((1 - config.distill) * loss
            + config.distill * distillation_loss(out, soft, config.distill_temperature))


def sam_perturbation(weights: list[Tensor], grads: list[Tensor], rho: float,
                     floor: float = 0.01) -> list[Tensor]:
    """The adaptive SAM ascent step (Kwon et al., ICML 2021, eq. 8 with the normalisation
    operator T_w = |w| + floor * max|W| per tensor):
    e = rho T^2 g / ||T g||, the norm taken over all the tensors together (Foret et al.,
    ICLR 2021, eq. 2, is the case T = 1). Returns one step per weight tensor; all zeros
    when every gradient is zero."""
    scaled = [(w.detach().abs() + floor * w.detach().abs().max()) for w in weights]
    norm = torch.sqrt(sum(((t * g) ** 2).sum() for t, g in zip(scaled, grads, strict=True)))
    if float(norm) == 0.0:
        return [torch.zeros_like(w) for w in weights]
    return [rho * t * t * g / norm for t, g in zip(scaled, grads, strict=True)]


def sam_weights(model: nn.Module) -> list[Tensor]:
    """The weights ASAM perturbs (Kwon et al., ICML 2021): those of the analog layers, or,
    in a model with none (an FP32 baseline trained with the same optimizer), those of every
    Linear/Conv layer, i.e. the layers :func:`aimc.convert` would put on tiles."""
    analog = [layer.weight for _, layer in analog_layers(model)]
    if analog:
        return analog
    return [m.weight for m in model.modules() if type(m) in ANALOG_LAYERS]


def _sam_second_pass(model: nn.Module, x: Tensor, y: Tensor,
                     loss_fn: Callable[[Tensor, Tensor], Tensor], soft: Tensor | None,
                     config: HWAConfig, bns: list[nn.modules.batchnorm._BatchNorm]) -> None:
    """Replace the gradients in ``model`` with those at the ASAM-perturbed analog weights
    (:func:`sam_perturbation`); the weights and the batch-norm running statistics come
    back as they were after the first pass, so one step still counts one batch."""
    weights = [w for w in sam_weights(model) if w.grad is not None]
    if not weights:
        return
    steps = sam_perturbation(weights, [w.grad for w in weights], config.sam_rho)
    clean = [w.detach().clone() for w in weights]  # (w + e) - e need not give w back
    saved = [(bn.running_mean.clone(), bn.running_var.clone(),
              bn.num_batches_tracked.clone()) for bn in bns]
    with torch.no_grad():
        for w, e in zip(weights, steps, strict=True):
            w.add_(e)
    try:
        for p in model.parameters():
            p.grad = None
        _step_loss(model(x), y, loss_fn, soft, config).backward()
    finally:
        with torch.no_grad():
            for w, w0 in zip(weights, clean, strict=True):
                w.copy_(w0)
            for bn, (mean, var, n) in zip(bns, saved, strict=True):
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
                bn.num_batches_tracked.copy_(n)


@torch.no_grad()
def _track_bn_stats(bn: nn.modules.batchnorm._BatchNorm, args: tuple) -> None:
    """Update ``bn``'s running statistics from its input, as a training-mode forward would
    (momentum, or a cumulative average when momentum is None; unbiased variance), while
    the layer itself normalises with the running statistics (``bn_stats="running"``)."""
    x = args[0].detach()
    dims = [d for d in range(x.dim()) if d != 1]
    n = x.numel() // x.shape[1]
    mean = x.mean(dim=dims)
    var = x.var(dim=dims, unbiased=n > 1)
    bn.num_batches_tracked.add_(1)
    m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    bn.running_mean.mul_(1 - m).add_(mean, alpha=m)
    bn.running_var.mul_(1 - m).add_(var, alpha=m)


__all__ = [
    "BN_STATS",
    "NOISE_KINDS",
    "HWAConfig",
    "NoiseInjection",
    "clip_weights",
    "converter_ste",
    "distillation_loss",
    "gaussian_weight_std",
    "load_checkpoint",
    "pcm_drift_read",
    "pcm_drift_weight",
    "pcm_weight_std",
    "prepare_hwa",
    "quantize_ste",
    "remove_hwa",
    "round_ste",
    "sam_perturbation",
    "sam_weights",
    "train_hwa",
    "train_step",
]
