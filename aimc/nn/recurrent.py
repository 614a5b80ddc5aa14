"""Recurrent layers on PCM tiles: ``AnalogLSTM`` (Tsai et al. 2019, LSTM inference on PCM).

An LSTM layer's gates are ``W_ih x_t + b_ih + W_hh h_(t-1) + b_hh``: two matrix-vector
products per time step. Each of the two matrices (4H x input, 4H x H) is an
:class:`AnalogLinear` on its own tiles, with its own DAC/ADC and chip state, so programming,
drift, GDC, static-range calibration, hardware-aware training and the energy model treat
them as any other analog layer. The input products of all time steps run in one call (the
inputs are known up front); the recurrent product runs once per step on that step's
``h``, each a separate read of the crossbar (its own DAC ranges and output noise). The gate
non-linearities, the cell update and the sum of the two products are digital.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils.rnn import PackedSequence

from ..config import AnalogConfig
from .layers import AnalogLinear


def lstm_cell(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM update from pre-activation ``gates`` (B, 4H), in torch's (i, f, g, o) order.

    c' = sigmoid(f) c + sigmoid(i) tanh(g), h' = sigmoid(o) tanh(c') (Hochreiter &
    Schmidhuber 1997 with a forget gate, as ``torch.nn.LSTM``).
    """
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


class AnalogLSTM(nn.Module):
    """``nn.LSTM`` with its weight matrices on PCM tiles (Tsai et al. 2019).

    Same arguments, inputs and outputs as ``nn.LSTM`` (``proj_size`` excepted; packed
    sequences are not accepted), plus ``config`` and ``name``. The weights live in child
    :class:`AnalogLinear` layers named ``ih_l{k}[_reverse]`` and ``hh_l{k}[_reverse]``
    (torch's ``weight_ih_l0`` is ``ih_l0.weight``); ``aimc.convert`` makes one from an
    ``nn.LSTM`` sharing its Parameters, and ``aimc.to_digital`` turns it back.

    In training mode the layer runs torch's LSTM kernel on its weights (with the
    hardware-aware weight noise of :func:`aimc.training.prepare_hwa`, drawn once per
    forward pass, so every time step of a sequence sees the same noisy chip); in eval mode
    it steps through the sequence and every product is an analog read. ``dropout``
    (between layers) acts in training only, as in torch.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, config: AnalogConfig | None = None,
                 name: str = "", device=None, dtype=None) -> None:
        super().__init__()
        for field, value in (("input_size", input_size), ("hidden_size", hidden_size),
                             ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"AnalogLSTM: {field} must be an integer >= 1, got {value!r}")
        if not 0.0 <= float(dropout) <= 1.0:
            raise ValueError(f"AnalogLSTM: dropout must be in [0, 1], got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)
        config = config if config is not None else AnalogConfig()
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            fan_in = input_size if layer == 0 else hidden_size * directions
            for suffix in self._suffixes():
                for kind, n_in in (("ih", fan_in), ("hh", hidden_size)):
                    key = f"{kind}_l{layer}{suffix}"
                    self.add_module(key, AnalogLinear(
                        n_in, 4 * hidden_size, self.bias, config, _join(name, key),
                        device=device, dtype=dtype))
        if device != "meta":
            # torch's LSTM initialisation: every weight and bias U(-1/sqrt(H), 1/sqrt(H))
            bound = 1.0 / math.sqrt(hidden_size)
            with torch.no_grad():
                for p in self.parameters():
                    p.uniform_(-bound, bound)

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def cells(self, layer: int) -> list[tuple[nn.Module, nn.Module]]:
        """The (input, recurrent) layers of LSTM layer ``layer``, one pair per direction."""
        return [(getattr(self, f"ih_l{layer}{s}"), getattr(self, f"hh_l{layer}{s}"))
                for s in self._suffixes()]

    @classmethod
    def from_digital(cls, m: nn.LSTM, config: AnalogConfig, name: str = "") -> AnalogLSTM:
        """An analog copy of ``m`` sharing its Parameters (``weight_ih_l0`` becomes
        ``ih_l0.weight``, the same tensor)."""
        if getattr(m, "proj_size", 0):
            raise ValueError(f"AnalogLSTM: '{name or 'the LSTM'}' has proj_size="
                             f"{m.proj_size}; LSTMs with projections have no analog version")
        new = cls(m.input_size, m.hidden_size, m.num_layers, m.bias, m.batch_first,
                  m.dropout, m.bidirectional, config, name, device="meta")
        for key, child in new.named_children():
            kind, _, rest = key.partition("_")
            child.weight = getattr(m, f"weight_{kind}_{rest}")
            child.bias = getattr(m, f"bias_{kind}_{rest}") if m.bias else None
            child._init_analog(config, _join(name, key))
        new.train(m.training)
        return new

    def to_lstm(self) -> nn.LSTM:
        """A plain ``nn.LSTM`` holding this layer's Parameters (the same tensors)."""
        m = nn.LSTM(self.input_size, self.hidden_size, self.num_layers, self.bias,
                    self.batch_first, self.dropout, self.bidirectional, device="meta")
        for key, child in self.named_children():
            kind, _, rest = key.partition("_")
            setattr(m, f"weight_{kind}_{rest}", child.weight)
            if self.bias:
                setattr(m, f"bias_{kind}_{rest}", child.bias)
        m.train(self.training)
        return m

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if isinstance(input, PackedSequence):
            raise TypeError("AnalogLSTM does not take packed sequences: pad them "
                            "(torch.nn.utils.rnn.pad_packed_sequence) and pass a tensor")
        if input.dim() not in (2, 3):
            raise ValueError(f"AnalogLSTM: input must be (L, H_in) or a batch of them, "
                             f"got shape {tuple(input.shape)}")
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else (
            input.transpose(0, 1) if self.batch_first else input)  # (T, B, I)
        if x.shape[-1] != self.input_size:
            raise ValueError(f"AnalogLSTM: expected {self.input_size} input features, "
                             f"got {x.shape[-1]}")
        directions = len(self._suffixes())
        shape = (self.num_layers * directions, x.shape[1], self.hidden_size)
        if hx is not None:
            h0, c0 = hx
            if unbatched:
                h0, c0 = h0.unsqueeze(1), c0.unsqueeze(1)
            for what, t in (("h_0", h0), ("c_0", c0)):
                if tuple(t.shape) != shape:
                    raise ValueError(f"AnalogLSTM: {what} must have shape {shape}, "
                                     f"got {tuple(t.shape)}")
        if self.training:
            # torch's fused LSTM on this layer's weights (noisy ones under hardware-aware
            # training): the same result as the step loop below, several times faster.
            args = (input,) if hx is None else (input, hx)
            return functional_call(self._shell(), self._training_weights(), args)
        if hx is None:
            h0 = c0 = x.new_zeros(shape)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d, (ih, hh) in enumerate(self.cells(layer)):
                k = layer * directions + d
                seq = x.flip(0) if d else x
                out, h, c = self._direction(ih, hh, seq, h0[k], c0[k])
                outs.append(out.flip(0) if d else out)
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if directions == 1 else torch.cat(outs, dim=-1)
        out = x.squeeze(1) if unbatched else (x.transpose(0, 1) if self.batch_first else x)
        h_n, c_n = torch.stack(h_n), torch.stack(c_n)
        if unbatched:
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return out, (h_n, c_n)

    @staticmethod
    def _direction(ih: nn.Module, hh: nn.Module, seq: Tensor, h: Tensor, c: Tensor
                   ) -> tuple[Tensor, Tensor, Tensor]:
        """One direction of one layer over ``seq`` (T, B, I), each product a call of its
        layer (an analog read in eval mode): outputs (T, B, H), h, c."""
        steps, batch = seq.shape[:2]
        # Every step's input product at once: the inputs are known before the recurrence.
        gates_in = ih(seq.reshape(steps * batch, -1)).view(steps, batch, -1)
        outs = []
        for t in range(steps):
            h, c = lstm_cell(gates_in[t] + hh(h), c)
            outs.append(h)
        return torch.stack(outs), h, c

    def _shell(self) -> nn.LSTM:
        """A weightless ``nn.LSTM`` of this shape (meta device) to run torch's kernel on
        given weights; kept out of the module tree, so not in ``state_dict``."""
        shell = self.__dict__.get("_lstm_shell")
        if shell is None:
            shell = self.__dict__["_lstm_shell"] = nn.LSTM(
                self.input_size, self.hidden_size, self.num_layers, self.bias,
                self.batch_first, self.dropout, self.bidirectional, device="meta")
        shell.train(self.training)
        return shell

    def _training_weights(self) -> dict[str, Tensor]:
        """torch's parameter names -> this layer's weights for one training forward pass:
        with a hardware-aware hook, noisy weights drawn once (so every time step of the
        sequence sees the same chip), in layer order, input before recurrent."""
        weights = {}
        for layer in range(self.num_layers):
            for suffix in self._suffixes():
                for kind in ("ih", "hh"):
                    child = getattr(self, f"{kind}_l{layer}{suffix}")
                    weights[f"weight_{kind}_l{layer}{suffix}"] = _training_weight(child)
                    if self.bias:
                        weights[f"bias_{kind}_l{layer}{suffix}"] = child.bias
        return weights


def _training_weight(layer: nn.Module) -> Tensor:
    """The weight ``layer`` computes with in training mode: its hardware-aware hook's noisy
    weight (gradients flow to the clean one), else the weight itself."""
    hook = getattr(layer, "hwa", None)
    if hook is None:
        return layer.weight
    cfg = hook.config
    if cfg.dac_adc or cfg.out_noise:
        raise ValueError("AnalogLSTM: hardware-aware training with the periphery "
                         "(HWAConfig.dac_adc / out_noise) is not supported for LSTM layers; "
                         "use weight noise only")
    return hook.noisy_weight(layer)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


__all__ = ["AnalogLSTM", "lstm_cell"]
