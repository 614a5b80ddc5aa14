"""CIFAR-10 from the standard "python version" layout in a directory the user names.

Reads ``cifar-10-batches-py/{data_batch_1..5, test_batch}`` (Krizhevsky 2009; the
pickles every CIFAR-10 loader reads) with an unpickler that only accepts the types those
files hold. :class:`CifarLoader` batches the images in memory with the usual training
augmentation (random crop of 32 from the image zero-padded by 4, horizontal flip; He et
al. 2016, sec. 4.2), written in torch, and a normalisation given as a parameter.
"""

from __future__ import annotations

import importlib
import io
import math
import os
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR10_FOLDER = "cifar-10-batches-py"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""Channel means of the normalisation the pretrained CIFAR ResNets were trained with."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Channel stds of that normalisation."""

# The only globals a CIFAR-10 batch pickle refers to: numpy arrays of uint8, and the
# codec call by which Python 3 pickles bytes at protocol 2.
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"unexpected encoding {encoding!r} in a CIFAR-10 batch")
    return text.encode(encoding)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"a CIFAR-10 batch file may not refer to "
                                         f"{module}.{name}")
        if module == "_codecs":
            return _latin1_encode
        if name == "_reconstruct":
            # numpy 2 moved numpy.core to numpy._core; numpy 1 has only numpy.core.
            try:
                multiarray = importlib.import_module("numpy._core.multiarray")
            except ImportError:  # pragma: no cover
                multiarray = importlib.import_module("numpy.core.multiarray")
            return multiarray._reconstruct
        return getattr(np, name)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as fh:
        doc = _SafeUnpickler(io.BytesIO(fh.read()), encoding="bytes").load()
    doc = {k.decode() if isinstance(k, bytes) else k: v for k, v in doc.items()}
    if "data" not in doc or "labels" not in doc:
        raise ValueError(f"{path}: not a CIFAR-10 batch (no 'data'/'labels' entries)")
    data = np.asarray(doc["data"], dtype=np.uint8)
    labels = np.asarray(doc["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise ValueError(f"{path}: data of shape {data.shape} with {len(labels)} labels, "
                         "expected (N, 3072) uint8 and N labels")
    return data, labels


def cifar10_dir(directory: str | os.PathLike) -> Path:
    """The ``cifar-10-batches-py`` folder: ``directory`` itself or its child of that name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"CIFAR-10 directory {directory} does not exist; expected a folder holding "
            f"{CIFAR10_FOLDER}/ with data_batch_1..5 and test_batch (the standard python "
            "version; on the team machines: python ../shared/data/cifar10/build.py DIR)")
    return directory / CIFAR10_FOLDER if (directory / CIFAR10_FOLDER).is_dir() else directory


def load_cifar10(directory: str | os.PathLike, split: str = "train"
                 ) -> tuple[Tensor, Tensor]:
    """Images as uint8 (N, 3, 32, 32) and labels as int64 (N,), in file order.

    ``directory`` holds ``cifar-10-batches-py/`` (or is that folder). The error for a
    missing or incomplete folder lists the files expected.
    """
    if split not in CIFAR10_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = cifar10_dir(directory)
    missing = [name for name in CIFAR10_FILES[split] if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 folder {folder} lacks {missing}; expected {CIFAR10_FOLDER}/ with "
            f"{list(CIFAR10_FILES['train']) + list(CIFAR10_FILES['test'])} (the standard "
            "python version)")
    parts = [_read_batch(folder / name) for name in CIFAR10_FILES[split]]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    x = torch.from_numpy(data).reshape(-1, 3, 32, 32)
    return x, torch.from_numpy(labels)


def random_crop_flip(x: Tensor, generator: torch.Generator, pad: int = 4,
                     flip: bool = True) -> Tensor:
    """Per image: zero-pad by ``pad``, crop a random window of the original size, and
    mirror horizontally with probability 1/2 (He et al. 2016, sec. 4.2). x: (B, C, H, W)."""
    b, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    mirror = torch.rand(b, generator=generator) < 0.5
    out = torch.empty_like(x)
    # One slice per distinct offset: at most (2 pad + 1)^2 copies, faster than a gather.
    key = oy * (2 * pad + 1) + ox
    for k in torch.unique(key).tolist():
        sel = (key == k).nonzero().squeeze(1)
        dy, dx = divmod(k, 2 * pad + 1)
        out[sel] = padded[sel, :, dy:dy + h, dx:dx + w]
    if flip and bool(mirror.any()):
        sel = mirror.nonzero().squeeze(1)
        out[sel] = out[sel].flip(3)
    return out


class CifarLoader:
    """Mini-batches ``(x, y)`` of in-memory images: float32 normalised inputs, int64 labels.

    Shuffling and augmentation draw from a generator seeded by (seed, epoch); call
    :meth:`set_epoch` (as :func:`aimc.training.train_hwa` does) for a new order each epoch,
    so an interrupted training resumes with exactly the batches it would have seen.

    ``shard=(rank, world)`` for data-parallel training: every process draws the same
    batches of ``batch_size`` (and their augmentation) and keeps rows rank, rank + world,
    ...; the shards of one step together are the batch a single process would see (a last
    batch of fewer than ``world`` images is dropped).
    """

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int = 128, *,
                 shuffle: bool = False, augment: bool = False,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 seed: int = 0, drop_last: bool = False,
                 shard: tuple[int, int] | None = None) -> None:
        if images.dim() != 4 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"images must be (N, C, H, W) with N labels, got "
                             f"{tuple(images.shape)} and {tuple(labels.shape)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        c = images.shape[1]
        if len(mean) != c or len(std) != c or min(std) <= 0:
            raise ValueError(f"mean and std need {c} values (std > 0), got {mean}, {std}")
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.seed, self.epoch, self.drop_last = seed, 0, drop_last
        if shard is not None:
            rank, world = shard
            if not (isinstance(world, int) and isinstance(rank, int) and 0 <= rank < world
                    <= batch_size):
                raise ValueError(f"shard must be (rank, world) with 0 <= rank < world <= "
                                 f"batch_size, got {shard!r}")
        self.shard = shard

    def set_epoch(self, epoch: int) -> None:
        """Select the shuffle and augmentation of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.labels)
        # A shard of a last batch smaller than the world would be empty on some rank.
        short = self.shard is not None and n % self.batch_size < self.shard[1]
        return n // self.batch_size if self.drop_last or short else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        gen = torch.Generator().manual_seed(
            (self.seed * 1_000_003 + self.epoch) % (1 << 62))
        n = len(self.labels)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        for k in range(len(self)):
            idx = order[k * self.batch_size:(k + 1) * self.batch_size]
            x = self.images[idx]
            if self.augment:  # on the raw (uint8) pixels: 4x less memory to move
                x = random_crop_flip(x, gen)  # the whole batch: the same draws everywhere
            y = self.labels[idx]
            if self.shard is not None:
                x, y = x[self.shard[0]::self.shard[1]], y[self.shard[0]::self.shard[1]]
            x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
            yield (x - self.mean) / self.std, y


__all__ = ["CIFAR10_FILES", "IMAGENET_MEAN", "IMAGENET_STD", "CifarLoader", "cifar10_dir",
           "load_cifar10", "random_crop_flip"]
