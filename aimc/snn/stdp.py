"""Pair-based spike-timing-dependent plasticity (STDP) with exponential windows.

The window (Bi & Poo 1998; the form used by Diehl & Cook 2015 and in the PCM-synapse
work reviewed by Sebastian et al., J. Appl. Phys. 124, 111101, 2018):

    dw(dt) =  a_plus  exp(-dt / tau_plus)    if dt = t_post - t_pre > 0  (pre before post)
    dw(dt) = -a_minus exp( dt / tau_minus)   if dt < 0                   (post before pre)

Online form with traces: every pre-synaptic spike sets a pre trace x_pre to 1, every
post-synaptic spike sets x_post to 1 ("nearest spike" pairing), both decay
exponentially; on a post spike w += a_plus (x_pre - x_tar), on a pre spike
w -= a_minus x_post. For one isolated spike pair the online rule gives exactly the
window above (checked in the tests); ``x_tar`` (Diehl & Cook's target pre trace)
depresses inputs that were silent before a post spike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor


@dataclass(frozen=True)
class STDPParams:
    """Pair-based STDP with exponential windows (times in ms)."""

    a_plus: float = 1e-2
    """Potentiation amplitude (Diehl & Cook 2015: eta_post = 0.01)."""
    a_minus: float = 1e-4
    """Depression amplitude (Diehl & Cook 2015: eta_pre = 0.0001)."""
    tau_plus: float = 20.0
    """Decay time of the pre trace in ms (potentiation window)."""
    tau_minus: float = 20.0
    """Decay time of the post trace in ms (depression window)."""
    x_tar: float = 0.0
    """Target pre trace: on a post spike, inputs with x_pre < x_tar are depressed."""
    w_max: float = 1.0
    """Upper bound of the weights (lower bound 0)."""
    tau_post2: float = 0.0
    """If > 0: potentiation is also multiplied by a second, slower post trace read just
    before the spike (the triplet term of Diehl & Cook 2015's rule, tau 40 ms); a
    neuron's first spike after a silence then does not potentiate. 0: pure pair rule."""

    def __post_init__(self) -> None:
        for name in ("a_plus", "a_minus", "x_tar", "tau_post2"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"STDPParams.{name} must be a finite number >= 0, "
                                 f"got {value!r}")
        for name in ("tau_plus", "tau_minus", "w_max"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"STDPParams.{name} must be a finite number > 0, "
                                 f"got {value!r}")


def stdp_window(dt: Tensor, p: STDPParams) -> Tensor:
    """Weight change for one spike pair at dt = t_post - t_pre in ms (module docstring)."""
    pot = p.a_plus * torch.exp(-dt.clamp_min(0.0) / p.tau_plus)
    dep = -p.a_minus * torch.exp(dt.clamp_max(0.0) / p.tau_minus)
    return torch.where(dt > 0, pot, torch.where(dt < 0, dep, torch.zeros_like(dt)))


class Traces(NamedTuple):
    """Pre- and post-synaptic traces."""

    pre: Tensor
    """x_pre, shape (..., n_pre)."""
    post: Tensor
    """x_post, shape (..., n_post)."""


def traces_decay(tr: Traces, p: STDPParams, dt: float) -> Traces:
    """Decay both traces by one step of ``dt`` ms (done first in a step, before use)."""
    return Traces(pre=tr.pre * math.exp(-dt / p.tau_plus),
                  post=tr.post * math.exp(-dt / p.tau_minus))


def traces_spike(tr: Traces, pre_spikes: Tensor, post_spikes: Tensor) -> Traces:
    """Set the traces to 1 where this step's spikes occurred (done last in a step)."""
    return Traces(pre=torch.where(pre_spikes > 0, torch.ones_like(tr.pre), tr.pre),
                  post=torch.where(post_spikes > 0, torch.ones_like(tr.post), tr.post))


def stdp_step(pre_spikes: Tensor, post_spikes: Tensor, tr: Traces, p: STDPParams,
              dt: float) -> tuple[Tensor, Traces]:
    """One online STDP step: decay the traces, compute dw from them, then add the spikes.

    With this order a pre spike at step s and a post spike at step s + m give exactly
    stdp_window(m dt) (and -a_minus exp(-m dt / tau_minus) for the reverse order).
    Returns (dw of shape (n_pre, n_post), new traces).
    """
    tr = traces_decay(tr, p, dt)
    dw = stdp_dw(pre_spikes, post_spikes, tr, p)
    return dw, traces_spike(tr, pre_spikes, post_spikes)


def stdp_dw(pre_spikes: Tensor, post_spikes: Tensor, tr: Traces, p: STDPParams) -> Tensor:
    """Weight change (n_pre, n_post) of one step, summed over the batch (dense form).

    ``tr`` are the traces decayed to this step but *before* its spikes are added (so a
    pair of coincident spikes is not counted). Potentiation on post spikes:
    a_plus (x_pre - x_tar)^T z_post; depression on pre spikes: -a_minus z_pre^T x_post.
    Inputs are (batch, n_pre) and (batch, n_post).
    """
    pot = (tr.pre - p.x_tar).transpose(-1, -2) @ post_spikes
    dep = pre_spikes.transpose(-1, -2) @ tr.post
    return p.a_plus * pot - p.a_minus * dep


def stdp_dw_sparse(dw: Tensor, pre_idx: tuple[Tensor, Tensor],
                   post_idx: tuple[Tensor, Tensor], tr: Traces, p: STDPParams,
                   post_gate: Tensor | None = None) -> None:
    """Add one step's :func:`stdp_dw` into ``dw`` (n_pre, n_post) in place, event driven.

    ``pre_idx`` = (batch index, input index) of this step's pre spikes and ``post_idx``
    = (batch index, neuron index) of its post spikes (``spikes.nonzero(as_tuple=True)``);
    only the rows of pre spikes and the columns of post spikes are touched, with the
    same result as the dense form. ``post_gate`` (batch, n_post), if given, multiplies
    the potentiation of each post spike (the slow post trace of ``tau_post2``).
    """
    b_pre, j_pre = pre_idx
    if b_pre.numel():
        dw.index_add_(0, j_pre, tr.post[b_pre], alpha=-p.a_minus)
    b_post, i_post = post_idx
    if b_post.numel():
        src = tr.pre[b_post] - p.x_tar
        if post_gate is not None:
            src = src * post_gate[b_post, i_post][:, None]
        dw.index_add_(1, i_post, src.t(), alpha=p.a_plus)
