"""PCM as an accumulator of SET pulses: non-linear, stochastic crystallisation and RESET.

The inference model in :mod:`aimc.devices.pcm` describes a device that is programmed
once and then drifts. Neurons, STDP synapses and computational memory instead use the
device's *accumulative* behaviour: each partial SET pulse crystallises a little more of
the amorphous region, so the conductance climbs step by step, by a step that shrinks as
the device saturates (non-linear) and varies from pulse to pulse (stochastic); a RESET
(melt-quench) brings it back down to a low, itself variable, conductance.

Step model (one pulse of relative amplitude ``a`` in [0, 1] at conductance G):

    mu(G)     = dg0 * d * (1 - G / g_sat)^gamma                       (mean step)
    dG        = max(0, a * mu(G) + sqrt(a) * (step_std_rel * mu(G) + step_std_abs) * N(0, 1))
    G_new     = min(G + dG, g_sat)

with ``d`` a per-device factor, lognormal with ``device_std`` (device-to-device spread).
RESET: G = max(0, g_reset + reset_std * N(0, 1)).

This is the phenomenology of Nandakumar et al., J. Appl. Phys. 124, 152135 (2018)
("A phase-change memory model for neuromorphic computing": mean increment that falls
with conductance, cycle-to-cycle standard deviation of the increment of the order of
its mean, device-to-device spread) and of the accumulation curves of Tuma et al.,
Nat. Nanotechnol. 11, 693 (2016) and Boybat et al., Nat. Commun. 9, 2514 (2018), where
about 20 SET pulses take a device from RESET to roughly half of its range. The defaults
(``dg0`` = 1 uS, ``gamma`` = 1.5, ``g_sat`` = 25 uS) give, on average, 12 uS after 20
pulses; they are a stated approximation of those published curves, not a fit to raw
data, and every coefficient is a field so that it can be refitted. The amplitude
scaling (mean proportional to ``a``, variance proportional to ``a``) treats a weaker or
shorter pulse as a fraction of a full pulse, as in the amplitude/width-modulated SET
pulses of Sebastian et al., Nat. Commun. 8, 1115 (2017).

Drift and read noise of what a circuit reads come from :class:`aimc.devices.PCM`
(see :func:`read_conductance`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .pcm import PCM


def _check(owner: str, name: str, value: float, lo: float, hi: float = math.inf,
           lo_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value) and (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        bound = f"> {lo}" if lo_open else f">= {lo}"
        raise ValueError(f"{owner}.{name} must be a finite number {bound} and <= {hi}, "
                         f"got {value!r}")


@dataclass(frozen=True)
class PCMSet:
    """Accumulative PCM: stochastic, non-linear SET steps and a variable RESET.

    Conductances in uS. See the module docstring for the equations and sources
    (Nandakumar 2018 J. Appl. Phys.; Tuma 2016 Nat. Nanotechnol.; Boybat 2018
    Nat. Commun.; Sebastian 2017 Nat. Commun.).
    """

    g_sat: float = 25.0
    """Saturation conductance in uS (fully crystalline path); steps vanish there."""
    dg0: float = 1.0
    """Mean conductance step in uS of a full-amplitude SET pulse on a RESET device."""
    gamma: float = 1.5
    """Non-linearity exponent: mean step = dg0 (1 - G/g_sat)^gamma (0: linear)."""
    step_std_rel: float = 0.8
    """Cycle-to-cycle std of a step, relative to its mean (Nandakumar 2018: order 1)."""
    step_std_abs: float = 0.1
    """Cycle-to-cycle std of a step in uS that does not shrink with the mean."""
    device_std: float = 0.2
    """Device-to-device spread: std of ln(d), the per-device factor on dg0."""
    g_reset: float = 0.1
    """Mean conductance in uS right after a RESET (amorphous, high resistance)."""
    reset_std: float = 0.05
    """Std in uS of the conductance after a RESET (amorphous volume varies)."""

    def __post_init__(self) -> None:
        _check("PCMSet", "g_sat", self.g_sat, 0.0, lo_open=True)
        _check("PCMSet", "dg0", self.dg0, 0.0, self.g_sat, lo_open=True)
        _check("PCMSet", "gamma", self.gamma, 0.0)
        _check("PCMSet", "step_std_rel", self.step_std_rel, 0.0)
        _check("PCMSet", "step_std_abs", self.step_std_abs, 0.0)
        _check("PCMSet", "device_std", self.device_std, 0.0)
        _check("PCMSet", "g_reset", self.g_reset, 0.0, self.g_sat)
        _check("PCMSet", "reset_std", self.reset_std, 0.0)

    def device_factors(self, shape: tuple[int, ...] | torch.Size,
                       generator: torch.Generator | None = None) -> Tensor:
        """Per-device step factors d = exp(device_std N(0,1)) (sampled once per device)."""
        eps = torch.randn(tuple(shape), generator=generator)
        return torch.exp(self.device_std * eps)

    def mean_step(self, g: Tensor, factor: Tensor | float = 1.0) -> Tensor:
        """Mean step dg0 d (1 - G/g_sat)^gamma of a full pulse (module docstring)."""
        room = (1.0 - g / self.g_sat).clamp(0.0, 1.0)
        return self.dg0 * factor * room.pow(self.gamma)

    def set_pulse(self, g: Tensor, amplitude: Tensor | float = 1.0,
                  factor: Tensor | float = 1.0,
                  generator: torch.Generator | None = None) -> Tensor:
        """Conductance after one SET pulse of relative amplitude ``amplitude`` in [0, 1].

        dG = max(0, a mu(G) + sqrt(a) (step_std_rel mu(G) + step_std_abs) N(0,1)),
        G_new = min(G + dG, g_sat). An amplitude of 0 leaves G unchanged exactly.
        """
        amp = torch.as_tensor(amplitude, dtype=g.dtype).clamp(0.0, 1.0)
        mu = self.mean_step(g, factor)
        std = self.step_std_rel * mu + self.step_std_abs
        eps = torch.randn(g.shape, generator=generator, dtype=g.dtype)
        step = (amp * mu + amp.sqrt() * std * eps).clamp_min(0.0)
        return torch.minimum(g + step, torch.full_like(g, self.g_sat))

    def set_pulses(self, g: Tensor, n: Tensor, factor: Tensor | float = 1.0,
                   generator: torch.Generator | None = None) -> Tensor:
        """Apply ``n`` (integer tensor, same shape as ``g``) full SET pulses to each device."""
        n = n.to(torch.int64)
        out = g
        for k in range(int(n.max().item()) if n.numel() else 0):
            stepped = self.set_pulse(out, 1.0, factor, generator)
            out = torch.where(n > k, stepped, out)
        return out

    def reset(self, shape: tuple[int, ...] | torch.Size,
              generator: torch.Generator | None = None) -> Tensor:
        """Conductances right after a RESET: max(0, g_reset + reset_std N(0,1))."""
        eps = torch.randn(tuple(shape), generator=generator)
        return (self.g_reset + self.reset_std * eps).clamp_min(0.0)

    def expected_after(self, n_pulses: float, g_start: float | None = None) -> float:
        """Mean-field conductance after ``n_pulses`` full pulses (noise-free, d = 1).

        Integrates dG/dn = dg0 (1 - G/g_sat)^gamma in closed form; for gamma = 1,
        G(n) = g_sat - (g_sat - G0) exp(-dg0 n / g_sat); otherwise
        u(n)^(1-gamma) = u0^(1-gamma) + (gamma-1) dg0 n / g_sat, u = 1 - G/g_sat.
        """
        g0 = self.g_reset if g_start is None else g_start
        u0 = 1.0 - g0 / self.g_sat
        rate = self.dg0 / self.g_sat
        if self.gamma == 1.0:
            u = u0 * math.exp(-rate * n_pulses)
        elif self.gamma == 0.0:
            u = max(u0 - rate * n_pulses, 0.0)
        else:
            base = u0 ** (1.0 - self.gamma) + (self.gamma - 1.0) * rate * n_pulses
            u = max(base, 0.0) ** (1.0 / (1.0 - self.gamma)) if base > 0 else 0.0
        return self.g_sat * (1.0 - u)


def read_conductance(g: Tensor, t_since_pulse: Tensor | float, device: PCM | None = None,
                     nu: Tensor | None = None,
                     generator: torch.Generator | None = None) -> Tensor:
    """What a circuit reads from accumulated conductances ``g``: drift, then 1/f read noise.

    Uses the Joshi et al. 2020 statistics of :class:`aimc.devices.PCM` (pcm-model.md
    sections 3-4) with ``g`` as the programmed conductance and ``t_since_pulse`` the
    time in s since each device's last SET/RESET (drift restarts at every programming
    event). ``nu`` are drift exponents; when None they are sampled from
    ``device.drift_stats(g)``. Read noise uses ``device.read_noise_std`` at that time.
    """
    device = PCM() if device is None else device
    t = torch.as_tensor(t_since_pulse, dtype=g.dtype).clamp_min(0.0)
    if nu is None:
        mu, sigma = device.drift_stats(g)
        eps = torch.randn(g.shape, generator=generator, dtype=g.dtype)
        nu = (mu + sigma * eps).abs() * device.drift_scale
    g_drift = g * torch.exp(-nu * torch.log((t + device.t0) / device.t0))
    # read_noise_std takes a scalar time; evaluate the 1/f bandwidth per device here.
    rel = (g.abs() / device.g_max).pow(device.read_q_exp).clamp_min(device.read_q_floor)
    q_s = (device.read_q_coeff / rel).clamp_max(device.read_q_max)
    bandwidth = torch.sqrt(torch.log((t + device.t0 + device.t_read) / (2.0 * device.t_read)))
    std = q_s * bandwidth * device.read_noise_scale
    eps = torch.randn(g.shape, generator=generator, dtype=g.dtype)
    return (g_drift + g_drift.abs() * std * eps).clamp_min(0.0)
