"""Dataset loaders (standard on-disk formats) and the small data aimc ships."""

from .bundled import load_mnist_small
from .cifar import IMAGENET_MEAN, IMAGENET_STD, CifarLoader, load_cifar10
from .mnist import load_mnist, read_idx
from .subset import random_subset

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "CifarLoader", "load_cifar10", "load_mnist",
           "load_mnist_small", "random_subset", "read_idx"]
