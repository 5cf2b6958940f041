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
import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml

from .agent_args import is_group
from .errors import Interrupted, UsageError
from .trials import (
    FINISHED,
    SignalForwarder,
    check_parameter_names,
    digest,
    format_table,
    lock,
    rank,
    resumed_or_fresh,
    run_reporting_errors,
    run_trial,
    set_aside,
    write_json_atomically,
)

DEFAULT_COUNT = 10
# The extra first: pip then never sees `sweeps` beside a numpy it pins out, and prints no conflict.
INSTALL_HINT = "pip install -e '.[sweeps]' && pip install --no-deps sweeps"
RESULTS_FILE = "results.json"
# Trials in these states ran to an end and are kept when a sweep continues; others run again.
DONE_PREFIXES = (FINISHED, "failed")
# The programs whose config the parameter names are checked against before any trial.
CHECKED_PROGRAMS = ("train.py",)


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


def is_done(trial: dict[str, Any]) -> bool:
    return trial["state"].startswith(DONE_PREFIXES)


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
        write_json_atomically(self.directory / RESULTS_FILE, results)

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
            # A trial left unfinished by an earlier run resumes where it saved its last.ckpt.
            trial_dir = self.directory / trial["name"]
            command = resumed_or_fresh(trial["command"], trial_dir)
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
    """`trials.check_parameter_names` for a sweep file's parameters, group options rendered as
    the agent writes them."""
    if Path(sweep["program"]).name not in CHECKED_PROGRAMS:
        return
    parameters: dict[str, dict[str, Any]] = sweep["parameters"]
    group_options = {
        name: [
            agent_macros({name: value})["args_no_hyphens"]
            for value in spec.get("values", [spec["value"]] if "value" in spec else [])
        ]
        for name, spec in parameters.items()
        if is_group(name)
    }
    check_parameter_names(str(path), {name: group_options.get(name, []) for name in parameters}, overrides)


def identity(sweep: Any, overrides: Any) -> str:
    """What makes two sweeps the same: the sweep file's content (not its comments or layout) and
    the overrides for every trial; not --count, which may grow."""
    return json.dumps({"sweep": sweep, "overrides": overrides}, sort_keys=True, default=str)


def default_sweep_dir(path: Path, sweep: dict[str, Any], overrides: list[str]) -> Path:
    """logs/sweeps/<file>-<hash of its identity>: the same command, the same dir (under
    $PROJECT_ROOT if set, as the trials' own logs)."""
    name = f"{path.stem}-{digest(identity(sweep, overrides))}"
    return Path(os.environ.get("PROJECT_ROOT", "."), "logs", "sweeps", name)


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
    return run_reporting_errors(run, args)


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
