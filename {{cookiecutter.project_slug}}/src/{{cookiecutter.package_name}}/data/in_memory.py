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

    With `shuffle`, each pass draws a new order from the loader's own generator (seeded from
    torch's initial seed, which `seed_everything` sets), and augmentation of batch i uses a
    generator seeded from that pass: the batches are a function of the generator state at the
    start of the pass, not of whatever else drew random numbers. That makes the loader resumable
    mid-epoch: `state_dict()` holds the pass's starting state and how many batches were served,
    and Lightning saves it in every checkpoint and hands it back on resume.

    Under DDP (Lightning injects no DistributedSampler here: this is no DataLoader) every rank
    draws the same order and takes every world-size-th index of it, from its rank on. Training
    shares are equal (the remainder is left out), since each optimizer step waits for every
    rank; evaluation shares together hold every sample exactly once, so the metrics summed over
    the ranks are those of the whole split. Augmentation draws differ from rank to rank.
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        batch_size: int,
        shuffle: bool,
        transform: Callable[..., Tensor] | None = None,
    ) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs, self.targets = inputs, targets
        self.batch_size, self.shuffle, self.transform = batch_size, shuffle, transform
        self.generator = torch.Generator().manual_seed(torch.initial_seed())
        self._pass_start = self.generator.get_state()
        self._served = 0
        self._resume_at: int | None = None

    def _indices(self) -> Tensor:
        count = len(self.targets)
        order = torch.randperm(count, generator=self.generator) if self.shuffle else torch.arange(count)
        world, rank = world_and_rank()
        if self.shuffle:
            order = order[: count - count % world]
        return order[rank::world]

    def __len__(self) -> int:
        count, (world, rank) = len(self.targets), world_and_rank()
        share = count // world if self.shuffle else len(range(rank, count, world))
        return math.ceil(share / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        skip, self._resume_at = self._resume_at or 0, None
        if skip and skip >= len(self):  # the saved pass was complete: start the next one
            skip = 0
            self._start_pass()
        self._pass_start = self.generator.get_state()
        batches = self._indices().split(self.batch_size)
        pass_seed = int(torch.randint(2**62, (1,), generator=self.generator)) if self.shuffle else 0
        self._served = skip
        world, rank = world_and_rank()
        for number in range(skip, len(batches)):
            index = batches[number]
            inputs = self.inputs[index]
            if self.transform:
                seed = pass_seed + number * world + rank
                inputs = self.transform(inputs, generator=torch.Generator().manual_seed(seed))
            self._served = number + 1
            yield inputs, self.targets[index]

    def _start_pass(self) -> None:
        """Advance the generator past the draws of the pass that `state_dict` described."""
        self._indices()
        if self.shuffle:
            torch.randint(2**62, (1,), generator=self.generator)

    def state_dict(self) -> dict[str, Tensor | int]:
        return {"generator": self._pass_start, "served": self._served}

    def load_state_dict(self, state: dict[str, Tensor | int]) -> None:
        self.generator.set_state(state["generator"])  # type: ignore[arg-type]
        self._resume_at = int(state["served"])


def world_and_rank() -> tuple[int, int]:
    """The number of DDP processes and this one's rank; (1, 0) outside DDP."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


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
