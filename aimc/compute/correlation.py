"""Unsupervised temporal-correlation detection with computational PCM memory.

Sebastian et al., "Temporal correlation detection using computational phase-change
memory", Nat. Commun. 8, 1115 (2017). N binary stochastic processes X_i(k) run in
parallel; a hidden subset of M of them is weakly correlated (pairwise correlation
coefficient c), the rest are independent. Each process owns one PCM device. At every
time step k the collective activity M(k) = sum_j X_j(k) is computed; every device whose
process is active (X_i(k) = 1) receives a SET pulse whose amplitude grows with how far
M(k) lies above its usual level (the process "agrees" with a collective burst). The
correlated processes take part in the bursts more often than chance, so their devices
crystallise faster; after K steps they are the high-conductance devices, read in one
shot. The processing is done by the devices' crystallisation dynamics in place.

Process model (as in the paper's synthetic data): a hidden reference Bernoulli(p)
process Y(k); a correlated process copies Y(k) with probability sqrt(c) and otherwise
draws its own Bernoulli(p) value, so two correlated processes have correlation c and
every process has rate p. Uncorrelated processes are independent Bernoulli(p).

Pulse amplitude (our choice of the "f(M(k))" of the paper, stated here): with m and s
the controller's running mean and std of M over the steps so far,
a(k) = clip((M(k) - m) / s - theta, 0, 1), so pulses start at theta standard deviations
above the usual activity and reach full amplitude one standard deviation later.
The paper's own detection statistics are not reproduced digit for digit; the
parameters used for a run are written to its results file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from ..devices.pcm import PCM
from ..devices.pulsed import PulsedPCM


@dataclass
class CorrelationConfig:
    """A temporal-correlation-detection run (Sebastian et al. 2017)."""

    processes: int = 1_000_000
    """N, the number of binary processes (one PCM device each)."""
    correlated: int = 10_000
    """M, the size of the hidden correlated subset."""
    c: float = 0.01
    """Pairwise correlation coefficient within the correlated subset, in (0, 1]."""
    rate: float = 0.01
    """p, the probability that a process is 1 at a time step."""
    steps: int = 50_000
    """K, the number of time steps."""
    theta: float = 3.0
    """Pulses start when M(k) is theta running stds above its running mean."""
    warmup: int = 100
    """Steps used only to estimate the mean and std of M(k), without pulses."""
    step_time: float = 1e-3
    """Seconds per time step; sets the drift time between a device's last pulse and the read."""
    read_delay: float = 1.0
    """Seconds between the last step and the final read of all devices."""
    checkpoints: int = 20
    """Number of times (evenly spaced) precision and recall are evaluated."""
    seed: int = 0
    """Seed of the processes and of the device randomness."""
    device: PulsedPCM = field(default_factory=PulsedPCM)
    """The accumulative PCM model that integrates the pulses."""

    def __post_init__(self) -> None:
        for name in ("processes", "correlated", "steps", "checkpoints"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"CorrelationConfig.{name} must be an integer >= 1, "
                                 f"got {value!r}")
        if self.correlated >= self.processes:
            raise ValueError("CorrelationConfig.correlated must be < processes, got "
                             f"{self.correlated} >= {self.processes}")
        if not (isinstance(self.warmup, int) and 0 <= self.warmup < self.steps):
            raise ValueError(f"CorrelationConfig.warmup must be an integer in [0, steps), "
                             f"got {self.warmup!r}")
        if not (0.0 < self.c <= 1.0):
            raise ValueError(f"CorrelationConfig.c must be in (0, 1], got {self.c!r}")
        if not (0.0 < self.rate < 1.0):
            raise ValueError(f"CorrelationConfig.rate must be in (0, 1), got {self.rate!r}")
        for name in ("theta", "step_time", "read_delay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"CorrelationConfig.{name} must be a finite number >= 0, "
                                 f"got {value!r}")

    def to_dict(self) -> dict:
        """All fields as plain values (the device as a nested dict)."""
        return asdict(self)


def sample_processes(u: Tensor, y: bool, correlated: int, c: float, rate: float) -> Tensor:
    """One time step of the N processes from uniforms ``u`` (N,) and the reference bit y.

    Correlated processes (indices < ``correlated``): X = Y if u < sqrt(c), else
    Bernoulli(p) from the rest of the same uniform; the others X = [u < p].
    Marginal rate p for all; correlation c between two correlated processes
    (Sebastian et al. 2017, Methods).
    """
    s = math.sqrt(c)
    x = u < rate
    head = u[:correlated]
    own = (head >= s) & (head < s + (1.0 - s) * rate)
    x[:correlated] = (head < s) | own if y else own
    return x


def intermeans_threshold(g: Tensor, iters: int = 50) -> float:
    """Unsupervised two-class threshold of a 1-D sample (Ridler & Calvard 1978).

    t <- (mean of values <= t + mean of values > t) / 2, to a fixed point. Started from
    the middle of the range rather than the mean, so that a small high group (here 1%
    of the devices) is not swallowed by the tail of the large one.
    """
    t = 0.5 * (float(g.min()) + float(g.max()))
    for _ in range(iters):
        lo, hi = g[g <= t], g[g > t]
        if lo.numel() == 0 or hi.numel() == 0:
            break
        new = 0.5 * (float(lo.mean()) + float(hi.mean()))
        if abs(new - t) < 1e-6:
            break
        t = new
    return t


def valley_threshold(g: Tensor, bins: int = 200, smooth: int = 5) -> float:
    """Unsupervised threshold at the valley between the two modes of a histogram.

    The log-counts of a ``bins``-bin histogram are smoothed with a ``smooth``-bin moving
    average; from the main mode p1, the second mode p2 is the bin after it with the
    largest rise above the lowest point in between; the threshold is that lowest point.
    Unlike a two-means split, a heavy tail of the large group (990,000 uncorrelated
    devices against 10,000 correlated) does not drag the threshold into it. Falls back
    to :func:`intermeans_threshold` when there is no second mode.
    """
    lo, hi = float(g.min()), float(g.max())
    if hi <= lo:
        return lo
    counts = torch.histc(g.float(), bins=bins, min=lo, max=hi)
    logc = torch.log1p(counts)
    if smooth > 1:
        kernel = torch.ones(1, 1, smooth) / smooth
        logc = torch.nn.functional.conv1d(logc.view(1, 1, -1), kernel,
                                          padding=smooth // 2).view(-1)[:bins]
    p1 = int(logc.argmax())
    running_min = torch.cummin(logc[p1:], dim=0)
    rise = logc[p1:] - running_min.values
    if float(rise.max()) < math.log(2.0):  # no second mode worth the name
        return intermeans_threshold(g)
    p2 = p1 + int(rise.argmax())
    valley = p1 + int(logc[p1:p2 + 1].argmin())
    width = (hi - lo) / bins
    return lo + (valley + 0.5) * width


def precision_recall(detected: Tensor, truth: Tensor) -> tuple[float, float]:
    """Precision TP / (TP + FP) and recall TP / (TP + FN) of boolean masks."""
    tp = int((detected & truth).sum())
    n_det, n_true = int(detected.sum()), int(truth.sum())
    precision = tp / n_det if n_det else 0.0
    recall = tp / n_true if n_true else 0.0
    return precision, recall


@dataclass
class CorrelationResult:
    """What a run returns: the final read conductances and the history of detection."""

    g: Tensor
    """Final conductances as read (drift + read noise), uS, shape (N,)."""
    truth: Tensor
    """Boolean (N,): which processes were correlated."""
    history: list[dict]
    """Per checkpoint: step, threshold (:func:`valley_threshold`), precision, recall, and
    top-M precision (the fraction of correlated ones among the M highest devices)."""
    pulses: int
    """Total number of (non-zero amplitude) SET pulses applied."""
    pulse_charge: float = 0.0
    """Sum of the applied pulses' amplitudes, in full pulses (what their energy scales
    with, :func:`aimc.energy.spiking.correlation_energy`)."""


def detect_correlations(cfg: CorrelationConfig,
                        progress: Callable[[int], None] | None = None, *,
                        resume: dict | None = None,
                        save: Callable[[dict], None] | None = None,
                        save_every: int = 0) -> CorrelationResult:
    """Run Sebastian et al. 2017's computational-memory correlation detection.

    Vectorised over the N devices: per step one uniform per process, one sum for M(k),
    and a SET pulse on the active devices only when M(k) is above its usual level.
    ``progress(k)`` is called every 100 steps (for a progress bar).

    Every ``save_every`` steps ``save(state)`` gets the whole state of the run (devices,
    controller, generator, history; plain tensors and numbers, loadable with
    ``torch.load(..., weights_only=True)``); ``resume=state`` continues from it and gives
    the same result, bit for bit, as the uninterrupted run.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    dev = cfg.device
    n, m = cfg.processes, cfg.correlated
    truth = torch.zeros(n, dtype=torch.bool)
    truth[:m] = True
    if resume is None:
        g = dev.fresh((n,), gen)
        factor = dev.sample_d2d((n,), gen)
        last_pulse = torch.zeros(n, dtype=torch.int32)
        ref = torch.rand(cfg.steps, generator=gen) < cfg.rate
        mean = var_sum = charge = 0.0
        pulses = start = 0
        history: list[dict] = []
    else:
        if resume.get("config") != cfg.to_dict():
            raise ValueError("detect_correlations: the state to resume was saved by a run "
                             "with another configuration")
        g, factor = resume["g"].clone(), resume["factor"].clone()
        last_pulse, ref = resume["last_pulse"].clone(), resume["ref"].clone()
        gen.set_state(resume["generator"])
        mean, var_sum, charge = resume["mean"], resume["var_sum"], resume["charge"]
        pulses, start = resume["pulses"], resume["step"]
        history = [dict(h) for h in resume["history"]]
    checkpoints = {round(cfg.steps * (i + 1) / cfg.checkpoints) for i in range(cfg.checkpoints)}
    u = torch.empty(n)
    for k in range(start, cfg.steps):
        u.uniform_(generator=gen)
        x = sample_processes(u, bool(ref[k]), m, cfg.c, cfg.rate)
        total = float(x.sum())
        if k >= cfg.warmup and k > 1:
            std = math.sqrt(var_sum / (k - 1))
            amp = (total - mean) / std - cfg.theta if std > 0 else 0.0
            if amp > 0:
                idx = x.nonzero().squeeze(1)
                g[idx] = dev.pulse(g[idx], min(amp, 1.0), factor[idx], gen)
                last_pulse[idx] = k
                pulses += idx.numel()
                charge += min(amp, 1.0) * idx.numel()
        # Welford running mean / variance of M(k), updated after its use (causal)
        delta = total - mean
        mean += delta / (k + 1)
        var_sum += delta * (total - mean)
        if (k + 1) in checkpoints:
            history.append(_score(g, truth, k + 1, m))
        if progress is not None and (k + 1) % 100 == 0:
            progress(k + 1)
        if save is not None and save_every and (k + 1) % save_every == 0 and k + 1 < cfg.steps:
            save({"config": cfg.to_dict(), "step": k + 1, "g": g, "factor": factor,
                  "last_pulse": last_pulse, "ref": ref, "generator": gen.get_state(),
                  "mean": mean, "var_sum": var_sum, "charge": charge, "pulses": pulses,
                  "history": history})
    t_since = (cfg.steps - 1 - last_pulse).float() * cfg.step_time + cfg.read_delay
    pcm = PCM()
    g_read = pcm.read(g, pcm.sample_nu(g, gen), t_since, gen)
    final = _score(g_read, truth, cfg.steps, m)
    final["read"] = True
    history.append(final)
    return CorrelationResult(g=g_read, truth=truth, history=history, pulses=pulses,
                             pulse_charge=charge)


def _score(g: Tensor, truth: Tensor, step: int, m: int) -> dict:
    t = valley_threshold(g)
    precision, recall = precision_recall(g > t, truth)
    top = torch.topk(g, m).indices
    top_precision = float(truth[top].float().mean())
    return {"step": step, "threshold_uS": round(t, 4), "precision": round(precision, 5),
            "recall": round(recall, 5), "top_m_precision": round(top_precision, 5)}
