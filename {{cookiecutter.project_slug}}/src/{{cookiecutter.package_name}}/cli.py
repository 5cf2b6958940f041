"""Hydra entry points behind `train.py` and `eval.py`.

Only Hydra is imported here; torch, Lightning and W&B are imported when a job actually runs,
so `--help`, `--cfg job` and shell completion stay fast.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from .config_checks import exit_on_config_error
from .paths import config_dir


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
@exit_on_config_error
def train(cfg: DictConfig) -> float | None:
    """Train, test, write metrics.json; return the monitored metric for Hydra sweepers."""
    from .training import run_training

    metrics = run_training(cfg)
    return metrics.get(cfg.monitor.metric)


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
@exit_on_config_error
def evaluate(cfg: DictConfig) -> None:
    """Test a checkpoint on the configured dataset and write metrics.json."""
    from .evaluation import run_evaluation

    run_evaluation(cfg)
