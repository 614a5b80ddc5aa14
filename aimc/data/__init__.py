"""Dataset loaders (standard on-disk formats) and the small data aimc ships."""

from .bundled import load_mnist_small
from .mnist import load_mnist, read_idx

__all__ = ["load_mnist", "load_mnist_small", "read_idx"]
