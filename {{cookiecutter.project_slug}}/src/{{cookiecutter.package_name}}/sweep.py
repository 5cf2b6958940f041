"""Run a W&B sweep file with no W&B server; stop it any time and run the same command to continue.

    python -m {{ cookiecutter.package_name }}.sweep sweep.yaml --count 8 [overrides for every trial]

W&B's own search engine (the `sweeps` package, which the W&B server runs) proposes each trial
from the sweep file and the trials so far (grid, random or bayes). Each trial runs with the
command line `wandb agent` would build, from wandb's own `create_sweep_command` and
`create_sweep_command_args`; its metrics.json is read back as the run's summary and history,
which guides the next proposal. Failed trials are recorded and the sweep goes on. At the end a
ranked table is printed. Every parameter name is checked against the config before any trial.

The sweep dir, logs/sweeps/<file>-<hash>/, is named after the sweep file's content and the
overrides, so the same command finds it again. results.json there is replaced atomically when a
trial starts and when it ends. Ctrl-C, SIGTERM or SIGHUP is passed on to the running trial
(which saves its last.ckpt), then the runner writes results.json, prints the table so far and
exits with 128 + the signal number. Run the same command again to continue: finished and failed
trials are kept, the interrupted trial resumes from its last.ckpt (`train.py resume=<trial
dir>`; it starts over if it saved none), and the search engine is given every past trial, so a
grid runs its remaining points and random or bayes the remaining count. `--fresh` moves the old
trials aside and starts over.

Differences from `wandb agent`: `${interpreter}` is this Python rather than whatever `python`
is on PATH; trials run one at a time to the end (no early termination); W&B runs offline
unless WANDB_MODE is set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any

import yaml

from .agent_args import hydra_overrides, is_group
from .errors import Interrupted, UsageError
from .paths import config_dir
from .utils.metrics import METRICS_FILE

DEFAULT_COUNT = 10
INSTALL_HINT = "pip install --no-deps sweeps && pip install -e '.[sweeps]'"
RESULTS_FILE = "results.json"
LOCK_FILE = "runner.lock"
FINISHED = "finished"
# Trials in these states ran to an end and are kept when a sweep continues; others run again.
DONE_PREFIXES = (FINISHED, "failed")
# The Hydra config each program composes, for checking parameter names before any trial.
PROGRAM_CONFIGS = {"train.py": "config"}
# Signals that stop the sweep, and what the running trial is sent for each: a hang-up (a closed
# terminal) must not leave the trial running on its own in its session.
FORWARDED_SIGNALS = {
    signal.SIGINT: signal.SIGINT,
    signal.SIGTERM: signal.SIGTERM,
    signal.SIGHUP: signal.SIGTERM,
}


def plain(value: Any) -> Any:
    """numpy scalars (as `sweeps` proposes them) as Python values, rendered as the server would."""
    return value.item() if hasattr(value, "item") else value


def agent_macros(params: dict[str, Any]) -> dict[str, list[str]]:
    """The parameters as `wandb agent` puts them on a command line: `args_no_hyphens` etc."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    return create_sweep_command_args({"args": {name: {"value": value} for name, value in params.items()}})


def agent_command(sweep: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """The command `wandb agent` runs for these parameter values (see wandb_agent.Agent._command_run)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command

    macros = agent_macros(params)
    macros |= {"env": ["/usr/bin/env"], "interpreter": [sys.executable], "program": [sweep["program"]]}
    command: list[str] = []
    for item in map(str, create_sweep_command(list(sweep.get("command") or []))):
        is_macro = item.startswith("${") and item.endswith("}")
        command += (macros.get(item[2:-1]) or []) if is_macro else [item]
    return command


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


def is_done(trial: dict[str, Any]) -> bool:
    return trial["state"].startswith(DONE_PREFIXES)


class SignalForwarder:
    """While active, SIGINT/SIGTERM/SIGHUP are remembered (the first one decides the exit status)
    and passed on to the running trial instead of killing the runner."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._trial: subprocess.Popen[bytes] | None = None

    @contextmanager
    def active(self) -> Iterator[SignalForwarder]:
        # A signal ignored on purpose (SIGHUP under nohup, SIGINT in a background job) stays so.
        previous = {
            signum: signal.signal(signum, self._handle)
            for signum in FORWARDED_SIGNALS
            if signal.getsignal(signum) is not signal.SIG_IGN
        }
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextmanager
    def forwarding_to(self, trial: subprocess.Popen[bytes]) -> Iterator[None]:
        self._trial = trial
        try:
            if self.signum is not None:  # arrived while the trial was being started
                trial.send_signal(FORWARDED_SIGNALS[self.signum])
            yield
        finally:
            self._trial = None

    def _handle(self, signum: int, _: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if self._trial is not None:
            self._trial.send_signal(FORWARDED_SIGNALS[signum])


def run_trial(
    command: list[str], trial_dir: Path, forwarder: SignalForwarder
) -> tuple[str, dict[str, float], float]:
    """Run one trial into `trial_dir`; return its state, metrics and duration. The trial gets its
    own session, so a Ctrl-C in the terminal reaches it once, through the forwarder."""
    env = {**os.environ, "TRAIN_RUN_DIR": str(trial_dir)}
    env.setdefault("WANDB_MODE", "offline")
    started = time.monotonic()
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
    if returncode == 0 and metrics_file.is_file():
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


class Sweep:
    """A sweep dir: its trials, and results.json, the one record of them."""

    def __init__(self, spec: dict[str, Any], overrides: list[str], directory: Path) -> None:
        self.spec, self.overrides, self.directory = spec, overrides, directory
        self.metric: str = spec["metric"]["name"]
        self.goal: str = spec["metric"].get("goal", "minimize")
        self.trials: list[dict[str, Any]] = []

    def load(self) -> None:
        """Read the trials of an earlier run of this sweep, if any; refuse another sweep's dir."""
        path = self.directory / RESULTS_FILE
        if not path.is_file():
            return
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot read {path} ({error}): pass --fresh to start this sweep over") from None
        if identity(results.get("sweep"), results.get("overrides")) != identity(self.spec, self.overrides):
            raise UsageError(
                f"{self.directory} holds a different sweep (another sweep file or other overrides): "
                "pass --fresh to replace it, or another --dir"
            )
        self.trials = sorted(results["trials"], key=lambda trial: trial["name"])

    def save(self) -> None:
        """Replace results.json atomically: a reader or a crash never sees half a file."""
        results = {
            "metric": self.metric,
            "goal": self.goal,
            "trials": rank(self.trials, self.metric, self.goal),
            "sweep": self.spec,
            "overrides": self.overrides,
        }
        with tempfile.NamedTemporaryFile(
            "w", dir=self.directory, prefix=f".{RESULTS_FILE}.", delete=False
        ) as temporary:
            json.dump(results, temporary, indent=2, default=str)
            temporary.flush()
            os.fsync(temporary.fileno())
        os.replace(temporary.name, self.directory / RESULTS_FILE)

    def past_runs(self) -> list[Any]:
        """The trials so far as the search engine's runs."""
        from sweeps import RunState, SweepRun

        return [
            SweepRun(
                name=trial["name"],
                state=RunState.finished if trial["state"] == FINISHED else RunState.failed,
                config={name: {"value": value} for name, value in trial["params"].items()},
                summary_metrics=trial["metrics"],
                history=[trial["metrics"]] if trial["metrics"] else [],
            )
            for trial in self.trials
        ]

    def next_trial(self, count: int) -> dict[str, Any] | None:
        """An unfinished trial of an earlier run first, then a new proposal while fewer than
        `count` trials exist; None when the sweep is complete."""
        from sweeps import next_run

        if unfinished := [trial for trial in self.trials if not is_done(trial)]:
            return unfinished[0]
        if len(self.trials) >= count:
            return None
        proposal = next_run(self.spec, self.past_runs())
        if proposal is None:  # a grid with every point run
            return None
        params = {name: plain(spec["value"]) for name, spec in proposal.config.items()}
        trial = {
            "name": f"trial-{len(self.trials):03d}",
            "params": params,
            "state": "running",
            "metrics": {},
            "seconds": 0.0,
            "command": agent_command(self.spec, params) + self.overrides,
        }
        self.trials.append(trial)
        return trial

    def run(self, count: int, forwarder: SignalForwarder) -> None:
        while forwarder.signum is None and (trial := self.next_trial(count)) is not None:
            # A trial left unfinished by an earlier run resumes where it saved its last.ckpt (as
            # `train.py resume=<run dir>` does, exactly), or starts over if it saved none.
            trial_dir, command = self.directory / trial["name"], trial["command"]
            if (trial_dir / "checkpoints" / "last.ckpt").is_file():
                command = [*command, f"resume={trial_dir}"]
            elif trial_dir.exists():
                shutil.rmtree(trial_dir)
            trial["state"] = "running"
            self.save()
            print(f"[{trial['name']}] {' '.join(command)}", flush=True)
            state, metrics, seconds = run_trial(command, trial_dir, forwarder)
            trial.update(state=state, metrics=metrics, seconds=trial["seconds"] + seconds)
            self.save()
            print(
                f"[{trial['name']}] {state} in {seconds:.1f} s, {self.metric}={metrics.get(self.metric)}",
                flush=True,
            )

    def summary(self) -> str:
        table = format_table(rank(self.trials, self.metric, self.goal), self.metric)
        return f"\n{table}\n\nTrials, logs and {RESULTS_FILE}: {self.directory}"


def load_sweep(path: Path, violations: Any) -> dict[str, Any]:
    """The sweep file as a dict; UsageError with one readable line if it cannot be used."""
    try:
        sweep = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise UsageError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(sweep, dict):
        raise UsageError(f"{path} is not a W&B sweep: expected a mapping with program, method, parameters")
    if problems := violations(sweep):
        raise UsageError(f"{path} is not a valid W&B sweep: {'; '.join(problems)}")
    return sweep


def check_parameters(path: Path, sweep: dict[str, Any], overrides: list[str]) -> None:
    """Refuse, before any trial, what would fail every trial it is in: a parameter that is
    neither a config key nor a config group, a group option that does not exist, or an override
    that does not compose. Configs are composed by Hydra, as train.py composes them, and Hydra's
    errors read as train.py reports them. A key counts if any option of the swept groups has it
    (`model.num_layers` beside `model: [mlp, alexnet]`)."""
    config_name = PROGRAM_CONFIGS.get(Path(sweep["program"]).name)
    if config_name is None:
        return
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from .failures import hydra_error_line, one_line

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):

        def keys_of(args: list[str], fault: str) -> set[str]:
            try:
                cfg = compose(config_name, overrides=hydra_overrides([*overrides, *args]))
            except Exception as error:
                raise UsageError(f"{fault}: {hydra_error_line(error) or one_line(str(error))}") from None
            return set(dotted_keys(OmegaConf.to_container(cfg, resolve=False)))

        keys = keys_of([], "the overrides for every trial")
        parameters: dict[str, dict[str, Any]] = sweep["parameters"]
        for name in filter(is_group, parameters):
            spec = parameters[name]
            for value in spec.get("values", [spec["value"]] if "value" in spec else []):
                keys |= keys_of(agent_macros({name: value})["args_no_hyphens"], f"{path}: parameter {name}")
        for name in parameters:
            if name not in keys and not is_group(name):
                raise UsageError(f"{path}: parameter {name}: {unknown_key(name, keys)}")


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


def identity(sweep: Any, overrides: Any) -> str:
    """What makes two sweeps the same: the sweep file's content (not its comments or layout) and
    the overrides for every trial; not --count, which may grow."""
    return json.dumps({"sweep": sweep, "overrides": overrides}, sort_keys=True, default=str)


def default_sweep_dir(path: Path, sweep: dict[str, Any], overrides: list[str]) -> Path:
    """logs/sweeps/<file>-<hash of its identity>: the same command, the same dir (under
    $PROJECT_ROOT if set, as the trials' own logs)."""
    digest = hashlib.sha256(identity(sweep, overrides).encode()).hexdigest()[:8]
    return Path(os.environ.get("PROJECT_ROOT", "."), "logs", "sweeps", f"{path.stem}-{digest}")


def lock(directory: Path) -> IO[str]:
    """Hold the sweep dir until the returned file is closed or the process ends, however it ends."""
    import fcntl

    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK_FILE, "a+")  # noqa: SIM115 (the caller closes it to release)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        raise UsageError(
            f"another sweep runner (pid {handle.read().strip() or '?'}) is using {directory}: "
            "wait for it to end, or stop it with Ctrl-C"
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def set_aside(directory: Path) -> Path:
    """Move an old sweep dir to a dated sibling, once no runner holds it."""
    with lock(directory):
        pass
    aside = directory.with_name(f"{directory.name}-until-{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    directory.rename(aside)
    return aside


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__}.sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_file", type=Path, help="a W&B sweep file, e.g. sweep.yaml")
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help=f"trials in the sweep, counting earlier runs (default: every grid point, else {DEFAULT_COUNT})",
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="the sweep dir (default: logs/sweeps/<file>-<hash>)"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="move the sweep dir's earlier trials aside and start over"
    )
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides added to every trial, e.g. trainer.max_epochs=3"
    )
    args = parser.parse_intermixed_args(argv)
    with SignalForwarder().active() as forwarder:
        try:
            return run(args, forwarder)
        except (UsageError, Interrupted) as error:
            print(f"error: {error}", file=sys.stderr)
            return error.exit_status


def run(args: argparse.Namespace, forwarder: SignalForwarder) -> int:
    # sweeps still uses a pydantic v1 config name; pydantic v2 warns on every import.
    warnings.filterwarnings("ignore", message="Valid config keys have changed in V2")
    try:
        import sweeps
    except ImportError:
        raise UsageError(f"the offline sweep runner needs W&B's `sweeps` package: {INSTALL_HINT}") from None

    spec = load_sweep(args.sweep_file, sweeps.schema_violations_from_proposed_config)
    check_parameters(args.sweep_file, spec, args.overrides)
    sweep = Sweep(spec, args.overrides, args.dir or default_sweep_dir(args.sweep_file, spec, args.overrides))
    if args.fresh and (sweep.directory / RESULTS_FILE).exists():
        print(f"Earlier trials moved to {set_aside(sweep.directory)}")
    count = args.count or (sys.maxsize if spec["method"] == "grid" else DEFAULT_COUNT)
    with lock(sweep.directory):
        sweep.load()
        if sweep.trials:
            done = sum(map(is_done, sweep.trials))
            print(f"Continuing the sweep in {sweep.directory}: {done} trials done", flush=True)
        sweep.run(count, forwarder)
    print(sweep.summary())
    if forwarder.signum is not None:
        raise Interrupted(
            forwarder.signum,
            f"sweep stopped by {signal.Signals(forwarder.signum).name}: "
            f"{sum(map(is_done, sweep.trials))} trials done, recorded in "
            f"{sweep.directory / RESULTS_FILE}; run the same command to continue",
        )
    return 0 if any(trial["state"] == FINISHED for trial in sweep.trials) else 1


if __name__ == "__main__":
    sys.exit(main())
