"""Unsupervised digit recognition with STDP: the network of Diehl & Cook (2015).

Diehl & Cook, "Unsupervised learning of digit recognition using spike-timing-dependent
plasticity", Front. Comput. Neurosci. 9:99 (2015). 784 Poisson inputs (rate
proportional to pixel intensity, 63.75 Hz at full intensity) project with plastic
excitatory synapses onto N LIF neurons with adaptive thresholds; every spike inhibits
all other neurons (their inhibitory population, folded here into a direct lateral
inhibition of ``w_inh`` mV, as in the BindsNET reimplementation); each image is shown
for 350 ms and re-shown with a higher rate if fewer than 5 spikes occurred; the
incoming weights of every neuron are normalised to a fixed sum. After training each
neuron is labelled with the class it responds to most, and a test image is
classified by the label group with the highest mean spike count.

Differences, stated: current-based LIF neurons with delta synapses (the paper uses
conductance-based ones); pair-based STDP with a target trace (one of the paper's rule
variants); state reset between images instead of a 150 ms rest; and, to use both
cores, ``batch`` images are simulated in parallel with the same weights, the STDP
changes of the batch are summed and applied (with the normalisation) between
batches. The adaptive thresholds still decay over the simulated time of every image
(350 ms + 150 ms rest, ``image_time``), so over an epoch they decay as in the paper
(by e^-3 at tau_theta = 1e7 ms). With PCM synapses the same change is written as SET pulses (see
:mod:`aimc.snn.synapses`) and the neurons see drifted, noisy reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from .neurons import LIFParams, LIFState, lif_init, lif_step
from .stdp import STDPParams, Traces, stdp_dw_sparse
from .synapses import IdealSynapses, PCMSynapseConfig, PCMSynapses


@dataclass
class DiehlCookConfig:
    """The network and its training protocol (defaults: Diehl & Cook 2015)."""

    neurons: int = 400
    """N excitatory neurons."""
    time_steps: int = 350
    """Presentation time per image in steps of lif.dt (350 ms)."""
    max_rate: float = 63.75
    """Input rate in Hz of a full-intensity pixel (pixel / 4 of 255 Hz)."""
    w_inh: float = 17.5
    """Lateral inhibition in mV delivered to every other neuron per spike."""
    input_gain: float = 1.0
    """mV of depolarisation per input spike of weight 1 (delta synapses)."""
    norm_total: float = 78.4
    """Sum of the incoming weights of every neuron after normalisation."""
    w_init: float = 0.3
    """Initial weights are uniform in [0, w_init]."""
    min_spikes: int = 5
    """Re-present an image with a higher rate if fewer spikes occurred."""
    max_retries: int = 4
    """Most re-presentations per image (each adds max_rate to the rate)."""
    batch: int = 16
    """Training images simulated in parallel with shared weights (1: sequential)."""
    exclusive: bool = False
    """While learning a batch, a neuron belongs to the first image it fires for and is
    silenced in the other images of the batch, so each neuron learns from one image per
    batch as it would when images are shown one at a time (see :meth:`DiehlCookNet.run`)."""
    eval_batch: int = 500
    """Images simulated in parallel at labelling and test time (no learning)."""
    synapse: str = "ideal"
    """'ideal' (floating point) or 'pcm' (PCM differential pairs, SET-only updates)."""
    image_time: float = 0.5
    """Simulated seconds per image (350 ms + 150 ms rest), for drift bookkeeping."""
    seed: int = 0
    """Seed of weights, input spikes and device randomness."""
    lif: LIFParams = field(default_factory=lambda: LIFParams(
        tau_mem=100.0, v_rest=-65.0, v_reset=-60.0, v_th=-52.0, t_ref=5.0,
        theta_plus=0.05, tau_theta=1e7))
    """Excitatory neurons (Diehl & Cook 2015 values; theta_plus = 0.05 mV)."""
    stdp: STDPParams = field(default_factory=lambda: STDPParams(
        a_plus=1e-2, a_minus=1e-4, tau_plus=20.0, tau_minus=20.0, x_tar=0.0, w_max=1.0))
    """Plasticity of the input synapses (Diehl & Cook 2015: eta_post 0.01, eta_pre 1e-4)."""
    pcm: PCMSynapseConfig = field(default_factory=PCMSynapseConfig)
    """PCM synapse array (used when synapse == 'pcm')."""

    def __post_init__(self) -> None:
        for name in ("neurons", "time_steps", "batch", "eval_batch", "min_spikes"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"DiehlCookConfig.{name} must be an integer >= 1, "
                                 f"got {value!r}")
        if not (isinstance(self.max_retries, int) and self.max_retries >= 0):
            raise ValueError(f"DiehlCookConfig.max_retries must be an integer >= 0, "
                             f"got {self.max_retries!r}")
        for name in ("max_rate", "norm_total", "w_init", "image_time", "input_gain"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"DiehlCookConfig.{name} must be a number > 0, "
                                 f"got {value!r}")
        if not (math.isfinite(self.w_inh) and self.w_inh >= 0):
            raise ValueError(f"DiehlCookConfig.w_inh must be >= 0, got {self.w_inh!r}")
        if self.synapse not in ("ideal", "pcm"):
            raise ValueError(f"DiehlCookConfig.synapse must be 'ideal' or 'pcm', "
                             f"got {self.synapse!r}")

    def to_dict(self) -> dict:
        """All fields as plain values."""
        return asdict(self)


class DiehlCookNet:
    """The network state: synapses, adaptive thresholds and counters of work done."""

    def __init__(self, cfg: DiehlCookConfig, n_inputs: int = 784) -> None:
        self.cfg = cfg
        self.gen = torch.Generator().manual_seed(cfg.seed)
        w0 = torch.rand(n_inputs, cfg.neurons, generator=self.gen) * cfg.w_init
        if cfg.synapse == "ideal":
            self.syn: IdealSynapses | PCMSynapses = IdealSynapses(w0, cfg.stdp.w_max)
        else:
            self.syn = PCMSynapses(w0, cfg.pcm, cfg.stdp.w_max, self.gen)
        self.theta = torch.zeros(cfg.neurons)
        self.t = 0.0
        self.events = 0
        """Synaptic events simulated (input spikes x neurons they reach)."""
        self.spikes = 0
        """Neuron spikes emitted (the post-synaptic STDP events; energy model)."""
        self.images = 0

    def state_dict(self) -> dict:
        """Everything needed to resume training (synapse tensors, thresholds, counters)."""
        syn = {k: v for k, v in vars(self.syn).items() if k not in ("cfg",)}
        return {"syn": syn, "theta": self.theta, "t": self.t, "events": self.events,
                "spikes": self.spikes, "images": self.images, "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` taken from a net with the same config."""
        for key, value in state["syn"].items():
            setattr(self.syn, key, value)
        self.theta, self.t = state["theta"], state["t"]
        self.events, self.images = state["events"], state["images"]
        self.spikes = state.get("spikes", 0)  # absent in checkpoints of older runs
        self.gen.set_state(state["gen"])

    # -- one presentation of a batch of images ------------------------------------------
    def run(self, x: Tensor, w: Tensor, intensity: Tensor, dw: Tensor | None) -> Tensor:
        """Present images ``x`` (B, 784) in [0, 1] for time_steps; return spike counts (B, N).

        ``intensity`` (B,) multiplies the input rates; when ``dw`` is given, STDP
        changes are added into it (event driven) and theta adapts, else both are frozen.
        """
        cfg, lif, stdp = self.cfg, self.cfg.lif, self.cfg.stdp
        b, n = x.shape[0], cfg.neurons
        p_in = (x * (cfg.max_rate * lif.dt / 1000.0) * intensity[:, None]).clamp(0.0, 1.0)
        learn = dw is not None
        lif_p = lif if learn else LIFParams(**{**asdict(lif), "theta_plus": 0.0})
        state = lif_init((b, n), lif_p, self.theta)
        counts = torch.zeros(b, n)
        z = torch.zeros(b, n)
        tr = Traces(pre=torch.zeros_like(x), post=torch.zeros(b, n))
        d_pre, d_post = math.exp(-lif.dt / stdp.tau_plus), math.exp(-lif.dt / stdp.tau_minus)
        gated = stdp.tau_post2 > 0
        post2 = torch.zeros(b, n) if gated else None
        d_post2 = math.exp(-lif.dt / stdp.tau_post2) if gated else 0.0
        wg = w * cfg.input_gain if cfg.input_gain != 1.0 else w
        u = torch.empty_like(x)
        exclusive = learn and cfg.exclusive and b > 1
        owner = torch.full((n,), -1, dtype=torch.long)
        rows = torch.arange(b)[:, None]
        events = 0
        for _ in range(cfg.time_steps):
            u.uniform_(generator=self.gen)
            s_in = u < p_in
            pre_idx = s_in.nonzero(as_tuple=True)
            events += pre_idx[0].numel()
            drive = torch.zeros(b, n).index_add_(0, pre_idx[0], wg[pre_idx[1]])
            if cfg.w_inh > 0:
                drive -= cfg.w_inh * (z.sum(1, keepdim=True) - z)
            z, state = lif_step(drive, state, lif_p)
            if exclusive:
                z, state = self._claim(z, state, owner, rows, lif_p.theta_plus)
            counts += z
            if learn:
                # decay, use, then set the traces (stdp.stdp_step's order), in place
                post_idx = z.nonzero(as_tuple=True)
                tr.pre.mul_(d_pre)
                tr.post.mul_(d_post)
                if post2 is not None:
                    post2.mul_(d_post2)
                stdp_dw_sparse(dw, pre_idx, post_idx, tr, stdp, post2)
                tr.pre[pre_idx] = 1.0
                tr.post[post_idx] = 1.0
                if post2 is not None:
                    post2[post_idx] = 1.0
        self.events += events * n
        self.spikes += int(counts.sum().item())
        if learn:
            # theta is a property of the neuron, shared by the batch: add every sample's
            # increments, and decay it over the batch's simulated time (b images of
            # image_time each, as when they are shown one after another with rests)
            decayed = self.theta * math.exp(-cfg.time_steps * lif.dt / lif.tau_theta)
            inc = (state.theta - decayed).sum(0)
            self.theta = self.theta * math.exp(-b * cfg.image_time * 1000.0 / lif.tau_theta)
            self.theta = self.theta + inc
        return counts

    @staticmethod
    def _claim(z: Tensor, state: LIFState, owner: Tensor, rows: Tensor,
               theta_plus: float) -> tuple[Tensor, LIFState]:
        """Give every neuron to the first image it fires for (``owner``, updated in
        place) and delete its spikes, and their threshold increments, in the others.

        Shown one at a time (Diehl & Cook 2015), a neuron that wins an image has moved
        its weights and raised its threshold before the next image; in a batch with
        shared weights it could win all of them and learn their sum. A silenced spike
        still resets the neuron (it stays out of the competition for that image).
        """
        fired = z.amax(0) > 0
        if not bool(fired.any()):
            return z, state
        first = z.argmax(0)
        owner.copy_(torch.where(fired & (owner < 0), first, owner))
        lost = (z > 0) & (owner[None, :] != rows)
        if not bool(lost.any()):
            return z, state
        lost_f = lost.to(z.dtype)
        return z - lost_f, state._replace(theta=state.theta - theta_plus * lost_f)

    def _present(self, x: Tensor, w: Tensor, dw: Tensor | None) -> Tensor:
        """Present with re-presentation at higher rate for images with too few spikes."""
        cfg = self.cfg
        intensity = torch.ones(x.shape[0])
        counts = self.run(x, w, intensity, dw)
        todo = counts.sum(1) < cfg.min_spikes
        for _ in range(cfg.max_retries):
            if not bool(todo.any()):
                break
            idx = todo.nonzero().squeeze(1)
            intensity[idx] += 1.0
            counts[idx] = self.run(x[idx], w, intensity[idx], dw)
            todo = torch.zeros_like(todo)
            todo[idx] = counts[idx].sum(1) < cfg.min_spikes
        return counts

    def train_batch(self, x: Tensor) -> None:
        """One batch of training images: present with learning, then update the synapses
        with the summed STDP change and the weight normalisation."""
        cfg = self.cfg
        w = self.syn.read(self.t, self.gen)
        dw = torch.zeros_like(w)
        self._present(x, w, dw)
        new = (w + dw).clamp_(0.0, cfg.stdp.w_max)
        new *= cfg.norm_total / new.sum(0, keepdim=True).clamp_min(1e-12)
        new.clamp_(0.0, cfg.stdp.w_max)
        self.t += cfg.image_time * x.shape[0]
        self.syn.apply(new - w, self.t, self.gen)
        self.images += x.shape[0]

    @torch.no_grad()
    def responses(self, x: Tensor, progress: Callable[[int], None] | None = None) -> Tensor:
        """Spike counts (n, N) of images ``x`` (n, 784), learning off, weights read once
        per evaluation batch."""
        out = []
        for start in range(0, x.shape[0], self.cfg.eval_batch):
            xb = x[start:start + self.cfg.eval_batch]
            w = self.syn.read(self.t, self.gen)
            out.append(self._present(xb, w, None))
            if progress is not None:
                progress(xb.shape[0])
        return torch.cat(out)


def assign_labels(counts: Tensor, labels: Tensor, n_classes: int = 10) -> Tensor:
    """Each neuron's class: the one with its highest mean response (Diehl & Cook 2015)."""
    rates = torch.zeros(n_classes, counts.shape[1])
    for c in range(n_classes):
        sel = labels == c
        if bool(sel.any()):
            rates[c] = counts[sel].mean(0)
    return rates.argmax(0)


def predict(counts: Tensor, assignment: Tensor, n_classes: int = 10) -> Tensor:
    """Class whose assigned neurons have the highest mean spike count, per image."""
    scores = torch.full((counts.shape[0], n_classes), -1.0)
    for c in range(n_classes):
        sel = assignment == c
        if bool(sel.any()):
            scores[:, c] = counts[:, sel].mean(1)
    return scores.argmax(1)
