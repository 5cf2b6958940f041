"""How a command fails: `error: <message>` lines on stderr and an exit status, never a traceback.

- `hydra_errors_reported` wraps a `@hydra.main` function. Hydra's composition errors (a
  misspelled option or key, an override it cannot parse) become one line naming the option or
  key and the nearest valid ones, exit status 2. `HYDRA_FULL_ERROR=1` shows Hydra's own report.
- `checked_job` wraps a task function: `check_config`, then the task. A `RunError` ends a single
  run with its line and exit status. In a multirun it fails only its own job (the other jobs
  still run), except `Interrupted`, which stops the whole multirun with its exit status (the
  optional parts in addons/ may wrap the job too).
- Two Hydra callbacks, listed under `hydra.callbacks` in configs/hydra/default.yaml:
  `CheckBeforeRunDir` checks a single run's config before Hydra creates the run dir, so a bad
  value leaves nothing behind; `ReportFailedJobs` collects a multirun's failed jobs, which end
  the multirun as its last lines, exit status 1. A job that failed its config check did nothing,
  so its dir is removed; a job that failed later keeps its dir (log, checkpoints).
- A job that fails after its run dir exists leaves `failure.json` there (status and reason), which
  the multirun summary and `python -m {{ cookiecutter.package_name }}.runs` read back (run_table.py).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import hydra._internal.utils as hydra_internal
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import (
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
    SearchPathException,
)
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict, read_write
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from . import addons
from .config_checks import check_config
from .errors import ConfigError, Diverged, Interrupted, RunError
from .paths import run_dir

log = logging.getLogger(__name__)

# configs/hydra/launcher/joblib.yaml replaces the joblib plugin's option of the same name and
# repeats all its fields: Hydra's deprecated check of such a file against the plugin's schema has
# nothing to say. (Set on import, which joblib's workers do before they compose a job's config.)
warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/joblib' is validated against ConfigStore schema"
)


def exit_with(error: RunError) -> NoReturn:
    print(f"error: {error}", file=sys.stderr)
    raise SystemExit(error.exit_status)


# Hydra's own errors ------------------------------------------------------------------------------


def hydra_errors_reported(main: Callable[[], Any]) -> Callable[[], Any]:
    """A `@hydra.main` function whose errors end as `reported` says."""

    @functools.wraps(main)
    def wrapper() -> Any:
        with run_and_report_wrapped():
            return main()

    return wrapper


@contextmanager
def run_and_report_wrapped() -> Iterator[None]:
    """Hydra runs composition and the jobs through `hydra._internal.utils.run_and_report`, which
    prints a multi-line message or a trimmed traceback and exits with 1. Run `reported` inside
    it: what `reported` does not handle still gets Hydra's report."""
    original = hydra_internal.run_and_report
    hydra_internal.run_and_report = lambda func: original(lambda: reported(func))
    try:
        yield
    finally:
        hydra_internal.run_and_report = original


def reported(func: Callable[[], Any]) -> Any:
    try:
        return func()
    except Exception as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if MULTIRUN.failed:  # Hydra's sweeper re-raises the first failed job's error
            MULTIRUN.end_with_failures()
        # Jobs in other processes (a scheduler's) leave no failures here, only the first error: the
        # summary still lists them all, from their dirs.
        MULTIRUN.finish()
        if isinstance(error, RunError):
            exit_with(error)
        if (line := hydra_error_line(error)) is None:
            raise
        MULTIRUN.remove_if_no_job_ran()
        exit_with(ConfigError(line))


# What OmegaConf raises when an override names a key the config does not have.
UNKNOWN_KEY = (ConfigKeyError, ConfigAttributeError)


def hydra_error_line(error: Exception) -> str | None:
    """One line for an error Hydra raises while composing a config; None for other errors."""
    message, cause = str(error), error.__cause__
    if isinstance(error, MissingConfigException) and error.options and error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.rpartition("/")
        within = re.match(r"In '(\w+/[^']+)'", message)  # in an experiment's defaults list, say
        where = f" (in {within[1]})" if within and not within[1].startswith("hydra/") else ""
        suggestion, choices = did_you_mean(option, error.options), ", ".join(error.options)
        return f"{group}={option}{where}: no such option;{suggestion} choices: {choices}"
    if isinstance(error, ConfigCompositionException) and isinstance(cause, UNKNOWN_KEY):
        return unknown_key_line(message, cause)
    if isinstance(error, OverrideParseException):
        return f"{error.override}: cannot be parsed: {one_line(message)}"
    if isinstance(error, ConfigCompositionException | SearchPathException):
        because = f": {one_line(str(cause))}" if isinstance(cause, OmegaConfBaseException) else ""
        return one_line(message.split("Config search path:")[0]) + because
    return None


def unknown_key_line(message: str, cause: OmegaConfBaseException) -> str:
    """`optimizer.lrr=1: no key optimizer.lrr; did you mean optimizer.lr? (+optimizer.lrr=1 adds ...)`"""
    appended = re.search(r"use \+(\S+)", message)  # Hydra's hint names the override
    parent, _, name = str(cause.full_key).rpartition(".")
    siblings = sorted(str(key) for key in (cause.parent_node or {}) if key != "hydra")
    line = f"{appended[1] if appended else cause.full_key}: no key {cause.full_key}"
    if suggestion := did_you_mean(name, siblings, prefix=f"{parent}." if parent else ""):
        line += f";{suggestion}"
    elif siblings:
        line += f"; keys{f' of {parent}' if parent else ''}: {', '.join(siblings)}"
    return line + (f" (+{appended[1]} adds a new key)" if appended else "")


def did_you_mean(name: str, candidates: Sequence[str], prefix: str = "") -> str:
    import difflib  # only for errors: every command imports this module

    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    return f" did you mean {' or '.join(prefix + match for match in close)}?" if close else ""


def one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


# Jobs ---------------------------------------------------------------------------------------------


def in_multirun() -> bool:
    return HydraConfig.get().mode == RunMode.MULTIRUN


# Set in the worker processes of hydra/launcher=joblib (parallel_jobs.py), whose launcher collects
# the jobs' returns. A variable, not a global: workers get the task function with copies of its
# globals (cloudpickle), which the worker's own module does not reach.
JOBLIB_WORKER_ENV = "TRAIN_JOBLIB_WORKER"


def in_joblib_worker() -> bool:
    return os.environ.get(JOBLIB_WORKER_ENV) == "1"


def checked_job(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """`check_config`, then `task`; a failure ends the run, or in a multirun only this job."""

    @functools.wraps(task)
    def job(cfg: DictConfig) -> Any:
        try:
            with addons.job_context():  # e.g. a scheduler's requeue on preemption
                forget_failure()  # of an earlier attempt, if this one resumes it
                check_config(cfg)
                return task(cfg)
        except RunError as error:
            # An interruption ends the process (a scheduler's job too, so that its launcher records
            # no result and waits for the requeued job), except in a joblib worker: there it goes
            # back to the launcher, which ends the multirun (parallel_jobs.py).
            record_failure(error)
            if not in_multirun() or (isinstance(error, Interrupted) and not in_joblib_worker()):
                MULTIRUN.finish()  # the summary of an interrupted multirun in this process
                exit_with(error)
            log.error("error: %s", error)
            raise
        except Exception as error:
            record_failure(error)
            if in_multirun():  # Hydra would show only the first failed job's traceback, at the end
                log.exception("The job failed")
            raise

    return job


FAILURE_FILE = "failure.json"


def failure_status(error: BaseException) -> str:
    if isinstance(error, Interrupted):
        return "interrupted"
    return "diverged" if isinstance(error, Diverged) else "failed"


def failure_reason(error: BaseException) -> str:
    """The error's one line; for a bug, its type and first line (the traceback is in the log)."""
    if isinstance(error, RunError):
        return str(error)
    first_line = next(iter(str(error).splitlines()), "")
    return f"{type(error).__name__}: {first_line} (traceback in the job's log)"


def forget_failure() -> None:
    (run_dir() / FAILURE_FILE).unlink(missing_ok=True)


def record_failure(error: BaseException) -> None:
    """`failure.json` in the job's run dir, if Hydra made it (a run stopped by its config check
    before that leaves none)."""
    output_dir = run_dir()
    if output_dir.is_dir():
        record = {"status": failure_status(error), "reason": failure_reason(error)}
        (output_dir / FAILURE_FILE).write_text(json.dumps(record, indent=2) + "\n")


class CheckBeforeRunDir(Callback):
    """`check_config` on a single run's config before Hydra creates the run dir."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Values such as ckpt_path may interpolate the run dir, which Hydra fills in only when it
        # creates the dir (in run_job): fill it in the same way first, then check.
        with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
            config.hydra.runtime.output_dir = os.path.abspath(str(config.hydra.run.dir))
        hydra_config = HydraConfig.instance()
        previous = hydra_config.cfg
        hydra_config.set_config(config)
        try:
            check_config(config)
        except ConfigError as error:
            exit_with(error)  # SystemExit: Hydra turns exceptions in callbacks into warnings
        finally:
            hydra_config.cfg = previous


@dataclass
class FailedJob:
    number: int
    overrides: list[str]
    reason: str
    status: str = "failed"


@dataclass
class Multirun:
    """The multirun under way in this process: where it writes, how many jobs ran, which failed."""

    sweep_dir: Path | None = None
    shared_overrides: list[str] = field(default_factory=list)
    # The sweep dir and its parents that did not exist when the multirun started, innermost first.
    new_dirs: list[Path] = field(default_factory=list)
    failed: list[FailedJob] = field(default_factory=list)
    ended: set[int] = field(default_factory=set)
    # Called once as the multirun ends, however it ends (`run_table.MultirunSummary` sets it).
    at_end: Callable[[Multirun], None] | None = None

    def start(self, sweep_dir: Path, shared_overrides: list[str]) -> None:
        self.sweep_dir, self.shared_overrides, self.failed, self.ended = (
            sweep_dir,
            shared_overrides,
            [],
            set(),
        )
        self.new_dirs = [
            path for path in (sweep_dir.absolute(), *sweep_dir.absolute().parents) if not path.exists()
        ]

    @property
    def jobs(self) -> int:
        """How many jobs have ended."""
        return len(self.ended)

    def job_ended(self, number: int, job_return: JobReturn) -> None:
        """Count a job and note it if it failed, once, whoever reports it: the job's own callback,
        or a launcher that got the job's return from another process (`parallel_jobs.py`)."""
        if number in self.ended:
            return
        self.ended.add(number)
        if job_return.status != JobStatus.FAILED:
            return
        error = job_return._return_value  # reading `return_value` would raise it
        overrides = list(job_return.overrides or [])
        swept = [override for override in overrides if override not in self.shared_overrides]
        self.failed.append(
            FailedJob(number, swept or overrides, failure_reason(error), failure_status(error))
        )

    def finish(self) -> None:
        """Run `at_end` (the summary), once."""
        at_end, self.at_end = self.at_end, None
        if at_end is not None and self.sweep_dir is not None:
            at_end(self)

    def end_interrupted(self, signum: int, aborted: bool = False) -> NoReturn:
        """Exit with 128 + `signum` after a stop signal reached the jobs of a parallel multirun,
        the last lines listing each job that did not finish: what it saved, how to resume it."""
        self.finish()
        name = signal.Signals(signum).name
        if aborted:
            print(
                f"error: multirun aborted by {name}: running jobs saved nothing new; "
                f"every job's dir is in {self.sweep_dir}",
                file=sys.stderr,
            )
            raise SystemExit(128 + signum)
        finished = self.jobs - len(self.failed)
        print(
            f"error: multirun stopped by {name}: {finished} of {self.jobs} jobs finished, "
            f"the others are listed below; job dirs are in {self.sweep_dir}",
            file=sys.stderr,
        )
        for job in sorted(self.failed, key=lambda job: job.number):
            print(f"error: job {job.number} ({' '.join(job.overrides)}): {job.reason}", file=sys.stderr)
        raise SystemExit(128 + signum)

    def end_with_failures(self) -> NoReturn:
        """Exit with status 1, the last lines of the output listing the failed jobs, one each."""
        self.remove_if_no_job_ran()
        if self.jobs:
            self.finish()
        others = f"; the others are in {self.sweep_dir}" if len(self.failed) < self.jobs else ""
        print(f"error: {len(self.failed)} of {self.jobs} jobs failed{others}", file=sys.stderr)
        for job in self.failed:
            print(f"error: job {job.number} ({' '.join(job.overrides)}): {job.reason}", file=sys.stderr)
        raise SystemExit(1)

    def remove_if_no_job_ran(self) -> None:
        """Hydra writes multirun.yaml before it composes the jobs: if that is all the sweep dir
        holds, remove it and the parents this multirun created."""
        if not self.new_dirs or not self.new_dirs[0].is_dir():
            return
        if {path.name for path in self.new_dirs[0].iterdir()} <= {"multirun.yaml"}:
            (self.new_dirs[0] / "multirun.yaml").unlink(missing_ok=True)
            for directory in self.new_dirs:
                if any(directory.iterdir()):
                    break
                directory.rmdir()


MULTIRUN = Multirun()


class ReportFailedJobs(Callback):
    """Collects the failed jobs of a multirun; the multirun ends listing them (`end_with_failures`)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        MULTIRUN.start(Path(str(config.hydra.sweep.dir)), list(config.hydra.overrides.task))

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        MULTIRUN.job_ended(config.hydra.job.num, job_return)
        error = job_return._return_value  # reading `return_value` would raise it
        if (
            job_return.status == JobStatus.FAILED
            and isinstance(error, ConfigError)
            and job_return.cfg is not None
            and fails_check(job_return.cfg)
        ):
            remove_job_dir(Path(config.hydra.runtime.output_dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # Not reached after a failed job with Hydra's basic sweeper (`reported` ends it then).
        MULTIRUN.finish()
        if MULTIRUN.failed:
            MULTIRUN.end_with_failures()


def fails_check(cfg: DictConfig) -> bool:
    try:
        check_config(cfg)
    except ConfigError:
        return True
    return False


def remove_job_dir(job_dir: Path) -> None:
    """Remove a job's dir, closing Hydra's log file in it first (Windows cannot delete open files)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).is_relative_to(job_dir):
            handler.close()
            root.removeHandler(handler)
    shutil.rmtree(job_dir, ignore_errors=True)
