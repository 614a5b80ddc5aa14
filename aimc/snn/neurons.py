"""Spiking neurons as pure step functions with thin modules on top (norse style).

- Leaky integrate-and-fire (LIF), current based, with a refractory period and an
  adaptive threshold (Diehl & Cook, Front. Comput. Neurosci. 9:99, 2015):

      tau_mem dv/dt = -(v - v_rest) + i,      tau_syn di/dt = -i  (+ input charge),
      spike when v >= v_th + theta;  v <- v_reset;  refractory for t_ref;
      theta <- theta + theta_plus on a spike, decaying with tau_theta.

  The update is exponential Euler, exact for an input that is constant over a step,
  so the closed form v(t) = v_inf + (v0 - v_inf) exp(-t / tau_mem) holds on the grid.
- The PCM neuron of Tuma et al., Nat. Nanotechnol. 11, 693 (2016): the membrane
  potential is the crystalline state (conductance) of one PCM device, advanced by a
  SET pulse whose amplitude encodes the input at every step; when the conductance
  crosses a threshold the neuron fires and the device is RESET. The device's
  stochastic, non-linear steps (:class:`aimc.devices.pulsed.PulsedPCM`) make the
  interspike intervals vary from cycle to cycle, and a population of such neurons
  codes its input by its firing rate.

All functions are batched: every tensor argument may have any leading shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..devices.pulsed import PulsedPCM


@dataclass(frozen=True)
class LIFParams:
    """Parameters of a current-based LIF neuron with adaptive threshold (mV, ms)."""

    dt: float = 1.0
    """Time step in ms."""
    tau_mem: float = 100.0
    """Membrane time constant in ms (Diehl & Cook 2015: 100 ms, excitatory)."""
    tau_syn: float = 0.0
    """Synaptic current time constant in ms; 0 means delta synapses (input adds to v)."""
    v_rest: float = -65.0
    """Resting potential in mV."""
    v_reset: float = -60.0
    """Potential after a spike in mV."""
    v_th: float = -52.0
    """Base firing threshold in mV."""
    t_ref: float = 5.0
    """Refractory period in ms (Diehl & Cook 2015: 5 ms)."""
    theta_plus: float = 0.0
    """Adaptive threshold increment per spike in mV (Diehl & Cook 2015: 0.05 mV)."""
    tau_theta: float = 1e7
    """Decay time constant of the adaptive threshold in ms."""

    def __post_init__(self) -> None:
        for name in ("dt", "tau_mem", "tau_theta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"LIFParams.{name} must be a finite number > 0, got {value!r}")
        for name in ("tau_syn", "t_ref", "theta_plus"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"LIFParams.{name} must be a finite number >= 0, "
                                 f"got {value!r}")
        if self.v_reset >= self.v_th:
            raise ValueError(f"LIFParams.v_reset must be < v_th, got {self.v_reset} >= "
                             f"{self.v_th}")


class LIFState(NamedTuple):
    """State of a population of LIF neurons (all tensors of the same shape)."""

    v: Tensor
    """Membrane potential in mV."""
    i: Tensor
    """Synaptic current (in mV of steady-state depolarisation)."""
    refrac: Tensor
    """Remaining refractory time in ms (<= 0: not refractory)."""
    theta: Tensor
    """Adaptive threshold offset in mV."""


def lif_init(shape: tuple[int, ...], p: LIFParams, theta: Tensor | None = None) -> LIFState:
    """Resting state: v = v_rest, no current, not refractory, theta given or 0."""
    v = torch.full(shape, p.v_rest)
    th = torch.zeros(shape) if theta is None else theta.expand(shape).clone()
    return LIFState(v=v, i=torch.zeros(shape), refrac=torch.zeros(shape), theta=th)


def lif_step(inp: Tensor, state: LIFState, p: LIFParams) -> tuple[Tensor, LIFState]:
    """One exponential-Euler step of the current-based LIF neuron (module docstring).

    ``inp`` is the synaptic input arriving in this step: with ``tau_syn`` = 0 it is a
    voltage jump in mV added to v (delta synapses); otherwise it is added to the
    synaptic current i, which decays with tau_syn and drives v towards v_rest + i.
    Refractory neurons neither integrate nor fire. Returns (spikes as float 0/1, state).
    """
    decay_m = math.exp(-p.dt / p.tau_mem)
    active = state.refrac <= 0
    if p.tau_syn > 0:
        i = state.i * math.exp(-p.dt / p.tau_syn) + inp
        v_inf = p.v_rest + i
        v = v_inf + (state.v - v_inf) * decay_m
    else:
        i = state.i
        v = p.v_rest + (state.v - p.v_rest) * decay_m + inp
    v = torch.where(active, v, state.v)
    theta = state.theta * math.exp(-p.dt / p.tau_theta)
    spikes = (v >= p.v_th + theta) & active
    v = torch.where(spikes, torch.full_like(v, p.v_reset), v)
    refrac = torch.where(spikes, torch.full_like(v, p.t_ref), state.refrac - p.dt)
    z = spikes.to(v.dtype)
    if p.theta_plus > 0:
        theta = theta + p.theta_plus * z
    return z, LIFState(v=v, i=i, refrac=refrac, theta=theta)


def lif_constant_input(v0: float, drive: float, t: float, p: LIFParams) -> float:
    """Closed-form membrane potential of a non-firing LIF neuron under constant drive.

    tau dv/dt = -(v - v_rest) + drive  =>  v(t) = v_inf + (v0 - v_inf) exp(-t / tau),
    v_inf = v_rest + drive.
    """
    v_inf = p.v_rest + drive
    return v_inf + (v0 - v_inf) * math.exp(-t / p.tau_mem)


def lif_rate_constant_input(drive: float, p: LIFParams) -> float:
    """Closed-form firing rate in Hz of an LIF neuron under constant drive (theta = 0).

    The time to climb from v_reset to v_th is T = tau ln((v_inf - v_reset) / (v_inf - v_th)),
    the interspike interval is t_ref + T, rate = 1000 / (t_ref + T) (0 if v_inf <= v_th).
    """
    v_inf = p.v_rest + drive
    if v_inf <= p.v_th:
        return 0.0
    climb = p.tau_mem * math.log((v_inf - p.v_reset) / (v_inf - p.v_th))
    return 1000.0 / (p.t_ref + climb)


class LIF(nn.Module):
    """Thin module over :func:`lif_step`; the state lives in the caller's hands.

    >>> cell = LIF(LIFParams(theta_plus=0.05))
    >>> state = cell.init_state((batch, n))
    >>> z, state = cell(inp, state)
    """

    def __init__(self, params: LIFParams | None = None) -> None:
        super().__init__()
        self.params = params or LIFParams()

    def init_state(self, shape: tuple[int, ...], theta: Tensor | None = None) -> LIFState:
        """Resting state of a population of the given shape."""
        return lif_init(shape, self.params, theta)

    def forward(self, inp: Tensor, state: LIFState) -> tuple[Tensor, LIFState]:
        """One time step; see :func:`lif_step`."""
        return lif_step(inp, state, self.params)


# -- the PCM neuron (Tuma et al. 2016) -----------------------------------------------------


@dataclass(frozen=True)
class PCMNeuronParams:
    """A PCM integrate-and-fire neuron (Tuma et al., Nat. Nanotechnol. 2016)."""

    g_th: float = 8.0
    """Firing threshold conductance in uS; crossing it fires the neuron and RESETs it."""
    input_scale: float = 1.0
    """Input that gives a full-amplitude SET pulse (inputs are clipped to [0, this])."""
    device: PulsedPCM = field(default_factory=PulsedPCM)
    """The accumulative PCM device that holds the membrane state."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.g_th) and self.device.g_reset < self.g_th
                < self.device.g_max):
            raise ValueError(f"PCMNeuronParams.g_th must lie in (device.g_reset, "
                             f"device.g_max), got {self.g_th!r}")
        if not (math.isfinite(self.input_scale) and self.input_scale > 0):
            raise ValueError(f"PCMNeuronParams.input_scale must be > 0, "
                             f"got {self.input_scale!r}")


class PCMNeuronState(NamedTuple):
    """State of a population of PCM neurons."""

    g: Tensor
    """Device conductance (the membrane potential) in uS."""
    factor: Tensor
    """Per-device step factor (device-to-device variability), fixed for a device."""


def pcm_neuron_init(shape: tuple[int, ...], p: PCMNeuronParams,
                    generator: torch.Generator | None = None) -> PCMNeuronState:
    """Freshly RESET devices with their own device-to-device step factors."""
    return PCMNeuronState(g=p.device.fresh(shape, generator),
                          factor=p.device.sample_d2d(shape, generator))


def pcm_neuron_step(inp: Tensor, state: PCMNeuronState, p: PCMNeuronParams,
                    generator: torch.Generator | None = None
                    ) -> tuple[Tensor, PCMNeuronState]:
    """One step of the Tuma et al. 2016 neuron.

    A SET pulse of amplitude clip(inp / input_scale, 0, 1) crystallises the device a
    little (stochastic, non-linear step); if the conductance reaches g_th the neuron
    fires and the device is RESET (to a conductance that itself varies).
    """
    amp = (inp / p.input_scale).clamp(0.0, 1.0)
    g = p.device.pulse(state.g, amp, state.factor, generator)
    spikes = g >= p.g_th
    g = p.device.reset(g, spikes, generator)
    return spikes.to(g.dtype), PCMNeuronState(g=g, factor=state.factor)


class PCMNeuron(nn.Module):
    """Thin module over :func:`pcm_neuron_step` for a population of ``n`` PCM neurons."""

    def __init__(self, params: PCMNeuronParams | None = None) -> None:
        super().__init__()
        self.params = params or PCMNeuronParams()

    def init_state(self, shape: tuple[int, ...],
                   generator: torch.Generator | None = None) -> PCMNeuronState:
        """Freshly RESET devices."""
        return pcm_neuron_init(shape, self.params, generator)

    def forward(self, inp: Tensor, state: PCMNeuronState,
                generator: torch.Generator | None = None
                ) -> tuple[Tensor, PCMNeuronState]:
        """One time step; see :func:`pcm_neuron_step`."""
        return pcm_neuron_step(inp, state, self.params, generator)
