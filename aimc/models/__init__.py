"""Reference networks: CIFAR ResNet-20/32/44/56, MNIST MLP, LeNet-5, the demo CNN, and
sequential-MNIST LSTM, GRU and transformer classifiers."""

from .resnet import (
    CifarResNet,
    load_checkpoint,
    resnet20_cifar,
    resnet32_cifar,
    resnet44_cifar,
    resnet56_cifar,
)
from .small import (
    SequenceClassifier,
    SequenceTransformer,
    gru_mnist,
    lenet5,
    lstm_mnist,
    mlp,
    small_cnn,
    transformer_mnist,
)

MODELS = {
    "resnet20": (resnet20_cifar, (3, 32, 32), "ResNet-20, CIFAR-10"),
    "resnet32": (resnet32_cifar, (3, 32, 32), "ResNet-32, CIFAR-10 (Joshi 2020)"),
    "resnet44": (resnet44_cifar, (3, 32, 32), "ResNet-44, CIFAR-10"),
    "resnet56": (resnet56_cifar, (3, 32, 32), "ResNet-56, CIFAR-10"),
    "mlp": (mlp, (1, 28, 28), "MLP 784-250-125-10, MNIST (Ambrogio 2018)"),
    "lenet5": (lenet5, (1, 28, 28), "LeNet-5, MNIST"),
    "small_cnn": (small_cnn, (1, 28, 28), "the demo CNN, MNIST"),
    "lstm_mnist": (lstm_mnist, (1, 28, 28), "LSTM, 128 units, sequential MNIST"),
    "gru_mnist": (gru_mnist, (1, 28, 28), "GRU, 128 units, sequential MNIST"),
    "transformer_mnist": (transformer_mnist, (1, 28, 28),
                          "2-layer transformer, width 64, sequential MNIST"),
}
"""Reference networks by name (``aimc energy --model``, ``aimc evaluate``): (constructor
with default arguments, input shape of one sample, description)."""

__all__ = ["MODELS", "CifarResNet", "SequenceClassifier", "SequenceTransformer", "gru_mnist",
           "lenet5", "load_checkpoint", "lstm_mnist", "mlp", "resnet20_cifar", "resnet32_cifar",
           "resnet44_cifar", "resnet56_cifar", "small_cnn", "transformer_mnist"]
