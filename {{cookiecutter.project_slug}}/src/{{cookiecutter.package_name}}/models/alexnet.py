"""An AlexNet-style CNN sized for small images.

Like AlexNet: a stack of `num_layers` convolutions with max-pooling after the first, the second
and the last, then three fully connected layers with dropout. Unlike AlexNet: 3x3 kernels,
batch norm, and pooling only while the feature map is at least 2x2, so 8x8 inputs work too.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn


class AlexNet(nn.Module):
    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        num_layers: int = 7,
        width: int = 32,
        hidden_dim: int = 256,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"num_layers must be at least 2, got {num_layers}")
        channels, size = input_shape[0], min(input_shape[1:])
        pool_after = {0, 1, num_layers - 1}
        features: list[nn.Module] = []
        for index in range(num_layers):
            out_channels = width * min(2**index, 4)
            features += [
                nn.Conv2d(channels, out_channels, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            if index in pool_after and size >= 2:
                features.append(nn.MaxPool2d(2))
                size //= 2
            channels = out_channels
        self.features = nn.Sequential(*features, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(channels, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
