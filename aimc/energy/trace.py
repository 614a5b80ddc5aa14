"""Walk one forward pass and record every operation the cost model has to charge.

The converted model is copied back to plain torch layers (``plain_layers``, names kept;
an LSTM keeps its input and recurrent layers as modules) and run once on a batch, in eval
mode and without gradients. Forward hooks record each leaf module with its input and
output shapes; a ``TorchFunctionMode`` records the tensor functions that run outside
those modules (``F.relu``, the residual ``+``, pooling in a ``forward``), so operations
written as functions are costed too. Operations are classified through two registries,
by module type and by function name; a module that holds parameters but has no cost
rule, or a weight function (``matmul``, ``F.linear``...) called outside a costed module,
is recorded as *unsupported* and reported, never dropped. A weighted layer called more
than once (an LSTM's recurrent layer, a shared layer) is one record: its work adds up,
its tiles count once.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..nn.attention import AnalogMultiheadAttention
from ..nn.convert import CONTAINERS, analog_layers, plain_layers

ALL_ROWS = 0
"""Consumer needs its whole input before it starts (dense layers, global pooling)."""


@dataclass
class Op:
    """One recorded operation (for a batch)."""

    name: str
    """Module name, or ``"<module>:<function>"`` for a function call inside a module."""
    kind: str
    """``analog``, ``digital`` (weighted layer left digital), ``elementwise`` or
    ``unsupported``."""
    type: str
    """Module class or function name."""
    in_numel: int
    """Elements of the (first) input."""
    out_numel: int
    """Elements of the output."""
    out_rows: int
    """Rows of the output feature map (H of N,C,H,W; L of N,C,L), 1 otherwise."""
    need_rows: int
    """Input rows this op needs before it can start (kernel height), ``ALL_ROWS`` = all."""
    ops: dict[str, int] = field(default_factory=dict)
    """Element operations by class: ``elem`` (add/compare), ``scale`` (multiply-add),
    ``act`` (non-linear lookup)."""
    macs: int = 0
    """Multiply-accumulates (weighted layers)."""
    weights: int = 0
    """Weights of the layer (weighted layers)."""
    extra_in: int = 0
    """Elements of a second tensor operand (a residual add): data moved besides the
    producer's output, which element operations consume in place."""
    vectors: int = 0
    """Analog layers: input vectors L for the batch (output positions x batch)."""
    activity: float | None = None
    """Analog layers: measured mean |x| of the normalised DAC inputs, when data was given."""
    module: nn.Module | None = None
    """The analog layer (original, with its config and chip state) for ``analog`` ops."""


def _numel(x: object) -> int:
    return x.numel() if isinstance(x, Tensor) else 0


def _rows(y: object) -> int:
    if isinstance(y, Tensor) and y.dim() >= 3:
        return int(y.shape[2])
    return 1


def _kernel_rows(m: nn.Module) -> int:
    k = getattr(m, "kernel_size", None)
    if k is None:
        return 1
    return int(k[0] if isinstance(k, (tuple, list)) else k)


# -- module registry: type -> (ops, need_rows) ----------------------------------------------------
def _bn(m, x, y):
    return {"scale": _numel(y)}, 1


def _cmp(m, x, y):
    return {"elem": _numel(y)}, 1


def _act(m, x, y):
    return {"act": _numel(y)}, 1


def _pool(m, x, y):
    return {"elem": _numel(x)}, _kernel_rows(m)


def _global_pool(m, x, y):
    return {"elem": _numel(x), "scale": _numel(y)}, ALL_ROWS


def _norm(m, x, y):
    # mean, variance, normalise, affine: about four adds and one multiply-add per element
    return {"elem": 4 * _numel(x), "scale": _numel(y)}, ALL_ROWS


def _free(m, x, y):
    return {}, 1


ModuleRule = Callable[[nn.Module, object, object], tuple[dict[str, int], int]]

MODULE_COSTS: dict[type, ModuleRule] = {
    nn.BatchNorm1d: _bn, nn.BatchNorm2d: _bn,
    nn.ReLU: _cmp, nn.ReLU6: _cmp, nn.LeakyReLU: _cmp, nn.Hardtanh: _cmp,
    nn.Sigmoid: _act, nn.Tanh: _act, nn.GELU: _act, nn.SiLU: _act, nn.Softmax: _act,
    nn.LogSoftmax: _act, nn.ELU: _act, nn.Hardswish: _act,
    nn.MaxPool1d: _pool, nn.MaxPool2d: _pool, nn.AvgPool1d: _pool, nn.AvgPool2d: _pool,
    nn.AdaptiveAvgPool1d: _global_pool, nn.AdaptiveAvgPool2d: _global_pool,
    nn.AdaptiveMaxPool2d: _global_pool,
    nn.LayerNorm: _norm, nn.GroupNorm: _norm,
    nn.Flatten: _free, nn.Unflatten: _free, nn.Identity: _free, nn.Dropout: _free,
}
"""Registry: module type -> rule giving its element operations and the input rows it needs."""

WEIGHTED_DIGITAL = (nn.Linear, nn.Conv1d, nn.Conv2d)
"""Weighted layer types costed as MACs (analog when converted, digital otherwise)."""

# -- function registry: name -> (op class, counted on "in" or "out" elements, need_rows) ------
_F_ELEM = ("add", "sub", "__add__", "__radd__", "__iadd__", "__sub__", "__rsub__", "__isub__",
           "add_", "sub_", "relu", "relu_", "clamp", "clamp_", "hardtanh", "relu6",
           "leaky_relu", "maximum", "minimum", "neg", "abs", "where", "threshold")
_F_SCALE = ("mul", "div", "__mul__", "__rmul__", "__imul__", "__truediv__", "__itruediv__",
            "mul_", "div_", "batch_norm", "addcmul", "addcmul_")
_F_ACT = ("sigmoid", "tanh", "gelu", "silu", "softmax", "log_softmax", "exp", "log",
          "hardswish", "elu", "softplus", "sigmoid_", "tanh_", "exp_")
_F_POOL = ("max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "max_pool2d_with_indices",
           "max_pool1d_with_indices")
_F_GLOBAL = ("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d",
             "adaptive_max_pool2d", "mean", "sum", "amax", "max", "layer_norm", "group_norm")
FUNCTION_COSTS: dict[str, tuple[str, str, int]] = {
    **{n: ("elem", "out", 1) for n in _F_ELEM},
    **{n: ("scale", "out", 1) for n in _F_SCALE},
    **{n: ("act", "out", 1) for n in _F_ACT},
    **{n: ("elem", "in", 2) for n in _F_POOL},
    **{n: ("elem", "in", ALL_ROWS) for n in _F_GLOBAL},
}
"""Registry: torch function name -> (op class, elements counted, input rows needed)."""

WEIGHT_FUNCTIONS = frozenset((
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "matmul", "mm", "bmm", "addmm", "einsum", "bilinear", "embedding",
    "lstm", "gru", "rnn_tanh", "rnn_relu", "multi_head_attention_forward",
    "scaled_dot_product_attention", "__matmul__", "tensordot", "baddbmm", "addbmm"))
"""Functions that multiply by weights: unsupported when called outside a costed module."""

ACTIVATION_PRODUCTS = frozenset(("matmul", "__matmul__", "bmm"))
"""Matrix products of two activations (attention scores, scores times values): inside an
attention module they are digital MACs with no weights to read."""

FREE_FUNCTIONS = frozenset((
    "view", "reshape", "flatten", "unflatten", "pad", "__getitem__", "__setitem__", "cat",
    "stack", "permute", "transpose", "contiguous", "size", "dim", "numel", "__get__",
    "chunk", "split", "squeeze", "unsqueeze", "expand", "expand_as", "clone", "to", "detach",
    "float", "half", "double", "type", "type_as", "zeros_like", "ones_like", "new_zeros",
    "new_ones", "new_empty", "dropout", "identity", "__len__", "__iter__", "narrow",
    "select", "unbind", "repeat", "flip", "roll", "__format__", "__repr__", "dtype",
    "device", "is_floating_point", "requires_grad_", "__bool__", "item", "__eq__", "__ne__",
    "__lt__", "__gt__", "__le__", "__ge__", "eq", "ne", "movedim", "t"))
"""Shape and data-layout functions: no arithmetic, not charged (their data movement is
counted with the operations that produce and consume the tensors)."""


class _Recorder(TorchFunctionMode):
    """Records function calls made outside costed modules."""

    def __init__(self, tracer: _Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.tracer.on_function(func, args, out)
        return out


def _merge_call(first: Op, again: Op) -> None:
    """Add a further call of a weighted layer to its first call's record: more work
    (inputs, outputs, MACs, vectors), the same weights and tiles."""
    if first.activity is not None and again.activity is not None:
        total = first.vectors + again.vectors
        first.activity = ((first.activity * first.vectors + again.activity * again.vectors)
                          / total if total else first.activity)
    first.in_numel += again.in_numel
    first.out_numel += again.out_numel
    first.macs += again.macs
    first.vectors += again.vectors


class _Tracer:
    def __init__(self, analog: dict[str, nn.Module], measure_activity: bool,
                 products: set[str]) -> None:
        self.analog = analog
        self.measure = measure_activity
        self.ops: list[Op] = []
        self.stack: list[str] = []
        self.costed_depth = 0
        self.uncosted: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self.paused = 0  # > 0 while the hooks themselves compute (not part of the model)
        # Weighted layers by name: a layer called again (an LSTM's recurrent layer at every
        # step, a shared layer) is one set of tiles read more often, so its calls add up.
        self.weighted: dict[str, Op] = {}
        # Modules whose matrix products multiply activations by activations (attention):
        # digital MACs there, not an unsupported weight function.
        self.products = products

    # modules -------------------------------------------------------------------------------
    def is_costed(self, name: str, m: nn.Module) -> bool:
        if name in self.analog or type(m) in MODULE_COSTS or isinstance(m, WEIGHTED_DIGITAL):
            return True
        if isinstance(m, CONTAINERS):
            # made of analog layers (traced one by one) and functions (the attention's
            # products, its bias adds): transparent
            return False
        return any(True for _ in m.parameters(recurse=False))  # unsupported: still opaque

    def pre(self, name: str, m: nn.Module, args) -> None:
        self.paused += 1
        try:
            self._pre(name, m)
        finally:
            self.paused -= 1

    def post(self, name: str, m: nn.Module, args, out) -> None:
        self.paused += 1
        try:
            self._post(name, m, args, out)
        finally:
            self.paused -= 1

    def _pre(self, name: str, m: nn.Module) -> None:
        self.stack.append(name)
        if self.is_costed(name, m):
            self.costed_depth += 1

    def _post(self, name: str, m: nn.Module, args, out) -> None:
        self.stack.pop()
        if not self.is_costed(name, m):
            return
        self.costed_depth -= 1
        if self.costed_depth:
            return  # a costed module inside another costed module is part of it
        x = args[0] if args else None
        label = name or type(m).__name__
        common = dict(in_numel=_numel(x), out_numel=_numel(out), out_rows=_rows(out))
        if name in self.analog:
            layer = self.analog[name]
            out_ch = getattr(m, "out_features", None) or m.out_channels
            vectors = _numel(out) // out_ch
            op = Op(label, "analog", type(layer).__name__, need_rows=self._need(m),
                    macs=self._macs(m, out), weights=m.weight.numel(), vectors=vectors,
                    activity=self._activity(layer, x) if self.measure else None,
                    module=layer, **common)
        elif isinstance(m, WEIGHTED_DIGITAL):
            op = Op(label, "digital", type(m).__name__, need_rows=self._need(m),
                    macs=self._macs(m, out), weights=m.weight.numel(), **common)
        elif type(m) in MODULE_COSTS:
            ops, need = MODULE_COSTS[type(m)](m, x, out)
            if not ops:
                return
            op = Op(label, "elementwise", type(m).__name__, need_rows=need, ops=ops, **common)
        else:
            op = Op(label, "unsupported", type(m).__name__, need_rows=ALL_ROWS,
                    weights=sum(p.numel() for p in m.parameters()), **common)
        first = self.weighted.get(label) if op.kind in ("analog", "digital") else None
        if first is not None:
            _merge_call(first, op)
            return
        if op.kind in ("analog", "digital"):
            self.weighted[label] = op
        self.ops.append(op)

    @staticmethod
    def _need(m: nn.Module) -> int:
        return ALL_ROWS if isinstance(m, nn.Linear) else _kernel_rows(m)

    @staticmethod
    def _macs(m: nn.Module, out: Tensor) -> int:
        if isinstance(m, nn.Linear):
            return _numel(out) * m.in_features
        per_out = (m.in_channels // m.groups) * math.prod(m.kernel_size)
        return _numel(out) * per_out

    @staticmethod
    def _activity(layer: nn.Module, x: Tensor) -> float:
        """Mean |x| after the layer's input normalisation (static range or per-tensor max)."""
        a = x.detach().abs().float()
        r = float(layer.input_range) if layer.analog_config.tile.input_range == "static" else 0.0
        if not r > 0:
            r = float(a.max()) if a.numel() else 0.0
        if not r > 0:
            return 0.0
        return float((a / r).clamp(max=1.0).mean())

    # functions -----------------------------------------------------------------------------
    def on_function(self, func, args, out) -> None:
        if self.paused or self.costed_depth or not isinstance(out, Tensor):
            return
        fname = getattr(func, "__name__", None) or str(func)
        ctx = self.stack[-1] if self.stack else ""
        ctx = ctx or "(model)"
        if fname in ACTIVATION_PRODUCTS and ctx in self.products:
            a, b = args[0], args[1]
            # both operands move in; each output element sums a's last dim of products
            self.ops.append(Op(self._label(ctx, fname), "digital", fname,
                               _numel(a) + _numel(b), _numel(out), _rows(out), ALL_ROWS,
                               macs=_numel(out) * int(a.shape[-1])))
            return
        if fname in WEIGHT_FUNCTIONS:
            x = next((a for a in args if isinstance(a, Tensor)), None)
            self.ops.append(Op(self._label(ctx, fname), "unsupported", fname, _numel(x),
                               _numel(out), _rows(out), ALL_ROWS))
            return
        rule = FUNCTION_COSTS.get(fname)
        if rule is None:
            if fname not in FREE_FUNCTIONS:
                self.uncosted[fname] += 1
            return
        cls, on, need = rule
        tensors = [a for a in args if isinstance(a, Tensor)]
        x = tensors[0] if tensors else None
        count = _numel(x) if on == "in" else _numel(out)
        if count == 0:
            return
        extra = _numel(tensors[1]) if len(tensors) > 1 else 0
        self.ops.append(Op(self._label(ctx, fname), "elementwise", fname, _numel(x),
                           _numel(out), _rows(out), need, ops={cls: count}, extra_in=extra))

    def _label(self, ctx: str, fname: str) -> str:
        base = f"{ctx}:{fname}"
        self.seen[base] += 1
        n = self.seen[base]
        return base if n == 1 else f"{base}#{n}"


@dataclass
class Trace:
    """What one forward pass did: the operations in execution order, per batch."""

    ops: list[Op]
    """Recorded operations, in execution order."""
    batch: int
    """Samples in the traced batch."""
    uncosted_functions: dict[str, int]
    """Tensor functions seen outside costed modules that have no cost rule (name -> calls)."""


@torch.no_grad()
def trace(model: nn.Module, inputs: Tensor) -> Trace:
    """Run ``model`` once on ``inputs`` (batch first) and record its operations.

    Analog layers are recognised by name (:func:`aimc.analog_layers`); the pass itself
    runs on a plain-torch copy, so it needs neither a programmed chip nor calibrated input
    ranges. The activity of the analog layers' inputs is measured when ``inputs`` is not
    all zeros.
    """
    analog = dict(analog_layers(model))
    plain = plain_layers(model).eval()
    measure = bool(inputs.abs().sum() > 0)
    attention = {n for n, m in plain.named_modules() if isinstance(m, AnalogMultiheadAttention)}
    tracer = _Tracer(analog, measure, attention)
    handles = []
    for name, m in plain.named_modules():
        handles.append(m.register_forward_pre_hook(
            lambda mod, args, _n=name: tracer.pre(_n, mod, args)))
        handles.append(m.register_forward_hook(
            lambda mod, args, out, _n=name: tracer.post(_n, mod, args, out)))
    try:
        with _Recorder(tracer):
            plain(inputs)
    finally:
        for h in handles:
            h.remove()
    return Trace(tracer.ops, int(inputs.shape[0]), dict(tracer.uncosted))
