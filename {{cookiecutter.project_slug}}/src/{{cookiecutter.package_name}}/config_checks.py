"""Config validation: the one place that turns a bad config into one clear error line.

`check_config` runs before torch, Lightning or W&B are imported: for a single run before Hydra
creates the run dir, for each job of a multirun as the job starts (see `failures.py`). It checks
each key in `RULES` that the config has (types and ranges), then the relations between keys.
An error names the key, the value and what is allowed:

    optimizer.lr='abc': must be a number > 0

A key that your own code adds gets a rule here in one line, e.g. `"model.heads": integer(1)`.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """The values a key accepts, and how to say them in an error message."""

    allowed: str
    accepts: Callable[[Any], bool]

    def __or__(self, other: Rule) -> Rule:
        return Rule(f"{self.allowed}, or {other.allowed}", lambda v: self.accepts(v) or other.accepts(v))


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def integer(at_least: int) -> Rule:
    return Rule(f"an integer >= {at_least}", lambda v: is_integer(v) and v >= at_least)


def number(
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    at_most: float | None = None,
) -> Rule:
    bounds = {f"> {above}": above, f">= {at_least}": at_least, f"< {below}": below, f"<= {at_most}": at_most}
    return Rule(
        f"a number {' and '.join(text for text, bound in bounds.items() if bound is not None)}".rstrip(),
        lambda v: (
            is_number(v)
            and (above is None or v > above)
            and (at_least is None or v >= at_least)
            and (below is None or v < below)
            and (at_most is None or v <= at_most)
        ),
    )


def one_of(*choices: str | int) -> Rule:
    return Rule("one of " + ", ".join(map(str, choices)), lambda v: not isinstance(v, bool) and v in choices)


def exactly(value: int, meaning: str) -> Rule:
    return Rule(f"{value} {meaning}", lambda v: is_integer(v) and v == value)


def list_of(item: Rule, items: str, length: int | None = None) -> Rule:
    """A list whose elements all pass `item`; `items` names them in the plural."""
    return Rule(
        f"a list of {length} {items}" if length else f"a list of {items}",
        lambda v: (
            isinstance(v, ListConfig)
            and (length is None or len(v) == length)
            and all(item.accepts(element) for element in v)
        ),
    )


BOOLEAN = Rule("true or false", lambda v: isinstance(v, bool))
NULL = Rule("null", lambda v: v is None)
TEXT = Rule("a non-empty string", lambda v: isinstance(v, str) and v != "")
FRACTION = number(at_least=0, below=1)
SHAPE = list_of(integer(1), "integers >= 1 ([channels, height, width])", length=3)
# Lightning's limit_*_batches: a number of batches, or a fraction of them.
BATCHES = integer(0) | number(at_least=0, at_most=1)
# A node of the `callbacks` or `logger` group: a config to instantiate, or null to leave it out.
COMPONENT = Rule(
    "a config with _target_, or null to leave it out", lambda v: v is None or isinstance(v, DictConfig)
)
DEVICES = Rule(
    "a number of devices >= 1, -1 (all), auto, or a list of device indices",
    lambda v: (
        (is_integer(v) and (v >= 1 or v == -1))
        or (isinstance(v, str) and re.fullmatch(r"auto|-1|[\d,\s]+", v) is not None)
        or (isinstance(v, ListConfig) and all(is_integer(index) and index >= 0 for index in v))
    ),
)
PRECISION = one_of(
    "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "bf16", 16, 32, 64,
    "transformer-engine", "transformer-engine-float16",
)  # fmt: skip

# Checked in this order, so that a key is checked before the keys that interpolate it
# (`trainer.max_epochs` before `scheduler.T_max`). `*` stands for any one key.
RULES: dict[str, Rule] = {
    "seed": Rule("an integer from 0 to 2**32 - 1", lambda v: is_integer(v) and 0 <= v < 2**32),
    "tags": list_of(TEXT, "non-empty strings"),
    "notes": NULL | TEXT,
    "ckpt_path": NULL | TEXT,
    "threads": NULL | integer(1),
    "test": BOOLEAN,
    "nonfinite_loss": one_of("stop", "skip"),
    "speed.compile": BOOLEAN,
    "speed.compile_backend": TEXT,
    "speed.channels_last": BOOLEAN,
    "speed.mixed_precision": BOOLEAN,
    "monitor.metric": TEXT,
    "monitor.mode": one_of("min", "max"),
    "dataset.input_shape": SHAPE,
    "dataset.num_classes": integer(2),
    "dataset.batch_size": integer(1),
    "dataset.val_fraction": number(above=0, below=1),
    "dataset.test_fraction": FRACTION,
    "dataset.split_seed": integer(0),
    "dataset.num_workers": integer(0),
    "dataset.mean": list_of(number(), "numbers"),
    "dataset.std": list_of(number(above=0), "numbers > 0"),
    "dataset.augment.crop_padding": integer(0),
    "dataset.augment.hflip": BOOLEAN,
    "trainer.max_epochs": integer(1) | exactly(-1, "(no limit)"),
    "trainer.min_epochs": NULL | integer(0),
    "trainer.max_steps": integer(1) | exactly(-1, "(no limit)"),
    "trainer.accelerator": one_of("auto", "cpu", "gpu", "cuda", "mps", "tpu"),
    "trainer.devices": DEVICES,
    "trainer.strategy": TEXT,
    "trainer.precision": PRECISION,
    "trainer.log_every_n_steps": NULL | integer(1),
    "trainer.enable_progress_bar": NULL | BOOLEAN,
    "trainer.deterministic": NULL | BOOLEAN | one_of("warn"),
    "trainer.fast_dev_run": BOOLEAN | integer(0),
    "trainer.check_val_every_n_epoch": NULL | integer(1),
    "trainer.accumulate_grad_batches": integer(1),
    "trainer.gradient_clip_val": NULL | number(at_least=0),
    "trainer.limit_train_batches": BATCHES,
    "trainer.limit_val_batches": BATCHES,
    "trainer.limit_test_batches": BATCHES,
    "trainer.num_sanity_val_steps": integer(-1),
    "model.input_shape": SHAPE,
    "model.num_classes": integer(2),
    "model.hidden_dims": list_of(integer(1), "integers >= 1"),
    "model.hidden_dim": integer(1),
    "model.num_layers": integer(2),
    "model.width": integer(1),
    "model.depth": Rule(
        "6n + 2 with n >= 1 (8, 14, 20, 32, ...)", lambda v: is_integer(v) and v >= 8 and (v - 2) % 6 == 0
    ),
    "model.dropout": FRACTION,
    "optimizer.lr": number(above=0),
    "optimizer.weight_decay": number(at_least=0),
    "optimizer.momentum": FRACTION,
    "optimizer.nesterov": BOOLEAN,
    "optimizer.eps": number(above=0),
    "optimizer.betas": list_of(FRACTION, "numbers >= 0 and < 1", length=2),
    "scheduler.interval": one_of("epoch", "step"),
    "scheduler.T_max": integer(1),
    "scheduler.eta_min": number(at_least=0),
    "scheduler.max_lr": number(above=0),
    "scheduler.total_steps": one_of("auto") | integer(1),
    "scheduler.pct_start": number(above=0, below=1),
    "callbacks.*": COMPONENT,
    "callbacks.*.monitor": NULL | TEXT,
    "callbacks.*.mode": one_of("min", "max"),
    "callbacks.*.patience": integer(0),
    "callbacks.*.min_delta": number(at_least=0),
    "callbacks.*.save_top_k": integer(-1),
    "callbacks.*.upload_best_checkpoint": BOOLEAN,
    "logger.*": COMPONENT,
    "logger.*.log_model": BOOLEAN | one_of("all"),
}


def check_config(cfg: DictConfig) -> None:
    """Raise ConfigError for the first value that cannot work; return if there is none."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path is required: pass ckpt_path=<run dir>/checkpoints/best.ckpt")
    for pattern, rule in RULES.items():
        for parent, name, key in present_keys(cfg, pattern):
            value = resolved(parent, name, key)
            if not rule.accepts(value):
                raise ConfigError(f"{key}={shown(parent, name, value)}: must be {rule.allowed}")
    check_relations(cfg)
    check_logger_packages(cfg.get("logger"))
    check_hardware(cfg.get("trainer"))


def present_keys(node: DictConfig, pattern: str, prefix: str = "") -> Iterator[tuple[DictConfig, str, str]]:
    """(parent node, name, full key) of each key of `node` that matches `pattern`."""
    head, _, rest = pattern.partition(".")
    for name in map(str, node.keys()):
        if head not in ("*", name):
            continue
        if not rest:
            yield node, name, prefix + name
        elif not OmegaConf.is_missing(node, name) and isinstance(child := node[name], DictConfig):
            yield from present_keys(child, rest, f"{prefix}{name}.")


def resolved(parent: DictConfig, name: str, key: str) -> Any:
    if OmegaConf.is_missing(parent, name):
        raise ConfigError(f"{key}=???: a value is required")
    try:
        return parent[name]
    except OmegaConfBaseException as error:
        reason = str(error).splitlines()[0]
        raise ConfigError(f"{key}={written(parent, name)}: cannot be resolved: {reason}") from error


def written(parent: DictConfig, name: str) -> Any:
    """The value as written in the config, `${...}` interpolations unresolved."""
    return OmegaConf.to_container(parent, resolve=False)[name]  # type: ignore[call-overload,index]


def shown(parent: DictConfig, name: str, value: Any) -> str:
    """The value as an override writes it, and the interpolation it came from, if any."""
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value, resolve=True)
    if value is None or isinstance(value, bool):
        text = {None: "null", True: "true", False: "false"}[value]
    else:
        text = repr(value)
    return f"{text} (from {written(parent, name)})" if OmegaConf.is_interpolation(parent, name) else text


def check_relations(cfg: DictConfig) -> None:
    """What a single key's rule cannot see: files, and keys that must agree."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None and not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path!r} is not a file: pass the path of a .ckpt file")
    monitor = cfg.get("monitor")
    if monitor is not None and not monitor.metric.startswith(("train/", "val/")):
        raise ConfigError(
            f"monitor.metric={monitor.metric!r}: must be a metric logged during fit, "
            "e.g. 'val/acc' or 'val/loss'"
        )
    dataset = cfg.dataset
    val, test = dataset.get("val_fraction", 0.1), dataset.get("test_fraction", 0.0)
    if val + test >= 1:
        raise ConfigError(
            f"dataset.val_fraction={val} and dataset.test_fraction={test}: their sum must be below 1"
        )
    channels = dataset.input_shape[0]
    for name in ("mean", "std"):
        if name in dataset and len(dataset[name]) not in (1, channels):
            count = "1 value" if channels == 1 else f"1 or {channels} values"
            raise ConfigError(
                f"dataset.{name}={list(dataset[name])}: must have {count} "
                f"(one per channel of dataset.input_shape={list(dataset.input_shape)})"
            )
    model = cfg.get("model")
    for name in ("input_shape", "num_classes"):
        if model is not None and name in model and model[name] != dataset[name]:
            raise ConfigError(f"model.{name}={shown(model, name, model[name])}: must equal dataset.{name}")
    optimizer = cfg.get("optimizer")
    if optimizer is not None and optimizer.get("nesterov") and not optimizer.get("momentum", 0) > 0:
        raise ConfigError(
            f"optimizer.nesterov=true: needs optimizer.momentum > 0 (it is {optimizer.get('momentum')})"
        )


# What each logger imports, by its `_target_`: (the extra that installs it, its modules).
LOGGER_PACKAGES = {
    "pytorch_lightning.loggers.WandbLogger": ("wandb", ("wandb",)),
    "pytorch_lightning.loggers.TensorBoardLogger": ("tensorboard", ("tensorboard",)),
    # The SQLite store needs SQLAlchemy and Alembic, which mlflow-skinny leaves out.
    "pytorch_lightning.loggers.MLFlowLogger": ("mlflow", ("mlflow", "sqlalchemy", "alembic")),
}


def check_logger_packages(loggers: DictConfig | None) -> None:
    """A chosen logger whose package is not installed stops here, not after the data is loaded.
    Finds the modules without importing them."""
    for name, logger in (loggers or {}).items():
        if logger is not None and "_target_" not in logger:
            # e.g. an experiment's `logger.wandb.tags` while another logger is chosen
            names = ",".join(str(key) for key in loggers or {})
            raise ConfigError(
                f"logger.{name!s} sets {', '.join(str(key) for key in logger)} but logger={name!s} "
                "is not chosen: put run tags and notes in the top-level `tags:` and `notes:`, which "
                f"every logger gets, or choose it too: 'logger=[{names}]'"
            )
        target = str(logger.get("_target_")) if logger else ""
        extra, modules = LOGGER_PACKAGES.get(target, ("", ()))
        if any(importlib.util.find_spec(module) is None for module in modules):
            raise ConfigError(f"logger={name!s} needs the {extra} package: pip install '.[{extra}]'")


# The GPU accelerators checked against the machine, named as an error message names them.
GPU_KINDS = {"cuda": "CUDA GPU", "mps": "Apple GPU (MPS)", "gpu": "GPU (CUDA or MPS)"}


def check_hardware(trainer: DictConfig | None) -> None:
    """A GPU accelerator the machine does not have, or more GPUs than it has, stops here rather
    than in Lightning's Trainer, after the run dir and the data. Imports torch, for GPUs only."""
    accelerator = trainer.get("accelerator") if trainer is not None else None
    if trainer is None or accelerator not in GPU_KINDS:
        return
    import torch

    available = torch.cuda.device_count() if accelerator != "mps" else 0  # does not initialise CUDA
    if not available and accelerator != "cuda" and torch.backends.mps.is_available():
        available = 1
    kind = GPU_KINDS[accelerator]
    if not available:
        raise ConfigError(
            f"trainer.accelerator={accelerator}: this machine has no {kind}; "
            "train on CPU with trainer=cpu, or trainer=ddp_cpu for 2 DDP processes"
        )
    devices = trainer.get("devices")
    if is_integer(devices):
        wanted = devices  # -1: all there are
    elif isinstance(devices, ListConfig):
        wanted = max(devices, default=-1) + 1  # device indices
    else:
        wanted = 0  # auto, or a string for Lightning to parse
    if wanted > available:
        raise ConfigError(
            f"trainer.devices={shown(trainer, 'devices', devices)}: more devices than the "
            f"{available} {kind} this machine has"
        )
