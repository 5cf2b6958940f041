"""Real training on digits: accuracy, checkpoints, resume, evaluation, and the command line."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from conftest import EXPERIMENTS, PROJECT_DIR, run_script, train_cli
from omegaconf import OmegaConf
from pytorch_lightning.plugins.io import AsyncCheckpointIO

from {{ cookiecutter.package_name }}.checkpoints import CheckpointFiles, load_checkpoint
from {{ cookiecutter.package_name }}.models.classifier import Classifier
from {{ cookiecutter.package_name }}.training import build_trainer, run_training

CHANCE = 0.1


def read_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())


def test_short_training_learns_digits_and_keeps_best_and_last(compose_config):
    cfg = compose_config("trainer.max_epochs=8", "logger=csv", "callbacks.early_stopping.patience=100")
    metrics = run_training(cfg)
    assert metrics["test/acc"] > 0.9 > 5 * CHANCE

    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    last, best = load_checkpoint(checkpoints / "last.ckpt"), load_checkpoint(checkpoints / "best.ckpt")
    # last.ckpt is the final epoch, not a copy of the best one.
    assert last["global_step"] == metrics["global_step"]
    assert last["epoch"] == 7
    assert best["global_step"] <= last["global_step"]
    assert (Path(cfg.paths.output_dir) / "csv" / "metrics.csv").is_file()


def test_default_run_logs_the_loss_every_n_steps_and_epoch_means_once(compose_config):
    """What a default run logs and when: the batch loss every `log_every_n_steps` steps and on
    each epoch's last step, the epoch means once per epoch; checkpoints are written in a thread."""
    cfg = compose_config("trainer.max_epochs=2", "trainer.log_every_n_steps=5", "logger=csv")
    trainer = build_trainer(cfg, logger=False)
    assert isinstance(trainer.strategy.checkpoint_io, AsyncCheckpointIO)
    assert isinstance(trainer.strategy.checkpoint_io.checkpoint_io, CheckpointFiles)

    metrics = run_training(cfg)
    with open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv") as rows:
        table = list(csv.DictReader(rows))
    steps_per_epoch = metrics["global_step"] // 2
    loss_steps = {int(row["step"]) for row in table if row.get("train/loss")}
    every_fifth = set(range(4, 2 * steps_per_epoch, 5))
    assert every_fifth <= loss_steps <= every_fifth | {steps_per_epoch - 1, 2 * steps_per_epoch - 1}
    epoch_rows = [row for row in table if row.get("train/loss_epoch")]
    assert [int(row["epoch"]) for row in epoch_rows] == [0, 1]
    assert all(0 < float(row["train/acc_epoch"]) <= 1 for row in epoch_rows)


def test_resume_trains_only_the_remaining_epochs(compose_config):
    first = compose_config("trainer.max_epochs=2", "~logger")
    first_steps = run_training(first)["global_step"]
    last = Path(first.paths.output_dir) / "checkpoints" / "last.ckpt"

    resumed = compose_config("trainer.max_epochs=4", "logger=csv", f"ckpt_path={last}")
    metrics = run_training(resumed)
    assert metrics["global_step"] == 2 * first_steps
    with open(Path(resumed.paths.output_dir) / "csv" / "metrics.csv") as rows:
        trained_epochs = {int(row["epoch"]) for row in csv.DictReader(rows) if row.get("train/loss_epoch")}
    assert trained_epochs == {2, 3}


@pytest.mark.parametrize(
    ("on_terminal", "overrides", "shows_bar"),
    [(True, [], True), (False, [], False), (False, ["trainer.enable_progress_bar=true"], True)],
    ids=["terminal", "redirected", "forced-on"],
)
def test_progress_bar_only_on_a_terminal_unless_set(
    compose_config, monkeypatch, on_terminal, overrides, shows_bar
):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: on_terminal)
    trainer = build_trainer(compose_config(*overrides), logger=False)
    assert (trainer.progress_bar_callback is not None) == shows_bar


def test_checkpoint_loads_without_hydra(compose_config):
    cfg = compose_config("trainer.max_epochs=1", "~logger")
    run_training(cfg)
    model = Classifier.load_from_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "best.ckpt")
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_train_then_eval_from_the_command_line(tmp_path):
    out = train_cli(tmp_path / "train", "trainer.max_epochs=3", "logger=csv")
    trained = read_metrics(out)
    assert (out / ".hydra" / "overrides.yaml").is_file() and (out / "train.log").is_file()
    # Tests run side by side on few cores: the trainings they start keep conftest's thread count.
    threads = os.environ["OMP_NUM_THREADS"]
    assert f"Threads: {threads} (OMP_NUM_THREADS={threads})" in (out / "train.log").read_text()

    evaluated_dir = tmp_path / "eval"
    ckpt = out / "checkpoints" / "best.ckpt"
    evaluation = run_script("eval.py", f"ckpt_path={ckpt}", f"hydra.run.dir={evaluated_dir}", cwd=PROJECT_DIR)
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    assert read_metrics(evaluated_dir)["test/acc"] == pytest.approx(trained["test/acc"])


@pytest.mark.parametrize(
    ("pattern", "experiments"), [("glob(*)", EXPERIMENTS), ("aplite,nglite", ["aplite", "nglite"])], ids=str
)
def test_multirun_runs_each_experiment_in_its_own_dir(tmp_path, pattern, experiments):
    result = run_script(
        "train.py",
        "-m",
        f"+experiment={pattern}",
        "trainer.max_epochs=1",
        "logger=csv",
        f"hydra.sweep.dir={tmp_path}",
        cwd=PROJECT_DIR,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [tmp_path / str(number) for number in range(len(experiments))]
    chosen = {
        next(o for o in OmegaConf.load(job / ".hydra" / "overrides.yaml") if "experiment" in o)
        for job in jobs
    }
    assert chosen == {f"+experiment={name}" for name in experiments}
    assert all(read_metrics(job)["test/acc"] > 0 for job in jobs)
    # A multirun with no failure ends with its summary too, an experiment column for what it sweeps.
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(job["experiment"], job["status"]) for job in summary] == [(name, "ok") for name in experiments]
    assert "Multirun summary" in result.stdout


HEAVY = {"torch", "pytorch_lightning", "wandb", "tensorboard", "mlflow"}


@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job"], ["-sc", "install=bash"]], ids=" ".join)
def test_cli_without_a_job_does_not_import_torch(args):
    probe = (
        "import atexit, runpy, sys\n"
        f"atexit.register(lambda: print(sorted({HEAVY!r} & set(sys.modules))))\n"
        f"sys.argv = ['train.py', *{args!r}]\n"
        "runpy.run_path('train.py', run_name='__main__')\n"
    )
    result = run_script("-c", probe, cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("[]")


def test_csv_logger_needs_no_wandb(tmp_path):
    # A `wandb` that fails on import proves the csv path never touches it.
    (tmp_path / "shim" / "wandb").mkdir(parents=True)
    (tmp_path / "shim" / "wandb" / "__init__.py").write_text(
        "raise ImportError('wandb must not be imported')\n"
    )
    shim = {"PYTHONPATH": str(tmp_path / "shim")}
    out = train_cli(tmp_path / "run", "logger=csv", "trainer.max_epochs=1", env=shim)
    assert read_metrics(out)["test/acc"] > CHANCE


def test_wandb_without_login_falls_back_to_offline(tmp_path):
    env = {"WANDB_MODE": None, "WANDB_API_KEY": None, "HOME": str(tmp_path), "NETRC": str(tmp_path / "netrc")}
    out = train_cli(tmp_path / "run", "logger=wandb", "trainer.max_epochs=1", env=env)
    assert "W&B: no login found, logging offline" in (out / "train.log").read_text()
    assert len(list((out / "wandb").glob("offline-run-*/run-*.wandb"))) == 1


def test_digits_benchmark_prints_a_table_with_ratios():
    result = run_script(
        "benchmarks/digits_models.py",
        "--repeats",
        "1",
        "trainer.max_epochs=1",
        "--only",
        "default (mlp)",
        "+experiment=nglite",
        cwd=PROJECT_DIR,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| `python train.py")]
    assert len(rows) == 2 and rows[0].endswith("| 1.00x |")


def test_training_loop_benchmark_compares_every_case_with_the_hand_written_loop():
    result = run_script("benchmarks/training_loop.py", "--repeats", "1", "--epochs", "2", cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "samples/s" not in line]
    assert len(rows) == 5 and rows[0].startswith("| hand-written") and "| 1.00x |" in rows[0]
    assert all(float(row.split("|")[2].replace(",", "")) > 0 for row in rows)


def test_first_step_benchmark_times_each_phase_against_the_import_floor():
    result = run_script(
        "benchmarks/first_step.py", "--repeats", "1", "logger=csv", "trainer.max_epochs=1", cwd=PROJECT_DIR
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split(" | ")[0] for line in result.stdout.splitlines() if line.startswith("| `python")]
    phases = ["fit started", "sanity check started", "training started", "first step done"]
    assert rows == [
        '| `python -c "import torch, pytorch_lightning"` (floor)',
        "| `python train.py` to callbacks built",
        *(f"| `python train.py` to {phase}" for phase in phases),
        "| `python train.py` total",
    ]
