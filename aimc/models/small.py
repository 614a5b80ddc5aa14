"""Small reference networks for MNIST-sized data."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

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


class SequenceClassifier(nn.Module):
    """An LSTM over the rows of its input and a linear head on the last hidden state.

    Takes (B, T, F) sequences, or images (B, 1, H, W) / (B, H, W) read one row per time
    step (sequential MNIST: 28 steps of 28 pixels; Tsai et al. 2019 ran LSTMs on PCM).
    """

    def __init__(self, input_size: int = 28, hidden_size: int = 128, num_classes: int = 10,
                 num_layers: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            if x.shape[1] != 1:
                raise ValueError(f"SequenceClassifier reads one-channel images row by row, "
                                 f"got {x.shape[1]} channels")
            x = x[:, 0]
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def lstm_mnist(hidden_size: int = 128) -> SequenceClassifier:
    """Sequential (row-by-row) MNIST classifier: a 28-input LSTM and a 10-class head."""
    return SequenceClassifier(28, hidden_size, 10)
