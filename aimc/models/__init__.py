"""Reference networks: CIFAR ResNet-20/32/44/56, MNIST MLP, LeNet-5, the demo CNN."""

from .resnet import (
    CifarResNet,
    load_checkpoint,
    resnet20_cifar,
    resnet32_cifar,
    resnet44_cifar,
    resnet56_cifar,
)
from .small import lenet5, mlp, small_cnn

__all__ = ["CifarResNet", "lenet5", "load_checkpoint", "mlp", "resnet20_cifar",
           "resnet32_cifar", "resnet44_cifar", "resnet56_cifar", "small_cnn"]
