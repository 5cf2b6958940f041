"""Multi-process DDP: each process Lightning starts runs exactly the job it was started for.

Lightning's `ddp` strategy starts ranks 1..N-1 by running the command line again
(`_hydra_subprocess_cmd` in lightning_fabric's subprocess_script launcher). Inside a multirun
(`train.py -m ...`) that command line is the whole sweep, so each child would run every job,
and Lightning's launcher, finding its own LOCAL_RANK left in the environment after the first
job, would start no new children for the later ones. Instead:

- `job_launches_children` wraps a job's fit and test in the process that launches the ranks:
  it puts that one job's command line in $TRAIN_DDP_JOB, which the children inherit, and when
  the job ends it waits for them, closes the process group and restores the environment
  variables Lightning's launcher set, so the next job starts its own ranks afresh.
- `child_job_args`, called by `cli.prepare_process`, gives a child (LOCAL_RANK > 0 with
  $TRAIN_DDP_JOB set) that job's command line in place of its own: the job's overrides, its
  run dir, no `.hydra/` of its own, and its log in `<run dir>/train_ddp_process_<rank>.log`.

Only Python's standard library is imported here: `cli` imports this module.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .run_dirs import override_key

JOB_VARIABLE = "TRAIN_DDP_JOB"
# What Lightning's launchers set in the launching process's environment for their ranks.
LAUNCH_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", JOB_VARIABLE)
# Hydra overrides of the launch (the multirun, its dirs, launcher and sweeper), not of one job.
LAUNCH_KEYS = (
    "hydra.mode",
    "hydra.sweep",
    "hydra.sweeper",
    "hydra.launcher",
    "hydra/sweeper",
    "hydra/launcher",
    "hydra.run.dir",
    "hydra.output_subdir",
    "hydra.job.name",
)
# How long a finished job waits for its other ranks to exit before ending them.
CHILD_EXIT_SECONDS = 120


def child_job_args() -> list[str] | None:
    """The command line of the one job this process is a DDP child of; None if it is not one."""
    job, local_rank = os.environ.get(JOB_VARIABLE), os.environ.get("LOCAL_RANK", "0")
    if not job or local_rank == "0":
        return None
    recorded = json.loads(job)
    return [*recorded["overrides"], f"hydra.job.name={recorded['job_name']}_ddp_process_{local_rank}"]


def job_args(hydra: Any) -> dict[str, Any]:
    """What a child needs to run the job of `hydra` (the job's HydraConfig) as a single run."""
    overrides = [
        *hydra.overrides.task,
        *(override for override in hydra.overrides.hydra if not launch_only(override)),
        f"hydra.run.dir={quoted(hydra.runtime.output_dir)}",
        "hydra.output_subdir=null",  # the job's .hydra/ is rank 0's
    ]
    return {"overrides": overrides, "job_name": hydra.job.name}


def launch_only(override: str) -> bool:
    key = override_key(override)
    return any(key == launch or key.startswith(f"{launch}.") for launch in LAUNCH_KEYS)


def quoted(value: str) -> str:
    """`value` as a single-quoted Hydra override value (backslashes doubled before a quote)."""
    escaped = re.sub(r"(\\*)'", lambda match: match[1] * 2 + "\\'", value)
    return "'" + re.sub(r"(\\+)$", lambda match: match[1] * 2, escaped) + "'"


@contextmanager
def job_launches_children(trainer: Any) -> Iterator[None]:
    """Around a job's fit and test: children started by Lightning run this job only, and the
    next job of a multirun launches its own (see the module docstring)."""
    from hydra.core.hydra_config import HydraConfig

    saved = {name: os.environ.get(name) for name in LAUNCH_VARIABLES}
    os.environ[JOB_VARIABLE] = json.dumps(job_args(HydraConfig.get()))
    try:
        yield
    except BaseException:
        # The other ranks may be waiting for this one in a collective that will never come.
        end_children(launched_children(trainer), wait_seconds=0)
        raise
    else:
        end_children(launched_children(trainer), wait_seconds=CHILD_EXIT_SECONDS)
    finally:
        close_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def launched_children(trainer: Any) -> list[Any]:
    """The subprocess.Popen of each rank the `ddp` launcher started (`ddp_spawn` ends its own)."""
    import subprocess

    children = getattr(trainer.strategy.launcher, "procs", None) or []
    return [child for child in children if isinstance(child, subprocess.Popen)]


def end_children(children: list[Any], wait_seconds: float) -> None:
    """Give each child up to `wait_seconds` to exit, then kill it."""
    import subprocess

    for child in children:
        try:
            child.wait(timeout=wait_seconds)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def close_process_group() -> None:
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
