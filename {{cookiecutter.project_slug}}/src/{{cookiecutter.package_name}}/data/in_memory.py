"""Datasets small enough to live in memory as tensors, batched by indexing.

A DataLoader would collate every batch sample by sample; for tens of thousands of small images
that costs more than the model. `TensorBatches` slices the tensors instead, and `BatchTransform`
scales, augments and normalises whole batches at once. Images are kept as uint8 until a batch
is drawn, so CIFAR-10 takes 180 MB rather than 740 MB.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor

from ..errors import DataError

Batch = tuple[Tensor, Tensor]


class BatchTransform:
    """uint8 or [0, 1] float images -> optional random crop and flip -> normalised float."""

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], crop_padding: int = 0, hflip: bool = False
    ) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.crop_padding, self.hflip = crop_padding, hflip

    def __call__(self, images: Tensor) -> Tensor:
        images = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        if self.crop_padding:
            images = random_crop(images, self.crop_padding)
        if self.hflip:
            flip = torch.rand(len(images)) < 0.5
            images[flip] = images[flip].flip(-1)
        return (images - self.mean) / self.std


def random_crop(images: Tensor, padding: int) -> Tensor:
    """Pad each image with zeros and cut it back to size at a random offset of its own."""
    count, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    rows = torch.randint(0, 2 * padding + 1, (count, 1)) + torch.arange(height)
    cols = torch.randint(0, 2 * padding + 1, (count, 1)) + torch.arange(width)
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


class TensorBatches:
    """An iterable of (inputs, targets) batches over whole-dataset tensors.

    Reshuffles on every pass when `shuffle` is set (using torch's global RNG, which
    `seed_everything` seeds). Under DDP each rank takes an equal share of the indices.
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        batch_size: int,
        shuffle: bool,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs, self.targets = inputs, targets
        self.batch_size, self.shuffle, self.transform = batch_size, shuffle, transform

    def _indices(self) -> Tensor:
        count = len(self.targets)
        order = torch.randperm(count) if self.shuffle else torch.arange(count)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world, rank = torch.distributed.get_world_size(), torch.distributed.get_rank()
            order = order[: count - count % world][rank::world]
        return order

    def __len__(self) -> int:
        count = len(self.targets)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            count //= torch.distributed.get_world_size()
        return math.ceil(count / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        for batch in self._indices().split(self.batch_size):
            inputs = self.inputs[batch]
            yield (self.transform(inputs) if self.transform else inputs), self.targets[batch]


class InMemoryDataModule(pl.LightningDataModule):
    """Loads the data once, splits train/val/test, serves TensorBatches.

    Subclasses implement `load()`. A dataset with a canonical test set returns it; otherwise
    `test_fraction` of all images is held out. `val_fraction` (of all images) then comes out
    of the training images. The split uses its own seed (`split_seed`) so that every training
    seed is scored on the same test set.
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
        augment: Mapping[str, object] | None = None,
        eval_batch_size: int = 512,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.classes = list(class_names or (str(label) for label in range(num_classes)))
        if not (val_fraction > 0 and test_fraction >= 0 and val_fraction + test_fraction < 1):
            raise ValueError(
                "val_fraction must be positive, test_fraction not negative, their sum below 1; "
                f"got {val_fraction} and {test_fraction}"
            )
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.eval_transform = BatchTransform(mean, std)
        self.train_transform = BatchTransform(mean, std, **dict(augment or {}))
        self.splits: dict[str, Batch] = {}

    def load(self) -> dict[str, Batch]:
        """{"train": (inputs, targets)}, plus "test" if the dataset has a canonical test set.

        Inputs: (N, *input_shape), uint8 in [0, 255] or float in [0, 1]; targets: int64.
        """
        raise NotImplementedError

    def _checked(self, name: str, batch: Batch) -> Batch:
        inputs, targets = batch
        if tuple(inputs.shape[1:]) != self.input_shape:
            raise DataError(
                f"{type(self).__name__} loaded {name} inputs of shape {tuple(inputs.shape[1:])}, "
                f"but dataset.input_shape is {list(self.input_shape)}"
            )
        if len(targets) and not 0 <= int(targets.min()) <= int(targets.max()) < self.num_classes:
            raise DataError(f"{type(self).__name__}: {name} labels outside 0..{self.num_classes - 1}")
        return inputs, targets.long()

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        loaded = {name: self._checked(name, batch) for name, batch in self.load().items()}
        inputs, targets = loaded["train"]
        total = sum(len(batch[1]) for batch in loaded.values())
        parts = split_indices(
            len(targets),
            total,
            self.val_fraction,
            self.test_fraction,
            self.split_seed,
            hold_out_test="test" not in loaded,
        )
        self.splits = {name: (inputs[index], targets[index]) for name, index in parts.items()}
        if "test" in loaded:
            self.splits["test"] = loaded["test"]

    def _batches(self, split: str, batch_size: int, train: bool = False) -> TensorBatches:
        transform = self.train_transform if train else self.eval_transform
        return TensorBatches(*self.splits[split], batch_size=batch_size, shuffle=train, transform=transform)

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", self.batch_size, train=True)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val", self.eval_batch_size)

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test", self.eval_batch_size)
