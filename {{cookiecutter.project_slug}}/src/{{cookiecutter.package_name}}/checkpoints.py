"""The one place that reads and writes checkpoints: they are data, never code.

Reading: `torch.load(weights_only=True)`, torch's unpickler that only rebuilds tensors and plain
containers, so a crafted `.ckpt` cannot run code while it is loaded. Everything this project
writes into a checkpoint is plain data, so no extra globals are allowed. Rebuilding the
`Classifier` from a checkpoint goes one step further: its hyperparameters are Hydra configs,
and `instantiate` calls whatever their `_target_` names, so only targets defined in
`ALLOWED_TARGET_MODULES` are accepted. Any refusal is a `CheckpointError` naming the file.

Writing: `CheckpointFiles`, the trainer's CheckpointIO, writes a temp file beside the target,
fsyncs it and renames it over the target, so `last.ckpt` is always a whole checkpoint.
"""

from __future__ import annotations

import os
import secrets
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_object
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from .errors import CheckpointError
from .models.classifier import Classifier

# The modules whose classes and functions a checkpoint's hyperparameters may ask Hydra to call
# (a `_target_` must be defined in one of them or their submodules; torch.optim includes
# torch.optim.lr_scheduler). To load checkpoints of a network you import from another package,
# add its module here, e.g. "torchvision.models": only modules whose code you trust.
ALLOWED_TARGET_MODULES = ("{{ cookiecutter.package_name }}.models", "torch.optim")


def load_checkpoint(path: str | Path, *, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint at `path` as plain data, loaded on CPU by torch's safe unpickler.

    `mmap=True` maps the tensors from the file instead of reading them: a cheap way to check a
    large checkpoint or read its metadata. Raises CheckpointError with one line that names the
    file and what is wrong with it.
    """
    path = Path(path)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "missing"
        raise CheckpointError(f"{path} is not a checkpoint file: it is {what}")
    try:
        # torch.save writes a zip archive whose index sits at the end: a truncated copy has none.
        whole = zipfile.is_zipfile(path)
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror}") from error
    if not whole:
        raise CheckpointError(
            f"{path} is not a whole checkpoint ({path.stat().st_size} bytes, no zip index): "
            "truncated, or not written by torch.save; copy it again"
        )
    try:
        with warnings.catch_warnings():
            # A crafted pickle protocol draws a warning; the refusal below says all there is.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:
        if unsafe := unsafe_globals(path):
            raise CheckpointError(
                f"{path} is not safe to load: it would import {', '.join(sorted(unsafe))}, which a "
                "checkpoint of plain data never needs; refused without running it"
            ) from error
        raise CheckpointError(f"{path} is corrupt: {first_line(error)}") from error
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return checkpoint


def first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def unsafe_globals(path: Path) -> list[str]:
    """The functions and classes the checkpoint's pickle would import that torch's safe loader
    refuses (read statically, nothing is run); [] if it cannot tell."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        return []


def load_classifier(path: str | Path) -> Classifier:
    """The Classifier saved in a checkpoint, rebuilt from its hyperparameters, weights loaded,
    on CPU. Refuses (CheckpointError) a file that is not safe to load, including hyperparameters
    whose `_target_` is outside ALLOWED_TARGET_MODULES."""
    checkpoint = load_checkpoint(path)
    hparams, state_dict = checkpoint.get("hyper_parameters"), checkpoint.get("state_dict")
    if not isinstance(hparams, dict) or not isinstance(state_dict, dict):
        raise CheckpointError(
            f"{path} is not a checkpoint of a Classifier: it has no hyper_parameters and state_dict"
        )
    for target in targets(hparams):
        if not allowed_target(target):
            raise CheckpointError(
                f"{path} is not safe to load: its hyperparameters would call _target_={target!r}, "
                f"outside the allowed modules ({', '.join(ALLOWED_TARGET_MODULES)}); if you trust it, "
                f"add its module to ALLOWED_TARGET_MODULES in {__name__.replace('.', '/')}.py"
            )
    try:
        model = Classifier(**hparams)
        model.on_load_checkpoint(checkpoint)
        model.load_state_dict(state_dict)
    except Exception as error:
        raise CheckpointError(
            f"{path}: its hyperparameters and weights do not make a Classifier ({first_line(error)})"
        ) from error
    return model


def targets(node: Any) -> Iterator[Any]:
    """Every `_target_` value in nested dicts and lists."""
    if isinstance(node, dict):
        if "_target_" in node:
            yield node["_target_"]
        for value in node.values():
            yield from targets(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from targets(value)


def allowed_target(target: Any) -> bool:
    """True when `target` names a class or function defined in ALLOWED_TARGET_MODULES.

    The name alone is not enough: `torch.optim.optimizer.torch.hub.load` starts with an allowed
    module but reaches torch.hub through an import, so the object's own module must be allowed
    too. Checking the name first means resolving it imports nothing outside the allowlist.
    """
    if not isinstance(target, str) or not in_allowed_module(target):
        return False
    try:
        found = get_object(target)
    except Exception:
        return False
    return callable(found) and in_allowed_module(getattr(found, "__module__", None) or "")


def in_allowed_module(dotted: str) -> bool:
    return any(dotted == module or dotted.startswith(f"{module}.") for module in ALLOWED_TARGET_MODULES)


class CheckpointFiles(TorchCheckpointIO):
    """How every trainer writes and reads checkpoints: atomic writes, safe reads.

    Lightning's own save stages the file in $TMPDIR and moves it: when $TMPDIR is another
    filesystem (a tmpfs /tmp, a node's local disk) the move copies into the target in place, so
    a kill mid-copy leaves a half-written `last.ckpt`; nothing is fsynced either. Local paths
    only, as run dirs are.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save_atomically(checkpoint, Path(path))

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        # Always weights_only, whatever the caller asked; Lightning moves tensors to the device.
        return load_checkpoint(path)


def save_atomically(checkpoint: dict[str, Any], path: Path) -> None:
    """torch.save to a hidden temp file beside `path`, fsync, then rename it over `path`: readers
    and a killed process see the previous checkpoint or the new one, never part of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}.{os.getpid()}."
    # Left behind by a process killed mid-write (the only way one survives); this process's
    # own may be a save in progress that a signal handler interrupted.
    for stale in path.parent.glob(f".{path.name}.*.partial"):
        if not stale.name.startswith(prefix):
            stale.unlink(missing_ok=True)
    partial = path.with_name(f"{prefix}{secrets.token_hex(4)}.partial")
    try:
        with open(partial, "xb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` survive a crash (POSIX; a no-op where dirs cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
