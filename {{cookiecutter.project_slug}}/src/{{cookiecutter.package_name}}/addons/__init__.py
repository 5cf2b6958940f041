"""The optional parts of the project chosen when it was generated, one module each in this folder.

Core code calls the hooks below; each runs the hook of that name of every module here that
defines it. A part the project was generated without has no module here, and nothing else in
the package names it. Modules here import only light things at the top: `check_args` runs
before `--help`.

- `check_args(args)`: refuse a command line that belongs to another command (UsageError);
- `job_context()`: a context manager around every job (its config check and its task);
- `prepare_training(cfg, run_dir)`: adjust the config of a training before it starts;
- `trainer_plugins()`: Lightning plugins for the trainer;
- `training_callbacks(cfg)`: Lightning callbacks for the training.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from omegaconf import DictConfig


@cache
def addons() -> tuple[ModuleType, ...]:
    names = sorted(info.name for info in pkgutil.iter_modules(__path__))
    return tuple(importlib.import_module(f"{__name__}.{name}") for name in names)


def hooks(name: str) -> list[Any]:
    return [getattr(module, name) for module in addons() if hasattr(module, name)]


def check_args(args: list[str]) -> None:
    for hook in hooks("check_args"):
        hook(args)


@contextmanager
def job_context() -> Iterator[None]:
    with ExitStack() as stack:
        for hook in hooks("job_context"):
            stack.enter_context(hook())
        yield


def prepare_training(cfg: DictConfig, run_dir: Path) -> None:
    for hook in hooks("prepare_training"):
        hook(cfg, run_dir)


def trainer_plugins() -> list[Any]:
    return [plugin for hook in hooks("trainer_plugins") for plugin in hook()]


def training_callbacks(cfg: DictConfig) -> list[Any]:
    return [callback for hook in hooks("training_callbacks") for callback in hook(cfg)]
