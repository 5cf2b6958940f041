"""Test a checkpoint on the configured dataset and write metrics.json in the eval run dir."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .models.classifier import Classifier
from .paths import run_dir
from .training import build_trainer
from .utils.loggers import build_loggers, finish_wandb
from .utils.metrics import scalar_metrics, write_metrics

log = logging.getLogger(__name__)


def run_evaluation(cfg: DictConfig) -> dict[str, float]:
    out_dir = run_dir()
    log.info("Run dir: %s\nConfig:\n%s", out_dir, OmegaConf.to_yaml(cfg, resolve=True))
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: pl.LightningDataModule = instantiate(cfg.dataset)
    model = Classifier.load_from_checkpoint(cfg.ckpt_path, map_location="cpu", weights_only=False)
    trainer = build_trainer(cfg, logger=build_loggers(cfg) or False)
    failed = True
    try:
        trainer.test(model, datamodule=datamodule)
        failed = False
    finally:
        finish_wandb(failed)
    metrics = scalar_metrics(trainer.callback_metrics)
    path = write_metrics(out_dir, metrics)
    log.info("Tested %s: test/acc=%.4f\nMetrics: %s", cfg.ckpt_path, metrics["test/acc"], path)
    return metrics
