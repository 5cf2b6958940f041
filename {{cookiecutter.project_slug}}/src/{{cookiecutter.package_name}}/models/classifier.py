"""The LightningModule: trains any network from `configs/model/` as a classifier.

Its hyperparameters are the plain-dict configs of the network, optimizer and scheduler, so a
checkpoint rebuilds itself: `Classifier.load_from_checkpoint(path)` needs no Hydra config (and
goes through `checkpoints.load_classifier`, which refuses checkpoints that would run code).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from pytorch_lightning.utilities.types import OptimizerLRScheduler
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from ..errors import Diverged

log = logging.getLogger(__name__)

Batch = tuple[Tensor, Tensor]
STAGES = ("train", "val", "test")


class Classifier(pl.LightningModule):
    train_metrics: MetricCollection  # set in __init__ with setattr, one collection per stage
    val_metrics: MetricCollection

    def __init__(
        self,
        net: dict[str, Any],
        optimizer: dict[str, Any],
        num_classes: int,
        scheduler: dict[str, Any] | None = None,
        nonfinite_loss: str = "stop",
    ) -> None:
        super().__init__()
        # The full run config goes to the loggers separately; these are for checkpoints only.
        self.save_hyperparameters(logger=False)
        self.net: nn.Module = instantiate(net)
        self.criterion = nn.CrossEntropyLoss()
        # One collection per stage (`train_metrics`, ...): a stage's metrics accumulate separately.
        for stage in STAGES:
            metrics: dict[str, Metric | MetricCollection] = {
                "acc": MulticlassAccuracy(num_classes=num_classes, average="micro"),
                "loss": MeanMetric(),
            }
            setattr(self, f"{stage}_metrics", MetricCollection(metrics))
        # Persistent: it lives in checkpoints, so a resumed run keeps its best score.
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)
        self.nonfinite_loss = nonfinite_loss
        self.skipped_this_epoch = 0
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

    def _step(self, stage: str, batch: Batch, last_batch: bool = False) -> tuple[Tensor | None, Tensor]:
        """Update and log the stage's metrics; return the loss and the logits."""
        inputs, targets = batch
        logits = self(inputs)
        loss = self.criterion(logits, targets)
        if stage == "train" and not torch.isfinite(loss):
            self._on_nonfinite_loss(loss)
            return None, logits
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        if stage == "train":
            # Each self.log costs about as much as this MLP's whole step (Lightning moves its
            # result object, a Metric, to the device every call), and calling a Metric also
            # computes the batch's value: so per step the metrics only update, and the batch
            # loss is logged on the steps the loggers write (every trainer.log_every_n_steps) and
            # on an epoch's last. The epoch values are computed once, in on_train_epoch_end.
            metrics["acc"].update(logits, targets)
            metrics["loss"].update(loss.detach(), weight=len(targets))
            every = self.trainer.log_every_n_steps  # type: ignore[attr-defined]  # set at init, undeclared
            if (self.global_step + 1) % every == 0 or last_batch:
                self.log("train/loss", loss.detach(), on_step=True, on_epoch=False)
            return loss, logits
        metrics["acc"](logits, targets)
        metrics["loss"](loss, weight=len(targets))
        for name, metric in metrics.items():
            self.log(f"{stage}/{name}", metric, on_epoch=True, prog_bar=name == "acc")
        return loss, logits

    def _on_nonfinite_loss(self, loss: Tensor) -> None:
        """`nonfinite_loss: stop` raises Diverged; `skip` drops the batch (Lightning skips the
        optimizer step when training_step returns None), unless the weights themselves are no
        longer finite or a whole epoch was dropped."""
        where = f"epoch {self.current_epoch}, step {self.global_step}"
        if self.nonfinite_loss != "skip":
            raise Diverged(f"training loss is {loss.item()} at {where}")
        if not all(torch.isfinite(p).all() for p in self.parameters()):
            raise Diverged(f"training loss is {loss.item()} at {where} and the weights are no longer finite")
        self.skipped_this_epoch += 1
        log.warning("Skipped a batch with training loss %s at %s", loss.item(), where)
        return None

    def on_train_epoch_start(self) -> None:
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], sync_dist=True)
        self.skipped_this_epoch = 0

    def on_train_epoch_end(self) -> None:
        # Synchronised across DDP ranks by torchmetrics; named as Lightning names epoch values.
        if self.train_metrics["acc"].update_called:
            for name, metric in self.train_metrics.items():
                self.log(f"train/{name}_epoch", metric.compute(), prog_bar=name == "acc")
        self.train_metrics.reset()
        if self.skipped_this_epoch and self.skipped_this_epoch >= self.trainer.num_training_batches:
            raise Diverged(
                f"every training batch of epoch {self.current_epoch} had a non-finite loss "
                "(nonfinite_loss=skip): the weights have diverged"
            )

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor | None:
        last_batch = batch_idx + 1 == self.trainer.num_training_batches
        if self.nonfinite_loss != "skip":
            return self._step("train", batch, last_batch)[0]
        # The forward pass of a skipped batch must not leave NaN in BatchNorm's running stats.
        buffers = {name: b.clone() for name, b in self.net.named_buffers() if b.is_floating_point()}
        loss = self._step("train", batch, last_batch)[0]
        if loss is None:
            self.net.load_state_dict(buffers, strict=False)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step("val", batch)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # the untrained model must not count as the best
            return
        self.val_acc_best(self.val_metrics["acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True, sync_dist=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        _, logits = self._step("test", batch)
        self.test_confusion.update(logits, batch[1])

    def configure_optimizers(self) -> OptimizerLRScheduler:
        optimizer: torch.optim.Optimizer = instantiate(self.hparams["optimizer"])(self.parameters())
        if not self.hparams["scheduler"]:
            return {"optimizer": optimizer}
        # `interval` (epoch or step) is for Lightning, not the scheduler; `total_steps: auto`
        # is the number of optimizer steps of the whole run.
        scheduler_cfg = dict(self.hparams["scheduler"])
        interval = scheduler_cfg.pop("interval", "epoch")
        if scheduler_cfg.get("total_steps") == "auto":
            scheduler_cfg["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = instantiate(scheduler_cfg)(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
