"""CIFAR ResNets of He et al. 2016 (sec. 4.2): 6n+2 layers, option-A shortcuts.

Option A (identity shortcut; at a stride-2 stage the input is subsampled by 2 and its
channels zero-padded) is what the pretrained CIFAR checkpoints expect (Idelbayev's
``resnet20/32/44/56`` files, keys prefixed ``module.``), and the ResNet-32 (0.46 M
weights) of pcm-model.md's reference figures for Joshi et al. 2020. Their chip experiment
counts 361,722 weights, which matches a narrower ResNet-32 (docs/joshi2020.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ShortcutA(nn.Module):
    """Parameter-free shortcut: subsample by ``stride``, zero-pad ``pad`` channels per side."""

    def __init__(self, stride: int, pad: int) -> None:
        super().__init__()
        self.stride, self.pad = stride, pad

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x[:, :, ::self.stride, ::self.stride], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = ShortcutA(stride, (planes - in_planes) // 2)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 images: 16-32-64 channels, global pooling, linear head."""

    def __init__(self, depth: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 (20, 32, 44, 56, ...), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a ``{'state_dict': ...}`` or bare state-dict checkpoint safely
    (``weights_only=True``), stripping DataParallel's ``module.`` prefixes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model.load_state_dict(state)
    return model


def _resnet(depth: int, pretrained_path: str | os.PathLike | None, num_classes: int):
    model = CifarResNet(depth, num_classes)
    return load_checkpoint(model, pretrained_path) if pretrained_path else model


def resnet20_cifar(pretrained_path=None, num_classes: int = 10) -> CifarResNet:
    """ResNet-20 (He et al. 2016), optionally loaded from a checkpoint file."""
    return _resnet(20, pretrained_path, num_classes)


def resnet32_cifar(pretrained_path=None, num_classes: int = 10) -> CifarResNet:
    """ResNet-32 (He et al. 2016; the network of Joshi et al. 2020)."""
    return _resnet(32, pretrained_path, num_classes)


def resnet44_cifar(pretrained_path=None, num_classes: int = 10) -> CifarResNet:
    """ResNet-44 (He et al. 2016)."""
    return _resnet(44, pretrained_path, num_classes)


def resnet56_cifar(pretrained_path=None, num_classes: int = 10) -> CifarResNet:
    """ResNet-56 (He et al. 2016)."""
    return _resnet(56, pretrained_path, num_classes)
