"""Build the Lightning callbacks listed under `cfg.callbacks`; early stopping that says why."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning import Callback
from pytorch_lightning.callbacks import EarlyStopping
from pytorch_lightning.callbacks.early_stopping import EarlyStoppingReason

from ..run_table import STOPPED_EARLY, early_stop_reason

log = logging.getLogger(__name__)


def build_callbacks(cfg: DictConfig) -> list[Callback]:
    """One callback per entry; `callbacks.<name>=null` leaves that one out."""
    callback_cfgs = (cfg.get("callbacks") or {}).values()
    return [instantiate(callback_cfg) for callback_cfg in callback_cfgs if callback_cfg is not None]


class ExplainedEarlyStopping(EarlyStopping):
    """Lightning's EarlyStopping that, when it stops a run, logs the metric, its best value and
    epoch, and the patience, and puts them in the callback metrics (so in metrics.json, as
    `stopped_early/epoch`, `/best`, `/best_epoch`, `/patience`) for summaries to read back."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.stopping_reason == EarlyStoppingReason.NOT_STOPPED:
            return
        best = float(self.best_score)
        numbers = {"epoch": self.stopped_epoch, "best": best}
        if self.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED:
            # One validation per epoch since the best one: that many epochs back.
            numbers |= {"best_epoch": self.stopped_epoch - self.wait_count, "patience": self.patience}
        metrics = {f"{STOPPED_EARLY}/{name}": float(value) for name, value in numbers.items()}
        trainer.callback_metrics.update({name: torch.tensor(value) for name, value in metrics.items()})
        if trainer.is_global_zero:
            log.info(
                "Early stopping: %s", early_stop_reason(metrics, self.monitor) or self.stopping_reason_message
            )
