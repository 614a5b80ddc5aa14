"""Program, drift and compensate every analog layer of a model (Joshi et al. 2020)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..nn.convert import analog_layers
from ..nn.layers import GDC_COLUMN, GDC_LAYER, GDC_OFF, AnalogLayerMixin


def _layers(model: nn.Module, what: str) -> list[AnalogLayerMixin]:
    layers = [layer for _, layer in analog_layers(model)]
    if not layers:
        raise ValueError(f"{what}: the model has no analog layers; convert it first with "
                         "aimc.convert(model, config)")
    return layers


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
    return model


def drift(model: nn.Module, t_seconds: float, seed: int | None = None) -> nn.Module:
    """Move the programmed chip to ``t_seconds`` after programming (sec. 3-4).

    Conductances are recomputed from the stored programmed state (never re-programmed)
    with fresh 1/f read noise; effective weights are computed here once, not in every
    forward pass. An active drift compensation is re-calibrated at the new time.
    """
    for layer in _layers(model, "drift"):
        layer.drift_chip(t_seconds, seed)
    return model


def _gdc(model: nn.Module, *, per_column: bool = False, before_adc: bool = True,
         **_: Any) -> None:
    mode = GDC_COLUMN if per_column else GDC_LAYER
    for layer in _layers(model, "compensate"):
        layer.set_gdc(mode, before_adc)


def _none(model: nn.Module, **_: Any) -> None:
    for layer in _layers(model, "compensate"):
        layer.set_gdc(GDC_OFF)


COMPENSATIONS: dict[str, Callable[..., None]] = {"none": _none, "gdc": _gdc}
"""Registry of drift-compensation methods by name (``aimc.compensate(model, name)``)."""


def compensate(model: nn.Module, method: str | None = "gdc", **options: Any) -> nn.Module:
    """Apply a drift compensation to every analog layer (pcm-model.md sec. 6).

    ``"gdc"``: global drift compensation. Right after programming each layer was read
    with a fixed calibration input (r0 = mean |y|); now it is read again (r) and its
    outputs are scaled by alpha = r0 / r. Options: ``per_column=True`` keeps one alpha
    per output; ``before_adc=False`` applies alpha digitally after the ADC instead of
    scaling the ADC range (which keeps the ADC resolution as outputs shrink).
    ``"none"`` (or None) removes any compensation. The choice is re-applied by every
    later :func:`drift`.
    """
    key = "none" if method is None else method
    fn = COMPENSATIONS.get(key)
    if fn is None:
        raise ValueError(f"method: unknown compensation {method!r}; "
                         f"known: {sorted(COMPENSATIONS)}")
    fn(model, **options)
    return model


@torch.no_grad()
def calibrate_inputs(model: nn.Module, loader: Iterable, batches: int = 10,
                     quantile: float = 0.9999) -> dict[str, float]:
    """Set each analog layer's static DAC input range from data, as on real chips.

    Runs up to ``batches`` batches through the network in digital and keeps, per layer,
    the largest per-batch ``quantile`` of |input| (1.0 = the maximum; a quantile just
    below 1 spends the DAC's levels on the bulk rather than on rare outliers). Layers
    with an analog bias row get a range of at least 1, its constant input.
    Returns {layer name: range}. Batches are ``x`` or ``(x, ...)`` tuples.
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    layers = _layers(model, "calibrate_inputs")
    was_training = model.training
    model.eval()
    for layer in layers:
        layer.calibrating, layer.calib_quantile, layer._range_stats = True, quantile, []
    try:
        n = 0
        for batch in loader:
            if n >= batches:
                break
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(x)
            n += 1
        if n == 0:
            raise ValueError("calibrate_inputs: the loader gave no batches")
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
