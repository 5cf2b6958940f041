"""Multi-process DDP: each process Lightning starts runs exactly the job it was started for.

Lightning's `ddp` strategy starts ranks 1..N-1 by running the command line again
(`_hydra_subprocess_cmd` in lightning_fabric's subprocess_script launcher). Inside a multirun
(`train.py -m ...`) that command line is the whole sweep, so each child would run every job,
and Lightning's launcher, finding its own LOCAL_RANK left in the environment after the first
job, would start no new children for the later ones. Instead:

- Before it trains, the job puts its own command line in $TRAIN_DDP_JOB (`job_environment`),
  which the children inherit; `utils.child_ranks.ChildRanks` does that and, when the job ends,
  ends its children and restores the environment, so the next job starts its own ranks.
- `child_job_args`, called by `cli.prepare_process`, gives a child (LOCAL_RANK > 0 with
  $TRAIN_DDP_JOB set) that job's command line in place of its own: the job's overrides, its
  run dir, no `.hydra/` of its own, and its log in `<run dir>/train_ddp_process_<rank>.log`.

Only Python's standard library is imported here: `cli` imports this module.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from .run_dirs import override_key

JOB_VARIABLE = "TRAIN_DDP_JOB"
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


def child_job_args() -> list[str] | None:
    """The command line of the one job this process is a DDP child of; None if it is not one."""
    job, local_rank = os.environ.get(JOB_VARIABLE), os.environ.get("LOCAL_RANK", "0")
    if not job or local_rank == "0":
        return None
    recorded = json.loads(job)
    return [*recorded["overrides"], f"hydra.job.name={recorded['job_name']}_ddp_process_{local_rank}"]


def job_environment(hydra: Any) -> dict[str, str]:
    """The variable that tells a child which job to run: the one of `hydra` (a HydraConfig)."""
    overrides = [
        *hydra.overrides.task,
        *(override for override in hydra.overrides.hydra if not launch_only(override)),
        f"hydra.run.dir={quoted(hydra.runtime.output_dir)}",
        "hydra.output_subdir=null",  # the job's .hydra/ is rank 0's
    ]
    return {JOB_VARIABLE: json.dumps({"overrides": overrides, "job_name": hydra.job.name})}


def launch_only(override: str) -> bool:
    key = override_key(override)
    return any(key == launch or key.startswith(f"{launch}.") for launch in LAUNCH_KEYS)


def quoted(value: str) -> str:
    """`value` as a single-quoted Hydra override value (backslashes doubled before a quote)."""
    escaped = re.sub(r"(\\*)'", lambda match: match[1] * 2 + "\\'", value)
    return "'" + re.sub(r"(\\+)$", lambda match: match[1] * 2, escaped) + "'"
