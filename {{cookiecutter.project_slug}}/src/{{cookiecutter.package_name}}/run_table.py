"""Run dirs read back as table rows, for the multirun summary and the `runs` command (runs.py).

Everything comes from the files a run leaves, whatever the logger: `.hydra/overrides.yaml` and
`.hydra/hydra.yaml` (the chosen options), `record/config.yaml` (the resolved config),
`metrics.json`, `failure.json` (failures.py) and `checkpoints/best.ckpt`. A run's status is
`ok` (metrics.json written), `failed`, `diverged` or `interrupted` (failure.json), or
`unfinished` (neither: still running, or killed).

`MultirunSummary`, listed under `hydra.callbacks` in configs/hydra/default.yaml, ends every
multirun, with any launcher and whether or not jobs failed, with a table of its jobs: the
overrides that vary, the key metrics, status and reason, run dir; also written as `summary.csv`
and `summary.json` in the sweep dir.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .failures import FAILURE_FILE, MULTIRUN, Multirun
from .paths import METRICS_FILE
from .run_dirs import override_key
from .utils.console import flat, print_table

SUMMARY_FILES = ("summary.csv", "summary.json")
# Keys `utils.callbacks.ExplainedEarlyStopping` adds to metrics.json when it stopped the run.
STOPPED_EARLY = "stopped_early"


@dataclass
class Run:
    """What one run dir says about its run."""

    run_dir: Path
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # flat: dotted keys
    metrics: dict[str, float | None] = field(default_factory=dict)
    status: str = "unfinished"
    reason: str = ""
    job: int | None = None
    started: datetime | None = None

    @property
    def monitor(self) -> str:
        return str(self.config.get("monitor.metric", ""))

    @property
    def best_checkpoint(self) -> Path | None:
        path = self.run_dir / "checkpoints" / "best.ckpt"
        return path if path.is_file() else None

    def value(self, key: str) -> Any:
        """A chosen option, an override's value or a config value by dotted key; None if absent."""
        if key in self.choices:
            return self.choices[key]
        given = {override_key(item): item.partition("=")[2] for item in self.overrides}
        return given.get(key, self.config.get(key))


def early_stop_reason(metrics: Mapping[str, float | None], monitor: str) -> str | None:
    """`stopped at epoch 7: val/acc best 0.9500 at epoch 4, not better for 3 epoch(s) after it`
    (epochs counted from 0, as Lightning does) from the numbers `ExplainedEarlyStopping` wrote;
    None if the run did not stop early."""
    epoch, best = metrics.get(f"{STOPPED_EARLY}/epoch"), metrics.get(f"{STOPPED_EARLY}/best")
    if epoch is None:
        return None
    text = f"stopped at epoch {int(epoch)}: {monitor} best {'n/a' if best is None else f'{best:.4f}'}"
    best_epoch, patience = (
        metrics.get(f"{STOPPED_EARLY}/best_epoch"),
        metrics.get(f"{STOPPED_EARLY}/patience"),
    )
    if best_epoch is not None and patience is not None:
        return f"{text} at epoch {int(best_epoch)}, not better for {int(patience)} epoch(s) after it"
    return f"{text}; past a stopping or divergence threshold, or not finite"


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def read_run(run_dir: Path) -> Run:
    run = Run(run_dir)
    run.overrides = [str(item) for item in read_yaml(run_dir / ".hydra" / "overrides.yaml") or []]
    hydra = (read_yaml(run_dir / ".hydra" / "hydra.yaml") or {}).get("hydra", {})
    choices = hydra.get("runtime", {}).get("choices", {}) or {}
    run.choices = {group: str(option) for group, option in choices.items() if not group.startswith("hydra")}
    if hydra.get("mode") == "MULTIRUN":
        run.job = hydra.get("job", {}).get("num")
    config = read_yaml(run_dir / "record" / "config.yaml") or read_yaml(run_dir / ".hydra" / "config.yaml")
    run.config = {key.rstrip("."): value for key, value in flat(config or {}).items()}
    run.started = datetime.fromtimestamp((run_dir / ".hydra").stat().st_mtime)
    if (metrics := read_json(run_dir / METRICS_FILE)) is not None:
        run.metrics, run.status = metrics, "ok"
    if (failure := read_json(run_dir / FAILURE_FILE)) is not None:
        run.status, run.reason = failure.get("status", "failed"), failure.get("reason", "")
    elif reason := early_stop_reason(run.metrics, run.monitor):
        run.reason = reason
    return run


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_dirs(root: Path) -> Iterator[Path]:
    """Every run dir under `root` (a dir with `.hydra/overrides.yaml`), in path order."""
    for overrides in sorted(root.rglob(".hydra/overrides.yaml")):
        yield overrides.parent.parent


def varying_keys(runs: Iterable[Run], command_line: Iterable[str] = ()) -> list[str]:
    """The override keys whose value is not the same in every run, or that `command_line` sweeps
    (`seed=1,2`: a column even if only one job ran), in first-seen order."""
    try:
        swept = {
            o.key_or_group
            for o in OverridesParser.create().parse_overrides(list(command_line))
            if o.is_sweep_override()
        }
    except HydraException:
        swept = set()
    values: dict[str, set[str | None]] = {}
    runs = list(runs)
    for run in runs:
        for key in map(override_key, run.overrides):
            values.setdefault(key, set())
    for run in runs:
        given = {override_key(item): item.partition("=")[2] for item in run.overrides}
        for key, seen in values.items():
            seen.add(given.get(key))  # None: a key this run lacks
    return [key for key, seen in values.items() if len(seen) > 1 or key in swept]


def metric_keys(runs: Iterable[Run]) -> list[str]:
    """The key metrics: each run's monitor metric and its `_best`, then the test metrics."""
    keys: dict[str, None] = {}
    runs = list(runs)
    for run in runs:
        for key in (run.monitor, f"{run.monitor}_best"):
            if key and key in run.metrics:
                keys[key] = None
    for run in runs:
        keys |= dict.fromkeys(key for key in run.metrics if key.startswith("test/"))
    return list(keys)


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else str(value)
    return str(value)


# The multirun summary --------------------------------------------------------------------------


def summary_rows(multirun: Multirun) -> tuple[list[str], list[dict[str, Any]]]:
    """The summary's columns and one record per job, in job order: the jobs' dirs, and the jobs
    that failed without leaving one (their config check failed, so the dir was removed)."""
    assert multirun.sweep_dir is not None
    runs = {run.job: run for run in map(read_run, run_dirs(multirun.sweep_dir)) if run.job is not None}
    for failed in multirun.failed:
        if failed.number not in runs:  # its dir was removed: the command line's overrides, this job's values
            swept = {override_key(item) for item in failed.overrides}
            shared = [item for item in multirun.shared_overrides if override_key(item) not in swept]
            runs[failed.number] = Run(Path(""), overrides=[*shared, *failed.overrides], job=failed.number)
        run = runs[failed.number]
        if run.status in ("ok", "unfinished"):
            run.status, run.reason = failed.status, failed.reason
    ordered = [runs[number] for number in sorted(runs)]
    varying, metrics = varying_keys(ordered, multirun.shared_overrides), metric_keys(ordered)
    columns = ["job", *varying, *metrics, "status", "reason", "run_dir"]
    records = [
        {
            "job": run.job,
            **{key: run.value(key) for key in varying},
            **{key: run.metrics.get(key) for key in metrics},
            "status": run.status,
            "reason": run.reason,
            "run_dir": str(run.run_dir) if run.run_dir.parts else "",
        }
        for run in ordered
    ]
    return columns, records


def write_summary(multirun: Multirun) -> None:
    """summary.csv and summary.json in the sweep dir, and the table on the terminal."""
    assert multirun.sweep_dir is not None
    columns, records = summary_rows(multirun)
    if not records:
        return
    csv_path, json_path = (multirun.sweep_dir / name for name in SUMMARY_FILES)
    with csv_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows({key: cell(value) for key, value in record.items()} for record in records)
    json_path.write_text(json.dumps(records, indent=2) + "\n")
    rows = [[cell(record[column]) for column in columns] for record in records]
    print_table(f"Multirun summary ({csv_path}, {json_path.name})", columns, rows)


class MultirunSummary(Callback):
    """Summarizes each multirun as it ends: normally, with failed jobs, or stopped by a signal."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        MULTIRUN.at_end = write_summary

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        MULTIRUN.finish()
