"""Module conversion: ``aimc.convert`` swaps supported torch layers for analog ones."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping

from torch import nn

from ..config import AnalogConfig
from .attention import AnalogMultiheadAttention
from .layers import AnalogConv1d, AnalogConv2d, AnalogLayerMixin, AnalogLinear
from .recurrent import AnalogGRU, AnalogLSTM, AnalogRNN, AnalogRNNBase

ANALOG_LAYERS: dict[type, type] = {
    nn.Linear: AnalogLinear,
    nn.Conv1d: AnalogConv1d,
    nn.Conv2d: AnalogConv2d,
    nn.LSTM: AnalogLSTM,
    nn.GRU: AnalogGRU,
    nn.RNN: AnalogRNN,
    nn.MultiheadAttention: AnalogMultiheadAttention,
}
"""Registry: digital layer type -> analog layer type (exact types; subclasses stay digital).
An analog type builds itself with ``from_digital(layer, config, name)``; one with a
``supports(layer)`` check converts only the layers it accepts (the others stay digital
and are listed in the warning)."""

CONTAINERS = (AnalogRNNBase, AnalogMultiheadAttention)
"""Analog modules made of analog layers (``to_torch()`` gives the torch module back)."""

# Layer types that hold weights: when they have no analog version, or one that does not
# accept this layer (an LSTM with proj_size, attention with kdim), reported and kept digital.
_WEIGHTED = (nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
             nn.RNNBase, nn.Embedding, nn.Bilinear, nn.MultiheadAttention)


def _supports(target: type, layer: nn.Module) -> bool:
    check = getattr(target, "supports", None)
    return True if check is None else bool(check(layer))


def analog_layers(model: nn.Module) -> Iterator[tuple[str, AnalogLayerMixin]]:
    """(name, layer) for every analog layer of ``model``, in module order."""
    for name, module in model.named_modules():
        if isinstance(module, AnalogLayerMixin):
            yield name, module


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every batch-norm layer of ``model`` that keeps running statistics: the layers whose
    statistics AdaBS re-estimates (Joshi 2020, "AdaBS") and HWA training tracks."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def convert(model: nn.Module, config: AnalogConfig, digital: Iterable[str] = (),
            overrides: Mapping[str, AnalogConfig] | None = None) -> nn.Module:
    """A copy of ``model`` with every Linear/Conv1d/Conv2d on analog tiles (Joshi 2020).

    Weights are kept. Modules named in ``digital`` with everything under them (e.g.
    ``["conv1", "fc"]`` for the first and last layer, or ``"layer1"`` for a whole
    stage) and layer types without an analog version stay digital; the latter are
    listed in a warning. ``overrides`` maps a module name (a layer, or a
    parent such as ``"layer1"``) to the config its analog layers use instead of
    ``config``; the longest matching name wins. It gives a mixed chip, e.g. the most
    sensitive layers on two device pairs per weight (pcm-model.md sec. 1, Mackin 2019).
    The original model is not changed.
    """
    if not isinstance(config, AnalogConfig):
        raise TypeError(f"config must be an aimc AnalogConfig (see aimc.presets), "
                        f"got {type(config).__name__}")
    digital = set(digital)
    overrides = dict(overrides or {})
    names = {name for name, _ in model.named_modules()}
    for what, asked in (("digital", digital), ("overrides", set(overrides))):
        missing = asked - names
        if missing:
            raise ValueError(f"{what}: no module named {sorted(missing)} in the model; "
                             f"module names look like {sorted(n for n in names if n)[:8]}")
    for key, cfg in overrides.items():
        if not isinstance(cfg, AnalogConfig):
            raise TypeError(f"overrides[{key!r}] must be an aimc AnalogConfig, "
                            f"got {type(cfg).__name__}")

    def config_for(name: str) -> AnalogConfig:
        matches = [k for k in overrides if k == "" or name == k or name.startswith(k + ".")]
        return overrides[max(matches, key=len)] if matches else config
    model = copy.deepcopy(model)
    kept: list[str] = []

    def swap(parent: nn.Module, prefix: str) -> None:
        for child_name, child in parent.named_children():
            name = f"{prefix}.{child_name}" if prefix else child_name
            if name in digital:  # the module and everything under it stay digital
                continue
            target = ANALOG_LAYERS.get(type(child))
            if target is not None and _supports(target, child):
                setattr(parent, child_name,
                        target.from_digital(child, config_for(name), name))
            elif isinstance(child, _WEIGHTED):
                kept.append(f"{name} ({type(child).__name__})")
            else:
                swap(child, name)

    root_target = ANALOG_LAYERS.get(type(model))
    if root_target is not None and _supports(root_target, model):
        return root_target.from_digital(model, config_for(""), "")
    swap(model, "")
    _disable_fused_paths(model)
    if kept:
        warnings.warn("aimc.convert: these layers have no analog version and stay digital: "
                      + ", ".join(kept), stacklevel=2)
    return model


def _stay_on_tiles(module: nn.Module, args: tuple) -> None:
    """Forward pre-hook that does nothing: torch skips a module's fused fast path when it
    has hooks, so the analog layers inside run on their tiles."""


def _hook_fast_path(module: nn.Module) -> None:
    if _stay_on_tiles not in module._forward_pre_hooks.values():
        module.register_forward_pre_hook(_stay_on_tiles)


def _no_nested_tensors(module: nn.Module) -> None:
    # as if built with enable_nested_tensor=False: padded batches stay dense tensors
    module.use_nested_tensor = False


FUSED_PATHS: dict[type[nn.Module], Callable[[nn.Module], None]] = {
    nn.TransformerEncoderLayer: _hook_fast_path,
    nn.TransformerEncoder: _no_nested_tensors,
}
"""Registry: module types whose ``forward`` may bypass their submodules (one fused torch
kernel on their weights, or nested tensors, in eval mode without gradients) -> what turns
that off for an instance holding analog layers, whose tiles would otherwise be skipped."""


def _disable_fused_paths(model: nn.Module) -> None:
    """Apply :data:`FUSED_PATHS` to every module of ``model`` that holds analog layers."""
    for module in model.modules():
        switch_off = FUSED_PATHS.get(type(module))
        if switch_off is not None and any(
                isinstance(m, AnalogLayerMixin) for m in module.modules()):
            switch_off(module)


def to_digital(model: nn.Module, effective: bool = False) -> nn.Module:
    """A copy of ``model`` with every analog layer back to its plain torch layer
    (``AnalogLSTM`` to ``nn.LSTM``, ``AnalogGRU`` to ``nn.GRU``...).

    With ``effective=True`` the copy holds the weights the chip holds now (after
    programming, drift and compensation) instead of the trained weights.
    """
    model = plain_layers(model, effective)
    if isinstance(model, CONTAINERS):
        return model.to_torch()
    for name, m in list(model.named_modules()):
        if isinstance(m, CONTAINERS):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, m.to_torch())
    return model


def plain_layers(model: nn.Module, effective: bool = False) -> nn.Module:
    """A copy of ``model`` with every analog matrix layer back to its plain torch layer,
    containers kept: an ``AnalogLSTM`` (GRU, RNN, attention) stays, on plain ``nn.Linear``
    children, so each of its products is still a module call (what the energy trace
    records)."""
    model = copy.deepcopy(model)
    inverse = {v: k for k, v in ANALOG_LAYERS.items()}

    def plain(layer: AnalogLayerMixin) -> nn.Module:
        base = inverse[type(layer)]
        if base is nn.Linear:
            new = nn.Linear(layer.in_features, layer.out_features, layer.bias is not None,
                            device="meta")
        else:
            new = base(layer.in_channels, layer.out_channels, layer.kernel_size,
                       layer.stride, layer.padding, layer.dilation, layer.groups,
                       layer.bias is not None, layer.padding_mode, device="meta")
        weight = layer.weight
        if effective:
            w = layer.effective_weight()
            if layer.alpha.numel():
                alpha = layer.alpha
                w = w * (alpha if alpha.dim() == 0 else alpha.reshape(-1, *[1] * (w.dim() - 1)))
            weight = nn.Parameter(w.detach().clone().to(weight.dtype))
        new.weight = weight
        new.bias = layer.bias
        new.train(layer.training)
        return new

    if isinstance(model, AnalogLayerMixin):
        return plain(model)
    for name, layer in list(analog_layers(model)):
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, plain(layer))
    return model


__all__ = ["ANALOG_LAYERS", "analog_layers", "batch_norms", "convert", "plain_layers",
           "to_digital"]
