"""The ranks Lightning's `ddp` strategy starts for a job, started and ended with that job.

See `distributed.py` for why each job tells its children which job to run. This module is the
launching process's side: `ChildRanks.launching` around the job's fit and test sets that
variable and, when the job ends, waits for the children to exit (ending them if the job
failed), closes the process group and restores the variables Lightning's launcher set
(LOCAL_RANK among them: left set, it tells the next job that someone else starts its ranks).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig

from ..distributed import JOB_VARIABLE, job_environment

# What Lightning's launchers set in the launching process's environment for their ranks.
LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", JOB_VARIABLE)
# How long a job waits for its children to exit: after it finished, and after it failed (they
# stop too when all ranks agree, e.g. on a signal; otherwise they are waiting for this one).
EXIT_SECONDS, EXIT_SECONDS_AFTER_FAILURE = 120, 10


class ChildRanks(pl.Callback):
    def __init__(self) -> None:
        self.children: list[subprocess.Popen] = []

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        # Lightning's watcher thread SIGKILLs this process as soon as a child exits non-zero, as
        # the children of a failed job do: take them from it before they can, and end them here.
        self.children = take_children(trainer)

    @contextmanager
    def launching(self, trainer: pl.Trainer) -> Iterator[None]:
        saved = {name: os.environ.get(name) for name in LAUNCH_VARIABLES}
        os.environ.update(job_environment(HydraConfig.get()))
        try:
            yield
        except BaseException:
            end_children(self.children + take_children(trainer), EXIT_SECONDS_AFTER_FAILURE)
            raise
        else:
            end_children(take_children(trainer), EXIT_SECONDS)
        finally:
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def take_children(trainer: pl.Trainer) -> list[subprocess.Popen]:
    """The processes the `ddp` launcher started, taken out of its list (which its watcher
    thread reads); `ddp_spawn`'s workers are no subprocess.Popen and end with their own launch."""
    procs: list[Any] = getattr(trainer.strategy.launcher, "procs", None) or []
    children = [child for child in procs if isinstance(child, subprocess.Popen)]
    for child in children:
        procs.remove(child)
    return children


def end_children(children: list[subprocess.Popen], wait_seconds: float) -> None:
    """Give each child up to `wait_seconds` to exit, then kill it."""
    for child in children:
        try:
            child.wait(timeout=wait_seconds)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
