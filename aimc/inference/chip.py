"""Program, drift and compensate every analog layer of a model (Joshi et al. 2020)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..nn.convert import analog_layers, batch_norms
from ..nn.layers import GDC_COLUMN, GDC_LAYER, GDC_OFF, AnalogLayerMixin


def _layers(model: nn.Module, what: str) -> list[AnalogLayerMixin]:
    layers = [layer for _, layer in analog_layers(model)]
    if not layers:
        raise ValueError(f"{what}: the model has no analog layers; convert it first with "
                         "aimc.convert(model, config)")
    return layers


def _inputs(batch: Any) -> Any:
    """The model input of a batch: ``x`` or the first element of ``(x, ...)``."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _feed(model: nn.Module, loader: Iterable, batches: int | None, what: str,
          forward: Callable[[nn.Module, Any], Any] | None = None) -> int:
    """Run up to ``batches`` batches of ``loader`` (all if None) through ``model`` and
    return how many ran; ``forward(model, batch)`` replaces ``model(x)`` for models that
    take several inputs. Raises if the loader gave none."""
    n = 0
    for batch in loader:
        if batches is not None and n >= batches:
            break
        if forward is None:
            model(_inputs(batch))
        else:
            forward(model, batch)
        n += 1
    if n == 0:
        raise ValueError(f"{what}: the loader gave no batches")
    return n


def _collect(model: nn.Module, layers: dict[str, AnalogLayerMixin], attr: str,
             loader: Iterable, batches: int | None, what: str,
             forward: Callable[[nn.Module, Any], Any] | None) -> dict[str, list]:
    """Feed the batches in eval mode with a fresh list in each layer's ``attr``, which its
    analog reads fill, and return those lists by layer name; afterwards, whatever
    happens, ``attr`` is None again and the model's mode is restored."""
    was_training = model.training
    model.eval()
    for layer in layers.values():
        setattr(layer, attr, [])
    try:
        _feed(model, loader, batches, what, forward)
        return {name: getattr(layer, attr) for name, layer in layers.items()}
    finally:
        for layer in layers.values():
            setattr(layer, attr, None)
        model.train(was_training)


def program(model: nn.Module, seed: int = 0) -> nn.Module:
    """Program the chip once: map weights to PCM pairs, sample programming noise and
    drift exponents per device (pcm-model.md sec. 1-3) and read it at t = 0.

    The chip state is stored in buffers, so ``model.state_dict()`` is a snapshot of the
    chip. Each layer's randomness derives from ``seed`` and the layer's name, so one seed
    always gives the same chip, bit for bit. Returns ``model`` (changed in place).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    for layer in _layers(model, "program"):
        layer.program_chip(seed)
    restore_bn_stats(model)
    return model


def drift(model: nn.Module, t_seconds: float, seed: int | None = None) -> nn.Module:
    """Move the programmed chip to ``t_seconds`` after programming (sec. 3-4).

    Conductances are recomputed from the stored programmed state (never re-programmed)
    with fresh 1/f read noise; effective weights are computed here once, not in every
    forward pass. An active drift compensation is re-calibrated at the new time;
    batch-norm statistics adapted by AdaBS belong to one time and are reset to the
    trained ones.
    """
    for layer in _layers(model, "drift"):
        layer.drift_chip(t_seconds, seed)
    restore_bn_stats(model)
    return model


def _gdc(model: nn.Module, *, per_column: bool = False, before_adc: bool = True,
         **_: Any) -> None:
    mode = GDC_COLUMN if per_column else GDC_LAYER
    for layer in _layers(model, "compensate"):
        layer.set_gdc(mode, before_adc)


def _none(model: nn.Module, **_: Any) -> None:
    for layer in _layers(model, "compensate"):
        layer.set_gdc(GDC_OFF)


# Where AdaBS keeps the trained statistics of a batch-norm layer while adapted ones are in
# place (a plain attribute, so the model's state_dict keys do not change).
_TRAINED_STATS = "_aimc_trained_bn_stats"


@torch.no_grad()
def restore_bn_stats(model: nn.Module) -> nn.Module:
    """Put back the trained batch-norm statistics that :func:`compensate` with ``"adabs"``
    replaced (no-op where AdaBS was not applied). Called by :func:`program`,
    :func:`drift` and every :func:`compensate`, so AdaBS of one time or chip never leaks
    into the next."""
    for bn in batch_norms(model):
        saved = bn.__dict__.pop(_TRAINED_STATS, None)
        if saved is not None:
            for name, value in saved.items():
                getattr(bn, name).copy_(value)
    return model


@torch.no_grad()
def _adabs(model: nn.Module, *, loader: Iterable | None = None, batches: int | None = None,
           forward: Callable[[nn.Module, Any], Any] | None = None, **_: Any) -> None:
    if loader is None:
        raise ValueError("adabs: pass loader= with calibration batches drawn from the "
                         "training data (never the test set)")
    bns = batch_norms(model)
    if not bns:
        raise ValueError("adabs: the model has no batch-norm layers with running statistics")
    for bn in bns:
        if _TRAINED_STATS not in bn.__dict__:
            bn.__dict__[_TRAINED_STATS] = {
                name: getattr(bn, name).clone()
                for name in ("running_mean", "running_var", "num_batches_tracked")}
    was_training = model.training
    momenta = [bn.momentum for bn in bns]
    model.eval()  # analog layers on their tiles, dropout off ...
    for bn in bns:  # ... and only batch norm collecting statistics
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
        bn.train()
    ok = False
    try:
        _feed(model, loader, batches, "adabs", forward)
        ok = True
    finally:
        for bn, m in zip(bns, momenta, strict=True):
            bn.momentum = m
        model.train(was_training)
        if not ok:
            restore_bn_stats(model)


COMPENSATIONS: dict[str, Callable[..., None]] = {"none": _none, "gdc": _gdc, "adabs": _adabs}
"""Registry of drift-compensation methods by name (``aimc.compensate(model, name)``);
names join with ``+`` (``"gdc+adabs"``) to apply several, in order."""


def compensate(model: nn.Module, method: str | None = "gdc", **options: Any) -> nn.Module:
    """Apply a drift compensation to the programmed network (pcm-model.md sec. 6-7).

    ``"gdc"``: global drift compensation. Right after programming each layer was read
    with a fixed calibration input (r0 = mean |y|); now it is read again (r) and its
    outputs are scaled by alpha = r0 / r. Options: ``per_column=True`` keeps one alpha
    per output; ``before_adc=False`` applies alpha digitally after the ADC instead of
    scaling the ADC range (which keeps the ADC resolution as outputs shrink).
    The choice is re-applied by every later :func:`drift`.

    ``"adabs"``: adaptive batch-norm statistics (Joshi et al. 2020, Methods). Runs the
    calibration batches of ``loader`` (training data, never test data; ``batches`` limits
    how many; ``forward(model, batch)`` runs a model of several inputs) through the
    drifted analog network and recomputes every batch-norm layer's running mean and
    variance (cumulative average), keeping gamma and beta. The adapted
    statistics hold for this time only: :func:`drift`, :func:`program` and the next
    ``compensate`` restore the trained ones.

    ``"gdc+adabs"`` applies GDC, then AdaBS through the compensated network.
    ``"none"`` (or None) removes any compensation. Every call starts from none.
    """
    key = "none" if method is None else method
    parts = key.split("+") if isinstance(key, str) else [key]
    unknown = [p for p in parts if p not in COMPENSATIONS]
    if unknown:
        raise ValueError(f"method: unknown compensation {method!r}; "
                         f"known: {sorted(COMPENSATIONS)}, joined with '+'")
    restore_bn_stats(model)
    _none(model)
    for part in parts:
        if part != "none":
            COMPENSATIONS[part](model, **options)
    return model


@torch.no_grad()
def calibrate_inputs(model: nn.Module, loader: Iterable, batches: int = 10,
                     quantile: float = 0.9999,
                     forward: Callable[[nn.Module, Any], Any] | None = None
                     ) -> dict[str, float]:
    """Set each analog layer's static DAC input range from data, as on real chips.

    Runs up to ``batches`` batches through the network in digital and keeps, per layer,
    the largest per-batch ``quantile`` of |input| (1.0 = the maximum; a quantile just
    below 1 spends the DAC's levels on the bulk rather than on rare outliers). Layers
    with an analog bias row get a range of at least 1, its constant input.
    Returns {layer name: range}. Batches are ``x`` or ``(x, ...)`` tuples, fed as
    ``model(x)``; for a model of several inputs pass ``forward(model, batch)``, e.g.
    ``lambda m, b: m(b[0], b[1], b[2])`` for a bare attention layer.
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    layers = _layers(model, "calibrate_inputs")
    was_training = model.training
    model.eval()
    for layer in layers:
        layer.calibrating, layer.calib_quantile, layer._range_stats = True, quantile, []
    try:
        _feed(model, loader, batches, "calibrate_inputs", forward)
    finally:
        for layer in layers:
            layer.calibrating = False
        model.train(was_training)
    ranges = {}
    for layer in layers:
        if not layer._range_stats:
            raise RuntimeError(f"calibrate_inputs: layer '{layer.analog_name}' saw no input "
                               "(is it used in forward?)")
        value = max(layer._range_stats)
        if layer.analog_bias:
            value = max(value, 1.0)  # the bias row's constant input of 1 must not clip
        layer.input_range.fill_(value if value > 0 else 1.0)
        ranges[layer.analog_name] = float(layer.input_range)
        layer._range_stats = []
    return ranges


@torch.no_grad()
def calibrate_outputs(model: nn.Module, loader: Iterable, batches: int = 10,
                      quantile: float = 0.9999, margin: float = 1.0,
                      forward: Callable[[nn.Module, Any], Any] | None = None
                      ) -> dict[str, float]:
    """Set each analog layer's ADC range from data, on the programmed chip.

    The ADC quantises ``[-bound, bound]`` with ``TileConfig.adc_bits`` (pcm-model.md
    sec. 5). One fixed ``TileConfig.out_bound`` for every layer either clips the layers
    whose outputs run large (an LSTM's gates and logits) or spends the levels of the
    others on a range their outputs never reach. This runs up to ``batches`` batches
    through the chip as it is now, with every ADC off, and keeps per layer the largest
    per-batch ``quantile`` of |ADC input| (normalised units: after the output noise and a
    GDC factor ahead of the ADC; every tile of the layer counted), times ``margin``. That
    becomes the layer's bound (its ``output_bound`` buffer, saved with the state dict),
    in place of ``out_bound``; the ADC keeps its bits.

    Call it after :func:`program` and :func:`calibrate_inputs`, as a chip is set up
    before use. The ranges stay through :func:`drift` and the next :func:`program`; with
    GDC ahead of the ADC (the default) drifted outputs are rescaled to the ranges of the
    time of calibration. ``margin`` > 1 leaves headroom for chips or times noisier than
    the calibration. Returns {layer name: bound}. Batches as in
    :func:`calibrate_inputs`. To go back to the config's range: ``layer.output_bound.zero_()``.
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    if not (isinstance(margin, (int, float)) and 0.0 < margin < float("inf")):
        raise ValueError(f"margin must be a number > 0, got {margin!r}")
    layers = dict(analog_layers(model))
    if not layers:
        raise ValueError("calibrate_outputs: the model has no analog layers (aimc.convert it)")
    for name, layer in layers.items():
        if not layer.programmed:
            raise RuntimeError(f"calibrate_outputs: layer '{name}' is not programmed: call "
                               "aimc.program(model, seed=...) first")
    for layer in layers.values():
        layer.out_quantile = quantile
    stats = _collect(model, layers, "out_stats", loader, batches, "calibrate_outputs",
                     forward)
    bounds = {}
    for name, layer in layers.items():
        if not stats[name]:
            raise RuntimeError(f"calibrate_outputs: layer '{name}' was not read (is it "
                               "used in forward?)")
        value = max(stats[name]) * margin
        if getattr(layer, "output_bound", None) is None:  # a layer pickled before it existed
            layer.register_buffer("output_bound", torch.zeros((), device=layer.weight.device))
        # An all-zero output (a layer of zero weights) keeps the config's range.
        layer.output_bound.fill_(value if value > 0 else 0.0)
        bounds[name] = layer.adc_range()[1]
    return bounds


@torch.no_grad()
def adc_saturation(model: nn.Module, loader: Iterable, batches: int = 10,
                   forward: Callable[[nn.Module, Any], Any] | None = None
                   ) -> dict[str, float]:
    """Per analog layer, the fraction of its ADC conversions that hit the clipping bound
    (``TileConfig.out_bound``, or the layer's range from :func:`calibrate_outputs`) on
    up to ``batches`` batches of ``loader``, read from the chip as it is now (programmed,
    drifted, compensated: with GDC ahead of the ADC the bound applies to the rescaled
    outputs).

    A diagnostic for the ADC range (pcm-model.md sec. 5): clipped outputs are lost
    information, and a few percent of them cost accuracy (docs/RESULTS.md measures an
    LSTM losing 0.6 point to clipped recurrent outputs and logits); widen the range,
    calibrate it per layer (:func:`calibrate_outputs`), or train with the ADC simulated
    (``HWAConfig(dac_adc=True)``). Layers without a bound report 0. Batches as in
    :func:`calibrate_inputs`.
    """
    layers = dict(analog_layers(model))
    if not layers:
        raise ValueError("adc_saturation: the model has no analog layers (aimc.convert it)")
    counts = _collect(model, layers, "adc_clips", loader, batches, "adc_saturation", forward)
    return {name: (sum(c for c, _ in calls) / max(1, sum(t for _, t in calls)))
            for name, calls in counts.items()}
