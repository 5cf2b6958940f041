"""What the trial runners share: the offline sweep runner (`sweep.py`) and the others.

Each trial is `train.py` in a subprocess with its own run dir ($TRAIN_RUN_DIR); signals to the
runner are passed on to the running trials, which save their last.ckpt; a trial left unfinished
resumes from it; the record of the trials is replaced atomically; the runner's dir is locked;
parameter names are checked against the config before the first trial; and the trials end as a
ranked table.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any

from .agent_args import is_group
from .errors import Interrupted, UsageError, handling
from .paths import METRICS_FILE, config_dir
from .run_dirs import last_checkpoint

LOCK_FILE = "runner.lock"
FINISHED = "finished"
# Signals that stop the runner, and what the running trials are sent for each: a hang-up (a
# closed terminal) must not leave a trial running on its own in its session.
FORWARDED_SIGNALS: dict[int, signal.Signals] = {
    signal.SIGINT: signal.SIGINT,
    signal.SIGTERM: signal.SIGTERM,
    signal.SIGHUP: signal.SIGTERM,
}


class SignalForwarder:
    """While active, SIGINT/SIGTERM/SIGHUP are remembered (the first one decides the exit status)
    and passed on to the running trials instead of killing the runner."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._trials: set[subprocess.Popen[bytes]] = set()
        self._guard = threading.Lock()  # trials start and end in worker threads

    @contextmanager
    def active(self) -> Iterator[SignalForwarder]:
        # A signal ignored on purpose (SIGHUP under nohup, SIGINT in a background job) stays so.
        signums = [signum for signum in FORWARDED_SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN]
        with handling(signums, self._handle):
            yield self

    @contextmanager
    def forwarding_to(self, trial: subprocess.Popen[bytes]) -> Iterator[None]:
        with self._guard:
            self._trials.add(trial)
            if self.signum is not None:  # arrived while the trial was being started
                trial.send_signal(FORWARDED_SIGNALS[self.signum])
        try:
            yield
        finally:
            with self._guard:
                self._trials.discard(trial)

    def _handle(self, signum: int, _: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        for trial in list(self._trials):
            trial.send_signal(FORWARDED_SIGNALS[signum])


def run_reporting_errors(run: Callable[[Any, SignalForwarder], int], args: Any) -> int:
    """A runner's `run(args, forwarder)`, with stop signals passed on to the running trials; a
    usage error or an interruption ends as one `error:` line and its exit status."""
    with SignalForwarder().active() as forwarder:
        try:
            return run(args, forwarder)
        except (UsageError, Interrupted) as error:
            print(f"error: {error}", file=sys.stderr)
            return error.exit_status


def run_trial(
    command: list[str], trial_dir: Path, forwarder: SignalForwarder, env: dict[str, str] | None = None
) -> tuple[str, dict[str, float], float]:
    """Run one trial into `trial_dir` (its output appended to `<trial_dir>.log`); return its
    state, metrics and duration. The trial gets its own session, so a Ctrl-C in the terminal
    reaches it once, through the forwarder. `env` is added to this process's environment."""
    env = {**os.environ, **(env or {}), "TRAIN_RUN_DIR": str(trial_dir)}
    env.setdefault("WANDB_MODE", "offline")
    started, started_at = time.monotonic(), time.time()
    with open(f"{trial_dir}.log", "a") as output:
        output.write(f"$ {' '.join(command)}\n")  # one such line per attempt: a resume appends
        output.flush()
        trial = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        with forwarder.forwarding_to(trial), stopped_on_error(trial):
            returncode = trial.wait()
    seconds = time.monotonic() - started
    metrics_file = trial_dir / METRICS_FILE
    written = metrics_file.is_file() and metrics_file.stat().st_mtime >= started_at
    # A signal that arrives after the trial wrote its metrics.json only cut its exit short.
    if metrics_file.is_file() and (returncode == 0 or (written and forwarder.signum is not None)):
        return FINISHED, json.loads(metrics_file.read_text()), seconds
    if forwarder.signum is not None:
        return f"interrupted ({signal.Signals(forwarder.signum).name})", {}, seconds
    if returncode < 0:
        return f"failed (killed by {signal.Signals(-returncode).name})", {}, seconds
    return f"failed (exit {returncode})", {}, seconds


@contextmanager
def stopped_on_error(trial: subprocess.Popen[bytes]) -> Iterator[None]:
    """If the runner itself fails while a trial runs, stop the trial rather than orphan it."""
    try:
        yield
    except BaseException:
        if trial.poll() is None:
            trial.terminate()
            trial.wait()
        raise


def resumed_or_fresh(command: list[str], trial_dir: Path) -> list[str]:
    """The command that goes on with a trial left unfinished: from its last.ckpt, exactly (as
    `train.py resume=<run dir>` does), or from scratch in an emptied dir if it saved none."""
    if last_checkpoint(trial_dir):
        return [*command, f"resume={trial_dir}"]
    if trial_dir.exists():
        shutil.rmtree(trial_dir)
    return command


def last_error_line(log_file: Path) -> str | None:
    """The last `error: ...` line a trial printed (what it failed of), without the prefix."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return None
    return next((line[len("error: ") :] for line in reversed(lines) if line.startswith("error: ")), None)


def rank(trials: list[dict[str, Any]], metric: str, goal: str) -> list[dict[str, Any]]:
    """Finished trials best first, then those without the metric (failed) in run order."""
    scored = [t for t in trials if t["metrics"].get(metric) is not None]
    scored.sort(key=lambda t: t["metrics"][metric], reverse=goal == "maximize")
    return scored + [t for t in trials if t not in scored]


def format_table(ranked: list[dict[str, Any]], metric: str) -> str:
    rows = [("rank", "trial", metric, "state", "seconds", "parameters")]
    for position, trial in enumerate(ranked, start=1):
        value = trial["metrics"].get(metric)
        params = " ".join(f"{name}={value}" for name, value in trial["params"].items())
        shown = f"{value:.4f}" if value is not None else "-"
        rows.append((str(position), trial["name"], shown, trial["state"], f"{trial['seconds']:.1f}", params))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in rows
    )


def write_json_atomically(path: Path, content: Any) -> None:
    """Replace `path` whole: a reader or a crash never sees half a file."""
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as temporary:
        json.dump(content, temporary, indent=2, default=str)
        temporary.flush()
        os.fsync(temporary.fileno())
    os.replace(temporary.name, path)


def digest(identity: str) -> str:
    """A short name for what makes two runs of a runner the same: the same command, the same dir."""
    return hashlib.sha256(identity.encode()).hexdigest()[:8]


def lock(directory: Path, shared: bool = False) -> IO[str]:
    """Hold `directory` until the returned file is closed or the process ends, however it ends:
    alone, or `shared` with other runners that work together (but not with one that moves it)."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK_FILE, "a+")  # noqa: SIM115 (the caller closes it to release)
    try:
        fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        raise UsageError(
            f"another runner (pid {handle.read().strip() or '?'}) is using {directory}: "
            "wait for it to end, or stop it with Ctrl-C"
        ) from None
    if not shared:
        handle.truncate(0)
    handle.write(f"{os.getpid()} ")
    handle.flush()
    return handle


def set_aside(directory: Path) -> Path:
    """Move an old runner dir to a dated sibling, once no runner holds it."""
    with lock(directory):
        pass
    aside = directory.with_name(f"{directory.name}-until-{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    directory.rename(aside)
    return aside


def check_parameter_names(where: str, parameters: dict[str, list[list[str]]], overrides: list[str]) -> None:
    """Refuse, before any trial, what would fail every trial it is in: a parameter that is
    neither a config key nor a config group, a group option that does not exist, or an override
    that does not compose. `parameters` maps each name to the overrides that set each of its
    values if it is a group (`model` -> [["model=mlp"], ["model=alexnet"]]). Configs are composed
    by Hydra, as train.py composes them, and Hydra's errors read as train.py reports them. A key
    counts if any option of the swept groups has it (`model.num_layers` beside `model: [mlp,
    alexnet]`)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from .agent_args import hydra_overrides
    from .failures import hydra_error_line, one_line

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):

        def keys_of(args: list[str], fault: str) -> set[str]:
            try:
                cfg = compose("config", overrides=hydra_overrides([*overrides, *args]))
            except Exception as error:
                raise UsageError(f"{fault}: {hydra_error_line(error) or one_line(str(error))}") from None
            return set(dotted_keys(OmegaConf.to_container(cfg, resolve=False)))

        keys = keys_of([], "the overrides for every trial")
        for name in filter(is_group, parameters):
            for args in parameters[name]:
                keys |= keys_of(args, f"{where}: parameter {name}")
        for name in parameters:
            if name not in keys and not is_group(name):
                raise UsageError(f"{where}: parameter {name}: {unknown_key(name, keys)}")


def dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{prefix}{key}"
            yield from dotted_keys(value, f"{prefix}{key}.")


def unknown_key(name: str, keys: set[str]) -> str:
    """`no key optimizer.lrr in the config; did you mean optimizer.lr?`, from the keys beside it."""
    from .failures import did_you_mean

    parent, _, last = name.rpartition(".")
    siblings = sorted(key.rpartition(".")[2] for key in keys if key.rpartition(".")[0] == parent)
    suggestion = did_you_mean(last, siblings, prefix=f"{parent}." if parent else "")
    return f"no key {name} in the config, nor a group{f';{suggestion}' if suggestion else ''}"
