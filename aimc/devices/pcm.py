"""The statistical PCM inference model of Joshi et al., Nat. Commun. 11, 2473 (2020).

Fitted by IBM Research to about one million doped-Ge2Sb2Te5 devices (Nandakumar et al.);
the same model is the default PCM noise model of aihwkit, so the two can be cross-checked.
Conductances are in microsiemens, times in seconds. Every coefficient is a field, so the
model can be refitted to other devices; ``*_scale`` fields scale each effect as a whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .registry import register_device


def _check_positive(owner: str, **values: float) -> None:
    for key, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{owner}.{key} must be a finite number > 0, got {value!r}")


def _check_nonneg(owner: str, **values: float) -> None:
    for key, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{owner}.{key} must be a finite number >= 0, got {value!r}")


@register_device("pcm")
@dataclass(frozen=True)
class PCM:
    """Doped-GST PCM device: programming noise, conductance drift and 1/f read noise.

    Implements pcm-model.md sections 2-4 (Joshi et al. 2020, Methods, eqs. for
    sigma_prog, nu and Q_s).
    """

    g_max: float = 25.0
    """Largest target conductance in uS (the mapping's full scale)."""
    prog_c0: float = 0.26348
    """Programming-noise polynomial, constant term (uS, referenced to g_max = 25 uS)."""
    prog_c1: float = 1.9650
    """Programming-noise polynomial, linear term in g_T / g_max."""
    prog_c2: float = -1.1731
    """Programming-noise polynomial, quadratic term in (g_T / g_max)^2."""
    prog_noise_scale: float = 1.0
    """Multiplies sigma_prog (0 disables programming noise)."""
    drift_mu_a: float = -0.0155
    """mu_nu(x) = clip(a ln x + b, lo, hi): slope a."""
    drift_mu_b: float = 0.0244
    """mu_nu intercept b."""
    drift_mu_min: float = 0.049
    """Lower clip of mu_nu."""
    drift_mu_max: float = 0.1
    """Upper clip of mu_nu."""
    drift_sigma_a: float = -0.0125
    """sigma_nu(x) = clip(a ln x + b, lo, hi): slope a."""
    drift_sigma_b: float = -0.0059
    """sigma_nu intercept b."""
    drift_sigma_min: float = 0.008
    """Lower clip of sigma_nu."""
    drift_sigma_max: float = 0.045
    """Upper clip of sigma_nu."""
    drift_scale: float = 1.0
    """Multiplies every drift exponent nu (0 disables drift)."""
    t0: float = 20.0
    """Drift reference time in s: g(t) = g_prog ((t + t0) / t0)^-nu."""
    read_q_coeff: float = 0.0088
    """Q_s(g) = min(coeff / max((g/g_max)^exp, q_floor), q_max): coefficient."""
    read_q_exp: float = 0.65
    """Q_s exponent on the relative conductance."""
    read_q_floor: float = 1e-3
    """Q_s floor on (g/g_max)^exp, keeps Q_s finite at g = 0."""
    read_q_max: float = 0.2
    """Upper bound of Q_s."""
    t_read: float = 250e-9
    """Duration of one read in s (sets the 1/f bandwidth)."""
    read_noise_scale: float = 1.0
    """Multiplies the read-noise std (0 disables read noise)."""

    def __post_init__(self) -> None:
        _check_positive("PCM", g_max=self.g_max, t0=self.t0, t_read=self.t_read,
                        read_q_floor=self.read_q_floor, read_q_max=self.read_q_max)
        _check_nonneg("PCM", prog_noise_scale=self.prog_noise_scale,
                      drift_scale=self.drift_scale, read_noise_scale=self.read_noise_scale,
                      read_q_coeff=self.read_q_coeff, drift_mu_min=self.drift_mu_min,
                      drift_sigma_min=self.drift_sigma_min)
        if self.drift_mu_max < self.drift_mu_min:
            raise ValueError("PCM.drift_mu_max must be >= PCM.drift_mu_min, "
                             f"got {self.drift_mu_max} < {self.drift_mu_min}")
        if self.drift_sigma_max < self.drift_sigma_min:
            raise ValueError("PCM.drift_sigma_max must be >= PCM.drift_sigma_min, "
                             f"got {self.drift_sigma_max} < {self.drift_sigma_min}")

    # -- section 2: programming noise ---------------------------------------------------
    def prog_noise_std(self, g_target: Tensor) -> Tensor:
        """sigma_prog(g_T) in uS (Joshi 2020 Methods; pcm-model.md sec. 2)."""
        x = g_target / self.g_max
        poly = self.prog_c0 + self.prog_c1 * x + self.prog_c2 * x * x
        return poly.clamp_min(0.0) * (self.g_max / 25.0) * self.prog_noise_scale

    # -- section 3: drift ----------------------------------------------------------------
    def drift_stats(self, g_target: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std of the drift exponent nu for target g_T (pcm-model.md sec. 3)."""
        x = (g_target.abs() / self.g_max).clamp_min(1e-7)
        log_x = torch.log(x)
        mu = (self.drift_mu_a * log_x + self.drift_mu_b).clamp(self.drift_mu_min,
                                                             self.drift_mu_max)
        sigma = (self.drift_sigma_a * log_x + self.drift_sigma_b).clamp(
            self.drift_sigma_min, self.drift_sigma_max)
        return mu, sigma

    def sample_nu(self, g_target: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Drift exponents |mu_nu + sigma_nu N(0,1)| * drift_scale of devices programmed
        to ``g_target`` (pcm-model.md sec. 3; one draw per device and programming event)."""
        mu, sigma = self.drift_stats(g_target)
        eps = torch.randn(g_target.shape, generator=generator, device=g_target.device)
        return (mu + sigma * eps).abs() * self.drift_scale

    def drift_factor(self, nu: Tensor, t: float | Tensor) -> Tensor:
        """((t + t0) / t0)^-nu, the multiplicative drift at t s after programming.

        ``t`` is one time or a tensor of per-device times (devices programmed at
        different moments, as in STDP synapses)."""
        if isinstance(t, Tensor):
            if bool((t < 0).any()):
                raise ValueError("t must be >= 0 seconds, got a negative time")
            return torch.exp(-nu * torch.log((t + self.t0) / self.t0))
        if t < 0:
            raise ValueError(f"t must be >= 0 seconds, got {t}")
        return torch.exp(-nu * math.log((t + self.t0) / self.t0))

    # -- section 4: read noise -------------------------------------------------------------
    def read_noise_std(self, g_prog: Tensor, t: float | Tensor) -> Tensor:
        """Relative 1/f read-noise std Q_s(g) sqrt(ln((t + t0 + t_r) / (2 t_r))) (sec. 4);
        ``t`` one time or per-device times."""
        rel = (g_prog.abs() / self.g_max).pow(self.read_q_exp).clamp_min(self.read_q_floor)
        q_s = (self.read_q_coeff / rel).clamp_max(self.read_q_max)
        if isinstance(t, Tensor):
            bandwidth = torch.sqrt(torch.log((t + self.t0 + self.t_read) / (2.0 * self.t_read)))
            return q_s * bandwidth * self.read_noise_scale
        bandwidth = math.sqrt(math.log((t + self.t0 + self.t_read) / (2.0 * self.t_read)))
        return q_s * (bandwidth * self.read_noise_scale)

    # -- the three-step interface -----------------------------------------------------------
    def program(self, g_target: Tensor, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor]:
        """Program devices to ``g_target`` (uS): return (g_prog, nu), both sampled once.

        g_prog = max(0, g_T + sigma_prog(g_T) N(0,1)); nu = |mu_nu + sigma_nu N(0,1)| * scale.
        """
        g_target = g_target.float()
        noise = torch.randn(g_target.shape, generator=generator, device=g_target.device)
        g_prog = (g_target + self.prog_noise_std(g_target) * noise).clamp_min(0.0)
        return g_prog, self.sample_nu(g_target, generator)

    def read(self, g_prog: Tensor, nu: Tensor, t: float | Tensor,
             generator: torch.Generator | None = None) -> Tensor:
        """Conductance read t s after programming: drift, then fresh 1/f read noise, >= 0.

        ``t`` is one time or a tensor of per-device times since each device was last
        programmed (pulsed devices whose drift restarts at every SET or RESET)."""
        g_drift = g_prog * self.drift_factor(nu, t)
        noise = torch.randn(g_prog.shape, generator=generator, device=g_prog.device)
        std = self.read_noise_std(g_prog, t)
        return (g_drift + g_drift.abs() * std * noise).clamp_min(0.0)


@register_device("ideal")
@dataclass(frozen=True)
class IdealDevice:
    """A device that holds exactly the conductance it is asked for, forever."""

    g_max: float = 25.0
    """Largest target conductance in uS (the mapping's full scale)."""

    def __post_init__(self) -> None:
        _check_positive("IdealDevice", g_max=self.g_max)

    def program(self, g_target: Tensor, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor]:
        """Return (g_target, zero drift exponents): programming is exact."""
        g_target = g_target.float()
        return g_target.clone(), torch.zeros_like(g_target)

    def read(self, g_prog: Tensor, nu: Tensor, t: float,
             generator: torch.Generator | None = None) -> Tensor:
        """Return the programmed conductance unchanged (no drift, no read noise)."""
        if t < 0:
            raise ValueError(f"t must be >= 0 seconds, got {t}")
        return g_prog.clone()
