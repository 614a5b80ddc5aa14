"""MNIST from the four standard IDX files (gzip or not) in a directory the user names."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (the MNIST format: magic, dims, big-endian sizes, uint8 data)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(int)
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(data) - offset != expected:
        raise ValueError(f"{path}: {len(data) - offset} data bytes, expected {expected} "
                         f"for shape {tuple(dims)} (truncated file?)")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def load_mnist(directory: str | os.PathLike, split: str = "train"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as float32 (N, 1, 28, 28) in [0, 1] and labels as int64 (N,).

    ``directory`` holds the standard files (``train-images-idx3-ubyte[.gz]`` ...).
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {directory} does not exist")
    paths = [_find(directory, stem) for stem in MNIST_FILES[split]]
    if None in paths:
        missing = [s for s, p in zip(MNIST_FILES[split], paths, strict=True) if p is None]
        raise FileNotFoundError(f"MNIST directory {directory} lacks {missing} (with or "
                                "without .gz); expected the four standard IDX files")
    images, labels = (read_idx(p) for p in paths)
    if len(images) != len(labels):
        raise ValueError(f"{directory}: {len(images)} images but {len(labels)} labels")
    x = torch.from_numpy(images.copy()).float().div_(255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))
