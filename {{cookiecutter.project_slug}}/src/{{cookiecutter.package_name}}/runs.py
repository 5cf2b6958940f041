"""List and compare past runs, newest first, from their run dirs:

    python -m {{ cookiecutter.package_name }}.runs                                    # every run under logs/
    python -m {{ cookiecutter.package_name }}.runs --where experiment=aplite --where optimizer.lr=0.01
    python -m {{ cookiecutter.package_name }}.runs --sort test/acc --limit 5 [--ascending] [--json]

`--where KEY=VALUE` keeps the runs whose chosen option (model=resnet), override or resolved
config value (optimizer.lr=0.01) KEY is VALUE. The rows come from run_table.py, which the
multirun summary uses too; logs/ is `paths.log_dir` of the config unless `--logs` names a dir.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError, UsageError
from .failures import did_you_mean, exit_with
from .paths import composed_config, config_dir
from .run_table import Run, cell, read_run, run_dirs
from .utils.console import print_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m {{ cookiecutter.package_name }}.runs", description="List and compare past runs."
    )
    parser.add_argument("--logs", type=Path, help="dir holding the run dirs (default: paths.log_dir)")
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep runs with this option or value",
    )
    parser.add_argument("--sort", metavar="METRIC", help="sort by a metric of metrics.json, highest first")
    parser.add_argument("--ascending", action="store_true", help="with --sort: lowest first")
    parser.add_argument("--limit", type=int, help="show at most this many runs")
    parser.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    return parser.parse_args(argv)


def default_log_dir() -> Path:
    """`paths.log_dir` as train.py would resolve it here ($PROJECT_ROOT or the current dir)."""
    return Path(str(composed_config().paths.log_dir))


def group_names() -> set[str]:
    """The config groups (dataset, model, experiment, ...): keys a filter may name."""
    return {path.name for path in Path(config_dir()).iterdir() if path.is_dir() and path.name != "hydra"}


def filtered(runs: list[Run], where: list[str]) -> list[Run]:
    known = group_names().union(*(run.choices for run in runs), *(run.config for run in runs))
    for condition in where:
        key, equals, value = condition.partition("=")
        if not equals or not key:
            raise UsageError(f"--where {condition}: give KEY=VALUE, e.g. --where model=resnet")
        if key not in known:
            hint = (
                did_you_mean(key, sorted(known))
                or f" options: {', '.join(sorted(group_names()))}, or a config key"
            )
            raise ConfigError(f"--where {condition}: no run has a key {key};{hint}")
        runs = [run for run in runs if same(run.value(key), value)]
    return runs


def same(actual: Any, wanted: str) -> bool:
    """Whether a run's value is the one asked for: as text, or as numbers (1e30 is 1e+30)."""
    if actual is None:
        return False
    if str(actual).lower() == wanted.lower():  # True and true
        return True
    try:
        return float(actual) == float(wanted)
    except (TypeError, ValueError):
        return False


def sorted_by(runs: list[Run], metric: str, ascending: bool) -> list[Run]:
    available = sorted(set().union(*(run.metrics for run in runs)))
    if metric not in available:
        choices = ", ".join(available) or "none: no run finished"
        raise ConfigError(f"--sort {metric}: no run has this metric; metrics: {choices}")

    def key(run: Run) -> tuple[bool, float]:
        value = run.metrics.get(metric)
        if value is None or not math.isfinite(value):
            return True, 0.0  # last either way
        return False, value if ascending else -value

    return sorted(runs, key=key)


COLUMNS = [
    "date",
    "experiment",
    "dataset",
    "model",
    "overrides",
    "monitor",
    "status",
    "run_dir",
    "best_checkpoint",
]


def record(run: Run, logs: Path | None = None) -> dict[str, Any]:
    """One row; paths relative to `logs` if given (the table's, to keep it narrow)."""

    def shown(path: Path | None) -> str:
        return "" if path is None else str(path.relative_to(logs) if logs else path)

    return {
        "date": f"{run.started:%Y-%m-%d %H:%M}" if run.started else "",
        **{group: run.choices.get(group, "") for group in ("experiment", "dataset", "model")},
        "overrides": " ".join(run.overrides),
        "monitor": f"{run.monitor}={cell(run.metrics.get(run.monitor))}"
        if run.monitor in run.metrics
        else "",
        "status": f"{run.status}: {run.reason}" if run.reason else run.status,
        "run_dir": shown(run.run_dir),
        "best_checkpoint": shown(run.best_checkpoint),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logs = args.logs or default_log_dir()
    try:
        if not logs.is_dir():
            raise UsageError(f"{logs}: no such dir; give the dir holding the run dirs with --logs")
        runs = sorted(
            map(read_run, run_dirs(logs)), key=lambda run: run.started or datetime.min, reverse=True
        )
        runs = filtered(runs, args.where)
        if args.sort:
            runs = sorted_by(runs, args.sort, args.ascending)
    except UsageError as error:
        exit_with(error)
    runs = runs[: args.limit] if args.limit is not None else runs
    if args.json:
        records = [record(run) | {"options": run.choices, "metrics": run.metrics} for run in runs]
        print(json.dumps(records, indent=2))
        return
    rows = [list(record(run, logs).values()) for run in runs]
    print_table(f"{len(runs)} runs in {logs} (run dirs and checkpoints below it)", COLUMNS, rows)


if __name__ == "__main__":
    main()
