"""Reference networks: sizes, option-A shortcuts, safe checkpoint loading."""

import pytest
import torch

from aimc import models


def test_resnet32_size_and_output():
    net = models.resnet32_cifar()
    weights = sum(p.numel() for n, p in net.named_parameters() if "bn" not in n)
    assert weights == 461_882  # ~0.46 M weights, as in Joshi et al. 2020
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 31


def test_option_a_shortcut_subsamples_and_pads():
    sc = models.resnet.ShortcutA(2, 8)
    x = torch.arange(2 * 16 * 4 * 4, dtype=torch.float32).view(2, 16, 4, 4)
    y = sc(x)
    assert y.shape == (2, 32, 2, 2)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0


def test_checkpoint_with_module_prefix(tmp_path):
    net = models.resnet20_cifar()
    path = tmp_path / "ckpt.th"
    torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()},
                "best_prec1": 91.7}, path)
    again = models.resnet20_cifar(path)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                 again.state_dict().values(), strict=True))
    with pytest.raises(FileNotFoundError):
        models.resnet20_cifar(tmp_path / "missing.th")
    with pytest.raises(ValueError, match="6n\\+2"):
        models.CifarResNet(depth=30)


def test_small_networks():
    x = torch.zeros(3, 1, 28, 28)
    for net in (models.mlp(), models.lenet5(), models.small_cnn()):
        assert net(x).shape == (3, 10)
    assert [m.out_features for m in models.mlp() if isinstance(m, torch.nn.Linear)] == \
        [250, 125, 10]
