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

__all__ = ["CifarResNet", "SequenceClassifier", "SequenceTransformer", "gru_mnist", "lenet5",
           "load_checkpoint", "lstm_mnist", "mlp", "resnet20_cifar", "resnet32_cifar",
           "resnet44_cifar", "resnet56_cifar", "small_cnn", "transformer_mnist"]
