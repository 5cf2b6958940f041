"""The LightningModule: trains any network from `configs/model/` as a classifier.

Its hyperparameters are the plain-dict configs of the network, optimizer and scheduler, so a
checkpoint rebuilds itself: `Classifier.load_from_checkpoint(path)` needs no Hydra config (and
goes through `checkpoints.load_classifier`, which refuses checkpoints that would run code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

Batch = tuple[Tensor, Tensor]
STAGES = ("train", "val", "test")


class Classifier(pl.LightningModule):
    def __init__(
        self,
        net: dict[str, Any],
        optimizer: dict[str, Any],
        num_classes: int,
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # The full run config goes to the loggers separately; these are for checkpoints only.
        self.save_hyperparameters(logger=False)
        self.net: nn.Module = instantiate(net)
        self.criterion = nn.CrossEntropyLoss()
        # One collection per stage (`train_metrics`, ...): a stage's metrics accumulate separately.
        for stage in STAGES:
            metrics = {
                "acc": MulticlassAccuracy(num_classes=num_classes, average="micro"),
                "loss": MeanMetric(),
            }
            setattr(self, f"{stage}_metrics", MetricCollection(metrics))
        self.val_acc_best = MaxMetric()
        # Not logged as a scalar: utils.report.RunReport draws it after testing.
        self.test_confusion = MulticlassConfusionMatrix(num_classes=num_classes)
        self.class_names: list[str] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Label names (e.g. the folders of dataset=image_folder), for predict and notebooks.
        datamodule = getattr(self.trainer, "datamodule", None)
        checkpoint["class_names"] = list(getattr(datamodule, "classes", None) or [])

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.class_names = checkpoint.get("class_names") or []

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: str | Path, map_location: Any = None
    ) -> Classifier:
        """Lightning's loader, made safe: `checkpoints.load_classifier`, then `.to(map_location)`."""
        from ..checkpoints import load_classifier

        model = load_classifier(checkpoint_path)
        return model.to(map_location) if map_location is not None else model

    def _step(self, stage: str, batch: Batch) -> tuple[Tensor, Tensor]:
        """Update and log the stage's metrics; return the loss and the logits."""
        inputs, targets = batch
        logits = self(inputs)
        loss = self.criterion(logits, targets)
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        metrics["acc"](logits, targets)
        metrics["loss"](loss, weight=len(targets))
        on_step = stage == "train"
        for name, metric in metrics.items():
            self.log(f"{stage}/{name}", metric, on_step=on_step, on_epoch=True, prog_bar=name == "acc")
        return loss, logits

    def on_train_start(self) -> None:
        # Sanity-check batches must not count towards the best validation accuracy.
        self.val_acc_best.reset()

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        return self._step("train", batch)[0]

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.val_metrics["acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        _, logits = self._step("test", batch)
        self.test_confusion.update(logits, batch[1])

    def on_train_epoch_start(self) -> None:
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer: torch.optim.Optimizer = instantiate(self.hparams.optimizer)(self.parameters())
        if not self.hparams.scheduler:
            return {"optimizer": optimizer}
        # `interval` (epoch or step) is for Lightning, not the scheduler; `total_steps: auto`
        # is the number of optimizer steps of the whole run.
        scheduler_cfg = dict(self.hparams.scheduler)
        interval = scheduler_cfg.pop("interval", "epoch")
        if scheduler_cfg.get("total_steps") == "auto":
            scheduler_cfg["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = instantiate(scheduler_cfg)(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
