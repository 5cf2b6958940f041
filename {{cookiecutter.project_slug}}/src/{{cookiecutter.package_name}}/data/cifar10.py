"""CIFAR-10 (60,000 32x32 colour images, 10 classes).

Only the config exists so far: the downloader and parser for the canonical python batches are
not written yet, so using this dataset stops with a clear error instead of training on nothing.
"""

from __future__ import annotations

from pathlib import Path

from .in_memory import Batch, InMemoryDataModule

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


class CIFAR10DataModule(InMemoryDataModule):
    def __init__(self, data_dir: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.data_dir = Path(data_dir)

    def load(self) -> Batch:
        raise RuntimeError(
            f"dataset=cifar10 is not available offline in this version of the project: it has no "
            f"downloader or parser for {URL} yet (data folder: {self.data_dir}). "
            "Use dataset=digits, or add a loader in src/ following data/digits.py."
        )
