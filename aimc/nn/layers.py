"""Analog layers: torch layers whose weights live on tiles of PCM differential pairs.

Each class subclasses its torch layer, so ``weight`` stays a real ``nn.Parameter`` and
optimizers, ``state_dict``, ``deepcopy`` and ``torch.save`` keep working. The chip
state (programmed conductances, drift exponents, scales, the effective weights at the
current time, drift compensation) lives in buffers: a ``state_dict`` is a snapshot of
the chip. The physics is in :mod:`aimc.devices` and :mod:`aimc.functional`; these
modules only hold state and call them.

In training mode a layer computes the plain digital layer, or, when hardware-aware
training has set its ``hwa`` hook (:func:`aimc.training.prepare_hwa`), the digital layer
with weight noise and optional periphery effects; in eval mode it runs on the programmed
tiles and refuses to run before :func:`aimc.program`.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import AnalogConfig
from ..functional import tile as ft

# Buffers that hold the chip; empty until programmed, resized on load_state_dict.
CHIP_BUFFERS = ("g_pos", "g_neg", "nu_pos", "nu_neg", "w_scale", "w_tiles", "b_tiles",
                "gdc_ref", "alpha")
GDC_OFF, GDC_LAYER, GDC_COLUMN = 0, 1, 2
_GDC_CAL_VECTORS = 128


def join_name(prefix: str, key: str) -> str:
    """A submodule's dotted name under ``prefix`` (the root's name is "")."""
    return f"{prefix}.{key}" if prefix else key


def mix_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts, stable across processes and platforms."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True)
class Geometry:
    """How one layer's weight is laid out on tiles (see :mod:`aimc.functional.tile`)."""

    groups: int
    """Independent matrices (conv groups)."""
    out_g: int
    """Outputs per group."""
    fan_in: int
    """Crossbar rows a matrix needs (without the analog bias row)."""
    unit_rows: int
    """Rows per input unit (kh*kw for a conv channel, 1 for a dense input)."""
    n_tiles: int
    """Tiles along the inputs, T."""
    units_per_tile: int
    """Input units per tile, c."""

    @property
    def tile_rows(self) -> int:
        """Rows used per tile, R = c * unit_rows (the last tile is zero-padded to R)."""
        return self.units_per_tile * self.unit_rows


class AnalogLayerMixin:
    """Chip state and the analog forward shared by every analog layer type."""

    analog_config: AnalogConfig
    analog_name: str

    # -- set-up ------------------------------------------------------------------------------
    def _init_analog(self, config: AnalogConfig, name: str = "") -> None:
        if not isinstance(config, AnalogConfig):
            raise TypeError(f"config must be an aimc AnalogConfig, got {type(config).__name__}")
        self.analog_config = config
        self.analog_name = name or type(self).__name__
        self.calibrating = False
        self.calib_quantile = 1.0
        self._noise_gen: torch.Generator | None = None
        self._range_stats: list[float] = []
        # Hardware-aware training hook, set by aimc.training.prepare_hwa: a callable
        # (layer, x) -> y run in training mode instead of the plain digital layer.
        self.hwa = None
        # Set to a list by aimc.inference.adc_saturation: (clipped, conversions) per read.
        self.adc_clips: list[tuple[int, int]] | None = None
        # Set to a list by aimc.inference.calibrate_outputs: the ADC is off and each read
        # appends the out_quantile of |ADC input| (normalised units).
        self.out_stats: list[float] | None = None
        self.out_quantile = 1.0
        dev = self.weight.device
        for key in CHIP_BUFFERS:
            self.register_buffer(key, torch.empty(0, device=dev))
        self.register_buffer("input_range", torch.tensor(0.0, device=dev))
        # ADC range from aimc.calibrate_outputs (normalised units); 0 = TileConfig.out_bound.
        self.register_buffer("output_bound", torch.tensor(0.0, device=dev))
        self.register_buffer("chip_seed", torch.tensor(-1, dtype=torch.int64, device=dev))
        self.register_buffer("read_seed", torch.tensor(-1, dtype=torch.int64, device=dev))
        self.register_buffer("t_s", torch.tensor(0.0, dtype=torch.float64, device=dev))
        self.register_buffer("gdc_mode", torch.tensor(GDC_OFF, dtype=torch.int64, device=dev))
        self.register_buffer("gdc_before_adc", torch.tensor(True, device=dev))

    def __getstate__(self):
        # Scratch buffers and derived weights are caches, not state: keep them out of
        # copies and pickles.
        state = dict(self.__dict__)
        state.pop("_dac_buf", None)
        state.pop("_w_fwd", None)
        return state

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Chip buffers change shape when a layer is programmed: adopt the saved shapes.
        for key in CHIP_BUFFERS:
            saved = state_dict.get(prefix + key)
            if saved is not None and saved.shape != getattr(self, key).shape:
                setattr(self, key, torch.empty_like(saved))
        # State saved before calibrated ADC ranges existed: the config's range.
        state_dict.setdefault(prefix + "output_bound", torch.zeros(()))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._noise_gen = None  # restart the output-noise stream of the loaded time

    # -- shape of the layer (subclasses) -------------------------------------------------------
    def weight_matrix(self) -> Tensor:
        """The weight as (groups, out_g, fan_in) matrices, the crossbar view."""
        raise NotImplementedError

    def _unit_rows(self) -> int:
        raise NotImplementedError

    def _mvm_static(self, x_n: Tensor, w: Tensor, geo: Geometry
                    ) -> tuple[Tensor, tuple[int, ...]]:
        raise NotImplementedError

    def _mvm_dynamic(self, x: Tensor, w: Tensor, geo: Geometry
                     ) -> tuple[Tensor, Tensor, tuple[int, ...]]:
        """Per-vector DAC ranges r; the crossbar sees x q / r rounded (integer DAC codes,
        q levels; without DAC bits q = 1 and no rounding). Returns (partial outputs, r,
        output shape)."""
        raise NotImplementedError

    def _digital_forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def bias_for(self, out: Tensor) -> Tensor:
        """The bias shaped to broadcast over the layer's output ``out``: along dim 1 (the
        channels of a conv's (B, C, ...) output)."""
        return self.bias.reshape((-1,) + (1,) * (out.dim() - 2))

    @property
    def analog_bias(self) -> bool:
        """True when the bias sits on an analog crossbar row."""
        return self.bias is not None and not self.analog_config.mapping.digital_bias

    def geometry(self) -> Geometry:
        """Tile layout of this layer under its config."""
        w = self.weight_matrix()
        groups, out_g, fan_in = w.shape
        unit_rows = self._unit_rows()
        n_tiles, per_tile = ft.split_units(fan_in // unit_rows, unit_rows,
                                           self.analog_config.tile.rows,
                                           extra_last=int(self.analog_bias))
        return Geometry(groups, out_g, fan_in, unit_rows, n_tiles, per_tile)

    @property
    def programmed(self) -> bool:
        """Whether :meth:`program_chip` (or a loaded chip) has set the conductances."""
        return self.g_pos.numel() > 0

    # -- programming, drift, compensation -----------------------------------------------------
    @torch.no_grad()
    def program_chip(self, seed: int) -> None:
        """Map the weights to conductance pairs and program every device once (sec. 1-3).

        Samples programming noise and drift exponents, then reads the chip at t = 0 and
        keeps that read as the reference of global drift compensation (sec. 6).
        """
        cfg = self.analog_config
        geo = self.geometry()
        gen = torch.Generator().manual_seed(mix_seed("program", seed, self.analog_name))
        w_tiles = ft.tile_weights(self.weight_matrix().detach().float().cpu(),
                                  geo.n_tiles, geo.tile_rows)
        bias = self._bias_matrix(geo)
        scale = ft.weight_scales(w_tiles, cfg.tile.cols,
                                 cfg.mapping.weight_scaling == "column", bias)
        w_norm = ft.untile_weights(w_tiles / scale.unsqueeze(-1), geo.fan_in)
        if bias is not None:
            w_norm = torch.cat([w_norm, (bias / scale[:, -1]).unsqueeze(-1)], dim=-1)
        m = cfg.mapping
        g, nu = ft.program_pairs(cfg.device, w_norm, m.pairs, m.pair_gain,
                                 m.pair_programming == "closed", gen, m.g_min)
        if m.pairs == 1:  # one pair keeps the plain (g, out_g, fan_in) buffers
            g, nu = g[0], nu[0]
        dev = self.weight.device
        # Own storage per buffer (not views of one stack), as a state_dict snapshot expects.
        self.g_pos, self.g_neg = (g.select(-4, i).clone().to(dev) for i in (0, 1))
        self.nu_pos, self.nu_neg = (nu.select(-4, i).clone().to(dev) for i in (0, 1))
        self.w_scale = scale.to(dev)
        self.chip_seed.fill_(seed)
        self.gdc_ref = torch.empty(0, device=dev)
        self.drift_chip(0.0)
        self.gdc_ref = self._gdc_read()
        self._update_alpha()

    def _bias_matrix(self, geo: Geometry) -> Tensor | None:
        if not self.analog_bias:
            return None
        return self.bias.detach().float().cpu().reshape(geo.groups, geo.out_g)

    @torch.no_grad()
    def drift_chip(self, t_seconds: float, seed: int | None = None) -> None:
        """Conductances ``t_seconds`` after programming, with fresh read noise (sec. 3-4).

        Computes the effective weights once, for every forward pass until the next call.
        ``seed`` defaults to one derived from the chip seed and t, so the same chip read
        at the same time gives the same numbers.
        """
        self._require_programmed("drift")
        t = float(t_seconds)
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"t_seconds must be a finite time >= 0, got {t_seconds!r}")
        geo = self.geometry()
        dev = self.analog_config.device
        if seed is None:
            seed = mix_seed("read", int(self.chip_seed), t, self.analog_name)
        gen = torch.Generator().manual_seed(mix_seed("read", seed, self.analog_name))
        g = torch.stack([self.g_pos.cpu(), self.g_neg.cpu()], dim=-4)
        nu = torch.stack([self.nu_pos.cpu(), self.nu_neg.cpu()], dim=-4)
        if g.dim() == 4:  # one pair: (2, g, out_g, fan_in)
            g, nu = g.unsqueeze(0), nu.unsqueeze(0)
        m = self.analog_config.mapping
        w_norm = ft.combine_pairs(ft.read_pairs(dev, g, nu, t, gen), m.pair_gain, dev.g_max,
                                  m.g_min)
        w_norm = w_norm.to(self.weight.device)
        if self.analog_bias:
            self.b_tiles = w_norm[..., -1].contiguous()
            w_norm = w_norm[..., :-1]
        self.w_tiles = ft.tile_weights(w_norm, geo.n_tiles, geo.tile_rows)
        self.t_s.fill_(t)
        self.read_seed.fill_(seed)
        self._noise_gen = None
        self._update_alpha()

    def effective_weight(self) -> Tensor:
        """The weight the chip holds now, in weight units, shaped like ``weight``."""
        self._require_programmed("read the effective weight of")
        geo = self.geometry()
        w = ft.untile_weights(self.w_tiles * self.w_scale.unsqueeze(-1), geo.fan_in)
        return w.reshape(self.weight.shape)

    def _gdc_read(self) -> Tensor:
        """Mean |y| per output for a fixed calibration input (sec. 6), shape (g, out_g)."""
        geo = self.geometry()
        gen = torch.Generator().manual_seed(mix_seed("gdc-calibration", geo.fan_in))
        x_cal = torch.rand(geo.fan_in, _GDC_CAL_VECTORS, generator=gen) * 2 - 1
        w = ft.untile_weights(self.w_tiles * self.w_scale.unsqueeze(-1), geo.fan_in)
        y = w @ x_cal.to(w.device)
        if self.analog_bias:
            y = y + (self.b_tiles * self.w_scale[:, -1]).unsqueeze(-1)
        return y.abs().mean(dim=-1)

    def set_gdc(self, mode: int, before_adc: bool = True) -> None:
        """Turn global drift compensation off, per layer or per column (sec. 6).

        ``before_adc`` applies alpha to the analog output ahead of the ADC (the ADC range or
        integration time tracks the drift); otherwise alpha scales the digital result.
        """
        self._require_programmed("compensate")
        self.gdc_mode.fill_(mode)
        self.gdc_before_adc.fill_(before_adc)
        self._update_alpha()

    def _update_alpha(self) -> None:
        mode = int(self.gdc_mode)
        if mode == GDC_OFF or self.gdc_ref.numel() == 0:
            self.alpha = torch.empty(0, device=self.weight.device)
            return
        now = self._gdc_read()
        if mode == GDC_LAYER:
            ref, now = self.gdc_ref.mean(), now.mean()
            self.alpha = ref / now if now > 0 else torch.ones_like(ref)
        else:
            self.alpha = torch.where(now > 0, self.gdc_ref / now.clamp_min(1e-30),
                                     torch.ones_like(now))

    # -- forward -------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        if self.calibrating:
            self._record_range(x)
            return self._digital_forward(x)
        if self.training:
            hwa = getattr(self, "hwa", None)
            return self._digital_forward(x) if hwa is None else hwa(self, x)
        return self.analog_forward(x)

    def _require_programmed(self, what: str) -> None:
        if not self.programmed:
            raise RuntimeError(
                f"{type(self).__name__} '{self.analog_name}' is not programmed: call "
                f"aimc.program(model, seed=...) before you {what} it")

    def adc_range(self) -> tuple[int, float]:
        """(bits, bound) of this layer's ADC (pcm-model.md sec. 5): the range set by
        :func:`aimc.calibrate_outputs` if any, else ``TileConfig.out_bound``; (0, 0), no
        ADC, while ``calibrate_outputs`` observes the layer."""
        tile = self.analog_config.tile
        if getattr(self, "out_stats", None) is not None:
            return 0, 0.0
        own = getattr(self, "output_bound", None)  # absent in older pickles
        own = float(own) if own is not None else 0.0
        return tile.adc_bits, own if own > 0 else tile.out_bound

    def analog_forward(self, x: Tensor) -> Tensor:
        """The layer on its tiles: DAC, crossbar MVM, output noise, ADC, digital sum (sec. 5)."""
        self._require_programmed("evaluate")
        tile = self.analog_config.tile
        adc_bits, out_bound = self.adc_range()
        geo = self.geometry()
        if tile.input_range == "static":
            r = float(self.input_range)
            if not r > 0:
                raise RuntimeError(
                    f"{type(self).__name__} '{self.analog_name}' has no static input range: "
                    "call aimc.calibrate_inputs(model, loader) first, or use "
                    "TileConfig(input_range='dynamic')")
            # DAC as integer codes (unit 1/q): three passes over the input, in the memory
            # layout the crossbar kernel prefers.
            q = ft.dac_levels(tile.dac_bits) if tile.dac_bits else 1
            x_n = self._scaled_input(x, q / r, self._input_format(geo))
            x_n.clamp_(-q, q)
            if tile.dac_bits:
                x_n.round_()
            # Weights pre-scaled by the ADC's codes per unit and the DAC step, so the
            # crossbar output comes out in ADC codes: no rescaling pass.
            w_fwd, unit = self._forward_weights(adc_bits, out_bound, 1.0 / q)
            partial, out_shape = self._mvm_static(x_n, w_fwd, geo)
            in_scale = r
            bias_in: Tensor | float = r
        else:
            q = ft.dac_levels(tile.dac_bits) if tile.dac_bits else 1
            w_fwd, unit = self._forward_weights(adc_bits, out_bound, 1.0 / q)
            partial, in_scale, out_shape = self._mvm_dynamic(x, w_fwd, geo)
            bias_in = in_scale[:, :, -1]  # (B, g, 1, L): the last tile's ranges
        bias_part = None
        if self.analog_bias:
            # The bias row is driven by a constant input of 1, which goes through the DAC
            # like any other input of the last tile.
            bias_part = self.b_tiles.unsqueeze(-1) * ft.dac(1.0 / torch.as_tensor(bias_in),
                                                            tile.dac_bits)
        if self._noise_gen is None and tile.out_noise:
            # Output noise is temporal: a stream per (chip, read), restarted by drift/load.
            seed = mix_seed("out", int(self.read_seed), self.analog_name)
            self._noise_gen = torch.Generator().manual_seed(seed)
        out = ft.periphery(
            partial, self.w_scale, in_scale, out_noise=tile.out_noise,
            out_bound=out_bound, adc_bits=adc_bits,
            alpha=self.alpha if self.alpha.numel() else None,
            alpha_before_adc=bool(self.gdc_before_adc),
            bias_part=bias_part, generator=self._noise_gen,
            exact_noise=tile.exact_noise, inplace=True, partial_unit=unit,
            clip_count=getattr(self, "adc_clips", None),  # absent in older pickles
            observe=self._record_output if getattr(self, "out_stats", None) is not None
            else None)
        out = out.reshape(out_shape)
        if self.bias is not None and not self.analog_bias:
            out.add_(self.bias_for(out))
        return out

    def _forward_weights(self, adc_bits: int, out_bound: float, input_unit: float
                         ) -> tuple[Tensor, float]:
        """Weights for the crossbar kernel and the unit its output counts in.

        With an ADC the effective weights are pre-multiplied by ``input_unit`` x (ADC codes
        per normalised unit), so the MVM of input codes yields ADC codes; the product is a
        derived cache, rebuilt when the chip's weights change. Returns (weights, unit of
        the output in normalised units).
        """
        if not adc_bits:
            return self.w_tiles, input_unit
        code = ft.dac_levels(adc_bits) / out_bound
        factor = code * input_unit
        w = self.w_tiles
        cache = getattr(self, "_w_fwd", None)
        # Keyed on the tensor object itself (drift assigns a new one, load_state_dict bumps
        # its version), never on its address, which a new tensor may reuse.
        if cache is None or cache[0] is not w or cache[1] != (w._version, factor):
            cache = (w, (w._version, factor), w * factor)
            self._w_fwd = cache
        return cache[2], 1.0 / code

    def _input_format(self, geo: Geometry) -> torch.memory_format:
        """Memory layout of the DAC output that the static crossbar kernel runs fastest on."""
        return torch.contiguous_format

    def _scaled_input(self, x: Tensor, scale: float, fmt: torch.memory_format) -> Tensor:
        """``x * scale`` in layout ``fmt``. Without autograd it is written into a buffer
        reused across calls (a fresh multi-MB allocation per call costs page faults
        comparable to the MVM); under autograd it is a fresh tensor."""
        if torch.is_grad_enabled():
            return (x * scale).contiguous(memory_format=fmt)
        buf = getattr(self, "_dac_buf", None)
        if (buf is None or buf.shape != x.shape or buf.dtype != x.dtype
                or buf.device != x.device or not buf.is_contiguous(memory_format=fmt)):
            buf = torch.empty_like(x, memory_format=fmt)
            self._dac_buf = buf
        return torch.mul(x, scale, out=buf)

    def _with_bias_input(self, r: Tensor, tile_dim: int) -> Tensor:
        """Per-vector ranges, > 0; the last tile's also covers the bias row's input of 1."""
        r = r.clamp_min(1e-30)
        if self.analog_bias:
            r = r.clone()
            r.select(tile_dim, -1).clamp_min_(1.0)
        return r

    # -- static input ranges and ADC ranges ----------------------------------------------------
    def _record_range(self, x: Tensor) -> None:
        self._range_stats.append(abs_quantile(x, self.calib_quantile))

    def _record_output(self, y: Tensor, unit: float) -> None:
        self.out_stats.append(abs_quantile(y, self.out_quantile) * unit)


def abs_quantile(x: Tensor, q: float) -> float:
    """The ``q`` quantile of |x| over all elements (q = 1: the maximum; 0 if empty), as a
    converter range calibrated from data: a quantile just below 1 spends the levels on
    the bulk, not on rare outliers (pcm-model.md sec. 5)."""
    a = x.detach().abs().flatten().float()
    if a.numel() == 0:
        return 0.0
    if q >= 1.0:
        return float(a.max())
    k = max(1, min(a.numel(), math.ceil(q * a.numel())))
    return float(a.kthvalue(k).values)


def _flatten_lead(x: Tensor, features: int) -> Tensor:
    return x.reshape(-1, features)


class AnalogLinear(AnalogLayerMixin, nn.Linear):
    """``nn.Linear`` on PCM tiles (one matrix; inputs split over tiles of ``rows``)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 config: AnalogConfig | None = None, name: str = "", device=None,
                 dtype=None) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias, device, dtype)
        self._init_analog(config if config is not None else AnalogConfig(), name)

    def weight_matrix(self) -> Tensor:
        """(1, out_features, in_features)."""
        return self.weight.unsqueeze(0)

    def _unit_rows(self) -> int:
        return 1

    def _digital_forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def bias_for(self, out: Tensor) -> Tensor:
        """The bias, which broadcasts along the last dim of a linear output (*, out)."""
        return self.bias

    def _mvm_static(self, x_n, w_tiles, geo):
        lead = x_n.shape[:-1]
        x2 = _flatten_lead(x_n, self.in_features)
        if geo.n_tiles == 1:
            y = F.linear(x2, w_tiles[0, 0])
            return y.view(y.shape[0], 1, 1, -1, 1), (*lead, self.out_features)
        xt = self._pad_tiles(x2, geo)  # (N, T, R)
        y = torch.bmm(xt.transpose(0, 1), w_tiles[0].transpose(1, 2))  # (T, N, out)
        return y.permute(1, 0, 2).unsqueeze(1).unsqueeze(-1), (*lead, self.out_features)

    def _mvm_dynamic(self, x, w_tiles, geo):
        lead = x.shape[:-1]
        xt = self._pad_tiles(_flatten_lead(x, self.in_features), geo)  # (N, T, R)
        r = self._with_bias_input(xt.abs().amax(dim=-1, keepdim=True), 1)
        bits = self.analog_config.tile.dac_bits
        x_n = xt * ((ft.dac_levels(bits) if bits else 1) / r)  # |x_n| <= q: no clipping
        if bits:
            x_n = x_n.round_()
        y = torch.bmm(x_n.transpose(0, 1), w_tiles[0].transpose(1, 2))  # (T, N, out)
        partial = y.permute(1, 0, 2).unsqueeze(1).unsqueeze(-1)
        in_scale = r.unsqueeze(1).unsqueeze(-1)  # (N, 1, T, 1, 1)
        return partial, in_scale, (*lead, self.out_features)

    @staticmethod
    def _pad_tiles(x2: Tensor, geo: Geometry) -> Tensor:
        pad = geo.n_tiles * geo.tile_rows - x2.shape[1]
        if pad:
            x2 = F.pad(x2, (0, pad))
        return x2.view(x2.shape[0], geo.n_tiles, geo.tile_rows)

    @classmethod
    def from_digital(cls, m: nn.Linear, config: AnalogConfig, name: str = "") -> AnalogLinear:
        """An analog copy of ``m`` sharing its weight and bias Parameters."""
        new = cls(m.in_features, m.out_features, m.bias is not None, config, name,
                  device="meta")
        return _adopt(new, m, config, name)


# Unfolded-patch floats per chunk of a batch with dynamic input ranges (8 MB).
_PATCH_CHUNK_FLOATS = 1 << 21
_scratch = threading.local()


def _patch_scratch(numel: int, like: Tensor) -> Tensor:
    """A flat buffer of at least ``numel`` elements, shared by every layer of this thread
    and reused across calls: a fresh one of this size costs more in page faults than
    filling it, and one per layer would hold hundreds of MB."""
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None:
        bufs = _scratch.bufs = {}
    key = (like.device, like.dtype)
    buf = bufs.get(key)
    if buf is None or buf.numel() < numel:
        buf = bufs[key] = like.new_empty(numel)
    return buf[:numel]


class _AnalogConvNd(AnalogLayerMixin):
    """Shared code of the analog convolutions (kernel flattened 3-D to 2-D, sec. 5)."""

    _nd: int
    _conv = staticmethod(F.conv2d)

    def weight_matrix(self) -> Tensor:
        """(groups, out_channels / groups, in_channels / groups * prod(kernel))."""
        g = self.groups
        return self.weight.reshape(g, self.out_channels // g, -1)

    def _unit_rows(self) -> int:
        return math.prod(self.kernel_size)

    def _digital_forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight, self.bias)

    def _padded_input(self, x: Tensor) -> tuple[Tensor, tuple]:
        """Apply non-zero padding modes up front, as torch does; return the conv padding."""
        if self.padding_mode != "zeros":
            return F.pad(x, self._reversed_padding_repeated_twice,
                         mode=self.padding_mode), (0,) * self._nd
        return x, self.padding

    def _mvm_static(self, x_n, w_tiles, geo):
        # Quantised inputs are elementwise, so the native conv over channel groups equals the
        # per-tile matrix multiply of unfolded patches.
        x_n, padding = self._padded_input(x_n)
        batch = x_n.shape[0]
        c_per_group = self.in_channels // self.groups
        pad_c = geo.n_tiles * geo.units_per_tile - c_per_group
        if pad_c:
            x_n = x_n.reshape(batch, self.groups, c_per_group, *x_n.shape[2:])
            x_n = F.pad(x_n, (0, 0) * self._nd + (0, pad_c))
            x_n = x_n.reshape(batch, -1, *x_n.shape[3:])
        w = w_tiles.reshape(-1, geo.units_per_tile, *self.kernel_size)
        conv_groups = self.groups * geo.n_tiles
        y = self._conv(x_n, w, None, self.stride, padding, self.dilation, conv_groups)
        spatial = y.shape[2:]
        # (B, g*T*out_g, *spatial) -> (B, g, T, out_g, L) as a view of any dense layout.
        partial = y.unflatten(1, (self.groups, geo.n_tiles, geo.out_g)).flatten(4)
        return partial, (batch, self.out_channels, *spatial)

    def _input_format(self, geo: Geometry) -> torch.memory_format:
        # oneDNN's grouped convolution (tiles or conv groups) is several times faster
        # channels-last than NCHW on CPUs.
        if self._nd == 2 and self.groups * geo.n_tiles > 1:
            return torch.channels_last
        return torch.contiguous_format

    def analog_forward(self, x: Tensor) -> Tensor:
        # Dynamic ranges unfold the patches: run a large batch in chunks whose patches fit
        # in a few MB, so that they are still in cache when the crossbar product reads them.
        if self.analog_config.tile.input_range == "dynamic" and x.dim() == self._nd + 2:
            geo = self.geometry()
            per_image = (geo.groups * geo.n_tiles * geo.tile_rows * math.prod(x.shape[2:])
                         // math.prod(self.stride))
            chunk = max(1, _PATCH_CHUNK_FLOATS // max(per_image, 1))
            if x.shape[0] > chunk:
                # (two-argument super: a comprehension has its own scope)
                return torch.cat([super(_AnalogConvNd, self).analog_forward(part)
                                  for part in x.split(chunk)])
        return super().analog_forward(x)

    def _mvm_dynamic(self, x, w_tiles, geo):
        # Per-vector ranges are per patch, so the native conv cannot run on DAC codes. Each
        # kernel offset's shifted input, times q / (its patch's range) and rounded, is
        # written into one (g, T, rows, L*B) buffer (the unfolded patches, scaled in the
        # same pass; batch innermost, so every pass runs over long contiguous rows); the
        # crossbar product is then one large matrix multiply per tile.
        x, padding = self._padded_input(x)
        if self._nd == 1:
            x4, kernel = x.unsqueeze(2), (1, *self.kernel_size)
            pad, stride, dil = (0, *padding), (1, *self.stride), (1, *self.dilation)
        else:
            x4, kernel, pad, stride, dil = (x, self.kernel_size, padding, self.stride,
                                            self.dilation)
        batch, _, h, w = x4.shape
        out_hw = [(n + 2 * pad[i] - dil[i] * (kernel[i] - 1) - 1) // stride[i] + 1
                  for i, n in enumerate((h, w))]
        n_pos = out_hw[0] * out_hw[1]
        r = self._with_bias_input(self._patch_ranges(x4, geo, kernel, pad, stride, dil), 2)
        bits = self.analog_config.tile.dac_bits
        q = ft.dac_levels(bits) if bits else 1
        # Ranges batch innermost, as the patches: (g, T, 1, L, B), viewed as (B, g, T, 1, L)
        # for the periphery.
        r = r.permute(1, 2, 3, 4, 0).contiguous()
        scale = (q / r).view(geo.groups, geo.n_tiles, 1, *out_hw, batch)
        c_g = self.in_channels // self.groups
        pad_c = geo.n_tiles * geo.units_per_tile - c_g
        # (B, C, H, W) -> (g, T, channels per tile, H + 2 pad, W + 2 pad, B), zero-padded.
        xc = F.pad(x4.permute(1, 2, 3, 0).reshape(geo.groups, c_g, h, w, batch),
                   (0, 0, pad[1], pad[1], pad[0], pad[0], 0, pad_c))
        xc = xc.view(geo.groups, geo.n_tiles, geo.units_per_tile, *xc.shape[2:])
        shifted = [xc[:, :, :, i * dil[0]:i * dil[0] + stride[0] * (out_hw[0] - 1) + 1:stride[0],
                      j * dil[1]:j * dil[1] + stride[1] * (out_hw[1] - 1) + 1:stride[1]]
                   for i in range(kernel[0]) for j in range(kernel[1])]
        if torch.is_grad_enabled() and (x.requires_grad or scale.requires_grad):
            x_n = torch.stack([s * scale for s in shifted], dim=3)
        else:
            shape = (geo.groups, geo.n_tiles, geo.units_per_tile, len(shifted), *out_hw,
                     batch)
            x_n = _patch_scratch(math.prod(shape), xc).view(shape)
            for k, s in enumerate(shifted):
                torch.mul(s, scale, out=x_n[:, :, :, k])
        # |x| <= r, so x q / r needs no clipping: the DAC only rounds, to integer codes.
        if bits:
            x_n = x_n.round_()
        # Rows in the unfolded order (channel, kernel offset), as the weights have them.
        y = torch.matmul(w_tiles, x_n.view(geo.groups, geo.n_tiles, geo.tile_rows, -1))
        partial = y.view(*y.shape[:3], n_pos, batch).permute(4, 0, 1, 2, 3)
        return partial, r.permute(4, 0, 1, 2, 3), (batch, self.out_channels,
                                                   *out_hw[2 - self._nd:])

    def _patch_ranges(self, x4: Tensor, geo: Geometry, kernel, pad, stride, dil) -> Tensor:
        """max |x| over each patch's rows in each tile, (B, g, T, 1, L): the channel max per
        tile, then a max-pool over the kernel window, nine times less data than the
        unfolded patches (zero padding cannot raise a max of absolute values)."""
        batch, _, h, w = x4.shape
        c_g = self.in_channels // self.groups
        m = x4.abs().reshape(batch, self.groups, c_g, h, w)
        pad_c = geo.n_tiles * geo.units_per_tile - c_g
        if pad_c:
            m = F.pad(m, (0, 0, 0, 0, 0, pad_c))
        m = m.view(batch, self.groups * geo.n_tiles, geo.units_per_tile, h, w).amax(dim=2)
        m = F.max_pool2d(F.pad(m, (pad[1], pad[1], pad[0], pad[0])), kernel, stride=stride,
                         dilation=dil)
        return m.view(batch, self.groups, geo.n_tiles, 1, -1)


class AnalogConv1d(_AnalogConvNd, nn.Conv1d):
    """``nn.Conv1d`` on PCM tiles."""

    _nd = 1
    _conv = staticmethod(F.conv1d)

    def __init__(self, *args, config: AnalogConfig | None = None, name: str = "",
                 **kwargs) -> None:
        nn.Conv1d.__init__(self, *args, **kwargs)
        self._init_analog(config if config is not None else AnalogConfig(), name)

    @classmethod
    def from_digital(cls, m: nn.Conv1d, config: AnalogConfig, name: str = "") -> AnalogConv1d:
        """An analog copy of ``m`` sharing its weight and bias Parameters."""
        return _adopt(cls(**_conv_args(m), config=config, name=name, device="meta"), m,
                      config, name)


class AnalogConv2d(_AnalogConvNd, nn.Conv2d):
    """``nn.Conv2d`` on PCM tiles (stride, padding, dilation, groups, padding modes)."""

    _nd = 2
    _conv = staticmethod(F.conv2d)

    def __init__(self, *args, config: AnalogConfig | None = None, name: str = "",
                 **kwargs) -> None:
        nn.Conv2d.__init__(self, *args, **kwargs)
        self._init_analog(config if config is not None else AnalogConfig(), name)

    @classmethod
    def from_digital(cls, m: nn.Conv2d, config: AnalogConfig, name: str = "") -> AnalogConv2d:
        """An analog copy of ``m`` sharing its weight and bias Parameters."""
        return _adopt(cls(**_conv_args(m), config=config, name=name, device="meta"), m,
                      config, name)


def _conv_args(m: nn.Module) -> dict:
    return dict(in_channels=m.in_channels, out_channels=m.out_channels,
                kernel_size=m.kernel_size, stride=m.stride, padding=m.padding,
                dilation=m.dilation, groups=m.groups, bias=m.bias is not None,
                padding_mode=m.padding_mode)


def _adopt(new: nn.Module, old: nn.Module, config: AnalogConfig, name: str) -> nn.Module:
    """Give ``new`` (built on the meta device) the Parameters of ``old`` and fresh chip buffers."""
    new.weight = old.weight
    new.bias = old.bias
    new._init_analog(config, name)
    new.train(old.training)
    return new
