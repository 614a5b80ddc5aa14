"""Loaders: the MNIST IDX reader, its errors, the bundled subset."""

import gzip
import json
import struct

import numpy as np
import pytest
import torch

from aimc.data import load_mnist, load_mnist_small, random_subset, read_idx
from aimc.experiments import write_results


def _write_idx(path, array, compress):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reader_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 28, 28))
    labels = np.arange(5)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", imgs, compress)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    x, y = load_mnist(tmp_path, "test")
    assert x.shape == (5, 1, 28, 28) and y.tolist() == [0, 1, 2, 3, 4]
    assert np.allclose(x[:, 0].numpy() * 255, imgs)


def test_mnist_errors_say_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, "train")
    bad = tmp_path / "x.idx"
    bad.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(bad)


def test_bundled_mnist_subset():
    x, y, xt, yt = load_mnist_small()
    assert x.shape == (6000, 1, 28, 28) and xt.shape == (2000, 1, 28, 28)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert sorted(set(y.tolist())) == list(range(10))
    assert min(np.bincount(yt.numpy())) > 150  # every class present in the test part


def test_results_file(tmp_path):
    path = write_results(tmp_path / "s.json", study="s", command="c", dataset="d",
                         started="2026-01-01T00:00:00Z", runtime_s=1.0,
                         rows=[{"method": "pcm", "metric": "accuracy", "mean": 0.5}])
    doc = json.loads(path.read_text())
    assert doc["rows"][0]["mean"] == 0.5 and "machine" in doc
    with pytest.raises(ValueError, match="rows\\[0\\] lacks"):
        write_results(tmp_path / "t.json", study="s", command="c", dataset="d",
                      started="x", runtime_s=0, rows=[{"mean": 1}])


def test_random_subset_is_seeded_and_without_replacement():
    x, y = torch.arange(100).float().unsqueeze(1), torch.arange(100)
    a, b = random_subset(x, y, 30, seed=4), random_subset(x, y, 30, seed=4)
    assert torch.equal(a[1], b[1]) and torch.equal(a[0][:, 0].long(), a[1])
    assert len(set(a[1].tolist())) == 30
    assert not torch.equal(random_subset(x, y, 30, seed=5)[1], a[1])
    for n in (0, 100, 500):
        assert random_subset(x, y, n, seed=1)[1] is y
