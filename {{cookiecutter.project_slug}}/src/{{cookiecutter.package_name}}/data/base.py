"""What every image dataset shares: shapes, batch sizes, a seeded split, normalisation and
augmentation on whole batches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

Batch = tuple[Tensor, Tensor]


class BatchTransform:
    """uint8 or [0, 1] float images -> optional random crop and flip -> normalised float."""

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], crop_padding: int = 0, hflip: bool = False
    ) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.crop_padding, self.hflip = crop_padding, hflip

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """`generator` drives the random crop and flip (torch's global generator if None)."""
        images = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        if self.crop_padding:
            images = random_crop(images, self.crop_padding, generator)
        if self.hflip:
            flip = torch.rand(len(images), generator=generator) < 0.5
            images[flip] = images[flip].flip(-1)
        return (images - self.mean) / self.std


def random_crop(images: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Pad each image with zeros and cut it back to size at a random offset of its own."""
    count, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    rows = torch.randint(0, 2 * padding + 1, (count, 1), generator=generator) + torch.arange(height)
    cols = torch.randint(0, 2 * padding + 1, (count, 1), generator=generator) + torch.arange(width)
    index = torch.arange(count)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def split_indices(
    count: int, total: int, val_fraction: float, test_fraction: float, seed: int, hold_out_test: bool
) -> dict[str, Tensor]:
    """Seeded indices into `count` training items: "val" (and "test" if `hold_out_test`) take
    their fraction of `total` items, "train" the rest. The same seed always gives the same split."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    parts: dict[str, Tensor] = {}
    if hold_out_test:
        n_test = round(total * test_fraction)
        parts["test"], order = order[:n_test], order[n_test:]
    n_val = round(total * val_fraction)
    parts["val"], parts["train"] = order[:n_val], order[n_val:]
    return parts


class ImageDataModule(pl.LightningDataModule):
    """The constructor arguments every dataset config has, and which split gets which batch
    size and shuffling; subclasses load the data and implement `loader()`.

    `val_fraction` and `test_fraction` are fractions of all images; `split_seed` fixes the split
    apart from the training seed, so every training seed is scored on the same test set.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        batch_size: int = 64,
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        split_seed: int = 0,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
        augment: Mapping[str, Any] | None = None,
        eval_batch_size: int = 512,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not (val_fraction > 0 and test_fraction >= 0 and val_fraction + test_fraction < 1):
            raise ValueError(
                "val_fraction must be positive, test_fraction not negative, their sum below 1; "
                f"got {val_fraction} and {test_fraction}"
            )
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        # The label names figures, checkpoints and predictions show: "0"... unless the config or
        # the data (image folder: its folders) names them.
        self.class_names = list(class_names or (str(label) for label in range(num_classes)))
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.eval_transform = BatchTransform(mean, std)
        self.train_transform = BatchTransform(mean, std, **dict(augment or {}))

    def loader(self, split: str, batch_size: int, train: bool) -> Iterable[Batch]:
        """Batches of one split ("train", "val" or "test"); `train` shuffles and augments."""
        raise NotImplementedError

    def train_dataloader(self) -> Iterable[Batch]:
        return self.loader("train", self.batch_size, train=True)

    def val_dataloader(self) -> Iterable[Batch]:
        return self.loader("val", self.eval_batch_size, train=False)

    def test_dataloader(self) -> Iterable[Batch]:
        return self.loader("test", self.eval_batch_size, train=False)
