"""Runs that can be killed at any moment and resumed exactly.

`StopOnSignal`: SIGTERM (kill, docker stop, Kubernetes, schedulers) or Ctrl-C during training stops
the run at the next point Lightning can resume from exactly (after the current training batch,
or after validation at the end of an epoch), saves `checkpoints/last.ckpt` there, and makes
`trainer.fit` raise Lightning's `SIGTERMException`; `run_training` turns that into
`Interrupted` (exit 128 + signal number). A second Ctrl-C aborts at once, without saving.
SIGUSR2, a batch scheduler's warning before a time limit, stops the same way (addons/ may requeue).

`ExactResume`: every checkpoint carries the global random state (torch, CUDA, numpy, Python)
and the training loader's state (`TensorBatches.state_dict`: its own generator, which drives the
order and augmentation, and how far into the epoch it is) of the moment it was saved; a resumed
run restores both when training starts, so it draws exactly the numbers an uninterrupted run
would.
"""

from __future__ import annotations

import logging
import random
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch

from ..errors import STOP_SIGNALS

log = logging.getLogger(__name__)


class StopOnSignal(pl.Callback):
    def __init__(self, checkpoint_path: str | Path) -> None:
        self.checkpoint_path = Path(checkpoint_path)
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning's own SIGTERM handler stops mid-validation too, where no checkpoint resumes
        # exactly; this one replaces it while training and Lightning restores it at teardown.
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore_handlers()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning(
            "Received %s: stopping after this training batch or validation, saving %s "
            "(Ctrl-C again to abort without saving)",
            signal.Signals(signum).name,
            self.checkpoint_path,
        )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # A batch followed by validation stops after the validation, in on_validation_end.
        if self._stop_requested(trainer) and not validation_follows(trainer, batch_idx):
            self._save_and_stop(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Where ModelCheckpoint saves too: Lightning resumes exactly from this point.
        if not trainer.sanity_checking and self._stop_requested(trainer):
            self._save_and_stop(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._stop_requested(trainer):  # an epoch without validation
            self._save_and_stop(trainer)

    def _stop_requested(self, trainer: pl.Trainer) -> bool:
        """Whether this process, or under DDP any rank, received a signal. The ranks must stop
        together: a signal sent to one process only (`kill <pid>`) would otherwise leave the
        others waiting for it forever in their next collective (one small all-reduce a batch)."""
        received = self.signum is not None
        if trainer.world_size == 1:
            return received
        return trainer.strategy.reduce_boolean_decision(received, all=False)

    def _save_and_stop(self, trainer: pl.Trainer) -> None:
        if trainer.received_sigterm:
            return
        trainer.save_checkpoint(self.checkpoint_path)
        log.warning(
            "Saved %s at epoch %d, step %d", self.checkpoint_path, trainer.current_epoch, trainer.global_step
        )
        # Lightning raises SIGTERMException at its next check, right after this hook.
        trainer._signal_connector.received_sigterm = True


def validation_follows(trainer: pl.Trainer, batch_idx: int) -> bool:
    if batch_idx + 1 == trainer.num_training_batches:
        return True
    every = trainer.val_check_batch
    return trainer.enable_validation and isinstance(every, int) and (batch_idx + 1) % every == 0


def random_state() -> dict[str, Any]:
    """The global random generators' state, as tensors and plain values only (safe to load)."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ExactResume(pl.Callback):
    """Saves the global random state and the training loader's state in every checkpoint and
    restores both when a resumed run starts training.

    Lightning itself hands a loader its state only when a checkpoint was saved mid-epoch; from an
    end-of-epoch checkpoint it would start the loader afresh and replay the first epoch's order.
    """

    def __init__(self) -> None:
        self._to_restore: dict[str, Any] | None = None
        self._trainer: pl.Trainer | None = None

    def state_dict(self) -> dict[str, Any]:
        loader = self._trainer.train_dataloader if self._trainer is not None else None
        loader_state = loader.state_dict() if loader is not None and hasattr(loader, "state_dict") else None
        return {"random": random_state(), "train_loader": loader_state}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._to_restore = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Not at load time: the sanity check between loading and the first batch must not see
        # the restored state, as it did not in the uninterrupted run.
        if self._to_restore is None:
            return
        set_random_state(self._to_restore["random"])
        loader = trainer.train_dataloader
        if (
            self._to_restore["train_loader"] is not None
            and loader is not None
            and hasattr(loader, "load_state_dict")
        ):
            loader.load_state_dict(self._to_restore["train_loader"])
        self._to_restore = None
