"""Run a W&B sweep file with no W&B server.

    python -m {{ cookiecutter.package_name }}.sweep sweep.yaml --count 8 [overrides for every trial]

W&B's own search engine (the `sweeps` package, which the W&B server runs) proposes each trial
from the sweep file and the trials so far (grid, random or bayes). Each trial runs with the
command line `wandb agent` would build, from wandb's own `create_sweep_command` and
`create_sweep_command_args`; its metrics.json is read back as the run's summary and history,
which guides the next proposal. Failed trials are recorded and the sweep goes on. At the end a
ranked table is printed and written to results.json in the sweep dir.

Differences from `wandb agent`: `${interpreter}` is this Python rather than whatever `python`
is on PATH; trials run one at a time to the end (no early termination); W&B runs offline
unless WANDB_MODE is set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError
from .utils.metrics import METRICS_FILE

DEFAULT_COUNT = 10
INSTALL_HINT = "pip install --no-deps sweeps && pip install -e '.[sweeps]'"


def plain(value: Any) -> Any:
    """numpy scalars (as `sweeps` proposes them) as Python values, rendered as the server would."""
    return value.item() if hasattr(value, "item") else value


def agent_command(sweep: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """The command `wandb agent` runs for these parameter values (see wandb_agent.Agent._command_run)."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    macros = create_sweep_command_args({"args": {name: {"value": value} for name, value in params.items()}})
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


def run_trial(command: list[str], trial_dir: Path) -> tuple[str, dict[str, float], float]:
    """Run one trial into `trial_dir`; return its state, metrics and duration."""
    env = {**os.environ, "TRAIN_RUN_DIR": str(trial_dir)}
    env.setdefault("WANDB_MODE", "offline")
    started = time.monotonic()
    with open(f"{trial_dir}.log", "w") as output:
        returncode = subprocess.call(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    metrics_file = trial_dir / METRICS_FILE
    if returncode != 0 or not metrics_file.is_file():
        return f"failed (exit {returncode})", {}, seconds
    return "finished", json.loads(metrics_file.read_text()), seconds


def run_sweep(
    sweep: dict[str, Any], sweep_dir: Path, count: int, overrides: list[str]
) -> list[dict[str, Any]]:
    from sweeps import RunState, SweepRun, next_run

    runs: list[SweepRun] = []
    trials: list[dict[str, Any]] = []
    for number in range(count):
        proposal = next_run(sweep, runs)
        if proposal is None:  # a grid with every point run
            break
        params = {name: plain(spec["value"]) for name, spec in proposal.config.items()}
        name = f"trial-{number:03d}"
        command = agent_command(sweep, params) + overrides
        print(f"[{name}] {' '.join(command)}", flush=True)
        state, metrics, seconds = run_trial(command, sweep_dir / name)
        metric = sweep["metric"]["name"]
        print(f"[{name}] {state} in {seconds:.1f} s, {metric}={metrics.get(metric)}", flush=True)
        run_state = RunState.finished if state == "finished" else RunState.failed
        runs.append(
            SweepRun(
                name=name,
                state=run_state,
                config=proposal.config,
                summary_metrics=metrics,
                history=[metrics] if metrics else [],
            )
        )
        trials.append(
            {
                "name": name,
                "params": params,
                "state": state,
                "metrics": metrics,
                "seconds": seconds,
                "command": command,
            }
        )
    return trials


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
        help=f"the most trials to run (default: every grid point, else {DEFAULT_COUNT})",
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="where trials go (default: logs/sweeps/<name>-<time>)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides added to every trial, e.g. trainer.max_epochs=3"
    )
    args = parser.parse_intermixed_args(argv)

    # sweeps still uses a pydantic v1 config name; pydantic v2 warns on every import.
    warnings.filterwarnings("ignore", message="Valid config keys have changed in V2")
    try:
        import sweeps
    except ImportError:
        print(
            f"error: the offline sweep runner needs W&B's `sweeps` package: {INSTALL_HINT}", file=sys.stderr
        )
        return 2
    try:
        sweep = load_sweep(args.sweep_file, sweeps.schema_violations_from_proposed_config)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    count = args.count or (sys.maxsize if sweep["method"] == "grid" else DEFAULT_COUNT)
    sweep_dir = args.dir or Path(
        "logs", "sweeps", f"{args.sweep_file.stem}-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    )
    sweep_dir.mkdir(parents=True, exist_ok=True)
    trials = run_sweep(sweep, sweep_dir, count, args.overrides)

    metric, goal = sweep["metric"]["name"], sweep["metric"].get("goal", "minimize")
    ranked = rank(trials, metric, goal)
    (sweep_dir / "results.json").write_text(
        json.dumps({"metric": metric, "goal": goal, "trials": ranked}, indent=2)
    )
    print(f"\n{format_table(ranked, metric)}\n\nTrials, logs and results.json: {sweep_dir}")
    return 0 if any(trial["state"] == "finished" for trial in trials) else 1


if __name__ == "__main__":
    sys.exit(main())
