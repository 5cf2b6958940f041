"""One training job: fit, test the best checkpoint, write metrics.json and figures."""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelSummary
from pytorch_lightning.plugins.io import AsyncCheckpointIO
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

from . import addons
from .checkpoints import CheckpointFiles, load_checkpoint
from .errors import Diverged, Interrupted, signals_interrupt
from .models.classifier import Classifier
from .paths import run_dir
from .run_table import early_stop_reason
from .utils.callbacks import build_callbacks
from .utils.child_ranks import ChildRanks
from .utils.console import log_full_config, show_config, show_summary
from .utils.fault_tolerance import ExactResume, StopOnSignal
from .utils.loggers import (
    WandbRunIdInCheckpoint,
    build_loggers,
    keep_csv_histories,
    wandb_run_finished,
    wandb_sync_command,
)
from .utils.metrics import FinalProgress, final_progress, scalar_metrics, write_metrics
from .utils.run_record import write_run_record
from .utils.threads import use_thread_share

log = logging.getLogger(__name__)

# Lightning 2.6 calls a torch.utils._pytree API that torch deprecated: nothing a user can act on,
# and printed by every process of a parallel or distributed run.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def start_job(cfg: DictConfig) -> tuple[Path, pl.LightningDataModule]:
    """Log the run dir and the resolved config, seed everything, and get the data ready
    (downloads run once, on global rank 0) before any logger starts; return both."""
    out_dir = run_dir()
    log_full_config(cfg, out_dir)  # to train.log; the console gets `show_config` once the model is built
    threads = use_thread_share(cfg)
    rank_zero_only(write_run_record)(cfg, out_dir, threads)  # first, so a failed run has it too
    pl.seed_everything(cfg.seed, workers=True)
    datamodule: pl.LightningDataModule = instantiate(cfg.dataset)
    rank_zero_only(datamodule.prepare_data)()
    return out_dir, datamodule


def build_classifier(cfg: DictConfig) -> Classifier:
    def plain(node: Any) -> Any:
        return OmegaConf.to_container(node, resolve=True) if node is not None else None

    return Classifier(
        net=plain(cfg.model),
        optimizer=plain(cfg.optimizer),
        scheduler=plain(cfg.get("scheduler")),
        num_classes=cfg.dataset.num_classes,
        nonfinite_loss=cfg.get("nonfinite_loss", "stop"),
    )


def build_trainer(cfg: DictConfig, **kwargs: Any) -> pl.Trainer:
    """The trainer from `cfg.trainer`; a progress bar only when stdout (where Lightning's rich bar
    draws) is a terminal, unless set; its model summary table in train.log; mixed precision when
    `speed.mixed_precision` is on and a GPU is there; checkpoints written atomically and read
    safely (`checkpoints.CheckpointFiles`) in a background thread; and the plugins of addons/."""
    # Lightning's AsyncCheckpointIO snapshots the tensors, then writes and fsyncs in a thread
    # while training goes on (an fsync costs more than a digits epoch); the trainer waits for
    # the last write when fit ends, fails or is stopped by a signal.
    kwargs.setdefault("plugins", [AsyncCheckpointIO(CheckpointFiles()), *addons.trainer_plugins()])
    callbacks = kwargs.get("callbacks", [])
    if cfg.trainer.get("enable_model_summary", True) and not any(
        isinstance(c, ModelSummary) for c in callbacks
    ):
        # The plain summary logs its table, which configs/hydra/job_logging/ sends to train.log;
        # Lightning's default one, with rich installed, prints it on the console.
        kwargs["callbacks"] = [*callbacks, ModelSummary()]
    if cfg.trainer.get("enable_progress_bar") is None:
        kwargs["enable_progress_bar"] = sys.stdout.isatty()
    if cfg.get("speed", {}).get("mixed_precision") and torch.cuda.is_available():
        kwargs["precision"] = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return instantiate(cfg.trainer, **kwargs)


def apply_speedups(model: Classifier, speed: DictConfig | None) -> None:
    """channels_last and torch.compile on the network, in place, as `speed` asks.

    Neither changes the state_dict: checkpoints load the same with or without them.
    """
    if speed and speed.channels_last:
        model.to(memory_format=torch.channels_last)
        model.net.register_forward_pre_hook(
            lambda _, args: tuple(
                a.contiguous(memory_format=torch.channels_last) if a.dim() == 4 else a for a in args
            )
        )
    if speed and speed.compile:
        model.net.compile(backend=speed.compile_backend)


def run_info(model: pl.LightningModule) -> dict[str, Any]:
    """What the config alone does not say: the command line, the chosen options, sizes."""
    hydra = HydraConfig.get()
    choices = {
        group: option for group, option in hydra.runtime.choices.items() if group.split("/")[0] != "hydra"
    }
    parameters = list(model.parameters())
    return {
        "hydra": {"overrides": list(hydra.overrides.task), "choices": choices, "run_dir": str(run_dir())},
        "num_params": {
            "total": sum(p.numel() for p in parameters),
            "trainable": sum(p.numel() for p in parameters if p.requires_grad),
        },
    }


def run_training(cfg: DictConfig) -> dict[str, float]:
    addons.prepare_training(cfg, run_dir())  # e.g. a requeued job goes on from its last.ckpt
    if cfg.get("ckpt_path"):
        load_checkpoint(cfg.ckpt_path, mmap=True)  # refuse an unsafe or broken file before any work
    with signals_interrupt("stopped by {signal} before training started; nothing saved"):
        return train_and_test(cfg)


@dataclass
class Job:
    """What a training run builds before it fits: `build_job` is the one place that builds it
    (`benchmarks/training_loop.py` times these same objects)."""

    out_dir: Path
    datamodule: pl.LightningDataModule
    model: Classifier
    trainer: pl.Trainer
    stop_on_signal: StopOnSignal
    child_ranks: ChildRanks

    @property
    def last_checkpoint(self) -> Path:
        return self.out_dir / "checkpoints" / "last.ckpt"


def build_job(cfg: DictConfig) -> Job:
    out_dir, datamodule = start_job(cfg)
    model = build_classifier(cfg)
    info = run_info(model)
    rank_zero_only(show_config)(cfg, out_dir, info["num_params"]["total"])
    loggers = build_loggers(cfg, info, resume_from=cfg.get("ckpt_path"))
    stop_on_signal, child_ranks = StopOnSignal(out_dir / "checkpoints" / "last.ckpt"), ChildRanks()
    callbacks = [
        *build_callbacks(cfg),
        WandbRunIdInCheckpoint(),
        ExactResume(),
        stop_on_signal,
        FinalProgress(),
        child_ranks,
        *addons.training_callbacks(cfg),  # e.g. reports to a search's trial
    ]
    trainer = build_trainer(cfg, callbacks=callbacks, logger=loggers or False)
    apply_speedups(model, cfg.get("speed"))
    return Job(out_dir, datamodule, model, trainer, stop_on_signal, child_ranks)


def train_and_test(cfg: DictConfig) -> dict[str, float]:
    job = build_job(cfg)
    out_dir, datamodule, model, trainer = job.out_dir, job.datamodule, job.model, job.trainer
    stop_on_signal, child_ranks, last_checkpoint = job.stop_on_signal, job.child_ranks, job.last_checkpoint
    with (
        wandb_run_finished(),
        failures_explained(stop_on_signal, last_checkpoint),
        child_ranks.launching(trainer),
    ):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
        progress = final_progress(trainer)
        metrics = scalar_metrics(trainer.callback_metrics)
        # A resumed run with no epoch left to train logs nothing; the best score is in the model.
        metrics.setdefault("val/acc_best", float(model.val_acc_best.max_value))
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if cfg.get("test", True):
            keep_csv_histories(trainer.loggers)  # what a ddp_spawn worker wrote
            # verbose=False: the summary below has the test metrics, in fewer lines.
            trainer.test(
                model, datamodule=datamodule, ckpt_path=best or None, weights_only=True, verbose=False
            )
            metrics |= scalar_metrics(trainer.callback_metrics)
        metrics |= progress
        sync_command = wandb_sync_command(trainer)  # while the run is open
    if trainer.is_global_zero:
        write_metrics(out_dir, metrics)
        show_summary(run_summary(metrics, out_dir, best, sync_command, cfg.monitor.metric))
    return metrics


def run_summary(
    metrics: dict[str, float], out_dir: Path, best: str, sync_command: str | None, monitor: str
) -> dict[str, str]:
    """What a run ends with: its scores, where it is, how to go on with it."""
    scores = {
        name: value for name, value in metrics.items() if name == "val/acc_best" or name.startswith("test/")
    }
    return {
        "Done": "  ".join(f"{name}={value:.4f}" for name, value in scores.items()),
        **({"Stopped early": reason} if (reason := early_stop_reason(metrics, monitor)) else {}),
        "Run dir": f"{out_dir}  (metrics.json, train.log, .hydra/config.yaml)",
        "Best checkpoint": best or "none saved",
        "Resume": f"python train.py resume={out_dir}",
        **({"W&B sync": sync_command} if sync_command else {}),
    }


@contextmanager
def failures_explained(stop_on_signal: StopOnSignal, last_checkpoint: Path) -> Iterator[None]:
    """Turn Lightning's way of stopping on a signal, and a diverged loss, into errors that say
    what was saved and how to go on (see errors.py for the exit statuses)."""
    resume = f"python train.py resume={last_checkpoint.parent.parent}"
    try:
        yield
    except (SIGTERMException, Interrupted) as stop:
        signum = getattr(stop, "signum", None) or stop_on_signal.signum or signal.SIGTERM
        saved = f"saved {last_checkpoint}" if last_checkpoint.is_file() else "no checkpoint saved yet"
        raise Interrupted(
            signum, f"stopped by {signal.Signals(signum).name}; {saved}; resume: {resume}"
        ) from None
    except Diverged as error:
        raise Diverged(f"{error}; {describe_last_checkpoint(last_checkpoint)}") from None


def describe_last_checkpoint(path: Path) -> str:
    """Whether `path` is a checkpoint to go back to after a divergence: it exists and its
    weights are finite (the step that diverged may have come right after it was saved)."""
    if not path.is_file():
        return "no checkpoint was saved before it"
    state = load_checkpoint(path, mmap=True)["state_dict"]
    if all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point()):
        return f"last good checkpoint: {path}"
    return f"{path} already has non-finite weights: start again with a lower learning rate"
