"""A small residual CNN for small images (the CIFAR ResNets of He et al., 2016).

`depth` = 6n + 2: a stem convolution, three stages of n basic blocks with `width`, 2x and 4x
channels (the last two halve the resolution while it is at least 2x2), global average pooling
and a linear classifier. depth 20 has 0.27M parameters at width 16.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        reshape = stride != 1 or in_channels != out_channels
        self.shortcut = (
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
            if reshape
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return (self.body(x) + self.shortcut(x)).relu()


class ResNet(nn.Module):
    def __init__(
        self, input_shape: Sequence[int], num_classes: int, depth: int = 20, width: int = 16
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...), got {depth}")
        blocks = (depth - 2) // 6
        channels, size = input_shape[0], min(input_shape[1:])
        layers: list[nn.Module] = [
            nn.Conv2d(channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        channels = width
        for stage, multiple in enumerate((1, 2, 4)):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 and size >= 2 else 1
                size //= stride
                layers.append(BasicBlock(channels, width * multiple, stride))
                channels = width * multiple
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
