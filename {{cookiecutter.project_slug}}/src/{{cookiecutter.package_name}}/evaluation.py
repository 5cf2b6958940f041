"""Test a checkpoint on the configured dataset and write metrics.json in the eval run dir."""

from __future__ import annotations

import logging
import signal

from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException

from .checkpoints import load_classifier
from .errors import Interrupted, signals_interrupt
from .models.classifier import Classifier
from .training import build_trainer, start_job
from .utils.loggers import build_loggers, wandb_run_finished
from .utils.metrics import scalar_metrics, write_metrics

log = logging.getLogger(__name__)


def run_evaluation(cfg: DictConfig) -> dict[str, float]:
    model = load_classifier(cfg.ckpt_path)  # before any data work: an unsafe file ends the job here
    with signals_interrupt(STOPPED):
        return test_checkpoint(cfg, model)


STOPPED = "evaluation stopped by {signal}; nothing written"


def test_checkpoint(cfg: DictConfig, model: Classifier) -> dict[str, float]:
    out_dir, datamodule = start_job(cfg)
    trainer = build_trainer(cfg, logger=build_loggers(cfg) or False)
    with wandb_run_finished():
        try:
            trainer.test(model, datamodule=datamodule)
        except SIGTERMException:  # Lightning's SystemExit would exit with status 0
            raise Interrupted(signal.SIGTERM, STOPPED.format(signal="SIGTERM")) from None
    metrics = scalar_metrics(trainer.callback_metrics)
    if trainer.is_global_zero:
        path = write_metrics(out_dir, metrics)
        log.info("Tested %s: test/acc=%.4f\nMetrics: %s", cfg.ckpt_path, metrics["test/acc"], path)
    return metrics
