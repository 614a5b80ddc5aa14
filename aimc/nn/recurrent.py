"""Recurrent layers on PCM tiles: ``AnalogLSTM``, ``AnalogGRU``, ``AnalogRNN``.

Tsai et al. 2019 ran LSTM inference on PCM. A recurrent layer's gates are
``W_ih x_t + b_ih`` and ``W_hh h_(t-1) + b_hh``: two matrix-vector products per time
step. Each matrix is an :class:`AnalogLinear` on its own tiles, with its own DAC/ADC and
chip state, so programming, drift, GDC, static-range calibration, hardware-aware training
and the energy model treat them as any other analog layer. The input products of all
time steps run in one call (the inputs are known up front); the recurrent product runs
once per step on that step's ``h``, each a separate read of the crossbar (its own DAC
ranges and output noise). The gate non-linearities, the state update and the sum of the
two products are digital. The cell of each type (what follows the two products) is
looked up in :data:`CELLS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence

from ..config import AnalogConfig
from .layers import AnalogLinear, join_name

Cell = Callable[[Tensor, Tensor, Tensor, Tensor | None], tuple[Tensor, Tensor | None]]


def lstm_cell(gx: Tensor, gh: Tensor, h: Tensor, c: Tensor | None
              ) -> tuple[Tensor, Tensor | None]:
    """LSTM update from the input and recurrent products (B, 4H), torch's (i, f, g, o) order.

    c' = sigmoid(f) c + sigmoid(i) tanh(g), h' = sigmoid(o) tanh(c') (Hochreiter &
    Schmidhuber 1997 with a forget gate, as ``torch.nn.LSTM``).
    """
    # The gates are column blocks of one tensor, strided views on which torch's sigmoid
    # and tanh run about 5x slower than on contiguous copies of them.
    i, f, g, o = (t.contiguous() for t in (gx + gh).chunk(4, dim=-1))
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_cell(gx: Tensor, gh: Tensor, h: Tensor, c: Tensor | None
             ) -> tuple[Tensor, Tensor | None]:
    """GRU update from the input and recurrent products (B, 3H), torch's (r, z, n) order.

    r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z); n = tanh(x_n + r h_n); h' = (1 - z) n
    + z h (Cho et al. 2014, as ``torch.nn.GRU``: the reset gate scales the recurrent
    product, bias included).
    """
    xr, xz, xn = gx.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return n + z * (h - n), None


def rnn_tanh_cell(gx: Tensor, gh: Tensor, h: Tensor, c: Tensor | None
                  ) -> tuple[Tensor, Tensor | None]:
    """Elman RNN update h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (``torch.nn.RNN``)."""
    return torch.tanh(gx + gh), None


def rnn_relu_cell(gx: Tensor, gh: Tensor, h: Tensor, c: Tensor | None
                  ) -> tuple[Tensor, Tensor | None]:
    """Elman RNN update with ReLU, h' = relu(W_ih x + b_ih + W_hh h + b_hh)."""
    return torch.relu(gx + gh), None


CELLS: dict[str, tuple[int, Cell]] = {
    "LSTM": (4, lstm_cell),
    "GRU": (3, gru_cell),
    "RNN_TANH": (1, rnn_tanh_cell),
    "RNN_RELU": (1, rnn_relu_cell),
}
"""Registry: torch's recurrent mode -> (gates, i.e. rows of W per hidden unit; cell)."""


class AnalogRNNBase(nn.Module):
    """A torch recurrent layer with its weight matrices on PCM tiles (Tsai et al. 2019).

    Same arguments, inputs and outputs as the torch layer it stands for (``nn.LSTM``,
    ``nn.GRU``, ``nn.RNN``; an LSTM's ``proj_size`` excepted; packed sequences are not
    accepted), plus ``config`` and ``name``. The weights live in child
    :class:`AnalogLinear` layers named ``ih_l{k}[_reverse]`` and ``hh_l{k}[_reverse]``
    (torch's ``weight_ih_l0`` is ``ih_l0.weight``); ``aimc.convert`` makes one from the
    torch layer sharing its Parameters, and ``aimc.to_digital`` turns it back.

    In training mode the layer runs torch's kernel on its weights (with the hardware-aware
    weight noise of :func:`aimc.training.prepare_hwa`, drawn once per forward pass, so
    every time step of a sequence sees the same noisy chip; with the periphery simulated
    in training, ``HWAConfig(dac_adc=True)`` or ``out_noise=True``, it steps through the
    sequence instead, each product through the DAC, output noise and ADC); in eval mode
    it steps through the sequence and every product is an analog read. ``dropout`` (between
    layers) acts in training only, as in torch.
    """

    torch_type: type[nn.RNNBase]
    """The torch layer this analog layer stands for."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, config: AnalogConfig | None = None,
                 name: str = "", device=None, dtype=None, mode: str = "LSTM") -> None:
        super().__init__()
        kind = type(self).__name__
        for field, value in (("input_size", input_size), ("hidden_size", hidden_size),
                             ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{kind}: {field} must be an integer >= 1, got {value!r}")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"{kind}: dropout must be in [0, 1], got {dropout!r}")
        if mode not in CELLS:
            raise ValueError(f"{kind}: mode must be one of {list(CELLS)}, got {mode!r}")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)
        config = config if config is not None else AnalogConfig()
        gates = CELLS[mode][0]
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            fan_in = input_size if layer == 0 else hidden_size * directions
            for suffix in self._suffixes():
                for part, n_in in (("ih", fan_in), ("hh", hidden_size)):
                    key = f"{part}_l{layer}{suffix}"
                    self.add_module(key, AnalogLinear(
                        n_in, gates * hidden_size, self.bias, config, join_name(name, key),
                        device=device, dtype=dtype))
        if device != "meta":
            # torch's initialisation: every weight and bias U(-1/sqrt(H), 1/sqrt(H))
            bound = 1.0 / math.sqrt(hidden_size)
            with torch.no_grad():
                for p in self.parameters():
                    p.uniform_(-bound, bound)

    def __getstate__(self):
        # the torch shell is a cache rebuilt on demand: keep it out of copies and pickles
        state = dict(self.__dict__)
        state.pop("_torch_shell", None)
        return state

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def cells(self, layer: int) -> list[tuple[nn.Module, nn.Module]]:
        """The (input, recurrent) layers of layer ``layer``, one pair per direction."""
        return [(getattr(self, f"ih_l{layer}{s}"), getattr(self, f"hh_l{layer}{s}"))
                for s in self._suffixes()]

    def _torch_kwargs(self) -> dict[str, Any]:
        return dict(num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                    dropout=self.dropout, bidirectional=self.bidirectional)

    @classmethod
    def _kwargs_of(cls, m: nn.RNNBase) -> dict[str, Any]:
        """Constructor arguments of ``cls`` that describe ``m``."""
        return {}

    @staticmethod
    def supports(m: nn.RNNBase) -> bool:
        """Whether ``m`` has an analog version (an LSTM with ``proj_size`` has not)."""
        return not getattr(m, "proj_size", 0)

    @classmethod
    def from_digital(cls, m: nn.RNNBase, config: AnalogConfig, name: str = ""
                     ) -> AnalogRNNBase:
        """An analog copy of ``m`` sharing its Parameters (``weight_ih_l0`` becomes
        ``ih_l0.weight``, the same tensor)."""
        if getattr(m, "proj_size", 0):
            raise ValueError(f"{cls.__name__}: '{name or 'the LSTM'}' has proj_size="
                             f"{m.proj_size}; LSTMs with projections have no analog version")
        new = cls(m.input_size, m.hidden_size, m.num_layers, m.bias, m.batch_first,
                  m.dropout, m.bidirectional, config, name, device="meta",
                  **cls._kwargs_of(m))
        for key, child in new.named_children():
            part, _, rest = key.partition("_")
            child.weight = getattr(m, f"weight_{part}_{rest}")
            child.bias = getattr(m, f"bias_{part}_{rest}") if m.bias else None
            child._init_analog(config, join_name(name, key))
        new.train(m.training)
        return new

    def to_torch(self) -> nn.RNNBase:
        """The plain torch layer holding this layer's Parameters (the same tensors)."""
        m = self._shell()
        for key, child in self.named_children():
            part, _, rest = key.partition("_")
            setattr(m, f"weight_{part}_{rest}", child.weight)
            if self.bias:
                setattr(m, f"bias_{part}_{rest}", child.bias)
        m.train(self.training)
        return m

    def _shell(self) -> nn.RNNBase:
        """A weightless torch layer of this shape (meta device)."""
        return self.torch_type(self.input_size, self.hidden_size, device="meta",
                               **self._torch_kwargs())

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        for key, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                             ("bidirectional", False)):
            if getattr(self, key) != default:
                s += f", {key}={getattr(self, key)}"
        return s

    def forward(self, input: Tensor, hx: Any = None) -> tuple[Tensor, Any]:
        kind = type(self).__name__
        if isinstance(input, PackedSequence):
            raise TypeError(f"{kind} does not take packed sequences: pad them "
                            "(torch.nn.utils.rnn.pad_packed_sequence) and pass a tensor")
        if input.dim() not in (2, 3):
            raise ValueError(f"{kind}: input must be (L, H_in) or a batch of them, "
                             f"got shape {tuple(input.shape)}")
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else (
            input.transpose(0, 1) if self.batch_first else input)  # (T, B, I)
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{kind}: expected {self.input_size} input features, "
                             f"got {x.shape[-1]}")
        lstm = self.mode == "LSTM"
        directions = len(self._suffixes())
        shape = (self.num_layers * directions, x.shape[1], self.hidden_size)
        states: list[Tensor] = []
        if hx is not None:
            names = ("h_0", "c_0") if lstm else ("h_0",)
            states = list(hx) if lstm and isinstance(hx, (tuple, list)) else [hx]
            if len(states) != len(names) or not all(isinstance(t, Tensor) for t in states):
                raise ValueError(f"{kind}: hx must be {' and '.join(names)} (tensors)")
            states = [s.unsqueeze(1) if unbatched else s for s in states]
            for what, t in zip(names, states, strict=True):
                if tuple(t.shape) != shape:
                    raise ValueError(f"{kind}: {what} must have shape {shape}, "
                                     f"got {tuple(t.shape)}")
        periphery = self.training and self._periphery_in_training()
        if self.training and not periphery:
            # torch's fused kernel on this layer's weights (noisy ones under hardware-aware
            # training): the same result as the step loop below, several times faster.
            args = (input,) if hx is None else (input, hx)
            return functional_call(self._training_shell(), self._training_weights(), args)
        h0 = states[0] if states else x.new_zeros(shape)
        c0 = (states[1] if states else x.new_zeros(shape)) if lstm else None
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d, (ih, hh) in enumerate(self.cells(layer)):
                if periphery:  # the simulated DAC/ADC and output noise at every step
                    ih, hh = _training_product(ih), _training_product(hh)
                k = layer * directions + d
                seq = x.flip(0) if d else x
                out, h, c = self._direction(ih, hh, seq, h0[k], None if c0 is None else c0[k])
                outs.append(out.flip(0) if d else out)
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if directions == 1 else torch.cat(outs, dim=-1)
            if self.training and self.dropout and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        out = x.squeeze(1) if unbatched else (x.transpose(0, 1) if self.batch_first else x)
        finals = [torch.stack(h_n)] + ([torch.stack(c_n)] if lstm else [])
        if unbatched:
            finals = [f.squeeze(1) for f in finals]
        return out, (tuple(finals) if lstm else finals[0])

    def _periphery_in_training(self) -> bool:
        """Whether hardware-aware training simulates the DAC/ADC or output noise here."""
        hooks = [getattr(m, "hwa", None) for m in self.children()]
        return any(h is not None and (h.config.dac_adc or h.config.out_noise) for h in hooks)

    def _direction(self, ih: Callable[[Tensor], Tensor], hh: Callable[[Tensor], Tensor],
                   seq: Tensor, h: Tensor, c: Tensor | None
                   ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One direction of one layer over ``seq`` (T, B, I), each product a call of its
        layer (an analog read in eval mode): outputs (T, B, H), h, c."""
        cell = CELLS[self.mode][1]
        steps, batch = seq.shape[:2]
        # Every step's input product at once: the inputs are known before the recurrence.
        gates_in = ih(seq.reshape(steps * batch, -1)).view(steps, batch, -1)
        outs = []
        # unbind, not gates_in[t]: indexing's backward would fill a zero tensor of the
        # whole sequence's size at every step
        for g_t in gates_in.unbind(0):
            h, c = cell(g_t, hh(h), h, c)
            outs.append(h)
        return torch.stack(outs), h, c

    def _training_shell(self) -> nn.RNNBase:
        """The weightless torch layer to run torch's kernel on given weights; kept out of
        the module tree, so not in ``state_dict``."""
        shell = self.__dict__.get("_torch_shell")
        if shell is None:
            shell = self.__dict__["_torch_shell"] = self._shell()
        shell.train(self.training)
        return shell

    def _training_weights(self) -> dict[str, Tensor]:
        """torch's parameter names -> this layer's weights for one training forward pass:
        with a hardware-aware hook, noisy weights drawn once (so every time step of the
        sequence sees the same chip), in layer order, input before recurrent."""
        weights = {}
        for layer in range(self.num_layers):
            for suffix in self._suffixes():
                for part in ("ih", "hh"):
                    child = getattr(self, f"{part}_l{layer}{suffix}")
                    weights[f"weight_{part}_l{layer}{suffix}"] = _training_weight(child)
                    if self.bias:
                        weights[f"bias_{part}_l{layer}{suffix}"] = child.bias
        return weights


class AnalogLSTM(AnalogRNNBase):
    """``nn.LSTM`` on PCM tiles (:class:`AnalogRNNBase`; Tsai et al. 2019)."""

    torch_type = nn.LSTM

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs, mode="LSTM")


class AnalogGRU(AnalogRNNBase):
    """``nn.GRU`` on PCM tiles (:class:`AnalogRNNBase`)."""

    torch_type = nn.GRU

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs, mode="GRU")


class AnalogRNN(AnalogRNNBase):
    """``nn.RNN`` (Elman, tanh or ReLU) on PCM tiles (:class:`AnalogRNNBase`)."""

    torch_type = nn.RNN

    def __init__(self, *args: Any, nonlinearity: str = "tanh", **kwargs: Any) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"AnalogRNN: nonlinearity must be 'tanh' or 'relu', "
                             f"got {nonlinearity!r}")
        super().__init__(*args, **kwargs, mode=f"RNN_{nonlinearity.upper()}")
        self.nonlinearity = nonlinearity

    def _torch_kwargs(self) -> dict[str, Any]:
        return {**super()._torch_kwargs(), "nonlinearity": self.nonlinearity}

    @classmethod
    def _kwargs_of(cls, m: nn.RNNBase) -> dict[str, Any]:
        return {"nonlinearity": m.nonlinearity}


def _training_weight(layer: nn.Module) -> Tensor:
    """The weight ``layer`` computes with in training mode: its hardware-aware hook's noisy
    weight (gradients flow to the clean one), else the weight itself."""
    hook = getattr(layer, "hwa", None)
    return layer.weight if hook is None else hook.noisy_weight(layer)


def _training_product(layer: nn.Module) -> Callable[[Tensor], Tensor]:
    """``x -> layer(x)`` in training mode with the simulated periphery: the noisy weights
    drawn once here (the same chip at every step), the DAC, output noise and ADC applied
    at every call (every read)."""
    hook = getattr(layer, "hwa", None)
    if hook is None:  # a layer left without noise trains as the plain layer
        return layer
    w, gain = hook.draw(layer)
    return lambda x: hook.forward_with(layer, x, w, gain)


__all__ = ["CELLS", "AnalogGRU", "AnalogLSTM", "AnalogRNN", "AnalogRNNBase", "gru_cell",
           "lstm_cell", "rnn_relu_cell", "rnn_tanh_cell"]
