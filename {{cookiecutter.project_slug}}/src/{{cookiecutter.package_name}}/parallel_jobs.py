"""`hydra/launcher=joblib`: a multirun's jobs in parallel worker processes on this machine.

The Hydra plugin (hydra-joblib-launcher) runs each job in a loky worker process, not in the
process that started the multirun. `JoblibLauncher` is the plugin's launcher plus what this
project relies on across that boundary:

- Failed jobs: each job's return is recorded in `failures.MULTIRUN`, so the multirun still ends
  listing its failed jobs (exit status 1), as with Hydra's basic launcher.
- Signals: Ctrl-C or SIGTERM is passed on to every worker, once; each running job stops at a
  resumable point and saves its last.ckpt, as a single run does, no further job starts, and the
  multirun exits with 128 + the signal number, listing each job to resume. A second Ctrl-C is
  passed on too and aborts the jobs at once. Workers leave the terminal's process group as they
  start their first job, so that a Ctrl-C reaches them through the launcher only (twice would
  mean "abort"); joblib would otherwise kill them, mid-save, as soon as one job reported it.
- Threads: joblib sets OMP_NUM_THREADS in its workers; each job gets the launcher's value back,
  so `utils.threads` sees only what you set.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import FrameType
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.types import TaskFunction
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher as PluginLauncher
from omegaconf import DictConfig

from .errors import STOP_SIGNALS, Interrupted, RunError, handling
from .failures import JOBLIB_WORKER_ENV, MULTIRUN, remove_job_dir
from .paths import run_dir

log = logging.getLogger(__name__)


class NotStarted(Interrupted):
    """A job that the multirun's stop reached before it began; it leaves no dir."""


class JoblibLauncher(PluginLauncher):
    task_function: TaskFunction | None  # the plugin's attribute; the plugin has no type hints

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        task = self.task_function
        if task is not None and not isinstance(task, JobInWorker):
            self.task_function = JobInWorker(task, os.getpid(), os.environ.get("OMP_NUM_THREADS"))
        with forwarded_signals() as received:
            try:
                returns = super().launch(job_overrides, initial_job_idx)
            except (Exception, KeyboardInterrupt) as error:  # a worker died, or jobs were aborted
                if received:
                    MULTIRUN.end_interrupted(received[0], aborted=True)
                if isinstance(error, KeyboardInterrupt):
                    raise
                first_line = next(iter(str(error).splitlines()), type(error).__name__)
                raise RunError(f"a worker process of the multirun failed: {first_line}") from None
        for job_return in returns:
            MULTIRUN.job_ended(job_return.hydra_cfg.hydra.job.num, job_return)
        stops = [signum for signum in received] + [
            job_return._return_value.signum
            for job_return in returns
            if job_return.status == JobStatus.FAILED and isinstance(job_return._return_value, Interrupted)
        ]
        if stops:
            MULTIRUN.end_interrupted(stops[0])
        return returns


@contextmanager
def forwarded_signals() -> Iterator[list[int]]:
    """While the jobs run, SIGINT and SIGTERM are passed on to the worker processes; the list
    yielded collects the signals received."""
    import multiprocessing  # here, not at the top: Hydra imports this module to find its plugins

    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if not received:
            log.warning(
                "Received %s: passing it on to the running jobs, which save their last.ckpt; "
                "no other job starts (Ctrl-C again to abort at once)",
                signal.Signals(signum).name,
            )
        received.append(signum)
        for worker in multiprocessing.active_children():
            with suppress(ProcessLookupError):
                os.kill(worker.pid, signum)  # type: ignore[arg-type]

    with handling(STOP_SIGNALS, forward):
        yield received


@dataclass
class WorkerState:
    """What a worker process remembers between jobs: that it set itself up, and a stop signal."""

    ready: bool = False
    stopped_by: int | None = None

    def record(self, signum: int, frame: FrameType | None) -> None:
        self.stopped_by = self.stopped_by or signum


WORKER = WorkerState()


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """Outside training (which has its own handlers), SIGINT and SIGTERM raise `Interrupted`, as
    `cli.train` arranges for a single run; the worker remembers the stop even if the code under
    way swallows the exception, so that it starts no further job."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        WORKER.record(signum, frame)
        name = signal.Signals(signum).name
        raise Interrupted(signum, f"stopped by {name} before training started; nothing saved")

    with handling(STOP_SIGNALS, interrupt):
        try:
            yield
        except Interrupted as error:  # from the training loop's own handlers
            WORKER.record(error.signum, None)
            raise


@dataclass
class JobInWorker:
    """The task function as a worker runs it: set up the worker, skip the job after a stop, and
    turn a signal before training into `Interrupted` (what `cli.train` does for a single run)."""

    task: Callable[[DictConfig], Any]
    launcher_pid: int
    omp_num_threads: str | None

    def __call__(self, cfg: DictConfig) -> Any:
        if os.getpid() != self.launcher_pid:  # joblib runs a lone job (n_jobs=1) in the launcher
            self.enter_worker()
        if WORKER.stopped_by is not None:
            remove_job_dir(run_dir())
            name = signal.Signals(WORKER.stopped_by).name
            raise NotStarted(WORKER.stopped_by, f"not started: the multirun was stopped by {name}")
        with stop_signals_interrupt():
            return self.task(cfg)

    def enter_worker(self) -> None:
        if self.omp_num_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = self.omp_num_threads
        if WORKER.ready:
            return
        os.environ[JOBLIB_WORKER_ENV] = "1"
        os.setpgid(0, 0)  # out of the terminal's foreground group: signals come from the launcher
        with open(os.devnull) as devnull:  # a background group must not read the terminal (SIGTTIN)
            os.dup2(devnull.fileno(), 0)
        for signum in STOP_SIGNALS:  # between jobs; each job's own handlers take over while it runs
            signal.signal(signum, WORKER.record)
        WORKER.ready = True
