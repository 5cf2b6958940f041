"""Callbacks that send real signals at a chosen point of training.

Tests add them with `+callbacks.kill._target_=kill_switch.SendSignal` (or `SignalRunner`) to
interrupt a run at an exact batch, where a kill from outside would land anywhere.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
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


class SignalRunner(pl.Callback):
    """For the trials of a sweep or search runner: once every trial named in `trials` (run dir
    names, e.g. "trial-001") has reached training batch `batch` of `epoch`, send `name` to the
    runner (this process's parent), as a user would, and train on. Each such trial waits there
    for the others, so the signal finds all of them training with a checkpoint to resume from,
    however slow the machine. Arrivals are files in `meeting_dir`; the signal is sent once, so the
    same command, run again, resumes the trials undisturbed."""

    def __init__(self, name: str, trials: list[str], epoch: int, batch: int, meeting_dir: str) -> None:
        self.signum = signal.Signals[name]
        self.trials, self.epoch, self.batch = list(trials), epoch, batch
        self.meeting_dir = Path(meeting_dir)

    @staticmethod
    def overrides(
        name: str, trials: list[str], meeting_dir: Path, epoch: int = 1, batch: int = 0
    ) -> list[str]:
        """The command-line overrides that add this callback to every trial a runner starts."""
        prefix = "+callbacks.signal_runner"
        settings = {"name": name, "trials": f"[{','.join(trials)}]", "epoch": epoch, "batch": batch}
        return [
            f"{prefix}._target_=kill_switch.SignalRunner",
            *(f"{prefix}.{key}={value}" for key, value in settings.items()),
            f"{prefix}.meeting_dir={meeting_dir}",
        ]

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if (trainer.current_epoch, batch_idx) != (self.epoch, self.batch):
            return
        trial = Path(os.environ["TRAIN_RUN_DIR"]).name  # set by the runner for each trial
        sent = self.meeting_dir / "sent"
        if trial not in self.trials or sent.exists():  # another trial, or one resumed
            return
        self.meeting_dir.mkdir(parents=True, exist_ok=True)
        (self.meeting_dir / trial).touch()
        deadline = time.monotonic() + 600
        while not all((self.meeting_dir / name).exists() for name in self.trials):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the trials {self.trials} did not all reach epoch {self.epoch}")
            time.sleep(0.05)
        try:
            sent.open("x").close()  # the first trial to see everyone there sends it
        except FileExistsError:
            return
        os.kill(os.getppid(), self.signum)


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
