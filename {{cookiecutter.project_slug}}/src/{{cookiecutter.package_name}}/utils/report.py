"""Figures of a run: learning curves and the test confusion matrix.

Each is saved as a PNG in the run dir and sent to every logger its own way (`loggers.log_figure`).
Optionally the best checkpoint is uploaded as a W&B model artifact. Only global rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from .loggers import log_figure, wandb_loggers

# Per-epoch metrics drawn in learning_curves.png, grouped by panel.
CURVES = {"loss": ("train/loss_epoch", "val/loss"), "accuracy": ("train/acc_epoch", "val/acc")}


class RunReport(pl.Callback):
    def __init__(self, output_dir: str, upload_best_checkpoint: bool = False) -> None:
        self.output_dir = Path(output_dir)
        self.upload_best_checkpoint = upload_best_checkpoint
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Both this epoch's train and validation metrics are in callback_metrics here.
        wanted = {name for names in CURVES.values() for name in names}
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items() if name in wanted}
        self.history.append({"epoch": trainer.current_epoch, **metrics})

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.history:
            return
        figure = learning_curves(self.history)
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
            self._publish(trainer, confusion_matrix(matrix), "confusion_matrix")

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


def learning_curves(history: list[dict[str, float]]) -> Any:
    plt = pyplot()
    figure, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 3.5))
    epochs = [row["epoch"] for row in history]
    for axis, (panel, names) in zip(axes, CURVES.items(), strict=True):
        for name in names:
            axis.plot(epochs, [row.get(name, float("nan")) for row in history], marker=".", label=name)
        axis.set(title=panel, xlabel="epoch")
        axis.legend()
    figure.tight_layout()
    return figure


def confusion_matrix(matrix: Any) -> Any:
    plt = pyplot()
    classes = len(matrix)
    figure, axis = plt.subplots(figsize=(1.5 + 0.45 * classes, 1.2 + 0.45 * classes))
    axis.imshow(matrix, cmap="Blues")
    for true in range(classes):
        for predicted in range(classes):
            count = int(matrix[true, predicted])
            color = "white" if count > matrix.max() / 2 else "black"
            axis.text(predicted, true, count, ha="center", va="center", fontsize=8, color=color)
    axis.set(title="Test confusion matrix", xlabel="Predicted class", ylabel="True class")
    axis.set(xticks=range(classes), yticks=range(classes))
    figure.tight_layout()
    return figure


def upload_checkpoint(trainer: pl.Trainer, path: str) -> None:
    import wandb

    for logger in wandb_loggers(trainer):
        artifact = wandb.Artifact(f"model-{logger.version}", type="model", metadata={"source": path})
        artifact.add_file(path, name="best.ckpt")
        logger.experiment.log_artifact(artifact, aliases=["best"])
