"""Small reference networks for MNIST-sized data."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


def mlp(sizes: Sequence[int] = (784, 250, 125, 10), activation: type[nn.Module] = nn.Sigmoid
        ) -> nn.Sequential:
    """Fully connected network; the default 784-250-125-10 with sigmoids is the network of
    Ambrogio et al., Nature 2018 (and of Nandakumar et al. 2020's MLP)."""
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least an input and an output size, got {sizes}")
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def lenet5(num_classes: int = 10) -> nn.Sequential:
    """LeNet-5-style CNN for 1x28x28 inputs (LeCun et al. 1998, ReLU and max pooling)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes))


def small_cnn(num_classes: int = 10) -> nn.Sequential:
    """The demo's CNN for 1x28x28 inputs: two conv layers (16 and 32 channels), a 512-input
    hidden layer (exactly one 512-row tile) and a linear head."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, num_classes))


def _rows(x: Tensor, kind: str) -> Tensor:
    """(B, T, F) sequences as they are, or one-channel images (B, 1, H, W) as H rows."""
    if x.dim() == 4:
        if x.shape[1] != 1:
            raise ValueError(f"{kind} reads one-channel images row by row, got {x.shape[1]} "
                             "channels")
        x = x[:, 0]
    return x


class SequenceClassifier(nn.Module):
    """A recurrent layer over the rows of its input and a linear head on the last hidden
    state.

    Takes (B, T, F) sequences, or images (B, 1, H, W) / (B, H, W) read one row per time
    step (sequential MNIST: 28 steps of 28 pixels; Tsai et al. 2019 ran LSTMs on PCM).
    ``cell`` is "lstm" or "gru".
    """

    def __init__(self, input_size: int = 28, hidden_size: int = 128, num_classes: int = 10,
                 num_layers: int = 1, cell: str = "lstm") -> None:
        super().__init__()
        cells = {"lstm": nn.LSTM, "gru": nn.GRU}
        if cell not in cells:
            raise ValueError(f"cell must be one of {list(cells)}, got {cell!r}")
        self.rnn = cells[cell](input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(_rows(x, "SequenceClassifier"))
        return self.fc(out[:, -1])


def sinusoidal_positions(length: int, width: int) -> Tensor:
    """Fixed positional encodings (length, width): sin and cos of position / 10000^(2i/d)
    (Vaswani et al. 2017, sec. 3.5)."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(1e4) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: width // 2])
    return table


class SequenceTransformer(nn.Module):
    """A transformer encoder over the rows of its input, mean-pooled, and a linear head.

    Rows (28 pixels for MNIST) are embedded linearly, fixed sinusoidal positions added
    (a buffer, not a weight), then ``num_layers`` post-norm encoder layers
    (``nn.TransformerEncoderLayer``: self-attention and a ReLU feed-forward of width
    ``ff``). Inputs as :class:`SequenceClassifier`.
    """

    def __init__(self, input_size: int = 28, d_model: int = 64, num_heads: int = 4,
                 num_layers: int = 2, ff: int = 128, num_classes: int = 10,
                 max_len: int = 28, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Linear(input_size, d_model)
        self.register_buffer("positions", sinusoidal_positions(max_len, d_model))
        layer = nn.TransformerEncoderLayer(d_model, num_heads, ff, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.fc = nn.Linear(d_model, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = _rows(x, "SequenceTransformer")
        if x.shape[1] > self.positions.shape[0]:
            raise ValueError(f"SequenceTransformer: at most {self.positions.shape[0]} steps, "
                             f"got {x.shape[1]}")
        h = self.encoder(self.embed(x) + self.positions[: x.shape[1]])
        return self.fc(h.mean(dim=1))


def lstm_mnist(hidden_size: int = 128) -> SequenceClassifier:
    """Sequential (row-by-row) MNIST classifier: a 28-input LSTM and a 10-class head."""
    return SequenceClassifier(28, hidden_size, 10, cell="lstm")


def gru_mnist(hidden_size: int = 128) -> SequenceClassifier:
    """Sequential MNIST classifier: a 28-input GRU and a 10-class head."""
    return SequenceClassifier(28, hidden_size, 10, cell="gru")


def transformer_mnist(d_model: int = 64) -> SequenceTransformer:
    """Sequential MNIST classifier: 28 row tokens, 2 encoder layers of width ``d_model``
    (4 heads, feed-forward 2 x ``d_model``), mean pooling, a 10-class head."""
    return SequenceTransformer(28, d_model, 4, 2, 2 * d_model, 10)
