"""Figures of a run: learning curves and the test confusion matrix.

learning_curves.png: loss, accuracy and learning rate by epoch, the best epoch by `monitor.metric`
marked. confusion_matrix.png: rows normalised to colours, counts in the cells up to 30 classes,
ticks named by the datamodule's `class_names`; readable from 2 to 100 classes.

Each is saved as a PNG in the run dir and sent to every logger its own way (`loggers.log_figure`).
Optionally the best checkpoint is uploaded as a W&B model artifact. Only global rank 0 writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl

from .loggers import log_figure, wandb_loggers

# Per-epoch metrics drawn in learning_curves.png, grouped by panel; the learning rate gets its
# own panel because its scale has nothing to do with the others.
CURVES = {
    "loss": ("train/loss_epoch", "val/loss"),
    "accuracy": ("train/acc_epoch", "val/acc"),
    "learning rate": ("train/lr",),
}
BEST_EPOCH_LABEL = "best epoch"
# Confusion matrix readability by class count: each cell gets CELL_INCHES up to MAX_INCHES in
# all (then cells shrink), counts are written in cells up to ANNOTATE_MAX classes, and tick
# labels turn vertical above VERTICAL_LABELS classes (45 degrees when the names are long).
CELL_INCHES, MIN_INCHES, MAX_INCHES = 0.5, 4.0, 16.0
ANNOTATE_MAX, VERTICAL_LABELS = 30, 30


class RunReport(pl.Callback):
    def __init__(
        self,
        output_dir: str,
        upload_best_checkpoint: bool = False,
        monitor: str = "val/acc",
        mode: str = "max",
    ) -> None:
        self.output_dir = Path(output_dir)
        self.upload_best_checkpoint = upload_best_checkpoint
        self.monitor, self.mode = monitor, mode
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Both this epoch's train and validation metrics are in callback_metrics here.
        wanted = {self.monitor, *(name for names in CURVES.values() for name in names)}
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if name in wanted}
        self.history.append({"epoch": trainer.current_epoch, **metrics})

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.history:
            return
        figure = learning_curves(self.history, self.monitor, self.mode)
        self._publish(trainer, figure, "learning_curves")
        if self.upload_best_checkpoint and isinstance(
            trainer.checkpoint_callback, pl.callbacks.ModelCheckpoint
        ):
            upload_checkpoint(trainer, trainer.checkpoint_callback.best_model_path)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        confusion = getattr(pl_module, "test_confusion", None)
        if confusion is None or not confusion.update_called:
            return
        matrix = confusion.compute().cpu().numpy()  # synchronised across ranks
        confusion.reset()
        if trainer.is_global_zero:
            # The datamodule's names, else those a loaded checkpoint brought (trainer.test without one).
            datamodule = getattr(trainer, "datamodule", None)
            names = getattr(datamodule, "class_names", None) or getattr(pl_module, "class_names", None)
            self._publish(trainer, confusion_matrix(matrix, names), "confusion_matrix")

    def _publish(self, trainer: pl.Trainer, figure: Any, name: str) -> None:
        plt = pyplot()
        path = self.output_dir / f"{name}.png"
        figure.savefig(path, dpi=120, bbox_inches="tight")
        for logger in trainer.loggers:
            log_figure(logger, name, figure, path, trainer.global_step)
        plt.close(figure)


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (runs have no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def best_epoch(history: list[dict[str, float]], monitor: str, mode: str) -> dict[str, float] | None:
    """The epoch's row with the best finite `monitor` value (the first of equals, as checkpointing
    keeps it), or None when the metric was never logged."""
    scored = [row for row in history if math.isfinite(row.get(monitor, math.nan))]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda row: row[monitor])


def learning_curves(history: list[dict[str, float]], monitor: str = "val/acc", mode: str = "max") -> Any:
    """Loss, accuracy and learning rate by epoch, with the best epoch by `monitor` marked on each."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(CURVES), figsize=(4.5 * len(CURVES), 3.5))
    epochs = [row["epoch"] for row in history]
    best = best_epoch(history, monitor, mode)
    for axis, (panel, names) in zip(axes, CURVES.items(), strict=True):
        for name in names:
            axis.plot(epochs, [row.get(name, math.nan) for row in history], marker=".", label=name)
        if best is not None:
            label = f"{BEST_EPOCH_LABEL} {best['epoch']:.0f} ({monitor} {mode} {best[monitor]:.4g})"
            axis.axvline(best["epoch"], color="grey", linestyle="--", linewidth=1, label=label)
        axis.set(title=panel, xlabel="epoch", ylabel=panel)
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def confusion_matrix(matrix: Any, class_names: Sequence[str] | None = None) -> Any:
    """Rows (true classes) normalised to colours, counts written where they fit, ticks named by class."""
    plt = pyplot()
    classes = len(matrix)
    given = list(class_names or [])
    names = given if len(given) == classes else [str(label) for label in range(classes)]
    side = min(MAX_INCHES, max(MIN_INCHES, 2.0 + CELL_INCHES * classes))
    figure, axis = plt.subplots(figsize=(side + 1.0, side))
    totals = matrix.sum(axis=1, keepdims=True)
    shares = matrix / np.maximum(totals, 1)
    image = axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the true class")
    if classes <= ANNOTATE_MAX:
        font = max(5.0, min(10.0, 120 / classes))
        for true, predicted in np.ndindex(classes, classes):
            color = "white" if shares[true, predicted] > 0.5 else "black"
            count = int(matrix[true, predicted])
            axis.text(predicted, true, count, ha="center", va="center", fontsize=font, color=color)
    tick_font = max(6.0, min(10.0, 600 / classes))
    rotation = 90 if classes > VERTICAL_LABELS else 45 if max(map(len, names)) > 3 else 0
    axis.set_xticks(range(classes), names, rotation=rotation, ha="right" if rotation == 45 else "center")
    axis.set_yticks(range(classes), names)
    axis.tick_params(labelsize=tick_font)
    axis.set(title="Test confusion matrix", xlabel="Predicted class", ylabel="True class")
    figure.tight_layout()
    return figure


def upload_checkpoint(trainer: pl.Trainer, path: str) -> None:
    import wandb

    for logger in wandb_loggers(trainer):
        artifact = wandb.Artifact(f"model-{logger.version}", type="model", metadata={"source": path})
        artifact.add_file(path, name="best.ckpt")
        logger.experiment.log_artifact(artifact, aliases=["best"])
