"""Reference networks: CIFAR ResNet-20/32/44/56, MNIST MLP, LeNet-5, the demo CNN, an LSTM."""

from .resnet import (
    CifarResNet,
    load_checkpoint,
    resnet20_cifar,
    resnet32_cifar,
    resnet44_cifar,
    resnet56_cifar,
)
from .small import SequenceClassifier, lenet5, lstm_mnist, mlp, small_cnn

__all__ = ["CifarResNet", "SequenceClassifier", "lenet5", "load_checkpoint", "lstm_mnist",
           "mlp", "resnet20_cifar", "resnet32_cifar", "resnet44_cifar", "resnet56_cifar",
           "small_cnn"]
