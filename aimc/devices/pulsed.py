"""Pulsed update models for in-situ training: "apply n pulses to these devices".

Every model answers the same three questions, as pure tensor functions on conductances
in microsiemens (uS) or, for capacitors and RRAM-like devices, conductance-equivalent
uS (the unit a device contributes to a column current):

- ``sample_d2d(shape, generator)``: per-device step factors (device-to-device spread),
  sampled once when the array is made;
- ``pulse(g, n, d2d, generator)``: the state after ``n`` pulses (an integer tensor; >= 0
  for SET-only devices, signed for bidirectional ones; PCM also takes fractional
  amplitudes), with fresh cycle-to-cycle noise;
- ``mean_step(g)``: the expected change of one up-pulse at state ``g`` (the device
  granularity epsilon of mixed-precision training is ``mean_step`` at the reset state).

SET-only PCM goes down only through :meth:`PulsedPCM.reset` (melt-quench); the drift
and read noise of the inference model (:class:`aimc.devices.PCM`) apply to the same
conductances when they are read (:meth:`aimc.devices.PCM.read`, which takes per-device
times since the last pulse). The same
:class:`PulsedPCM` is the device of in-situ training (:mod:`aimc.training.insitu`), of
STDP synapses and PCM neurons (:mod:`aimc.snn`) and of correlation detection
(:mod:`aimc.compute.correlation`): one model of the SET step in the whole package.

Models are found by name in :data:`PULSED_DEVICES` (a registry of its own: these are not
inference devices, so they do not belong in :data:`aimc.devices.DEVICES`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from .registry import build, registrar

PULSED_DEVICES: dict[str, type] = {}
"""Pulsed device models by name (``make_pulsed_device(name, **fields)``)."""


register_pulsed_device = registrar(PULSED_DEVICES, "pulsed device")
"""Class decorator: make a pulsed device dataclass available under ``name``."""


def make_pulsed_device(name: str, **params: Any):
    """Build the pulsed device registered as ``name`` with the given fields."""
    return build(PULSED_DEVICES, name, "pulsed device: unknown name", **params)


class PulsedDevice(Protocol):
    """What the in-situ training code needs from a pulsed device model."""

    name: str
    bidirectional: bool
    g_min: float
    g_max: float

    def sample_d2d(self, shape: tuple[int, ...], generator: torch.Generator | None
                   ) -> Tensor: ...

    def pulse(self, g: Tensor, n: Tensor, d2d: Tensor,
              generator: torch.Generator | None) -> Tensor: ...

    def mean_step(self, g: Tensor) -> Tensor: ...


def _check(owner: str, name: str, value: Any, lo: float = 0.0, hi: float = math.inf,
           lo_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and value <= hi and (value > lo if lo_open else value >= lo)
    if not ok:
        bound = f"> {lo}" if lo_open else f">= {lo}"
        raise ValueError(f"{owner}.{name} must be a finite number {bound} and <= {hi}, "
                         f"got {value!r}")


def _lognormal_factor(rel_std: Tensor | float, shape: tuple[int, ...],
                      generator: torch.Generator | None) -> Tensor:
    """Samples of a log-normal with mean 1 and std ``rel_std``: exp(s Z - s^2/2),
    s^2 = ln(1 + rel_std^2). Positive, so a SET step can never be negative."""
    s2 = torch.log1p(torch.as_tensor(rel_std, dtype=torch.float32) ** 2)
    z = torch.randn(shape, generator=generator)
    return torch.exp(s2.sqrt() * z - 0.5 * s2)


def _d2d_factors(spread: float, shape: tuple[int, ...],
                 generator: torch.Generator | None) -> Tensor:
    if not spread:
        return torch.ones(shape)
    return _lognormal_factor(spread, shape, generator)


def stochastic_round(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """floor(x) + Bernoulli(x - floor(x)): an integer tensor with E[result] = x.

    The unbiased rounding of pulse counts used by stochastic updates (Gokmen & Vlasov
    2016) and by the closed-loop programming below.
    """
    low = torch.floor(x)
    return (low + (torch.rand(x.shape, generator=generator) < (x - low)).float())


# ---------------------------------------------------------------------------------------------
@register_pulsed_device("pcm")
@dataclass(frozen=True)
class PulsedPCM:
    """SET-only PCM: accumulative, conductance-dependent, stochastic partial-SET steps.

    One partial SET pulse on a doped-GST mushroom cell crystallises a little more of the
    amorphous plug: the conductance grows by a step whose mean shrinks as G approaches
    saturation and whose size varies from pulse to pulse and from device to device
    (Nandakumar et al., "A phase-change memory model for neuromorphic computing",
    J. Appl. Phys. 124, 152135 (2018); the same device data underlie Nandakumar et al.,
    Front. Neurosci. 14, 406 (2020), and Boybat et al., Nat. Commun. 9, 2514 (2018)).

    Mean step (the continuum limit of one pulse, dG/dn):
        mu(G) = dg0 * (1 - G / g_max) ** gamma
    so the mean state after n pulses from G0 is the closed form of that ODE
    (:meth:`mean_after`). Nandakumar 2018 fit the mean increment by a line in G,
    0.892 uS - 0.084 G; ``dg0`` is its intercept and ``gamma`` = 0.084 g_max / dg0 = 2.35
    gives the same initial slope while saturating at g_max = 25 uS, the full scale of the
    inference model (pcm-model.md). Cycle-to-cycle: the increment of n pulses is the mean
    increment times a log-normal factor of mean 1 and relative std c2c / sqrt(n) (n steps
    of independent size), with c2c = 0.575 / 0.892 = 0.64, the ratio of the std to the mean
    of the single-pulse increment in the same fit at G = 0. Device-to-device: each device's
    dg0 is multiplied by a log-normal factor of mean 1 and std ``d2d`` (an assumption: the
    2018 model draws per-device parameters too, but we did not find its spread).
    Increments are >= 0 (a SET pulse only crystallises) and G never exceeds g_max.
    RESET melt-quenches the cell to about ``g_reset`` (0.1 uS).
    """

    dg0: float = 0.892
    """Mean conductance increment of one SET pulse at G = 0 (uS); Nandakumar 2018 fit."""
    gamma: float = 2.35
    """Non-linearity exponent of mu(G) = dg0 (1 - G/g_max)^gamma (0 = linear device)."""
    g_max: float = 25.0
    """Saturation conductance (uS): the fully crystalline cell; steps vanish there."""
    c2c: float = 0.64
    """Cycle-to-cycle relative std of one pulse's increment (std / mean)."""
    d2d: float = 0.2
    """Device-to-device relative std of dg0 (an assumption, see the class doc)."""
    g_reset: float = 0.1
    """Mean conductance after a RESET (uS)."""
    g_reset_std: float = 0.01
    """Std of the conductance after a RESET (uS)."""

    bidirectional = False
    g_min = 0.0

    def __post_init__(self) -> None:
        _check("PulsedPCM", "dg0", self.dg0, lo_open=True)
        _check("PulsedPCM", "gamma", self.gamma, hi=20.0)
        _check("PulsedPCM", "g_max", self.g_max, lo_open=True)
        _check("PulsedPCM", "c2c", self.c2c, hi=10.0)
        _check("PulsedPCM", "d2d", self.d2d, hi=10.0)
        _check("PulsedPCM", "g_reset", self.g_reset, hi=self.g_max)
        _check("PulsedPCM", "g_reset_std", self.g_reset_std, hi=self.g_max)

    def sample_d2d(self, shape: tuple[int, ...], generator: torch.Generator | None = None
                   ) -> Tensor:
        """Per-device factors on dg0: log-normal, mean 1, relative std ``d2d``."""
        return _d2d_factors(self.d2d, shape, generator)

    def mean_step(self, g: Tensor) -> Tensor:
        """mu(G) = dg0 (1 - G/g_max)^gamma in uS (Nandakumar 2018, mean increment)."""
        x = (1.0 - g / self.g_max).clamp(0.0, 1.0)
        return self.dg0 * x.pow(self.gamma)

    def mean_after(self, g: Tensor, n: Tensor, d2d: Tensor | float = 1.0) -> Tensor:
        """Mean state after n >= 0 pulses: the solution of dG/dn = d2d * mu(G) from g.

        gamma = 1: G = g_max - (g_max - g) exp(-k n); otherwise
        (1 - G/g_max)^(1-gamma) = (1 - g/g_max)^(1-gamma) + (gamma - 1) k n, k = d2d dg0/g_max.
        """
        k = self.dg0 / self.g_max * d2d
        u0 = (1.0 - g / self.g_max).clamp(0.0, 1.0)
        n = n.to(g.dtype)
        if self.gamma == 0.0:
            u = u0 - k * n
        elif abs(self.gamma - 1.0) < 1e-9:
            u = u0 * torch.exp(-k * n)
        else:
            e = 1.0 - self.gamma
            # For gamma > 1 the bracket grows and u -> 0 without reaching it; for gamma < 1
            # it shrinks to 0 (saturation reached after finitely many pulses).
            base = u0.clamp_min(1e-12).pow(e) - e * k * n
            u = torch.where(base > 0, base.clamp_min(1e-30).pow(1.0 / e), torch.zeros_like(base))
            u = torch.where(u0 > 0, u, torch.zeros_like(u))
        return self.g_max * (1.0 - u.clamp(0.0, 1.0))

    def pulse(self, g: Tensor, n: Tensor | float, d2d: Tensor | float = 1.0,
              generator: torch.Generator | None = None) -> Tensor:
        """Apply n >= 0 SET pulses per device; returns the new conductances (uS).

        Increment = (mean_after(g, n) - g) x log-normal(1, c2c / sqrt(n)); never negative.
        ``n`` may be fractional: a partial pulse of relative amplitude a in (0, 1] counts
        as a of a full pulse, with mean step about a mu(G) and a times the variance of
        one full pulse, the amplitude-modulated SET pulses of PCM neurons (Tuma et al.,
        Nat. Nanotechnol. 11, 693, 2016) and of correlation detection (Sebastian et al.,
        Nat. Commun. 8, 1115, 2017).
        """
        n = torch.as_tensor(n, dtype=g.dtype).expand(g.shape)
        if bool((n < 0).any()):
            raise ValueError("PulsedPCM.pulse: SET-only device, pulse counts must be >= 0 "
                             "(use reset() to go down)")
        mean_inc = self.mean_after(g, n, d2d) - g
        if self.c2c:
            rel = self.c2c / n.clamp_min(1e-12).sqrt()
            mean_inc = mean_inc * _lognormal_factor(rel, g.shape, generator)
        return torch.where(n > 0, (g + mean_inc).clamp(max=self.g_max), g)

    def fresh(self, shape: tuple[int, ...] | torch.Size,
              generator: torch.Generator | None = None) -> Tensor:
        """Conductances of just-RESET devices: clip(g_reset + g_reset_std N(0,1), 0, g_max)."""
        return (self.g_reset + self.g_reset_std * torch.randn(tuple(shape), generator=generator)
                ).clamp(0.0, self.g_max)

    def reset(self, g: Tensor, mask: Tensor | None = None,
              generator: torch.Generator | None = None) -> Tensor:
        """RESET (melt-quench) the masked devices to ~g_reset; others keep g."""
        fresh = self.fresh(g.shape, generator)
        return fresh if mask is None else torch.where(mask, fresh, g)


# ---------------------------------------------------------------------------------------------
@register_pulsed_device("capacitor")
@dataclass(frozen=True)
class Capacitor:
    """The 3T1C volatile cell of Ambrogio et al., Nature 558, 60 (2018).

    A capacitor holds the gate voltage of a read transistor; charging and discharging it
    through two transistors moves its conductance-equivalent g by almost equal, linear
    steps, so it is bidirectional and close to symmetric. What remains: a small mismatch
    between the charge and discharge transistors (``asymmetry``, which the 2T2R+3T1C cell
    cancels by polarity inversion), a little noise per pulse, bounds, and a slow leak
    of the stored charge. Units: conductance-equivalent uS. The default step and range
    are choices of this simulator (the paper's capacitor is analog; we quantise its update
    finely), not measured values.
    """

    step: float = 0.02
    """Mean |change| of one pulse (conductance-equivalent uS)."""
    asymmetry: float = 0.02
    """Relative up/down mismatch: up steps are step (1 + a), down steps step (1 - a)."""
    c2c: float = 0.05
    """Cycle-to-cycle relative std of one pulse."""
    d2d: float = 0.02
    """Device-to-device relative std of the step."""
    g_min: float = 0.0
    """Lowest state (empty capacitor)."""
    g_max: float = 40.0
    """Highest state (full capacitor, uS-equivalent). The 2T2R+3T1C cell puts g_shared at
    mid-range, so g - g_shared spans +-20 uS-equivalent, 6.7 uS of PCM pair difference
    at F = 3 (a choice: with +-5 the cell lost about half a point on a 10k-image MNIST
    subset, because g saturates within an 8,000-image transfer interval early on)."""
    leak_tau: float = 1.0
    """Leak time constant in s: the charge above the reference decays as exp(-t / tau)."""

    bidirectional = True

    def __post_init__(self) -> None:
        _check("Capacitor", "step", self.step, lo_open=True)
        _check("Capacitor", "asymmetry", self.asymmetry, hi=0.99)
        _check("Capacitor", "c2c", self.c2c, hi=10.0)
        _check("Capacitor", "d2d", self.d2d, hi=10.0)
        _check("Capacitor", "g_min", self.g_min, lo=-1e6)
        if not self.g_max > self.g_min:
            raise ValueError(f"Capacitor.g_max must be > Capacitor.g_min, got "
                             f"{self.g_max} <= {self.g_min}")
        _check("Capacitor", "leak_tau", self.leak_tau, lo_open=True)

    def sample_d2d(self, shape: tuple[int, ...], generator: torch.Generator | None = None
                   ) -> Tensor:
        """Per-device step factors: log-normal, mean 1, relative std ``d2d``."""
        return _d2d_factors(self.d2d, shape, generator)

    def mean_step(self, g: Tensor) -> Tensor:
        """Mean up-step at any state (linear device): step (1 + asymmetry)."""
        return torch.full_like(g, self.step * (1.0 + self.asymmetry))

    def pulse(self, g: Tensor, n: Tensor, d2d: Tensor | float = 1.0,
              generator: torch.Generator | None = None) -> Tensor:
        """Apply n signed pulses: g + n step (1 +- a) d2d + c2c noise (std step c2c sqrt|n|)."""
        n = n.to(g.dtype)
        size = self.step * (1.0 + self.asymmetry * torch.sign(n)) * d2d
        delta = n * size
        if self.c2c:
            delta = delta + (self.c2c * self.step * n.abs().sqrt()
                             * torch.randn(g.shape, generator=generator))
        return (g + delta).clamp(self.g_min, self.g_max)

    def leak(self, g: Tensor, g_ref: Tensor | float, dt: float) -> Tensor:
        """The stored charge relative to ``g_ref`` after ``dt`` s: exponential decay."""
        return g_ref + (g - g_ref) * math.exp(-dt / self.leak_tau)


# ---------------------------------------------------------------------------------------------
@register_pulsed_device("constant-step")
@dataclass(frozen=True)
class ConstantStep:
    """An ideal bidirectional device: every pulse moves g by exactly +-step, bounded.

    The reference point of the in-situ training literature (Gokmen & Vlasov, Front.
    Neurosci. 10, 333 (2016): the "resistive processing unit" with symmetric steps).
    """

    step: float = 0.1
    """Change of one pulse (uS)."""
    g_min: float = -10.0
    """Lower bound (relative to a reference device, so it may be negative)."""
    g_max: float = 10.0
    """Upper bound."""

    bidirectional = True

    def __post_init__(self) -> None:
        _check("ConstantStep", "step", self.step, lo_open=True)
        _check("ConstantStep", "g_min", self.g_min, lo=-1e6)
        if not self.g_max > self.g_min:
            raise ValueError(f"ConstantStep.g_max must be > ConstantStep.g_min, got "
                             f"{self.g_max} <= {self.g_min}")

    def sample_d2d(self, shape: tuple[int, ...], generator: torch.Generator | None = None
                   ) -> Tensor:
        """No device-to-device spread: ones."""
        return torch.ones(shape)

    def mean_step(self, g: Tensor) -> Tensor:
        """step, everywhere."""
        return torch.full_like(g, self.step)

    def pulse(self, g: Tensor, n: Tensor, d2d: Tensor | float = 1.0,
              generator: torch.Generator | None = None) -> Tensor:
        """g + n step, clipped to [g_min, g_max]."""
        return (g + n.to(g.dtype) * self.step * d2d).clamp(self.g_min, self.g_max)


# ---------------------------------------------------------------------------------------------
@register_pulsed_device("soft-bounds")
@dataclass(frozen=True)
class SoftBounds:
    """RRAM-like soft-bounds device: steps shrink linearly towards each bound.

    Up: dg = step (1 - g/g_max); down: dg = -step (1 - g/g_min) (Gokmen & Haensch,
    Front. Neurosci. 14, 103 (2020), the asymmetric device Tiki-Taka is designed for;
    its symmetry point, where up and down steps are equal, is g = 0 for symmetric bounds).
    n pulses of one sign follow the exact geometric solution of that recursion; each
    device's step carries a device-to-device factor and each update a c2c noise.
    """

    step: float = 0.1
    """Step at g = 0 (uS-equivalent)."""
    g_min: float = -10.0
    """Lower (soft) bound; < 0 < g_max."""
    g_max: float = 10.0
    """Upper (soft) bound."""
    c2c: float = 0.1
    """Cycle-to-cycle relative std of one pulse (additive, std step c2c sqrt|n|)."""
    d2d: float = 0.1
    """Device-to-device relative std of the step."""

    bidirectional = True

    def __post_init__(self) -> None:
        _check("SoftBounds", "step", self.step, lo_open=True)
        if not (self.g_min < 0 < self.g_max):
            raise ValueError(f"SoftBounds needs g_min < 0 < g_max, got g_min={self.g_min}, "
                             f"g_max={self.g_max}")
        _check("SoftBounds", "c2c", self.c2c, hi=10.0)
        _check("SoftBounds", "d2d", self.d2d, hi=10.0)

    def sample_d2d(self, shape: tuple[int, ...], generator: torch.Generator | None = None
                   ) -> Tensor:
        """Per-device step factors: log-normal, mean 1, relative std ``d2d``."""
        return _d2d_factors(self.d2d, shape, generator)

    def mean_step(self, g: Tensor) -> Tensor:
        """Mean up-step at g: step (1 - g/g_max)."""
        return self.step * (1.0 - g / self.g_max).clamp_min(0.0)

    def pulse(self, g: Tensor, n: Tensor, d2d: Tensor | float = 1.0,
              generator: torch.Generator | None = None) -> Tensor:
        """n signed pulses: g_b - (g_b - g)(1 - step d2d / |g_b|)^|n|, g_b the bound ahead."""
        n = n.to(g.dtype)
        bound = torch.where(n >= 0, torch.full_like(g, self.g_max),
                            torch.full_like(g, self.g_min))
        ratio = (1.0 - self.step * d2d / bound.abs()).clamp(0.0, 1.0)
        new = bound - (bound - g) * ratio.pow(n.abs())
        if self.c2c:
            new = new + (self.c2c * self.step * n.abs().sqrt()
                         * torch.randn(g.shape, generator=generator))
        return new.clamp(self.g_min, self.g_max)


# ---------------------------------------------------------------------------------------------
def pulse_sparse(device: PulsedDevice, g: Tensor, n: Tensor, d2d: Tensor | float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
    """``device.pulse`` on the devices with n != 0 only (the same physics, cheaper when
    few devices of an array are pulsed, as in mixed precision); returns a new tensor."""
    idx = (n != 0).flatten().nonzero().squeeze(1)
    if idx.numel() == 0:
        return g
    flat = g.flatten().clone()
    d = d2d.flatten()[idx] if isinstance(d2d, Tensor) and d2d.dim() else d2d
    flat[idx] = device.pulse(flat[idx], n.flatten()[idx], d, generator)
    return flat.view_as(g)


PULSES_PER_ROUND = 32
"""Most SET pulses a program-and-verify controller applies to one device between two
verify reads ([A]: a per-round budget; without one, a target the device can hardly reach,
where the nominal step mu(G) is near 0, asks for (target - G) / mu(G) pulses, millions
near g_max). It binds only near saturation: the first round from RESET towards 10 uS
asks for 11."""


def program_set_only(device: PulsedPCM, g: Tensor, target: Tensor, d2d: Tensor | float,
                     generator: torch.Generator | None = None, max_iter: int = 8,
                     max_pulses: int = PULSES_PER_ROUND) -> tuple[Tensor, Tensor]:
    """Closed-loop (program-and-verify) SET-only programming of PCM towards ``target``.

    Each round reads the devices and applies the whole pulses the nominal model says are
    still needed, floor((target - G) / mu(G)); the controller does not know a device's
    own step factor, the verify read corrects for it. When less than one mean step
    remains, one last pulse is applied with probability (target - G) / mu(G), so the
    expected result is the target (stochastic rounding). Devices at or above their
    target get nothing: a SET-only device cannot undo an overshoot without a RESET.
    This is the iterative programming of Ambrogio et al. 2018 (closed-loop tuning of
    the PCM pair at transfer) with our pulse model. A round applies at most
    ``max_pulses`` pulses to a device (:data:`PULSES_PER_ROUND`). Returns (conductances,
    pulses per device).
    """
    total = torch.zeros_like(g)
    for _ in range(max_iter):
        n = torch.floor((target - g).clamp_min(0.0) / device.mean_step(g).clamp_min(1e-6)
                        ).clamp_max(max_pulses)
        if not bool((n > 0).any()):
            break
        g = pulse_sparse(device, g, n, d2d, generator)
        total = total + n
    frac = ((target - g).clamp_min(0.0) / device.mean_step(g).clamp_min(1e-6)).clamp_max(1.0)
    last = (torch.rand(g.shape, generator=generator) < frac).to(g.dtype)
    g = pulse_sparse(device, g, last, d2d, generator)
    return g, total + last


def program_pair_closed_loop(device: PulsedPCM, g_pos: Tensor, g_neg: Tensor, target: Tensor,
                             d2d_pos: Tensor | float, d2d_neg: Tensor | float,
                             tolerance: float, generator: torch.Generator | None = None,
                             max_iter: int = 8, max_pulses: int = PULSES_PER_ROUND
                             ) -> tuple[Tensor, Tensor, Tensor]:
    """Closed-loop programming of a SET-only differential pair G+ - G- towards ``target``.

    Program-and-verify with a tolerance, as in the transfer of Ambrogio et al. 2018 (the
    PCM pair is tuned until the weight it holds is within a tolerance of the target):
    each round reads e = target - (G+ - G-); where e > ``tolerance`` it applies
    max(1, floor(e / mu(G+))) SET pulses to G+, where e < -``tolerance``
    max(1, floor(-e / mu(G-))) to G-, mu the nominal mean step (the controller does not
    know a device's own step factor: the verify read corrects for it). An overshoot is
    corrected by the other device, so the result lands within the tolerance unless
    ``max_iter`` rounds run out (large single-pulse steps, tolerance below one step, or
    a device so near saturation that ``max_pulses`` per round cannot move it far enough).
    Devices already within the tolerance get no pulse. With ``tolerance`` = half a
    mean step the pair is rounded to the nearest step. Returns (G+, G-, pulses per pair).
    """
    if not (isinstance(tolerance, (int, float)) and tolerance >= 0):
        raise ValueError(f"tolerance must be a number >= 0 (uS), got {tolerance!r}")
    total = torch.zeros_like(g_pos)
    for _ in range(max_iter):
        err = target - (g_pos - g_neg)
        up = err > tolerance
        down = err < -tolerance
        if not bool((up | down).any()):
            break
        n_pos = torch.where(up, torch.floor(err / device.mean_step(g_pos).clamp_min(1e-6))
                            .clamp(1.0, max_pulses), torch.zeros_like(err))
        n_neg = torch.where(down, torch.floor(-err / device.mean_step(g_neg).clamp_min(1e-6))
                            .clamp(1.0, max_pulses), torch.zeros_like(err))
        g_pos = pulse_sparse(device, g_pos, n_pos, d2d_pos, generator)
        g_neg = pulse_sparse(device, g_neg, n_neg, d2d_neg, generator)
        total = total + n_pos + n_neg
    return g_pos, g_neg, total
