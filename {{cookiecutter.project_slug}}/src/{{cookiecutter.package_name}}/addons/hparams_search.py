"""Hyperparameter search with Optuna (`python -m {{ cookiecutter.package_name }}.search`, search.py).

An optional part of the project (`include_optuna`): these are its hooks (see __init__.py).
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from ..errors import UsageError


def check_args(args: list[str]) -> None:
    """`hparams_search=<name>` is for the search runner, which runs train.py for each trial."""
    for arg in args:
        if arg.lstrip("+").partition("=")[0] == "hparams_search":
            others = " ".join(other for other in args if other != arg)
            package = __package__.rpartition(".")[0]
            raise UsageError(
                f"{arg}: a search runs train.py once per trial: "
                f"python -m {package}.search {arg.lstrip('+')}{f' {others}' if others else ''}"
            )


def training_callbacks(cfg: DictConfig) -> list[Any]:
    """Reports to the trial when the search runner started this training; none otherwise."""
    from ..utils.pruning import search_trial_callbacks

    return search_trial_callbacks(cfg.monitor.metric)
