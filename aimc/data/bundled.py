"""Small real data shipped with aimc, for the demo and the tests (no download, no network).

``mnist_small.npz``: 6,000 training and 2,000 test digits of MNIST (LeCun, Cortes and
Burges; CC BY-SA 3.0), drawn uniformly at random (numpy seed 0) from the official
training and test sets; ``train_index``/``test_index`` give their positions there.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch


def load_mnist_small() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train_x, train_y, test_x, test_y): images float32 (N, 1, 28, 28) in [0, 1]."""
    with resources.files(__package__).joinpath("mnist_small.npz").open("rb") as fh:
        data = np.load(fh)
        arrays = {k: data[k] for k in ("train_x", "train_y", "test_x", "test_y")}

    def images(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).float().div_(255.0).unsqueeze(1)

    def labels(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64))

    return (images(arrays["train_x"]), labels(arrays["train_y"]),
            images(arrays["test_x"]), labels(arrays["test_y"]))
