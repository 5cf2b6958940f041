"""How many CPU threads a job's torch ops use: its share of the cores, or what you set.

Several training processes on one machine (a joblib multirun, DDP on CPU, both) each start
with torch's default of one intra-op thread per core; on a loaded machine those threads spin-wait
for each other and a small model trains several times slower than with one thread per process.
So each job sets `torch.set_num_threads` before training, first of these that applies:

1. `threads=<n>` in the config (it is recorded with the run, so `rerun` repeats it);
2. `OMP_NUM_THREADS`, if you set it for the command;
3. auto (`threads: null`): the cores this process may run on (`os.sched_getaffinity`) divided by
   the processes training at once on this machine: `hydra.launcher.n_jobs` of a joblib multirun
   (or `$TRAIN_PARALLEL_JOBS`, which a search runner sets to its `--workers`; set it yourself
   for several W&B agents on one machine) times the DDP processes of a job that runs on CPU
   (`trainer.devices`); and no more than the cores the rest of the machine leaves idle, measured
   over a tenth of a second (`/proc/stat`, Linux only). At least 1.

The idle cap keeps a lone run from being badly wrong on a shared machine: beside two other
trainings on 2 cores, the default run with every core took several times as long as with one
(benchmarks/threads.py). It is measured, not taken from the load average: that lags by a
minute and counts this very process, so the second job of a sequential multirun would see the
first one's load as someone else's.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger(__name__)

JOBLIB_LAUNCHERS = ("JoblibLauncher",)
PARALLEL_JOBS_ENV = "TRAIN_PARALLEL_JOBS"
PROC_STAT = Path("/proc/stat")
IDLE_SAMPLE_SECONDS = 0.1


def available_cpus() -> set[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))


def available_cores() -> int:
    return len(available_cpus())


def parallel_jobs(launcher: DictConfig | None) -> int:
    """Jobs training at once on this machine: a joblib multirun's n_jobs (-1 is every core), else
    $TRAIN_PARALLEL_JOBS, else 1."""
    if launcher is None or not str(launcher.get("_target_", "")).endswith(JOBLIB_LAUNCHERS):
        variable = os.environ.get(PARALLEL_JOBS_ENV, "")
        return int(variable) if variable.isdigit() and int(variable) > 0 else 1
    n_jobs = int(launcher.get("n_jobs") or 1)
    return n_jobs if n_jobs > 0 else max(available_cores() + 1 + n_jobs, 1)


def processes_per_job(trainer: DictConfig | None) -> int:
    """Training processes one job starts on this machine: its devices when it runs DDP on CPU."""
    if trainer is None or not runs_on_cpu(str(trainer.get("accelerator", "auto"))):
        return 1
    devices = str(trainer.get("devices", 1))
    return int(devices) if devices.isdigit() and int(devices) > 0 else 1


def runs_on_cpu(accelerator: str) -> bool:
    if accelerator != "auto":
        return accelerator == "cpu"
    import torch

    return not torch.cuda.is_available() and not torch.backends.mps.is_available()


def cpu_times() -> dict[int, tuple[int, int]]:
    """Per CPU, (idle, total) clock ticks since boot, from /proc/stat ("cpu<n> user nice system
    idle iowait irq softirq steal ..."; iowait is idle too, steal is another VM's)."""
    times = {}
    for line in PROC_STAT.read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(field) for field in fields[:8]]
            times[int(name[3:])] = (ticks[3] + ticks[4], sum(ticks))
    return times


def idle_cores(cpus: set[int], seconds: float = IDLE_SAMPLE_SECONDS) -> float | None:
    """How many of `cpus` sat idle over the next `seconds`, as a sum of fractions; None where
    there is no /proc/stat."""
    try:
        before = cpu_times()
        time.sleep(seconds)
        after = cpu_times()
    except OSError:
        return None
    idle = 0.0
    for cpu in cpus & before.keys() & after.keys():
        ticks = after[cpu][1] - before[cpu][1]
        idle += (after[cpu][0] - before[cpu][0]) / ticks if ticks else 1.0
    return idle


def auto_threads(cores: int, processes: int, idle: float | None) -> int:
    """This job's share of `cores` among the `processes` training at once, capped by the `idle`
    cores (None: unknown), rounded; at least 1."""
    share = cores // processes
    if idle is not None:
        share = min(share, round(idle))
    return max(share, 1)


def thread_share(cfg: DictConfig, launcher: DictConfig | None) -> tuple[int, str]:
    """The intra-op threads for this job, and where the number comes from."""
    if (threads := cfg.get("threads")) is not None:
        return int(threads), f"threads={threads}"
    if (variable := os.environ.get("OMP_NUM_THREADS", "")).isdigit() and int(variable) > 0:
        return int(variable), f"OMP_NUM_THREADS={variable}"
    cores, jobs, per_job = available_cores(), parallel_jobs(launcher), processes_per_job(cfg.get("trainer"))
    source = f"auto: {cores} cores / ({jobs} parallel jobs x {per_job} processes each)"
    if (idle := idle_cores(available_cpus())) is not None:
        source += f", {idle:.1f} of them idle"
    return auto_threads(cores, jobs * per_job, idle), source


def multirun_launcher() -> DictConfig | None:
    """The launcher config of the multirun this job belongs to; None for a single run."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return HydraConfig.get().launcher


def use_thread_share(cfg: DictConfig) -> dict[str, Any]:
    """Set torch's intra-op threads to this job's share; return what was set, for the run record."""
    import torch

    threads, source = thread_share(cfg, multirun_launcher())
    torch.set_num_threads(threads)
    log.info("Threads: %d (%s)", threads, source)
    return {"torch": torch.get_num_threads(), "source": source}
