"""Config validation: the one place that turns a bad config into one clear error line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError, RunError


def check_config(cfg: DictConfig) -> None:
    """Fail fast, before any heavy import, on values that would fail late or silently."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path is required: pass ckpt_path=<run dir>/checkpoints/best.ckpt")
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None and not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path!r} is not a file: pass the path of a .ckpt file")
    monitor = cfg.get("monitor")
    if monitor is not None and monitor.mode not in ("min", "max"):
        raise ConfigError(f"monitor.mode={monitor.mode!r} must be 'min' or 'max'")
    if monitor is not None and not monitor.metric.startswith(("train/", "val/")):
        raise ConfigError(
            f"monitor.metric={monitor.metric!r} must be a metric logged during fit, "
            "e.g. 'val/acc' or 'val/loss'"
        )
    val, test = cfg.dataset.get("val_fraction", 0.1), cfg.dataset.get("test_fraction", 0.0)
    if not (val > 0 and test >= 0 and val + test < 1):
        raise ConfigError(
            f"dataset.val_fraction={val} and dataset.test_fraction={test}: "
            "need val_fraction > 0, test_fraction >= 0 and a sum below 1"
        )
    shape = list(cfg.dataset.input_shape)
    if len(shape) != 3 or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ConfigError(f"dataset.input_shape={shape} must be [channels, height, width] of positive ints")


def exit_on_config_error(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Run `check_config` first; report a RunError as one line and exit with its status."""

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            check_config(cfg)
            return task(cfg)
        except RunError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(error.exit_status)

    return wrapper
