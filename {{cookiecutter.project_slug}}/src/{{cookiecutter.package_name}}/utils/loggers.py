"""Build the experiment loggers from `cfg.logger`: the one place that knows each logger's ways.

Every logger (wandb, tensorboard, mlflow, csv) gets the resolved config as plain containers,
never a DictConfig (`log_config`), and the run's figures (`log_figure`), each its own way.
The run's top-level `tags` and `notes` go to each logger in its own form (`run_labels`): W&B
tags and notes, MLflow tags and note; TensorBoard and CSV have them in the logged config.
With no W&B login and no WANDB_MODE set, W&B runs fall back to offline mode (files in the run
dir, `wandb sync` uploads them later) instead of prompting or failing. A run resumed from a
checkpoint continues the W&B run that wrote it. A logger's package is imported only when that
logger is chosen.
"""

from __future__ import annotations

import contextlib
import logging
import netrc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import singledispatch
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytorch_lightning as pl
import yaml
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from ..checkpoints import load_checkpoint

log = logging.getLogger(__name__)

# Where checkpoints keep the id of the W&B run that wrote them.
WANDB_RUN_ID_KEY = "wandb_run_id"


def wandb_logged_in() -> bool:
    """True when W&B could authenticate: an API key in the environment or in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host or "") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def use_offline_wandb_without_login() -> bool:
    """Set WANDB_MODE=offline when it is unset and W&B has no login; True if it did."""
    if os.environ.get("WANDB_MODE") or wandb_logged_in():
        return False
    os.environ["WANDB_MODE"] = "offline"
    return True


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain dicts and lists: what loggers and W&B should receive."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)  # type: ignore[return-value]


def wandb_run_id(ckpt_path: str | None) -> str | None:
    """The W&B run id stored in a checkpoint by `WandbRunIdInCheckpoint`, if any."""
    if not ckpt_path:
        return None
    return load_checkpoint(ckpt_path, mmap=True).get(WANDB_RUN_ID_KEY)


def build_loggers(
    cfg: DictConfig, run_info: dict[str, Any] | None = None, resume_from: str | None = None
) -> list[Logger]:
    """Instantiate every logger under `cfg.logger`; each gets the resolved config plus `run_info`.
    With `resume_from` (a checkpoint), W&B continues the run that wrote it."""
    # `logger.<name>=null` leaves that one out.
    logger_cfgs = {name: node for name, node in (cfg.get("logger") or {}).items() if node is not None}
    extra_kwargs: dict[str, dict[str, Any]] = {}
    no_login = False
    if "wandb" in logger_cfgs:
        no_login = use_offline_wandb_without_login()
        if run_id := wandb_run_id(resume_from):
            extra_kwargs["wandb"] = {"id": run_id, "resume": "allow"}
    for name, logger_cfg in logger_cfgs.items():
        make_sqlite_dir(logger_cfg.get("tracking_uri"))
        labels = run_labels(logger_cfg, list(cfg.get("tags") or []), cfg.get("notes"))
        extra_kwargs[name] = extra_kwargs.get(name, {}) | labels
    loggers: list[Logger] = [
        instantiate(logger_cfg, **extra_kwargs.get(name, {})) for name, logger_cfg in logger_cfgs.items()
    ]
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._wandb_init.get("anonymous", False) is None:
            # Lightning always passes `anonymous`, which recent W&B warns has no effect.
            del logger._wandb_init["anonymous"]
    if resume_from:
        keep_csv_histories(loggers)
    config = plain_config(cfg) | (run_info or {})
    for logger in loggers:
        log_config(logger, config)
    log_wandb_status(loggers, no_login)
    return loggers


def run_labels(logger_cfg: DictConfig, tags: list[str], notes: str | None) -> dict[str, Any]:
    """The run's `tags` and `notes` as constructor arguments of this logger, added to the ones
    its own config sets. TensorBoard and CSV take none: they log the config, which holds both."""
    logger_class = get_class(logger_cfg._target_)
    if issubclass(logger_class, WandbLogger):
        own_tags = list(logger_cfg.get("tags") or [])
        return {"tags": list(dict.fromkeys(own_tags + tags))} | ({"notes": notes} if notes else {})
    if issubclass(logger_class, MLFlowLogger):
        # MLflow tags are key/value pairs: a run tag is a key with an empty value; the UI shows
        # `mlflow.note.content` as the run's description.
        note = {"mlflow.note.content": notes} if notes else {}
        return {"tags": dict(logger_cfg.get("tags") or {}) | dict.fromkeys(tags, "") | note}
    return {}


def make_sqlite_dir(tracking_uri: str | None) -> None:
    """Create the folder of an MLflow SQLite store (`sqlite:///<path>`): SQLite will not."""
    if tracking_uri and tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


@singledispatch
def log_config(logger: Logger, config: dict[str, Any]) -> None:
    """Send the resolved config: W&B's run config, CSV's hparams.yaml."""
    logger.log_hyperparams(config)


@log_config.register
def _(logger: TensorBoardLogger, config: dict[str, Any]) -> None:
    # TensorBoard's HParams tab wants flat scalars and a metric to show beside them; the config
    # goes to its Text tab as YAML (tag `config`), and to hparams.yaml in the log dir.
    logger.log_hyperparams(config)
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    logger.experiment.add_text("config", f"```yaml\n{text}```")


@log_config.register
def _(logger: MLFlowLogger, config: dict[str, Any]) -> None:
    # Params are what the UI compares runs on; flattening drops empty lists and cuts values at
    # 250 characters, so the exact config is also an artifact, config.yaml.
    logger.log_hyperparams(config)
    logger.experiment.log_dict(logger.run_id, config, "config.yaml")


@singledispatch
def log_figure(logger: Logger, name: str, figure: Any, path: Path, step: int) -> None:
    """Send a figure, already saved as the PNG `path`, to one logger. CSV (and any logger not
    registered below) has the PNG in the run dir only."""


@log_figure.register
def _(logger: WandbLogger, name: str, figure: Any, path: Path, step: int) -> None:
    logger.log_image(key=f"figures/{name}", images=[str(path)])


@log_figure.register
def _(logger: TensorBoardLogger, name: str, figure: Any, path: Path, step: int) -> None:
    logger.experiment.add_figure(f"figures/{name}", figure, global_step=step, close=False)


@log_figure.register
def _(logger: MLFlowLogger, name: str, figure: Any, path: Path, step: int) -> None:
    logger.experiment.log_artifact(logger.run_id, str(path), artifact_path="figures")


@rank_zero_only
def log_wandb_status(loggers: list[Logger], no_login: bool) -> None:
    """W&B's one line on the console (its own output is silenced in configs/logger/wandb.yaml)."""
    for logger in loggers:
        if isinstance(logger, WandbLogger) and no_login:
            log.warning("W&B: no login found, %s", wandb_status(logger))
        elif isinstance(logger, WandbLogger):
            log.info("W&B: %s", wandb_status(logger))


def wandb_status(logger: WandbLogger) -> str:
    """Where this W&B run goes, in the one line the console shows of W&B by default."""
    run = logger.experiment
    if run.disabled:
        return "disabled"
    if run.offline:
        return f"logging offline; upload it later with `wandb sync {run.sync_dir}`"
    return f"logging to {run.url}"


@rank_zero_only
def keep_csv_history(logger: CSVLogger) -> None:
    """Continue the metrics.csv of a resumed run in place; Lightning's CSV writer would delete it.
    Global rank 0 only: the file is its to write."""
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    history = path.read_text()
    header = history.partition("\n")[0].strip().split(",")
    writer = logger.experiment  # creating the writer deletes the file
    path.write_text(history)
    writer.metrics_keys = header


def keep_csv_histories(loggers: list[Logger]) -> None:
    """`keep_csv_history` for each CSV logger: when a run resumes, and before testing (under
    `strategy=ddp_spawn` the fit wrote metrics.csv in a worker process; the main process's CSV
    writer, which the test workers get a copy of, must know its columns, or the test's new
    columns fail to extend the file)."""
    for logger in loggers:
        if isinstance(logger, CSVLogger):
            keep_csv_history(logger)


def wandb_loggers(trainer: pl.Trainer) -> list[WandbLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


def wandb_sync_command(trainer: pl.Trainer) -> str | None:
    """`wandb sync <dir>` for this job's offline W&B run, on global rank 0; None without one."""
    for logger in wandb_loggers(trainer) if trainer.is_global_zero else []:
        if logger.experiment.offline and not logger.experiment.disabled:
            return f"wandb sync {logger.experiment.sync_dir}"
    return None


class WandbRunIdInCheckpoint(pl.Callback):
    """Stores the W&B run id in every checkpoint, so that resuming continues that run."""

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict
    ) -> None:
        for logger in wandb_loggers(trainer):
            checkpoint[WANDB_RUN_ID_KEY] = logger.version


@contextmanager
def wandb_run_finished() -> Iterator[None]:
    """End this job's W&B run on the way out, failed if the block raised (with the job's exit
    status: 143 after SIGTERM, 3 after divergence), so that the next job of a multirun starts
    its own run. A no-op when wandb was never imported."""
    try:
        yield
    except BaseException as error:
        finish_wandb(exit_code=getattr(error, "exit_status", 1))
        raise
    finish_wandb(exit_code=0)


def finish_wandb(exit_code: int) -> None:
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return
    try:
        wandb.finish(exit_code=exit_code)
    except OSError as error:
        # A batch scheduler signals every process of a job: wandb's service process quits on SIGTERM
        # (wandb/wandb#9963), so a job stopped that way cannot finish its run; what was logged
        # is kept, and the resumed job continues the same run.
        if exit_code == 0:
            raise
        with contextlib.suppress(OSError):
            wandb.teardown()  # or its exit hook would print the same error after ours
        log.warning("W&B: the service process had already stopped (%s); run not marked finished", error)
