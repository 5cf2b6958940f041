"""Comparing runs: the summary a multirun ends with, the `runs` command over its run dirs, and
early stopping that says why. One small multirun serves every test here."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from conftest import PROJECT_DIR, run_script
from hydra.core.hydra_config import HydraConfig

from {{ cookiecutter.package_name }} import runs
from {{ cookiecutter.package_name }}.errors import Diverged
from {{ cookiecutter.package_name }}.failures import checked_job

# Four jobs, cheap ones: one trains and stops early (nothing beats its first epoch by 1.0), one
# trains, one diverges at its first step (a failure at run time), one fails its config check
# (its dir is removed, but it must still be listed).
LEARNING_RATES = {"0.01": "ok", "0.003": "ok", "1e+30": "diverged", "-1": "failed"}
MULTIRUN = [
    "-m",
    "optimizer.lr=0.01,0.003,1e30,-1",
    "trainer.max_epochs=2",
    "callbacks.early_stopping.patience=1",
    "+callbacks.early_stopping.min_delta=1",
    "~logger",
]


@pytest.fixture(scope="module")
def multirun(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The multirun's output and its sweep dir."""
    root = tmp_path_factory.mktemp("project")
    result = run_script("train.py", *MULTIRUN, f"paths.root_dir={root}", cwd=PROJECT_DIR)
    (sweep_dir,) = (root / "logs" / "multiruns").glob("*/*")
    return result, sweep_dir


def by_lr(records: list[dict]) -> dict[str, dict]:
    return {str(record["optimizer.lr"]): record for record in records}


def test_multirun_ends_with_a_summary_of_every_job_with_status_and_reason(multirun):
    result, sweep_dir = multirun
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith("error: job 3 (optimizer.lr=-1")
    with (sweep_dir / "summary.csv").open() as file:
        rows = list(csv.DictReader(file))
    records = json.loads((sweep_dir / "summary.json").read_text())
    for jobs in by_lr(rows), by_lr(records):
        assert {lr: job["status"] for lr, job in jobs.items()} == LEARNING_RATES
        assert "training loss is nan" in jobs["1e+30"]["reason"]
        assert jobs["-1"]["reason"] == "optimizer.lr=-1: must be a number > 0"
        assert jobs["-1"]["run_dir"] == ""  # removed: it failed before doing anything
        assert Path(jobs["0.003"]["run_dir"]).resolve() == (sweep_dir / "1").resolve()
    # Only the overrides that vary get a column; the key metrics do.
    assert list(rows[0]) == [
        "job",
        "optimizer.lr",
        "val/acc",
        "val/acc_best",
        "test/acc",
        "test/loss",
        "status",
        "reason",
        "run_dir",
    ]
    assert float(by_lr(records)["0.003"]["test/acc"]) > 0.5
    # The same table on the terminal, before the error lines.
    table = result.stdout[result.stdout.index("Multirun summary") :].splitlines()
    assert table[1].split() == list(rows[0])
    assert [line.split()[:2] for line in table[2:6]] == [
        ["0", "0.01"],
        ["1", "0.003"],
        ["2", "1e+30"],
        ["3", "-1"],
    ]


def test_early_stopping_says_why_in_log_metrics_and_summary(multirun):
    _, sweep_dir = multirun
    metrics = json.loads((sweep_dir / "0" / "metrics.json").read_text())
    assert {key: value for key, value in metrics.items() if key.startswith("stopped_early/")} == {
        "stopped_early/epoch": 1,
        "stopped_early/best": pytest.approx(metrics["val/acc"], abs=1.0),
        "stopped_early/best_epoch": 0,
        "stopped_early/patience": 1,
    }
    best = metrics["stopped_early/best"]
    reason = f"stopped at epoch 1: val/acc best {best:.4f} at epoch 0, not better for 1 epoch(s) after it"
    log = (sweep_dir / "0" / "train.log").read_text()
    assert f"Early stopping: {reason}" in log
    assert f"Stopped early:   {reason}" in log  # the run's closing summary
    summary = by_lr(json.loads((sweep_dir / "summary.json").read_text()))
    assert summary["0.01"]["reason"] == reason
    assert "stopped" not in summary["1e+30"]["reason"]


def runs_command(capsys, *args: str, logs: Path) -> tuple[int, str, str]:
    """The `runs` command with `--logs <logs> <args>`, in this process: status, stdout, stderr."""
    capsys.readouterr()
    try:
        runs.main(["--logs", str(logs), *args])
        status = 0
    except SystemExit as exit:
        status = int(exit.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def listed_lrs(capsys, *args: str, logs: Path) -> list[str]:
    status, out, err = runs_command(capsys, "--json", *args, logs=logs)
    assert status == 0, err
    return [record["overrides"].split()[0].partition("=")[2] for record in json.loads(out)]


FILTERS = {
    "every run with a dir, newest first": ([], ["1e+30", "0.003", "0.01"]),
    "by an override": (["--where", "optimizer.lr=0.003"], ["0.003"]),
    "by chosen options, limited": (
        ["--where", "model=mlp", "--where", "dataset=digits", "--limit", "2"],
        ["1e+30", "0.003"],
    ),
    "by an option no run chose": (["--where", "experiment=aplite"], []),
    "by a config value, as a number": (
        ["--where", "optimizer.weight_decay=1e-4", "--where", "optimizer.lr=1e30"],
        ["1e+30"],
    ),
}


@pytest.mark.parametrize("args, expected", FILTERS.values(), ids=FILTERS)
def test_runs_command_filters_run_dirs(capsys, multirun, args, expected):
    _, sweep_dir = multirun
    assert listed_lrs(capsys, *args, logs=sweep_dir.parents[2]) == expected


@pytest.mark.parametrize("order", ["descending", "ascending"])
def test_runs_command_sorts_by_a_metric_runs_without_it_last(capsys, multirun, order):
    _, sweep_dir = multirun
    test_acc = {
        lr: json.loads((sweep_dir / job / "metrics.json").read_text())["test/acc"]
        for job, lr in (("0", "0.01"), ("1", "0.003"))
    }
    expected = [*sorted(test_acc, key=test_acc.__getitem__, reverse=order == "descending"), "1e+30"]
    flag = ["--ascending"] if order == "ascending" else []
    assert listed_lrs(capsys, "--sort", "test/acc", *flag, logs=sweep_dir.parents[2]) == expected


def test_runs_command_shows_status_run_dir_and_best_checkpoint(multirun):
    _, sweep_dir = multirun
    module = "{{ cookiecutter.package_name }}.runs"
    result = run_script("-m", module, "--logs", str(sweep_dir.parents[2]), cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"3 runs in {sweep_dir.parents[2]} (run dirs and checkpoints below it)"
    assert lines[1].split() == [
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
    job_dir = sweep_dir.relative_to(sweep_dir.parents[2])
    assert "diverged: training loss is nan" in lines[2] and str(job_dir / "2") in lines[2]
    assert lines[3].rstrip().endswith(str(job_dir / "1" / "checkpoints" / "best.ckpt"))
    assert "ok: stopped at epoch 1" in lines[4]


BAD_ARGUMENTS = {
    "unknown filter key": (
        ["--where", "modle=mlp"],
        "error: --where modle=mlp: no run has a key modle; did you mean model?",
    ),
    "filter without a value": (
        ["--where", "model"],
        "error: --where model: give KEY=VALUE, e.g. --where model=resnet",
    ),
    "unknown sort metric": (
        ["--sort", "test/acx"],
        "error: --sort test/acx: no run has this metric; metrics: epoch,",
    ),
    "no such logs dir": (
        ["--logs", "nowhere"],
        "error: nowhere: no such dir; give the dir holding the run dirs with --logs",
    ),
}


@pytest.mark.parametrize("args, message", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS)
def test_bad_filter_or_sort_is_one_error_line(capsys, multirun, args, message):
    _, sweep_dir = multirun
    status, _, err = runs_command(capsys, *args, logs=sweep_dir.parents[2])
    assert status == 2
    assert err.startswith(message) and len(err.strip().splitlines()) == 1


def test_a_failed_run_records_why_and_its_next_attempt_clears_it(compose_config):
    cfg = compose_config("~logger")
    run_dir = Path(HydraConfig.get().runtime.output_dir)

    def diverging(cfg):
        raise Diverged("training loss is nan at epoch 0, step 1")

    with pytest.raises(SystemExit) as exit:
        checked_job(diverging)(cfg)
    assert exit.value.code == 3
    assert json.loads((run_dir / "failure.json").read_text()) == {
        "status": "diverged",
        "reason": "training loss is nan at epoch 0, step 1",
    }
    assert checked_job(lambda cfg: 0.5)(cfg) == 0.5  # a resume that succeeds
    assert not (run_dir / "failure.json").exists()
