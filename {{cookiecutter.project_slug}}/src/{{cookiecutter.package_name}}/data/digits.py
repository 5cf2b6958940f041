"""scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 10 classes, no download."""

from __future__ import annotations

import torch

from .in_memory import Batch, InMemoryDataModule


class DigitsDataModule(InMemoryDataModule):
    def load(self) -> dict[str, Batch]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        inputs = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        return {"train": (inputs, torch.as_tensor(digits.target))}
