"""Datasets small enough to live in memory as tensors, batched by indexing.

A DataLoader would collate every batch sample by sample; for a few thousand small images that
costs more than the model. `TensorBatches` slices the tensors instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import pytorch_lightning as pl
import torch
from torch import Tensor

Batch = tuple[Tensor, Tensor]


class TensorBatches:
    """An iterable of (inputs, targets) batches over whole-dataset tensors.

    Reshuffles on every pass when `shuffle` is set (using torch's global RNG, which
    `seed_everything` seeds). Under DDP each rank takes an equal share of the indices.
    """

    def __init__(self, inputs: Tensor, targets: Tensor, batch_size: int, shuffle: bool) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs, self.targets = inputs, targets
        self.batch_size, self.shuffle = batch_size, shuffle

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
            yield self.inputs[batch], self.targets[batch]


class InMemoryDataModule(pl.LightningDataModule):
    """Loads (inputs, targets) once, splits train/val/test, normalises, serves TensorBatches.

    Subclasses implement `load()`. The split uses its own seed (`split_seed`) so that every
    training seed is scored on the same test set.
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
        eval_batch_size: int = 512,
    ) -> None:
        super().__init__()
        if not (val_fraction > 0 and test_fraction > 0 and val_fraction + test_fraction < 1):
            raise ValueError(
                "val_fraction and test_fraction must be positive with a sum below 1, "
                f"got {val_fraction} and {test_fraction}"
            )
        self.input_shape, self.num_classes = tuple(input_shape), num_classes
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_fraction, self.test_fraction, self.split_seed = val_fraction, test_fraction, split_seed
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.splits: dict[str, Batch] = {}

    def load(self) -> Batch:
        """Return all inputs as float tensors of shape (N, *input_shape) in [0, 1], targets as int64."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        inputs, targets = self.load()
        if tuple(inputs.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{type(self).__name__} loaded inputs of shape {tuple(inputs.shape[1:])}, "
                f"but dataset.input_shape is {list(self.input_shape)}"
            )
        inputs = (inputs - self.mean) / self.std
        order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(self.split_seed))
        n_test = round(len(order) * self.test_fraction)
        n_val = round(len(order) * self.val_fraction)
        parts = {
            "test": order[:n_test],
            "val": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }
        self.splits = {name: (inputs[idx], targets[idx]) for name, idx in parts.items()}

    def _batches(self, split: str, batch_size: int, shuffle: bool = False) -> TensorBatches:
        return TensorBatches(*self.splits[split], batch_size=batch_size, shuffle=shuffle)

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val", self.eval_batch_size)

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test", self.eval_batch_size)
