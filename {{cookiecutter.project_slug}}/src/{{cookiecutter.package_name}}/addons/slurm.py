"""SLURM jobs (`python train.py -m hydra/launcher=slurm ...`): stopped, requeued, resumed.

An optional part of the project (`include_slurm`): its hooks are at the end (see __init__.py).

One mechanism handles the signals SLURM sends before it kills a job, this project's own:
`StopOnSignal` stops training at the next point it resumes from exactly and saves
`checkpoints/last.ckpt` there (`signals_interrupt` stops at once outside training).

- SIGUSR2: submitit asks SLURM (`#SBATCH --signal=USR2@<signal_delay_s>`) to send it that long
  before the time limit; `scancel --signal=USR2 <job id>` sends it by hand (or from a preemption
  script). The job saves, requeues itself with `scontrol requeue`, and exits (status 140).
- SIGTERM: what `scontrol requeue`, preemption and `scancel` send, KillWait seconds (30 by
  default) before SIGKILL. The job saves and exits (143); SLURM decides whether it runs again.

A job SLURM starts again (SLURM_RESTART_COUNT > 0) resumes from the `last.ckpt` in its run dir
(`resume_after_requeue`). It is the same run dir: submitit starts the pickled Hydra job again,
whose sweep dir (`${now:...}` included) was resolved once at submission. It is the same W&B run:
the run id is in the checkpoint (utils/loggers.py).

The two other handlers are turned off so that they cannot run instead: submitit's (SIGUSR2
resubmits the job at once, from its start; SIGTERM is ignored) is replaced by `requeued_on_preemption`
as the job starts, and Lightning's (SIGUSR1 saves `hpc_ckpt_*.ckpt` in the middle of a step and
requeues) by `lightning_plugins`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from ..errors import PREEMPTION_SIGNALS, Interrupted, signals_interrupt
from ..run_dirs import last_checkpoint

log = logging.getLogger(__name__)

REQUEUE_TIMEOUT_SECONDS = 60

# Lightning warns on every run outside SLURM on a machine with SLURM's tools (a login node, a
# workstation with slurm-client) that `srun` is not used. Jobs here reach SLURM through the
# submitit launcher, which does use srun; a run outside SLURM is not a mistake.
warnings.filterwarnings("ignore", message="The `srun` command is available on your system but is not used")


def slurm_job_id() -> str | None:
    """The id of the SLURM job this process runs in (an array task has its own), else None."""
    return os.environ.get("SLURM_JOB_ID")


def restart_count() -> int:
    """How many times SLURM has started this job again (requeued, preempted, node failure)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


@contextmanager
def requeued_on_preemption() -> Iterator[None]:
    """Inside a SLURM job: SIGTERM, Ctrl-C and SIGUSR2 stop the job (replacing submitit's
    handlers), and a job stopped by SIGUSR2 requeues itself. A no-op elsewhere."""
    job_id = slurm_job_id()
    if job_id is None:
        yield
        return
    with signals_interrupt("stopped by {signal} before the job started; nothing saved"):
        try:
            yield
        except Interrupted as stop:
            if stop.signum not in PREEMPTION_SIGNALS:
                raise
            raise Interrupted(stop.signum, f"{stop}; {requeue(job_id)}") from None


def requeue(job_id: str) -> str:
    """`scontrol requeue <job id>`; what happened, as the end of the job's error line."""
    command = ["scontrol", "requeue", job_id]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=REQUEUE_TIMEOUT_SECONDS)
    except (OSError, subprocess.SubprocessError) as error:
        output = getattr(error, "stderr", None) or str(error)
        reason = next(iter(output.strip().splitlines()), type(error).__name__)
        return f"could not requeue SLURM job {job_id} ({' '.join(command)}: {reason})"
    return f"requeued SLURM job {job_id}: it resumes from its last checkpoint when SLURM starts it again"


def resume_after_requeue(cfg: DictConfig, run_dir: Path) -> None:
    """Set `cfg.ckpt_path` to the run dir's `last.ckpt` when SLURM has started this job again
    and an earlier start saved one; it supersedes a `ckpt_path` given at submission."""
    if restart_count() == 0 or (last := last_checkpoint(run_dir)) is None:
        return
    with open_dict(cfg):
        cfg.ckpt_path = str(last)
    log.info(
        "SLURM job %s started again (restart %d): resuming from %s", slurm_job_id(), restart_count(), last
    )


def lightning_plugins() -> list[Any]:
    """Lightning's SLURM environment with its own requeue turned off, inside a SLURM job step."""
    from lightning_fabric.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


# The hooks the rest of the package calls (addons/__init__.py).
job_context = requeued_on_preemption
prepare_training = resume_after_requeue
trainer_plugins = lightning_plugins
