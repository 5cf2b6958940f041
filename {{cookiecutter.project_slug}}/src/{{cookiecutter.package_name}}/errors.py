"""Errors that end a job with one `error:` line on stderr and a known exit status, never a traceback.

Exit statuses: 2, the user's input cannot work (a config value, a data file, a checkpoint);
3, training stopped itself (a non-finite loss); 128 + N, stopped by signal N after saving
`last.ckpt` (130 for Ctrl-C, 143 for SIGTERM, 140 for SIGUSR2), so schedulers and scripts see a
failure and retry.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

# SIGUSR2: the warning batch schedulers send before a time limit; a scheduler's addon may requeue
# the job on it (addons/). Not on Windows.
PREEMPTION_SIGNALS = (signal.SIGUSR2,) if hasattr(signal, "SIGUSR2") else ()
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, *PREEMPTION_SIGNALS)


class RunError(Exception):
    """Base class: the message names the value, file or step at fault and what would work."""

    exit_status = 1


class UsageError(RunError):
    """Input the user can fix."""

    exit_status = 2


class ConfigError(UsageError, ValueError):
    """A config value that cannot work."""


class DataError(UsageError, RuntimeError):
    """A dataset that cannot be had or read: offline with no copy, corrupt, wrong layout."""


class CheckpointError(UsageError):
    """A checkpoint that is missing, not whole, or not safe to load."""


class Diverged(RunError):
    """The training loss became NaN or infinite."""

    exit_status = 3


class Interrupted(RunError):
    """The job was stopped by a signal; it saved what it could and should be retried."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + signum

    def __reduce__(self) -> tuple[type[Interrupted], tuple[int, str]]:
        # Pickled with both arguments: a job in a worker process returns it to the launcher.
        return type(self), (self.signum, str(self))


@contextmanager
def signals_interrupt(message: str) -> Iterator[None]:
    """Outside the training loop (data set-up, testing), SIGTERM and Ctrl-C raise `Interrupted`
    with `message` (`{signal}` in it names the signal) at once: there is nothing to save, and
    the default action would kill the process without a word or a finished W&B run.
    `utils.fault_tolerance.StopOnSignal` takes over while training."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum, message.format(signal=signal.Signals(signum).name))

    with handling(STOP_SIGNALS, interrupt):
        yield


SignalHandler = Callable[[int, FrameType | None], Any]


@contextmanager
def handling(signums: Iterable[int], handler: SignalHandler) -> Iterator[None]:
    """`handler` for each of `signums` while the block runs, the earlier handlers again after it."""
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, earlier in previous.items():
            signal.signal(signum, earlier)
