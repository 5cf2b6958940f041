"""Pruning for a training that is a trial of an Optuna search (`python -m {{ cookiecutter.package_name }}.search`).

The search runner names the trial in the environment (storage URL, study, trial id). The
training then reports `monitor.metric` to that trial after every validation, through the shared
storage, and asks the study's pruner (the one in the search file, kept in the study) whether to
go on. A pruned training stops at the end of that epoch and ends as usual (best checkpoint
tested, metrics.json written, exit status 0); the trial's `pruned_at_epoch` attribute tells the
runner to record it as PRUNED. optuna-integration's Lightning callback is not used: it is built
on the `lightning` package, and this project's trainer is `pytorch_lightning`'s.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import pytorch_lightning as pl

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


def search_trial_callbacks(metric: str) -> list[pl.Callback]:
    """[ReportToTrial] when the search runner started this training, else nothing (and no Optuna)."""
    from ..search import PRUNED_AT, STORAGE_ENV, STUDY_ENV, TRIAL_ENV, build_pruner, open_storage

    if TRIAL_ENV not in os.environ:
        return []
    import optuna

    storage = open_storage(os.environ[STORAGE_ENV])
    name = os.environ[STUDY_ENV]
    settings = storage.get_study_user_attrs(storage.get_study_id_from_name(name)).get("pruner")
    study = optuna.load_study(study_name=name, storage=storage, pruner=build_pruner(settings, name))
    return [ReportToTrial(optuna.Trial(study, int(os.environ[TRIAL_ENV])), metric, PRUNED_AT)]


class ReportToTrial(pl.Callback):
    def __init__(self, trial: optuna.Trial, metric: str, pruned_attr: str) -> None:
        self.trial, self.metric, self.pruned_attr = trial, metric, pruned_attr

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.metric not in trainer.callback_metrics:
            return
        epoch = trainer.current_epoch
        prune = False
        if trainer.is_global_zero:
            self.trial.report(float(trainer.callback_metrics[self.metric]), step=epoch)
            prune = self.trial.should_prune()
        if trainer.strategy.broadcast(prune, src=0):  # every rank stops, or none
            if trainer.is_global_zero:
                self.trial.set_user_attr(self.pruned_attr, epoch)
                log.warning("Pruned by the search at epoch %d: %s is not promising", epoch, self.metric)
            trainer.should_stop = True
