"""Synapse arrays for STDP networks: ideal (floating point) or PCM devices.

A PCM synapse (Boybat et al., Nat. Commun. 9, 2514, 2018; Sebastian et al. 2018 review)
stores w >= 0 on a differential pair of PCM devices per synapse, or on ``k`` pairs
(the multi-memristive synapse):

    w = w_max * sum_k (G+_k - G-_k) / (k g_w),   read and clipped to [0, w_max],

where g_w is the conductance that stands for one full weight on one device. PCM can
only be crystallised step by step (SET) or melted (RESET), so a requested change dw is
turned into SET pulses with eps = w_max dg0 / (k g_w), the weight step of one average
pulse on a RESET device: either n = stochastic_round(|dw| / eps), or (default) dw is
added to a digital accumulator chi and trunc(chi / eps) pulses are sent, chi keeping the
rest (the mixed-precision scheme of Nandakumar et al. 2018/2020, which stops small
opposite updates from turning into noisy pulses on both devices); potentiation
crystallises G+, depression crystallises G- (depression by the other device of the
pair); one device of each side, chosen by a rotating arbitration counter as in Boybat
2018, takes the pulses of an update. Each pulse moves G by the device's stochastic,
state-dependent step (:class:`aimc.devices.pulsed.PulsedPCM`, the SET model of in-situ
training too), so the realised change is noisy and shrinks as a device fills up. When
a device passes ``refresh_level``, the synapse is refreshed: both sides are RESET and
the current weight is written back onto the G+ side with SET pulses and verify
(:func:`aimc.devices.pulsed.program_set_only`; Boybat 2018; Nandakumar 2018).

With ``depression = "reset"`` the synapse is single-device: only the G+ devices are
programmed and each G- device, left in its RESET state, is a reference that cancels
the RESET conductance of its partner. Potentiation is SET pulses as above; a depression
request |dw| RESETs the arbitrated device, which holds weight w_k, with probability
min(1, |dw| / w_k), so the expected change equals the request (the stochastic
RESET-depression of binary/single-device PCM synapses, Suri et al., IEDM 2011 and
Bichler et al., IEEE TED 2012, here in its unbiased form). A RESET is abrupt: it
removes the device's whole weight at once.

What the neurons see is a read of the devices: drift since each device's last
programming event and 1/f read noise, with the statistics of :class:`aimc.devices.PCM`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..devices.pcm import PCM
from ..devices.pulsed import PulsedPCM, program_set_only, stochastic_round


class IdealSynapses:
    """Floating-point weights in [0, w_max]; ``read`` and ``apply`` are exact."""

    def __init__(self, w: Tensor, w_max: float = 1.0) -> None:
        self.w = w.clone().clamp_(0.0, w_max)
        self.w_max = w_max

    def read(self, t: float, generator: torch.Generator | None = None) -> Tensor:
        """The weights (no drift, no noise)."""
        return self.w

    def apply(self, dw: Tensor, t: float, generator: torch.Generator | None = None) -> None:
        """w <- clip(w + dw, 0, w_max)."""
        self.w.add_(dw).clamp_(0.0, self.w_max)


@dataclass(frozen=True)
class PCMSynapseConfig:
    """Differential / multi-device PCM synapses updated by SET pulses (Boybat 2018)."""

    devices_per_side: int = 1
    """k: PCM devices on each side of the synapse (1: a differential pair)."""
    g_w: float = 10.0
    """Conductance in uS that stands for one full weight w_max on one device."""
    refresh_level: float = 16.0
    """A device above this conductance (uS) triggers a refresh of its synapse. At 16 uS
    the mean SET step of the default device has fallen to 9% of its RESET-state step
    ((1 - 16/25)^2.35); above it the requested changes would mostly be lost."""
    max_pulses: int = 8
    """Most SET pulses one update may send to one device."""
    accumulate: bool = True
    """Keep sub-granularity changes in a digital accumulator chi per synapse and send
    trunc(chi / eps) pulses (chi keeps the rest), as in the mixed-precision PCM schemes
    of Nandakumar et al. 2018/2020; False: stochastic rounding of each update."""
    depression: str = "pair"
    """'pair': depression crystallises the G- device of the pair; 'reset': single-device
    synapse, depression by stochastic RESET of a G+ device (module docstring)."""
    drift: bool = True
    """Apply conductance drift (Joshi 2020 statistics) to what the neurons read."""
    read_noise: bool = True
    """Apply 1/f read noise (Joshi 2020 statistics) to what the neurons read."""
    device: PulsedPCM = field(default_factory=PulsedPCM)
    """The accumulative (SET-only) PCM model of every device."""

    def __post_init__(self) -> None:
        if not (isinstance(self.devices_per_side, int) and self.devices_per_side >= 1):
            raise ValueError("PCMSynapseConfig.devices_per_side must be an integer >= 1, "
                             f"got {self.devices_per_side!r}")
        if not (isinstance(self.max_pulses, int) and self.max_pulses >= 1):
            raise ValueError("PCMSynapseConfig.max_pulses must be an integer >= 1, "
                             f"got {self.max_pulses!r}")
        if self.depression not in ("pair", "reset"):
            raise ValueError("PCMSynapseConfig.depression must be 'pair' or 'reset', "
                             f"got {self.depression!r}")
        if not (math.isfinite(self.g_w) and 0 < self.g_w < self.device.g_max):
            raise ValueError("PCMSynapseConfig.g_w must be in (0, device.g_max), "
                             f"got {self.g_w!r}")
        if not (math.isfinite(self.refresh_level)
                and self.device.g_reset < self.refresh_level <= self.device.g_max):
            raise ValueError("PCMSynapseConfig.refresh_level must be in (device.g_reset, "
                             f"device.g_max], got {self.refresh_level!r}")


class PCMSynapses:
    """An (n_pre, n_post) array of PCM synapses; see the module docstring.

    State tensors have shape (2, k, n_pre, n_post): side (0 = G+, 1 = G-), device.
    Times are in seconds of simulated time.
    """

    def __init__(self, w0: Tensor, cfg: PCMSynapseConfig | None = None, w_max: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        self.cfg = cfg or PCMSynapseConfig()
        self.w_max = w_max
        k = self.cfg.devices_per_side
        shape = (2, k, *w0.shape)
        dev = self.cfg.device
        self.g = dev.fresh(shape, generator)
        self.factor = dev.sample_d2d(shape, generator)
        self.t_last = torch.zeros(shape)
        self.nu = torch.zeros(shape)
        self.chi = torch.zeros(w0.shape)
        self.counter = 0
        self.pulses = 0
        self.resets = 0
        """RESET pulses of depression (depression = 'reset')."""
        self.refreshes = 0
        # write the initial weights with SET-and-verify, spread over the k G+ devices
        target = (w0.clamp(0.0, w_max) / w_max * self.cfg.g_w).expand(k, *w0.shape)
        self.g[0] = self._program(self.g[0], self.factor[0], target, generator)
        self._resample_nu(torch.ones(shape, dtype=torch.bool), generator)

    @property
    def eps(self) -> float:
        """Weight change of one average SET pulse on a RESET device."""
        return self.w_max * self.cfg.device.dg0 / (self.cfg.devices_per_side * self.cfg.g_w)

    def _resample_nu(self, mask: Tensor, generator: torch.Generator | None) -> None:
        # a drift exponent per programming event, with the statistics at the new G;
        # drawn for the programmed devices only
        self.nu[mask] = PCM().sample_nu(self.g[mask], generator)

    def _program(self, g: Tensor, factor: Tensor, target: Tensor,
                 generator: torch.Generator | None) -> Tensor:
        """SET-and-verify towards ``target`` (closed loop, expected result the target)."""
        g, pulses = program_set_only(self.cfg.device, g, target, factor, generator)
        self.pulses += int(pulses.sum())
        return g

    def conductance_weights(self) -> Tensor:
        """w from the conductances themselves (no drift, no read noise), clipped."""
        diff = (self.g[0] - self.g[1]).sum(0)
        return (diff * (self.w_max / (self.cfg.devices_per_side * self.cfg.g_w))
                ).clamp(0.0, self.w_max)

    def read(self, t: float, generator: torch.Generator | None = None) -> Tensor:
        """Weights the neurons see at time ``t`` s: drift and read noise, then clipped."""
        if not (self.cfg.drift or self.cfg.read_noise):
            return self.conductance_weights()
        dev = PCM(read_noise_scale=1.0 if self.cfg.read_noise else 0.0)
        nu = self.nu if self.cfg.drift else torch.zeros_like(self.nu)
        g = dev.read(self.g, nu, (t - self.t_last).clamp_min(0.0), generator)
        diff = (g[0] - g[1]).sum(0)
        return (diff * (self.w_max / (self.cfg.devices_per_side * self.cfg.g_w))
                ).clamp(0.0, self.w_max)

    def apply(self, dw: Tensor, t: float, generator: torch.Generator | None = None) -> None:
        """Turn a requested change ``dw`` (n_pre, n_post) into SET pulses at time ``t``."""
        cfg, dev = self.cfg, self.cfg.device
        k = self.counter % cfg.devices_per_side
        self.counter += 1
        if cfg.accumulate:
            self.chi += dw
            n = torch.trunc(self.chi / self.eps).clamp_(-cfg.max_pulses, cfg.max_pulses)
            self.chi -= n * self.eps
            dw, n = n, n.abs()
        else:
            n = stochastic_round(dw.abs() / self.eps, generator).clamp_(max=cfg.max_pulses)
        touched = torch.zeros(self.g.shape, dtype=torch.bool)
        if cfg.depression == "reset":
            # the weight to remove: whole pulses' worth from the accumulator, else |dw|
            req = (-dw).clamp_min(0.0) * (self.eps if cfg.accumulate else 1.0)
            self._reset_depress(req, k, touched, generator)
        sides = ((0, dw > 0),) if cfg.depression == "reset" else ((0, dw > 0), (1, dw < 0))
        for side, sel in sides:
            mask = sel & (n > 0)
            idx = mask.nonzero(as_tuple=True)
            if idx[0].numel() == 0:
                continue
            g_sub = self.g[side, k][idx]
            f_sub = self.factor[side, k][idx]
            n_sub = n[idx]
            self.g[side, k][idx] = dev.pulse(g_sub, n_sub, f_sub, generator)
            self.pulses += int(n_sub.sum())
            touched[side, k][idx] = True
        self._refresh(touched, generator)
        self.t_last = torch.where(touched, torch.full_like(self.t_last, t), self.t_last)
        self._resample_nu(touched, generator)

    def _reset_depress(self, req: Tensor, k: int, touched: Tensor,
                       generator: torch.Generator | None) -> None:
        """RESET device k of G+ with probability min(1, req / w_k), w_k its weight."""
        w_k = (self.g[0, k] - self.g[1, k]) * (
            self.w_max / (self.cfg.devices_per_side * self.cfg.g_w))
        want = (req > 0) & (w_k > 0)
        if not bool(want.any()):
            return
        p = (req / w_k.clamp_min(1e-12)).clamp_max(1.0)
        u = torch.rand(req.shape, generator=generator)
        hit = want & (u < p)
        idx = hit.nonzero(as_tuple=True)
        if idx[0].numel() == 0:
            return
        self.g[0, k][idx] = self.cfg.device.fresh((idx[0].numel(),), generator)
        self.resets += int(idx[0].numel())
        touched[0, k][idx] = True

    def _refresh(self, touched: Tensor, generator: torch.Generator | None) -> None:
        """RESET both sides of saturated synapses and write their weight back onto G+."""
        full = (self.g >= self.cfg.refresh_level).any(0).any(0)
        if not bool(full.any()):
            return
        idx = full.nonzero(as_tuple=True)
        self.refreshes += int(idx[0].numel())
        k = self.cfg.devices_per_side
        w = self.conductance_weights()[idx]
        target = (w / self.w_max * self.cfg.g_w).expand(k, -1)
        for side in (0, 1):
            fresh = self.cfg.device.fresh((k, idx[0].numel()), generator)
            if side == 0:
                fresh = self._program(fresh, self.factor[0][:, idx[0], idx[1]], target,
                                      generator)
            self.g[side][:, idx[0], idx[1]] = fresh
            touched[side][:, idx[0], idx[1]] = True
