"""Runs killed at the worst moment: they save, say so, exit non-zero, and resume exactly."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_DIR, run_script, script_env
from wandb_records import read_runs

from {{ cookiecutter.package_name }}.checkpoints import load_checkpoint
from {{ cookiecutter.package_name }}.errors import ConfigError, Diverged, Interrupted
from {{ cookiecutter.package_name }}.run_dirs import run_dir_overrides
from {{ cookiecutter.package_name }}.training import run_training
from {{ cookiecutter.package_name }}.utils import run_record

# Several processes or a cluster per test: `pytest -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow

# Small batches (many steps an epoch), augmentation and dropout: everything random is in play.
EXACT = ("trainer.max_epochs=3", "dataset.batch_size=32", "dataset.augment.crop_padding=1", "~logger")
BATCHES_PER_EPOCH = 40  # ceil(1258 / 32): digits has 1,797 images, 180 for validation, 359 for test


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(checkpoint)["state_dict"]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)


def saved_position(checkpoint: Path) -> tuple[int, int]:
    saved = load_checkpoint(checkpoint)
    return saved["epoch"], saved["global_step"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    args = [*EXACT, f"hydra.run.dir={out}"]
    result = run_script("train.py", *args, cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


# (signal, epoch, batch after which it arrives (None: during validation), where the run stops)
STOP_POINTS = {
    "sigterm-mid-epoch": ("SIGTERM", 1, 10, (1, BATCHES_PER_EPOCH + 11)),
    "sigint-mid-epoch": ("SIGINT", 0, 3, (0, 4)),
    "sigterm-on-the-last-batch": ("SIGTERM", 1, BATCHES_PER_EPOCH - 1, (1, 2 * BATCHES_PER_EPOCH)),
    "sigint-during-validation": ("SIGINT", 0, None, (0, BATCHES_PER_EPOCH)),
    # After training, the best checkpoint is tested: all is saved, resuming only tests again.
    "sigterm-during-testing": ("SIGTERM", "testing", None, (2, 3 * BATCHES_PER_EPOCH)),
}


@pytest.mark.parametrize(("name", "epoch", "batch", "stopped_at"), STOP_POINTS.values(), ids=STOP_POINTS)
def test_signal_stops_at_a_resumable_point_and_resume_is_bit_identical(
    compose_config, uninterrupted, name, epoch, batch, stopped_at
):
    kill = ["+callbacks.kill._target_=kill_switch.SendSignal", f"+callbacks.kill.name={name}"]
    if epoch == "testing":
        kill += ["+callbacks.kill.epoch=0", "+callbacks.kill.testing=true"]
    else:
        kill += [
            f"+callbacks.kill.epoch={epoch}",
            f"+callbacks.kill.batch={'null' if batch is None else batch}",
        ]
    interrupted = compose_config(*EXACT, *kill)
    with pytest.raises(Interrupted) as stop:
        run_training(interrupted)
    assert stop.value.exit_status == 128 + signal.Signals[name]
    last = Path(interrupted.paths.output_dir) / "checkpoints" / "last.ckpt"
    assert saved_position(last) == stopped_at
    assert not (Path(interrupted.paths.output_dir) / "metrics.json").exists()

    resumed = compose_config(*EXACT, f"ckpt_path={last}", run_dir=interrupted.paths.output_dir)
    metrics = run_training(resumed)
    assert_same_weights(
        Path(resumed.paths.output_dir) / "checkpoints" / "last.ckpt",
        uninterrupted / "checkpoints" / "last.ckpt",
    )
    reference = json.loads((uninterrupted / "metrics.json").read_text())
    for key in ("val/acc_best", "test/acc", "test/loss", "global_step", "epoch"):
        assert metrics[key] == pytest.approx(reference[key], abs=0), key


def test_sigterm_to_a_real_training_saves_exits_143_and_resume_finishes_it_exactly(tmp_path, uninterrupted):
    out = tmp_path / "run"
    args = [*EXACT[:-1], "logger=[wandb,csv]", f"hydra.run.dir={out}"]
    process = subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=PROJECT_DIR,
        env=script_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    last = out / "checkpoints" / "last.ckpt"
    while not last.exists() and process.poll() is None:  # after the first epoch
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == (
        f"error: stopped by SIGTERM; saved {last}; resume: python train.py resume={out}"
    )
    assert not (out / "metrics.json").exists()
    (killed,) = read_runs(out)
    assert killed.exit_code == 128 + signal.SIGTERM

    result = run_script("train.py", f"resume={out}", cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-3000:]
    reference = json.loads((uninterrupted / "metrics.json").read_text())
    finished = json.loads((out / "metrics.json").read_text())
    assert {key: finished[key] for key in reference} == reference
    assert_same_weights(out / "checkpoints" / "last.ckpt", uninterrupted / "checkpoints" / "last.ckpt")
    assert_same_weights(out / "checkpoints" / "best.ckpt", uninterrupted / "checkpoints" / "best.ckpt")
    first, resumed = read_runs(out)
    assert resumed.run_id == first.run_id and resumed.exit_code == 0
    with open(out / "csv" / "metrics.csv") as rows:
        validated = [int(row["epoch"]) for row in csv.DictReader(rows) if row["val/acc"]]
    assert validated == [0, 1, 2]  # the history before the kill is kept


DIVERGED = {
    "stop": (["optimizer.lr=1e8"], r"training loss is (nan|inf) at epoch 0, step \d+"),
    "skip-cannot-recover": (
        ["optimizer.lr=1e8", "nonfinite_loss=skip"],
        r"training loss is (nan|inf) at epoch 0, step \d+ and the weights are no longer finite",
    ),
}


@pytest.mark.parametrize(("overrides", "message"), DIVERGED.values(), ids=DIVERGED)
def test_diverged_run_stops_with_one_line_exit_3_and_no_metrics(tmp_path, overrides, message):
    result = run_script("train.py", *overrides, "logger=wandb", f"hydra.run.dir={tmp_path}", cwd=PROJECT_DIR)
    assert result.returncode == 3, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(f"error: {message}; no checkpoint was saved before it", last_line), last_line
    assert not (tmp_path / "metrics.json").exists()
    (run,) = read_runs(tmp_path)
    assert run.exit_code == 3


POISON = ("+callbacks.poison._target_=kill_switch.PoisonBatches", "+callbacks.poison.epoch=1")


def test_nonfinite_loss_stop_names_the_step_and_the_last_good_checkpoint(compose_config):
    cfg = compose_config(*EXACT, *POISON, "+callbacks.poison.batches=[3]")
    with pytest.raises(Diverged) as stop:
        run_training(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    step = BATCHES_PER_EPOCH + 3
    assert str(stop.value) == f"training loss is nan at epoch 1, step {step}; last good checkpoint: {last}"
    assert stop.value.exit_status == 3


def test_nonfinite_loss_skip_drops_only_those_batches(compose_config, caplog):
    cfg = compose_config(*EXACT, *POISON, "+callbacks.poison.batches=[3,7]", "nonfinite_loss=skip")
    metrics = run_training(cfg)
    skipped = [record.message for record in caplog.records if record.message.startswith("Skipped a batch")]
    assert skipped == [
        f"Skipped a batch with training loss nan at epoch 1, step {BATCHES_PER_EPOCH + batch}"
        for batch in (3, 7)
    ]
    assert metrics["test/acc"] > 0.5
    assert all(
        torch.isfinite(value).all()
        for value in weights(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt").values()
        if value.is_floating_point()
    )


@pytest.fixture
def finished_run(tmp_path) -> Path:
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    overrides = ["model=resnet", "trainer.max_epochs=5", "ckpt_path=/old/last.ckpt", "+experiment=aplite"]
    (run_dir / ".hydra" / "overrides.yaml").write_text(json.dumps(overrides))
    return run_dir


def test_resume_reuses_the_run_dir_and_its_overrides_with_new_ones_winning(finished_run):
    assert run_dir_overrides([f"resume={finished_run}", "trainer.max_epochs=9"]) == [
        "model=resnet",
        "+experiment=aplite",
        "trainer.max_epochs=9",
        f"hydra.run.dir={finished_run}",
        f"ckpt_path={finished_run}/checkpoints/last.ckpt",
    ]


def test_rerun_repeats_the_overrides_in_a_new_run_dir(finished_run):
    assert run_dir_overrides([f"rerun={finished_run}", "seed=7"]) == [
        "model=resnet",
        "trainer.max_epochs=5",
        "+experiment=aplite",
        "seed=7",
    ]


# What a stranger's run dir could smuggle in: code to instantiate, a config search path of its
# own (whose configs could name code), or a variable for every process the run starts.
UNSAFE_OVERRIDES = {
    "target": ("+callbacks.x._target_=os.system", "refusing to instantiate code named by a run dir"),
    "searchpath": ("hydra.searchpath=[file:///tmp/theirs]", "refusing Hydra settings from a run dir"),
    "env": ("+hydra.job.env_set.LD_PRELOAD=/tmp/theirs.so", "refusing Hydra settings from a run dir"),
}


@pytest.mark.parametrize(("override", "message"), UNSAFE_OVERRIDES.values(), ids=UNSAFE_OVERRIDES)
def test_run_dir_overrides_that_could_run_code_are_refused(finished_run, override, message):
    (finished_run / ".hydra" / "overrides.yaml").write_text(f'["{override}"]')
    with pytest.raises(ConfigError, match=message):
        run_dir_overrides([f"rerun={finished_run}"])


def test_code_the_command_line_names_again_is_the_command_lines(finished_run):
    """The command that started a run with a callback of its own resumes it: a sweep's trials."""
    callback = ["+callbacks.x._target_=my.Callback", "+callbacks.x.every=2"]
    (finished_run / ".hydra" / "overrides.yaml").write_text(json.dumps(["seed=3", *callback]))
    assert run_dir_overrides([f"rerun={finished_run}", *callback]) == ["seed=3", *callback]


@pytest.mark.parametrize("key", ["resume", "rerun"])
def test_resume_or_rerun_of_something_that_is_not_a_run_dir_is_one_line(tmp_path, key):
    result = run_script("train.py", f"{key}={tmp_path}", cwd=PROJECT_DIR)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path} is not a run dir: it has no .hydra/overrides.yaml"
    ]


def test_sigterm_during_evaluation_exits_143_and_writes_nothing(compose_config, uninterrupted, monkeypatch):
    from {{ cookiecutter.package_name }}.evaluation import run_evaluation
    from {{ cookiecutter.package_name }}.models.classifier import Classifier

    test_step = Classifier.test_step

    def killed_test_step(self: Classifier, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        test_step(self, batch, batch_idx)

    monkeypatch.setattr(Classifier, "test_step", killed_test_step)
    ckpt = uninterrupted / "checkpoints" / "best.ckpt"
    cfg = compose_config(f"ckpt_path={ckpt}", "+dataset.eval_batch_size=64", config_name="eval")
    with pytest.raises(Interrupted) as stop:
        run_evaluation(cfg)
    assert stop.value.exit_status == 143
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


CODE_STATES = {
    "same-commit": ({"commit": "1" * 40, "dirty": False}, None),
    "other-commit": (
        {"commit": "2" * 40, "dirty": False},
        "warning: {run} ran at commit 222222222222, the code is now at 111111111111: results may differ",
    ),
    "uncommitted-changes": (
        {"commit": "1" * 40, "dirty": True, "patch": "git.diff"},
        "warning: {run} ran with uncommitted changes ({run}/record/git.diff): results may differ",
    ),
}


@pytest.mark.parametrize(("recorded", "warning"), CODE_STATES.values(), ids=CODE_STATES)
def test_rerun_warns_when_the_code_differs_from_the_recorded_code(
    finished_run, monkeypatch, capsys, recorded, warning
):
    (finished_run / "record").mkdir()
    (finished_run / "record" / "environment.yaml").write_text(json.dumps({"git": recorded}))
    monkeypatch.setattr(run_record, "git", lambda directory, *args: b"1" * 40 + b"\n")
    run_dir_overrides([f"rerun={finished_run}"])
    expected = f"{warning.format(run=finished_run)}\n" if warning else ""
    assert capsys.readouterr().err == expected
