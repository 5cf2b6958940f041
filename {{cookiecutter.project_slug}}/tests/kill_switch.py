"""A callback that sends a real signal to its own process at a chosen point of training.

Tests add it with `+callbacks.kill._target_=kill_switch.SendSignal` to interrupt a run at an
exact batch, where a kill from outside would land anywhere.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytorch_lightning as pl


class SendSignal(pl.Callback):
    """Send `name` (e.g. "SIGTERM") after training batch `batch` of `epoch`, at the first
    validation batch of `epoch` when `batch` is None, or as testing starts with `testing`.
    Under DDP every rank sends it to itself, or only global rank `rank` if given."""

    def __init__(
        self, name: str, epoch: int, batch: int | None = None, testing: bool = False, rank: int | None = None
    ) -> None:
        self.signum = signal.Signals[name]
        self.epoch, self.batch, self.testing, self.rank = epoch, batch, testing, rank
        self.sent = False

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.testing:
            self._send(trainer)

    def _send(self, trainer: pl.Trainer) -> None:
        if not self.sent and self.rank in (None, trainer.global_rank):
            self.sent = True
            os.kill(os.getpid(), self.signum)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not self.testing and trainer.current_epoch == self.epoch and batch_idx == self.batch:
            self._send(trainer)

    def on_validation_batch_end(self, trainer: pl.Trainer, *args: Any, **kwargs: Any) -> None:
        if (
            self.batch is None
            and not self.testing
            and not trainer.sanity_checking
            and trainer.current_epoch == self.epoch
        ):
            self._send(trainer)


class PoisonBatches(pl.Callback):
    """Fill the inputs of training batches `batches` of `epoch` with NaN, so their loss is NaN."""

    def __init__(self, epoch: int, batches: list[int]) -> None:
        self.epoch, self.batches = epoch, set(batches)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.current_epoch == self.epoch and batch_idx in self.batches:
            batch[0].fill_(float("nan"))


class SlowBatches(pl.Callback):
    """Sleep `seconds` after each training batch: slow enough for a signal from outside to land
    mid-training, whatever the machine's speed, without changing any result."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        time.sleep(self.seconds)
