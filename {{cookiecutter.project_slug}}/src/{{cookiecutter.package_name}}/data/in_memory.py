"""Datasets small enough to live in memory as tensors, batched by indexing.

A DataLoader would collate every batch sample by sample; for tens of thousands of small images
that costs more than the model. `TensorBatches` slices the tensors instead, and
`base.BatchTransform` scales, augments and normalises whole batches at once. Images are kept
as uint8 until a batch is drawn, so CIFAR-10 takes 180 MB rather than 740 MB.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from ..errors import DataError
from .base import Batch, ImageDataModule, split_indices


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


class InMemoryDataModule(ImageDataModule):
    """Loads the data once, splits train/val/test, serves TensorBatches.

    Subclasses implement `load()`. A dataset with a canonical test set returns it; otherwise
    `test_fraction` of all images is held out. `val_fraction` then comes out of the training
    images.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
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

    def loader(self, split: str, batch_size: int, train: bool) -> TensorBatches:
        transform = self.train_transform if train else self.eval_transform
        return TensorBatches(*self.splits[split], batch_size=batch_size, shuffle=train, transform=transform)
