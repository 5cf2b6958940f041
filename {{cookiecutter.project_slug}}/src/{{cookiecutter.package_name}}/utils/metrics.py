"""metrics.json: the final numbers of a run, for scripts and sweep runners to read back."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor

from ..paths import METRICS_FILE


def scalar_metrics(metrics: Mapping[str, Tensor | float]) -> dict[str, float]:
    """Lightning's callback_metrics as plain floats (NaN and inf become null in JSON)."""
    return {name: float(value) for name, value in sorted(metrics.items())}


def write_metrics(run_dir: Path, metrics: Mapping[str, float]) -> Path:
    path = run_dir / METRICS_FILE
    finite = {name: value if math.isfinite(value) else None for name, value in metrics.items()}
    path.write_text(json.dumps(finite, indent=2) + "\n")
    return path


class FinalProgress(pl.Callback):
    """Adds the epoch and global step training ended at to the callback metrics.

    Under `strategy=ddp_spawn` training runs in worker processes, and Lightning sends back to
    the main process only the weights and the callback metrics: its trainer stays at epoch 0,
    step 0. The callback metrics carry the true numbers to metrics.json under every strategy.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.callback_metrics.update(
            {"epoch": torch.tensor(trainer.current_epoch), "global_step": torch.tensor(trainer.global_step)}
        )


def final_progress(trainer: pl.Trainer) -> dict[str, int]:
    """The epoch and global step training ended at, from `FinalProgress`; the trainer's own when
    that did not run (a resumed run with no epoch left to train)."""
    metrics = trainer.callback_metrics
    return {
        "epoch": int(metrics.get("epoch", trainer.current_epoch)),
        "global_step": int(metrics.get("global_step", trainer.global_step)),
    }
