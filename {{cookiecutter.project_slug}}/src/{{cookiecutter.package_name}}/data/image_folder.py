"""Your own images: `root/<class>/<image>`, decoded with Pillow, served by a DataLoader.

Class names are the sorted folder names; their index is the label. Images are resized to
`input_shape` (and converted to grey or RGB to match its channels) by the workers; scaling,
augmentation and normalisation then run on whole batches, as for the in-memory datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError
from .base import Batch, ImageDataModule, split_indices

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def load_image(path: Path, input_shape: Sequence[int]) -> Tensor:
    """One image file as a uint8 tensor of `input_shape` (channels, height, width)."""
    from PIL import Image, UnidentifiedImageError

    channels, height, width = input_shape
    try:
        with Image.open(path) as opened:
            image = opened.convert("L" if channels == 1 else "RGB").resize(
                (width, height), Image.Resampling.BILINEAR
            )
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"cannot read image {path}: {error}") from error
    array = np.asarray(image, dtype=np.uint8).reshape(height, width, channels)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


class ImageFiles(Dataset):
    def __init__(self, files: list[Path], labels: list[int], input_shape: Sequence[int]) -> None:
        self.files, self.labels, self.input_shape = files, labels, tuple(input_shape)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Batch:
        return load_image(self.files[index], self.input_shape), torch.tensor(self.labels[index])


def scan(root: Path) -> tuple[list[str], list[Path], list[int]]:
    """Class names, image files and their labels under `root/<class>/`."""
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist: put your images in {root}/<class name>/<image>")
    classes = sorted(path.name for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [label] * len(found)
    if not files:
        raise DataError(f"no images in {root}/<class name>/ (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return classes, files, labels


class ImageFolderDataModule(ImageDataModule):
    def __init__(self, root: str, num_workers: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root, self.num_workers = Path(root), num_workers
        self.datasets: dict[str, ImageFiles] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        names, files, labels = scan(self.root)
        if len(names) != self.num_classes:
            raise DataError(
                f"{self.root} has {len(names)} class folders ({', '.join(names)}) "
                f"but dataset.num_classes is {self.num_classes}: pass dataset.num_classes={len(names)}"
            )
        self.class_names = names
        parts = split_indices(
            len(files), len(files), self.val_fraction, self.test_fraction, self.split_seed, True
        )
        self.datasets = {
            name: ImageFiles([files[i] for i in index], [labels[i] for i in index], self.input_shape)
            for name, index in parts.items()
        }

    def loader(self, split: str, batch_size: int, train: bool) -> DataLoader:
        workers = self.num_workers
        return DataLoader(
            self.datasets[split],
            batch_size=batch_size,
            shuffle=train,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def on_after_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        inputs, targets = batch
        training = self.trainer is not None and self.trainer.training
        return (self.train_transform if training else self.eval_transform)(inputs), targets
