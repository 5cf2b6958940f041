"""Entry points behind `train.py` and `eval.py`.

Only Hydra (and python-dotenv, if there is a `.env`) is imported here; torch, Lightning and W&B
are imported when a job actually runs, so `--help`, `--cfg job` and shell completion stay fast
(`benchmarks/startup.py` measures them).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from . import addons, cli_help
from .agent_args import hydra_overrides
from .distributed import child_job_args
from .errors import RunError, signals_interrupt
from .failures import checked_job, exit_with, hydra_errors_reported
from .paths import config_dir
from .run_dirs import run_dir_overrides


def prepare_process() -> None:
    """Read `.env` (variables already set win), accept `wandb agent` arguments, and turn
    `resume=<run dir>` / `rerun=<run dir>` into overrides. A DDP rank started by Lightning runs
    the one job it was started for instead of its command line (see distributed.py)."""
    load_env_file()
    if (job := child_job_args()) is not None:
        sys.argv[1:] = job
        return
    try:
        addons.check_args(sys.argv[1:])
        sys.argv[1:] = run_dir_overrides(hydra_overrides(sys.argv[1:]))
    except RunError as error:
        exit_with(error)


def load_env_file() -> None:
    """The nearest `.env` from the working dir up, as python-dotenv finds it; the package (and
    what it imports) is loaded only when there is one."""
    here = Path.cwd()
    if any((folder / ".env").is_file() for folder in (here, *here.parents)):
        from dotenv import find_dotenv, load_dotenv

        load_dotenv(find_dotenv(usecwd=True))


@hydra_errors_reported
@hydra.main(version_base="1.3", config_path=config_dir(), config_name="config")
@checked_job
def train_job(cfg: DictConfig) -> float | None:
    """Train, test, write metrics.json; return the monitored metric for Hydra sweepers."""
    from .training import run_training

    metrics = run_training(cfg)
    return metrics.get(cfg.monitor.metric)


@hydra_errors_reported
@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
@checked_job
def evaluation_job(cfg: DictConfig) -> None:
    """Test a checkpoint on the configured dataset and write metrics.json."""
    from .evaluation import run_evaluation

    run_evaluation(cfg)


def train() -> None:
    with signals_interrupt("stopped by {signal} before training started; nothing saved"):
        prepare_process()
        cli_help.show_help_if_asked("config", additions=["experiment"])
        with cli_help.completion_filtered():
            train_job()


def evaluate() -> None:
    with signals_interrupt("evaluation stopped by {signal}; nothing written"):
        prepare_process()
        cli_help.show_help_if_asked("eval", additions=["logger"])
        with cli_help.completion_filtered():
            evaluation_job()
