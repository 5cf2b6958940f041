"""Pruning for a training that is a trial of an Optuna search (`search.py`).

The search runner names the trial and the pruner in the environment (storage URL, study, trial
id, pruner settings). The training then reports `monitor.metric` to that trial after every
validation, through the shared storage, and asks the pruner whether to go on. A pruned training
stops at the end of that epoch and ends as usual (best checkpoint tested, metrics.json written,
exit status 0); the trial's `pruned_at_epoch` attribute tells the runner to record it as PRUNED.
optuna-integration's Lightning callback is not used: it is built on the `lightning` package, and
this project's trainer is `pytorch_lightning`'s.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING

import pytorch_lightning as pl

from ..errors import RunError

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


def search_trial_callbacks(metric: str) -> list[pl.Callback]:
    """[ReportToTrial] when the search runner started this training, else nothing (and no Optuna)."""
    from ..search import PRUNED_AT, PRUNER_ENV, STORAGE_ENV, STUDY_ENV, TRIAL_ENV, build_pruner, open_storage

    if TRIAL_ENV not in os.environ:
        return []
    import optuna

    name = os.environ[STUDY_ENV]
    pruner = build_pruner(json.loads(os.environ.get(PRUNER_ENV, "null")), name)
    study = optuna.load_study(study_name=name, storage=open_storage(os.environ[STORAGE_ENV]), pruner=pruner)
    return [ReportToTrial(optuna.Trial(study, int(os.environ[TRIAL_ENV])), metric, PRUNED_AT)]


class ReportToTrial(pl.Callback):
    def __init__(self, trial: optuna.Trial, metric: str, pruned_attr: str) -> None:
        self.trial, self.metric, self.pruned_attr = trial, metric, pruned_attr

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.metric not in trainer.callback_metrics:
            return
        import optuna

        epoch = trainer.current_epoch
        prune = False
        if trainer.is_global_zero:
            try:
                self.trial.report(float(trainer.callback_metrics[self.metric]), step=epoch)
            except optuna.exceptions.UpdateFinishedTrialError:
                # Its runner died and another one failed it and queued it again: the retry
                # resumes this run dir, so this orphan must not go on writing to it.
                raise RunError(
                    f"trial {self.trial.number} was ended by the search meanwhile (its runner "
                    "stopped): stopping; the search retries it"
                ) from None
            prune = self.trial.should_prune()
        if trainer.strategy.broadcast(prune, src=0):  # every rank stops, or none
            if trainer.is_global_zero:
                self.trial.set_user_attr(self.pruned_attr, epoch)
                log.warning("Pruned by the search at epoch %d: %s is not promising", epoch, self.metric)
            trainer.should_stop = True
